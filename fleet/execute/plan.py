"""Pure glue between a stored plan (fleet.runs.StoredPlan) and the executor's jobs and queues.

A fresh run and a resumed one read the SAME recorded plan, so `--resume` runs exactly
the recorded queues (in their recorded, seeded order), minus the jobs already completed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from fleet.config.suite import Suite
from fleet.errors import ConfigError
from fleet.execute.worker import CaseRuntime
from fleet.model import Case
from fleet.plan.matrix import expand
from fleet.plan.schedule import Candidate, eligibility
from fleet.runs import JobKey, RunDetail, StoredPlan


def plan_queues(plan: StoredPlan) -> dict[str, list[tuple[str, int]]]:
    """host -> [(case_id, repetition), ...] in the recorded order."""
    return plan.queues()


def _key(case: Case, repetition: int, host: str) -> JobKey:
    return JobKey(case.case_id, repetition, host if case.spread == "every" else None)


def plan_jobs(plan: StoredPlan, cases: Mapping[str, Case]) -> tuple[JobKey, ...]:
    """Every job of the plan, host by host in queue order."""
    return tuple(_key(cases[cid], rep, host)
                 for host, entries in plan_queues(plan).items() for cid, rep in entries)


def host_queues(plan: StoredPlan, cases: Mapping[str, Case],
                pending: Collection[JobKey]) -> dict[str, tuple[JobKey, ...]]:
    """Each planned host's pending jobs in the recorded order (hosts with none included)."""
    wanted = set(pending)
    out: dict[str, tuple[JobKey, ...]] = {}
    for host, entries in plan_queues(plan).items():
        keys = (_key(cases[cid], rep, host) for cid, rep in entries)
        out[host] = tuple(k for k in keys if k in wanted)
    return out


def eligible_hosts(cases: Sequence[Case], candidates: Sequence[Candidate]
                   ) -> dict[str, frozenset[str]]:
    """case id -> names of the hosts that meet its requirements (for handing jobs over)."""
    cache: dict[object, frozenset[str]] = {}
    out: dict[str, frozenset[str]] = {}
    for case in cases:
        if case.requirements not in cache:
            indices, _ = eligibility(case.requirements, candidates)
            cache[case.requirements] = frozenset(candidates[i].host.name for i in indices)
        out[case.case_id] = cache[case.requirements]
    return out


def next_attempt_numbers(detail: RunDetail) -> dict[JobKey, int]:
    numbers: dict[JobKey, int] = {}
    for stored in detail.attempts:
        a = stored.attempt
        numbers[a.job] = max(numbers.get(a.job, 1), a.attempt_no + 1)
    return numbers


def case_runtimes(suite: Suite, planned: Collection[str], *, where: str) -> dict[str, CaseRuntime]:
    """The suite's cases that the plan names, each with its configured workload and sampling.

    ConfigError when the suite text no longer yields a planned case id (another fleet version).
    """
    entries = {e.name: e for e in suite.entries}
    cases = {c.case_id: c for c in expand(suite)}
    missing = sorted(set(planned) - set(cases))
    if missing:
        raise ConfigError(f"the recorded suite no longer expands to {len(missing)} planned "
                          f"case(s), e.g. {missing[0]}", where=where,
                          hint="resume with the fleet version that created the run")
    return {cid: CaseRuntime(cases[cid], entries[cases[cid].workload].workload,
                             entries[cases[cid].workload].sampling) for cid in planned}
