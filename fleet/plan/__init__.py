"""Planning, pure: a suite's workload entries -> Cases (``matrix``) -> a Plan over the hosts
with their facts (``schedule``). fleet.api.plan is what ``fleet plan`` calls."""
