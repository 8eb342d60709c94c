"""The executor: a Plan's jobs on the hosts, results to the store."""
