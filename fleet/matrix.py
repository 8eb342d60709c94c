"""Pure expansion of a suite's workload entries into Cases.

Per entry: the cross product of its axes (declared order), minus every combination an
``exclude`` rule matches (all of the rule's axis values equal), plus each ``include`` not
already present. Values compare by type and value (``1``, ``1.0``, ``true`` and ``"1"``
differ). Each Case gets a stable id: a hash of the workload name, kind and identity and its
sorted params, knobs and variant (never the repetition, never the key order in the file).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

from fleet.errors import ConfigError
from fleet.knobs import knob_requirements, merge_requirements
from fleet.model import Assignment, Case, ParamValue, Requirements
from fleet.suite import Suite, WorkloadEntry
from fleet.workloads.base import Workload

V = TypeVar("V")
CASE_ID_HEX_CHARS = 16


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


def combinations(axes: Sequence[tuple[str, Sequence[V]]],
                 exclude: Sequence[Mapping[str, V]] = (),
                 include: Sequence[Mapping[str, V]] = ()) -> list[dict[str, V]]:
    """The axes' cross product without excluded combinations, then the new includes."""
    names = [name for name, _ in axes]
    result = [combo for combo in (dict(zip(names, values, strict=True))
                                  for values in itertools.product(*(v for _, v in axes)))
              if not any(_matches(combo, rule) for rule in exclude)]
    if include:
        seen = {_key(combo) for combo in result}
        for rule in include:
            if _key(rule) not in seen:
                seen.add(_key(rule))
                result.append(dict(rule))
    return result


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


def expand(suite: Suite) -> tuple[Case, ...]:
    """Every entry's cases, in file order. ConfigError if an entry yields no case."""
    return tuple(case for entry in suite.entries for case in expand_entry(entry))


def expand_entry(entry: WorkloadEntry) -> tuple[Case, ...]:
    _check_rule_values(entry)
    combos = combinations(
        [(axis.name, axis.values) for axis in entry.axes],
        exclude=[dict(rule.assignment) for rule in entry.exclude],
        include=[dict(rule.assignment) for rule in entry.include])
    if not combos:
        raise ConfigError(f"workload {entry.name} expands to no case: the exclude rules "
                          "remove every combination", where=entry.where,
                          hint="narrow the exclude rules or add axis values")
    return tuple(_cases(entry, combos))


def _check_rule_values(entry: WorkloadEntry) -> None:
    """A rule value that no case can have is a typo: say so where the rule is."""
    domain: dict[str, list[ParamValue]] = {a.name: list(a.values) for a in entry.axes}
    for rule in entry.exclude:
        _known_values("exclude", rule.assignment, domain, rule.where)
    for rule in entry.include:
        for name, value in rule.assignment:
            domain[name].append(value)
    for cond in entry.requires_when:
        _known_values("requires_when match", cond.match, domain, cond.where)


def _known_values(what: str, assignment: Assignment, domain: Mapping[str, list[ParamValue]],
                  where: str) -> None:
    for name, value in assignment:
        if not any(type(v) is type(value) and v == value for v in domain[name]):
            raise ConfigError(f"{what} names {name}={value!r}, which no case of this workload "
                              "has", where=where,
                              hint=f"values of {name}: {', '.join(map(repr, domain[name]))}")


def _split(entry: WorkloadEntry, combo: Mapping[str, ParamValue]
           ) -> tuple[dict[str, ParamValue], dict[str, ParamValue], dict[str, ParamValue]]:
    params, knobs, variant = dict(entry.params), dict(entry.knobs), dict(entry.variant)
    target = {"param": params, "knob": knobs, "variant": variant}
    for axis in entry.axes:
        target[axis.kind][axis.name] = combo[axis.name]
    return params, knobs, variant


def _cases(entry: WorkloadEntry, combos: Sequence[Mapping[str, ParamValue]]) -> Iterator[Case]:
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
