"""Pure expansion of a suite's workload entries into Cases.

Per entry: the cross product of its axes (declared order), minus every combination an
``exclude`` rule matches (all of the rule's axis values equal), plus each ``include`` not
already present. Values compare by type and value (``1``, ``1.0``, ``true`` and ``"1"``
differ; one axis never lists two of them: fleet.config.suite refuses values with the same text).
A suite is bounded: ``expand(max_jobs=N)`` stops at N cases x repetitions. Each Case gets a
stable id: a hash of the workload name, kind and identity and its sorted params, knobs and
variant (never the repetition, never the key order in the file).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from fleet.config.suite import Suite, WorkloadEntry
from fleet.errors import ConfigError
from fleet.knobs import knob_requirements, merge_requirements
from fleet.model import Assignment, Case, ParamValue, Requirements
from fleet.workloads.base import Workload

V = TypeVar("V")
CASE_ID_HEX_CHARS = 16
DEFAULT_MAX_JOBS = 10_000  # fleet run/plan/gate --max-jobs: cases x repetitions (x hosts)
CROSS_PRODUCT_FACTOR = 100  # an entry's raw cross product may be this many times max_jobs
_VALUES_SHOWN = 12


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)
_NO_REQUIREMENTS = Requirements()


def _key(values: Mapping[str, object]) -> tuple[tuple[str, str, object], ...]:
    return tuple(sorted((k, type(v).__name__, v) for k, v in values.items()))


def _matches(combo: Mapping[str, object], rule: Mapping[str, object]) -> bool:
    for k, v in rule.items():
        got = combo.get(k, _matches)
        if type(got) is not type(v) or got != v:
            return False
    return True


class _Excluded:
    """The exclude rules as one set of (type, value) tuples per set of axis names they name:
    whether a combination is excluded costs one lookup per such set, not one per rule."""

    def __init__(self, rules: Sequence[Mapping[str, object]]) -> None:
        self.by_names: dict[tuple[str, ...], set[tuple[tuple[str, object], ...]]] = {}
        for rule in rules:
            names = tuple(sorted(rule))
            self.by_names.setdefault(names, set()).add(
                tuple((type(rule[n]).__name__, rule[n]) for n in names))

    def __call__(self, combo: Mapping[str, object]) -> bool:
        return any(tuple((type(combo[n]).__name__, combo[n]) if n in combo else (None, None)
                         for n in names) in values
                   for names, values in self.by_names.items())


def iter_combinations(axes: Sequence[tuple[str, Sequence[V]]],
                      exclude: Sequence[Mapping[str, V]] = (),
                      include: Sequence[Mapping[str, V]] = ()) -> Iterator[dict[str, V]]:
    """The axes' cross product without excluded combinations, then the new includes; lazily
    (a caller may stop early)."""
    names = [name for name, _ in axes]
    excluded = _Excluded(exclude)
    seen: set[tuple[tuple[str, str, object], ...]] = set()
    for values in itertools.product(*(v for _, v in axes)):
        combo = dict(zip(names, values, strict=True))
        if not excluded(combo):
            if include:
                seen.add(_key(combo))
            yield combo
    for rule in include:
        if _key(rule) not in seen:
            seen.add(_key(rule))
            yield dict(rule)


def combinations(axes: Sequence[tuple[str, Sequence[V]]],
                 exclude: Sequence[Mapping[str, V]] = (),
                 include: Sequence[Mapping[str, V]] = ()) -> list[dict[str, V]]:
    """The axes' cross product without excluded combinations, then the new includes."""
    return list(iter_combinations(axes, exclude, include))


def case_id(workload: str, kind: str, identity: Mapping[str, object], params: Assignment, *,
            knobs: Assignment = (), variant: Assignment = ()) -> str:
    """Short sha256 hex of the case's canonical JSON (key order and repetition free)."""
    return _case_id(_id_prefix(workload, kind, identity), params, knobs, variant)


def _id_prefix(workload: str, kind: str, identity: Mapping[str, object]) -> str:
    return _ENCODER.encode([workload, kind, identity])[:-1]


def _case_id(prefix: str, params: Assignment, knobs: Assignment, variant: Assignment) -> str:
    """``params`` etc. are sorted (name, value) pairs: the JSON is canonical without sorting."""
    canonical = f"{prefix},{_ENCODER.encode([params, knobs, variant])[1:]}"
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:CASE_ID_HEX_CHARS]


def expand(suite: Suite, *, max_jobs: int | None = None) -> tuple[Case, ...]:
    """Every entry's cases, in file order. ConfigError if an entry yields no case, or (with
    ``max_jobs``) as soon as the cases x repetitions pass ``max_jobs``, or an entry's axes
    cross to more than CROSS_PRODUCT_FACTOR x ``max_jobs`` combinations (excludes or not)."""
    cases: list[Case] = []
    jobs = 0
    for entry in suite.entries:
        if max_jobs is not None:
            _check_cross_product(entry, max_jobs)
        for case in _entry_cases(entry):
            jobs += case.repetitions
            if max_jobs is not None and jobs > max_jobs:
                raise ConfigError(
                    f"suite {suite.name} has more than {max_jobs} jobs: its cases x repetitions "
                    f"pass {max_jobs} at workload {entry.name}", where=entry.where,
                    hint=f"narrow the axes or repetitions, or allow more with --max-jobs N "
                         f"(default {DEFAULT_MAX_JOBS})")
            cases.append(case)
    return tuple(cases)


