"""Pure: which values are compared with which. From stored runs to groups of
metric x case parameters (minus the axis under test) x host, one baseline and one candidate
sample each.

Two ways to pick the sides: two variants inside one run (``--axis NAME=A,B``: cases with
NAME=A are the baseline, NAME=B the candidate, matched on every other parameter, knob and
variant), or two runs (matched on workload entry name and all its parameters, so the same
suite edited between runs still lines up). Only completed attempts count; a missing value
(None) is left out, never read as 0.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.compare.fingerprint import Fields, host_fields
from fleet.config.compare import DEFAULT_COMPARE, CompareConfig
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError, FleetError
from fleet.model import Facts
from fleet.runs import CompletedAttempt, PlannedCase, RunInfo
from fleet.workloads.base import format_param_value

CaseKey = tuple[tuple[str, str], ...]  # sorted (name, value as text)
Labels = tuple[tuple[str, str], ...]


class SelectionError(FleetError):
    """The data asked for is not there: unknown axis or value, nothing overlaps."""


@dataclass(frozen=True)
class LoadedRun:
    """One run as a comparison reads it (fleet.compare.load builds it from the store)."""

    info: RunInfo
    attempts: tuple[CompletedAttempt, ...]  # fleet.store.runs.load_completed
    cases: Mapping[str, PlannedCase]  # case id -> the case as the run's plan recorded it
    suite_text: str
    tags: Mapping[str, str]
    facts: Mapping[tuple[str, str], Facts]  # (host, fingerprint) -> the facts behind it

    @property
    def run_id(self) -> str:
        return self.info.run_id


@dataclass(frozen=True)
class Observation:
    workload: str
    case: CaseKey  # every parameter, knob and variant of the case
    host: str
    metric: str
    unit: str
    labels: Labels
    value: float
    fields: Fields  # the host's compared fields (fleet.compare.fingerprint)


@dataclass(frozen=True)
class Group:
    metric: str
    unit: str
    labels: Labels
    workload: str
    case: CaseKey  # without the axis under test
    host: str
    contrast: str  # "NAME=B vs NAME=A" or "RUN_B vs RUN_A"
    baseline: tuple[float, ...]
    candidate: tuple[float, ...]
    baseline_fields: frozenset[Fields]
    candidate_fields: frozenset[Fields]
    config: CompareConfig  # the workload entry's compare settings
    candidate_case: CaseKey = ()  # the candidate's full case (with the axis value)


def observations(run: LoadedRun, *, axis: str | None = None) -> list[Observation]:
    fields_cache: dict[tuple[object, ...], Fields] = {}
    found: list[Observation] = []
    coords = {cid: (case.workload, _coords(case)) for cid, case in run.cases.items()}
    for a in run.attempts:
        known = coords.get(a.case_id)
        if known is None:
            continue
        key = (a.host, a.fingerprint, a.knobs, a.variant)
        fields = fields_cache.get(key)
        if fields is None:
            facts = None if a.fingerprint is None else run.facts.get((a.host, a.fingerprint))
            fields = fields_cache[key] = host_fields(facts, a.knobs, axis=axis,
                                                     variant=a.variant)
        workload, case = known
        found.extend(Observation(workload, case, a.host, metric, unit, labels, value, fields)
                     for metric, value, unit, labels in a.results if value is not None)
    return found


def case_coords(case: PlannedCase) -> CaseKey:
    """A plan case's every parameter, knob and variant, as a comparison keys it."""
    return _coords(case)


def _coords(case: PlannedCase) -> CaseKey:
    return tuple(sorted((k, format_param_value(v)) for k, v in case.settings().items()))


def entry_configs(run: LoadedRun) -> tuple[CompareConfig, dict[str, CompareConfig]]:
    """The run's suite-level compare settings and each workload entry's (defaults when the
    recorded suite no longer parses)."""
    try:
        suite = parse_suite(run.suite_text, source=f"suite recorded in {run.run_id}")
    except ConfigError:
        return DEFAULT_COMPARE, {}
    return suite.compare, {e.name: e.compare for e in suite.entries}


