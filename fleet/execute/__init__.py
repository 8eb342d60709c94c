"""The executor: a stored Plan's jobs run on the hosts, every attempt recorded in the store.

``executor`` (``execute``, ExecuteOptions: a thread per host, ONE recording thread, two-stage
Ctrl-C), ``worker`` (one host's thread: one session, one case at a time), ``hosts`` (one
connection and one agent per host), ``board`` (the hosts' job queues), ``knobs`` (runtime knobs
around a case, restored after it), ``policy`` (pure: retries, quarantine, verdicts), ``plan``
(pure: stored plan -> jobs) and ``events`` (what a run reports while it goes).
"""