def _check_cross_product(entry: WorkloadEntry, max_jobs: int) -> None:
    crossed = math.prod(len(axis.values) for axis in entry.axes)
    if crossed > CROSS_PRODUCT_FACTOR * max_jobs:
        raise ConfigError(
            f"workload {entry.name}: its axes cross to {crossed} combinations, more than "
            f"{CROSS_PRODUCT_FACTOR} x --max-jobs {max_jobs}", where=entry.where,
            hint="narrow the axes (excludes are checked per combination, so they do not "
                 "help here), or allow more with --max-jobs N")


def expand_entry(entry: WorkloadEntry) -> tuple[Case, ...]:
    return tuple(_entry_cases(entry))


def _entry_cases(entry: WorkloadEntry) -> Iterator[Case]:
    _check_rule_values(entry)
    combos = iter_combinations(
        [(axis.name, axis.values) for axis in entry.axes],
        exclude=[dict(rule.assignment) for rule in entry.exclude],
        include=[dict(rule.assignment) for rule in entry.include])
    empty = True
    for case in _cases(entry, combos):
        empty = False
        yield case
    if empty:
        raise ConfigError(f"workload {entry.name} expands to no case: the exclude rules "
                          "remove every combination", where=entry.where,
                          hint="narrow the exclude rules or add axis values")


def _check_rule_values(entry: WorkloadEntry) -> None:
    """A rule value that no case can have is a typo: say so where the rule is."""
    domain: dict[str, dict[tuple[str, ParamValue], None]] = {  # ordered sets
        a.name: dict.fromkeys((type(v).__name__, v) for v in a.values) for a in entry.axes}
    for rule in entry.exclude:
        _known_values("exclude", rule.assignment, domain, rule.where)
    for rule in entry.include:
        for name, value in rule.assignment:
            domain[name][(type(value).__name__, value)] = None
    for cond in entry.requires_when:
        _known_values("requires_when match", cond.match, domain, cond.where)


def _known_values(what: str, assignment: Assignment,
                  domain: Mapping[str, dict[tuple[str, ParamValue], None]], where: str) -> None:
    for name, value in assignment:
        if (type(value).__name__, value) not in domain[name]:
            shown = [v for _, v in domain[name]][:_VALUES_SHOWN]
            raise ConfigError(f"{what} names {name}={value!r}, which no case of this workload "
                              "has", where=where,
                              hint=f"values of {name}: {', '.join(map(repr, shown))}"
                                   f"{', ...' if len(domain[name]) > len(shown) else ''}")


def _split(entry: WorkloadEntry, combo: Mapping[str, ParamValue]
           ) -> tuple[dict[str, ParamValue], dict[str, ParamValue], dict[str, ParamValue]]:
    params, knobs, variant = dict(entry.params), dict(entry.knobs), dict(entry.variant)
    target = {"param": params, "knob": knobs, "variant": variant}
    for axis in entry.axes:
        target[axis.kind][axis.name] = combo[axis.name]
    return params, knobs, variant


def _cases(entry: WorkloadEntry, combos: Iterable[Mapping[str, ParamValue]]) -> Iterator[Case]:
    prefix = _id_prefix(entry.name, entry.workload.kind, entry.workload.identity())
    requirements = _Requirements(entry)
    for combo in combos:
        params, knobs, variant = _split(entry, combo)
        sorted_params, sorted_knobs = tuple(sorted(params.items())), tuple(sorted(knobs.items()))
        sorted_variant = tuple(sorted(variant.items()))
        estimate = entry.estimate_seconds
        if estimate is None:
            estimate = entry.workload.estimate_seconds(params)
        yield Case(
            case_id=_case_id(prefix, sorted_params, sorted_knobs, sorted_variant),
            workload=entry.name, kind=entry.workload.kind, params=sorted_params,
            knobs=sorted_knobs, variant=sorted_variant,
            requirements=requirements.of(combo, params, knobs),
            repetitions=entry.repetitions, timeout_seconds=entry.timeout_seconds,
            estimate_seconds=estimate, spread=entry.spread, source=entry.where)


class _Requirements:
    """A case's requirements: the entry's, the workload's, its knobs', matching requires_when."""

    def __init__(self, entry: WorkloadEntry) -> None:
        self.entry = entry
        self.rules = [(dict(c.match), c.requires) for c in entry.requires_when]
        self.merged: dict[tuple[Requirements, ...], Requirements] = {}
        self.workload_specific = type(entry.workload).requirements is not Workload.requirements

    def _own(self, params: Mapping[str, ParamValue],
             knobs: Mapping[str, ParamValue]) -> Iterator[Requirements]:
        if self.workload_specific:
            yield self.entry.workload.requirements(params)
        if knobs:
            yield knob_requirements(knobs)

    def of(self, combo: Mapping[str, ParamValue], params: Mapping[str, ParamValue],
           knobs: Mapping[str, ParamValue]) -> Requirements:
        extras = tuple(r for r in (*self._own(params, knobs),
                                   *(req for match, req in self.rules if _matches(combo, match)))
                       if r != _NO_REQUIREMENTS)
        result = self.merged.get(extras)
        if result is None:
            result = self.entry.requires
            for extra in extras:
                result = merge_requirements(result, extra)
            self.merged[extras] = result
        return result