def axis_values(run: LoadedRun, axis: str) -> list[str]:
    """The values NAME takes in the run's cases; SelectionError when it is not there."""
    seen: dict[str, None] = {}
    names: dict[str, set[str]] = {}
    for case in run.cases.values():
        for name, value in _coords(case):
            names.setdefault(name, set()).add(value)
            if name == axis:
                seen[value] = None
    if not seen:
        varying = sorted(n for n, v in names.items() if len(v) > 1)
        raise SelectionError(f"axis {axis!r} is not in run {run.run_id}", where=run.run_id,
                             hint=f"its axes: {', '.join(varying) or 'none'}")
    return sorted(seen)


def within_run(run: LoadedRun, axis: str, baseline_value: str,
               candidate_values: Sequence[str] | None = None, *,
               hosts: Collection[str] | None = None) -> tuple[Group, ...]:
    """Cases with axis=baseline_value vs each candidate value (None: every other value)."""
    values = axis_values(run, axis)
    wanted = list(candidate_values) if candidate_values is not None \
        else [v for v in values if v != baseline_value]
    for value in (baseline_value, *wanted):
        if value not in values:
            raise SelectionError(f"axis {axis} has no value {value!r} in run {run.run_id}",
                                 where=run.run_id, hint=f"its values: {', '.join(values)}")
    if baseline_value in wanted:
        raise SelectionError(f"axis {axis}: {baseline_value!r} is both baseline and candidate",
                             where=run.run_id, hint="name two different values: NAME=A,B")
    contrast_of = {v: f"{axis}={v} vs {axis}={baseline_value}" for v in wanted}
    buckets: dict[tuple[object, ...], tuple[list[Observation], list[Observation]]] = {}
    for o in observations(run, axis=axis):
        here = dict(o.case).get(axis)
        if hosts is not None and o.host not in hosts:
            continue
        rest = tuple(p for p in o.case if p[0] != axis)
        base = (o.metric, o.unit, o.labels, o.workload, rest, o.host)
        if here == baseline_value:
            for contrast in contrast_of.values():
                buckets.setdefault((*base, contrast), ([], []))[0].append(o)
        elif here is not None and here in contrast_of:
            buckets.setdefault((*base, contrast_of[here]), ([], []))[1].append(o)
    return _groups(buckets, run, f"run {run.run_id}")


def between_runs(baseline: LoadedRun, candidate: LoadedRun, *,
                 hosts: Collection[str] | None = None) -> tuple[Group, ...]:
    contrast = f"{candidate.run_id} vs {baseline.run_id}"
    buckets: dict[tuple[object, ...], tuple[list[Observation], list[Observation]]] = {}
    for side, run in enumerate((baseline, candidate)):
        for o in observations(run):
            if hosts is None or o.host in hosts:
                key = (o.metric, o.unit, o.labels, o.workload, o.case, o.host, contrast)
                buckets.setdefault(key, ([], []))[side].append(o)
    return _groups(buckets, candidate, f"runs {baseline.run_id} and {candidate.run_id}")


def _groups(buckets: Mapping[tuple[Any, ...], tuple[list[Observation], list[Observation]]],
            run: LoadedRun, what: str) -> tuple[Group, ...]:
    if not any(b and c for b, c in buckets.values()):
        raise SelectionError(f"{what}: no case, metric and host has values on both sides",
                             where=what, hint="compare runs of the same suite and hosts; "
                                              "`fleet show RUN` lists a run's results")
    suite_config, configs = entry_configs(run)
    groups = [Group(metric, unit, labels, workload, case, host, contrast,
                    tuple(o.value for o in b), tuple(o.value for o in c),
                    frozenset(o.fields for o in b), frozenset(o.fields for o in c),
                    configs.get(workload, suite_config), c[0].case if c else case)
              for (metric, unit, labels, workload, case, host, contrast), (b, c)
              in buckets.items()]
    return tuple(sorted(groups, key=_order))


def _order(g: Group) -> tuple[Any, ...]:
    return (g.contrast, g.workload, g.case, g.metric, g.labels, g.host)


def hosts_of(groups: Iterable[Group]) -> list[str]:
    return sorted({g.host for g in groups})
