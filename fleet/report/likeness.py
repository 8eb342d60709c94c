"""Like for like in `fleet report RUN --compare RUN_B`, as `fleet compare` checks it. Pure.

The same case (workload entry and settings) on the same host in both runs: the host fields
of its completed attempts (fleet.compare.fingerprint: CPU model, microcode, node layout,
kernel and cmdline, THP, NUMA balancing, knob values) must match, or the report is refused
(MismatchError, listing the fields) unless ``allow`` names every differing field; the
allowed differences are returned to be shown in the report.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from fleet.compare.fingerprint import FieldDiff, Fields, check_allowed, differences, host_fields
from fleet.model import Facts
from fleet.report.assemble import RunRecords
from fleet.workloads.base import format_param_value

_Key = tuple[str, str, tuple[tuple[str, str], ...]]  # host, workload, settings


def run_fingerprints(run: RunRecords) -> set[tuple[str, str]]:
    """The (host, fingerprint) pairs whose facts the check needs."""
    return {(s.attempt.host, s.attempt.fingerprint) for s in run.detail.attempts
            if s.attempt.status == "completed" and s.attempt.fingerprint is not None}


def check_runs_alike(baseline: RunRecords, candidate: RunRecords,
                     facts: Mapping[tuple[str, str], Facts], allow: Collection[str] = ()
                     ) -> tuple[FieldDiff, ...]:
    """``facts``: (host, fingerprint) -> the stored facts behind it (missing: unknown)."""
    sides = [_fields(baseline, facts), _fields(candidate, facts)]
    found: dict[tuple[str, str], FieldDiff] = {}
    seen: dict[tuple[Any, ...], tuple[FieldDiff, ...]] = {}
    for key in sorted(sides[0].keys() & sides[1].keys()):
        b, c = frozenset(sides[0][key]), frozenset(sides[1][key])
        if (key[0], b, c) not in seen:
            seen[(key[0], b, c)] = differences(key[0], b, c)
        for d in seen[(key[0], b, c)]:
            found.setdefault((d.host, d.field), d)
    return check_allowed([found[k] for k in sorted(found)], allow)


def _fields(run: RunRecords, facts: Mapping[tuple[str, str], Facts]
            ) -> dict[_Key, set[Fields]]:
    out: dict[_Key, set[Fields]] = {}
    for stored in run.detail.attempts:
        a = stored.attempt
        if a.status != "completed":
            continue
        settings = tuple(sorted((k, format_param_value(v))
                                for k, v in run.settings.get(a.job.case_id, {}).items()))
        key = (a.host, run.workloads.get(a.job.case_id, ""), settings)
        known = None if a.fingerprint is None else facts.get((a.host, a.fingerprint))
        out.setdefault(key, set()).add(host_fields(known, a.knobs, variant=a.variant))
    return out
