"""Suite files (``benchmarks/*.yml``): load and validate, with file:line in every error.

A suite (``schema_version: 1``) lists workload entries; each entry crosses its ``axes`` into
cases (``fleet.plan.matrix``). An axis or fixed value is, by its name, a workload parameter, a
runtime knob or a variant (``fleet.knobs``). Unknown keys are errors at every level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.config.compare import DEFAULT_COMPARE, CompareConfig, parse_compare
from fleet.config.order import DEFAULT_VARIANT_ORDER, parse_variant_order
from fleet.config.sampling import DEFAULT_SAMPLING, SamplingConfig, parse_sampling
from fleet.errors import ConfigError
from fleet.knobs import KNOBS, VARIANT_NAMES, is_variant, merge_requirements
from fleet.model import Assignment, ParamValue, Requirements, Spread, VariantOrder
from fleet.workloads import FAMILIES, Family
from fleet.workloads.base import ParamSpec, Workload, format_param_value
from fleet.yamlnode import Node, compose, read_suite_text

SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_SECONDS = 600.0
MAX_TIMEOUT_SECONDS = 30 * 86400.0  # far beyond any case; 1e12 overflows clocks mid-run
GIB = 1 << 30
AxisKind = Literal["param", "knob", "variant"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SECTION_KINDS: Mapping[str, AxisKind] = {"params": "param", "knobs": "knob", "variant": "variant"}


TOP_KEYS = ("schema_version", "name", "description", "workloads", "repetitions",
            "timeout_seconds", "spread", "requires", "sampling", "compare", "variant_order")
ENTRY_KEYS = ("name", "type", "description", "params", "knobs", "variant", "axes", "include",
              "exclude", "requires", "requires_when", "repetitions", "timeout_seconds",
              "estimate_seconds", "spread", "sampling", "compare")
REQUIRE_KEYS = ("min_numa_nodes", "min_cpus", "min_memory_gib", "kvm", "iommu", "hugepages_1g",
                "groups", "hosts")


@dataclass(frozen=True)
class Axis:
    name: str
    kind: AxisKind
    values: tuple[ParamValue, ...]
    where: str


@dataclass(frozen=True)
class Rule:  # exclude: a partial assignment of axis values; include: a complete one
    assignment: Assignment
    where: str


@dataclass(frozen=True)
class ConditionalRequirement:
    match: Assignment
    requires: Requirements
    where: str


@dataclass(frozen=True)
class WorkloadEntry:
    name: str
    workload: Workload
    params: Assignment  # fixed values (defaults filled in)
    knobs: Assignment
    variant: Assignment
    axes: tuple[Axis, ...]
    include: tuple[Rule, ...]
    exclude: tuple[Rule, ...]
    requires: Requirements
    requires_when: tuple[ConditionalRequirement, ...]
    repetitions: int
    timeout_seconds: float
    estimate_seconds: float | None
    spread: Spread
    where: str
    sampling: SamplingConfig = DEFAULT_SAMPLING
    compare: CompareConfig = DEFAULT_COMPARE  # thresholds etc. (fleet.config.compare)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    source: str
    entries: tuple[WorkloadEntry, ...]
    compare: CompareConfig = DEFAULT_COMPARE
    variant_order: VariantOrder = DEFAULT_VARIANT_ORDER  # fleet.config.order


@dataclass(frozen=True)
class _Defaults:
    repetitions: int
    timeout_seconds: float
    spread: Spread
    requires: Requirements
    requires_where: str | None  # where suite-level hosts: was given
    sampling: SamplingConfig
    compare: CompareConfig


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file. ConfigError (file:line) on any problem."""
    return parse_suite(read_suite_text(path), source=str(path))


def parse_suite(text: str, *, source: str) -> Suite:
    """Validate suite YAML text; ``source`` names it in errors (file:line)."""
    root = compose(text, source)
    if root is None:
        raise ConfigError("the suite file is empty", where=source,
                          hint="start with schema_version: 1")
    items = Node(root, source).fields("the suite", required=("schema_version", "name", "workloads"),
                                      optional=TOP_KEYS)
    version = items["schema_version"].integer("schema_version")
    if version != SCHEMA_VERSION:
        raise items["schema_version"].error(f"schema_version {version} is not supported",
                                            hint=f"this fleet reads schema_version: "
                                                 f"{SCHEMA_VERSION}")
    defaults = _defaults(items)
    entries = tuple(_entry(node, defaults)
                    for node in _nonempty(items["workloads"], "workloads"))
    _unique_names(entries)
    order = parse_variant_order(items.get("variant_order"), (
        e.repetitions for e in entries if e.variant or any(a.kind == "variant" for a in e.axes)))
    return Suite(name=_name(items["name"], "suite name"), source=source, entries=entries,
                 description=items["description"].string("description")
                 if "description" in items else "", compare=defaults.compare,
                 variant_order=order)


def _nonempty(node: Node, what: str) -> list[Node]:
    items = node.sequence(what)
    if not items:
        raise node.error(f"{what} is empty", hint="list at least one")
    return items


def _name(node: Node, what: str) -> str:
    name = node.string(what)
    if _NAME.fullmatch(name) is None:
        raise node.error(f"{what} {name!r} has characters other than letters, digits, _ . -",
                         hint="e.g. numa-placement or dirty_log_perf")
    return name


def _unique_names(entries: Sequence[WorkloadEntry]) -> None:
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(f"workload name {entry.name!r} is used twice (first at "
                              f"{seen[entry.name]})", where=entry.where,
                              hint="give each workload entry its own name")
        seen[entry.name] = entry.where


def _defaults(items: Mapping[str, Node]) -> _Defaults:
    requires = items.get("requires")
    return _Defaults(
        repetitions=_repetitions(items.get("repetitions"), 1),
        timeout_seconds=_timeout(items.get("timeout_seconds"), DEFAULT_TIMEOUT_SECONDS),
        spread=_spread(items.get("spread"), "every"),
        requires=parse_requirements(requires) if requires else Requirements(),
        requires_where=requires.where if requires and "hosts" in requires.mapping("requires")
        else None, sampling=parse_sampling(items.get("sampling"), DEFAULT_SAMPLING),
        compare=parse_compare(items.get("compare"), DEFAULT_COMPARE))


def _repetitions(node: Node | None, default: int) -> int:
    return node.integer("repetitions", minimum=1) if node else default


def _timeout(node: Node | None, default: float) -> float:
    value = default if node is None else node.number("timeout_seconds")
    if node is not None and not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise node.error(f"timeout_seconds must be > 0 and <= {MAX_TIMEOUT_SECONDS:g} (30 days),"
                         f" not {value:g}", hint="the longest one run may take, e.g. 600")
    return value


def _spread(node: Node | None, default: Spread) -> Spread:
    if node is None:
        return default
    value = node.string("spread")
    if value in ("every", "any"):
        return "every" if value == "every" else "any"
    raise node.error(f"spread must be every or any, not {value!r}",
                     hint="every: each eligible host runs the case; any: one host does")


def parse_requirements(node: Node, *, allow_hosts: bool = True) -> Requirements:
    what = "requires"
    items = node.fields(what, optional=REQUIRE_KEYS if allow_hosts else REQUIRE_KEYS[:-1])

    def minimum(key: str) -> int | None:
        return items[key].integer(key, minimum=1) if key in items else None

    def flag(key: str) -> bool:
        return items[key].boolean(key) if key in items else False

    memory = items["min_memory_gib"].number("min_memory_gib", minimum=0) \
        if "min_memory_gib" in items else None
    return Requirements(
        min_numa_nodes=minimum("min_numa_nodes"), min_cpus=minimum("min_cpus"),
        min_memory_bytes=round(memory * GIB) if memory is not None else None,
        kvm=flag("kvm"), iommu=flag("iommu"), hugepages_1g=flag("hugepages_1g"),
        groups=items["groups"].strings("groups") if "groups" in items else (),
        host_patterns=items["hosts"].strings("hosts") if "hosts" in items else (),
    )


# ---- one workload entry ---------------------------------------------------------------------


def _entry(node: Node, defaults: _Defaults) -> WorkloadEntry:
    family = _family(node)
    items = node.fields("a workload entry", required=("name", "type"),
                        optional=(*ENTRY_KEYS, *family.config_keys))
    workload = family.configure({k: items[k] for k in family.config_keys if k in items},
                                node.where)
    axes_node = items["axes"].mapping("axes") if "axes" in items else {}
    axes = tuple(_axis(workload, name, value) for name, value in axes_node.items())
    params, knobs, variant = (_fixed(workload, items, section, axes)
                              for section in ("params", "knobs", "variant"))
    specs = {a.name: value_spec(workload, a.name, a.kind) for a in axes}
    return WorkloadEntry(
        name=_name(items["name"], "workload name"), workload=workload,
        params=_with_defaults(workload, node, params, axes), knobs=_sorted(knobs),
        variant=_sorted(variant), axes=axes,
        include=_rules(items.get("include"), "include", specs, complete=True),
        exclude=_rules(items.get("exclude"), "exclude", specs, complete=False),
        requires=_entry_requires(items.get("requires"), defaults),
        requires_when=_requires_when(items.get("requires_when"), specs),
        repetitions=_repetitions(items.get("repetitions"), defaults.repetitions),
        timeout_seconds=_timeout(items.get("timeout_seconds"), defaults.timeout_seconds),
        estimate_seconds=items["estimate_seconds"].number("estimate_seconds", minimum=0)
        if "estimate_seconds" in items else None,
        spread=_spread(items.get("spread"), defaults.spread), where=node.where,
        sampling=parse_sampling(items.get("sampling"), defaults.sampling),
        compare=parse_compare(items.get("compare"), defaults.compare))


def _family(node: Node) -> Family:
    raw = node.mapping("a workload entry")
    known = f"known types: {', '.join(sorted(FAMILIES))}"
    if "type" not in raw:
        raise node.error("a workload entry lacks 'type'", hint=known)
    kind = raw["type"].string("type")
    if kind not in FAMILIES:
        raise raw["type"].error(f"unknown workload type {kind!r}", hint=known)
    return FAMILIES[kind]


def _sorted(values: Mapping[str, ParamValue]) -> Assignment:
    return tuple(sorted(values.items()))


def _resolve(workload: Workload, name: str, node: Node) -> AxisKind:
    """Whether ``name`` is a parameter of the workload, a knob, or a variant."""
    kinds: list[AxisKind] = []
    if workload.param(name) is not None:
        kinds.append("param")
    if name in KNOBS:
        kinds.append("knob")
    if is_variant(name):
        kinds.append("variant")
    if len(kinds) > 1:
        raise node.error(f"{name!r} is both a {kinds[0]} and a {kinds[1]}",
                         hint="rename the workload parameter")
    if not kinds:
        params = ", ".join(p.name for p in workload.params()) or "none"
        raise node.error(
            f"{name!r} is not a parameter of workload {workload.kind} (its parameters: "
            f"{params}), a knob or a variant",
            hint=f"knobs: {', '.join(KNOBS)}; variants: {', '.join(VARIANT_NAMES)}, "
                 "<module>.<param>")
    return kinds[0]


def value_spec(workload: Workload, name: str, kind: AxisKind) -> ParamSpec:
    if kind == "knob":
        return KNOBS[name].spec
    spec = workload.param(name) if kind == "param" else None
    return spec or ParamSpec(name, "scalar")


def _value(node: Node, spec: ParamSpec) -> ParamValue:
    try:
        return spec.coerce(node.scalar(f"the value of {spec.name}"))
    except ValueError as exc:
        raise node.error(str(exc), hint=spec.describe()) from None


def _axis(workload: Workload, name: str, node: Node) -> Axis:
    kind = _resolve(workload, name, node)
    spec = value_spec(workload, name, kind)
    values: dict[str, ParamValue] = {}  # by its text: what argv, knob files and compare see
    for item in _nonempty(node, f"axis {name}"):
        value = _value(item, spec)
        text = format_param_value(value)
        first = values.get(text)
        if first is None:
            values[text] = value
            continue
        if type(first) is type(value) and first == value:
            raise item.error(f"axis {name} lists {value!r} twice", hint="list each value once")
        raise item.error(f"axis {name} lists {first!r} and {value!r}, which both read {text}",
                         hint="the cases would run the same command: list the value once")
    return Axis(name, kind, tuple(values.values()), node.where)


def _fixed(workload: Workload, items: Mapping[str, Node], section: str,
           axes: Sequence[Axis]) -> dict[str, ParamValue]:
    if section not in items:
        return {}
    expected = _SECTION_KINDS[section]
    fixed: dict[str, ParamValue] = {}
    for name, node in items[section].mapping(section).items():
        kind = _resolve(workload, name, node)
        if kind != expected:
            raise node.error(f"{name!r} is a {kind}, not one of {section}",
                             hint=f"move it under {kind}s" if kind != "param" else
                             "move it under params")
        if any(a.name == name for a in axes):
            raise node.error(f"{name!r} is both fixed under {section} and an axis",
                             hint="keep one of them")
        fixed[name] = _value(node, value_spec(workload, name, kind))
    return fixed


def _with_defaults(workload: Workload, node: Node, fixed: Mapping[str, ParamValue],
                   axes: Sequence[Axis]) -> Assignment:
    values = dict(fixed)
    on_axis = {a.name for a in axes}
    for spec in workload.params():
        if spec.name in values or spec.name in on_axis:
            continue
        if spec.default is not None:
            values[spec.name] = spec.default
        elif spec.required:
            raise node.error(f"workload {workload.kind} needs parameter {spec.name!r}",
                             hint=f"give it under params or axes: {spec.name}: ...")
    return _sorted(values)


def _assignment(node: Node, what: str, specs: Mapping[str, ParamSpec]) -> Assignment:
    values: dict[str, ParamValue] = {}
    for name, value in node.mapping(what).items():
        if name not in specs:
            raise value.error(f"{what} names {name!r}, which is not an axis",
                              hint=f"axes: {', '.join(specs) or 'none'}")
        values[name] = _value(value, specs[name])
    if not values:
        raise node.error(f"an empty {what} rule", hint="name at least one axis value")
    return _sorted(values)


def _rules(node: Node | None, what: str, specs: Mapping[str, ParamSpec], *,
           complete: bool) -> tuple[Rule, ...]:
    if node is None:
        return ()
    rules = []
    for item in node.sequence(what):
        assignment = _assignment(item, what, specs)
        missing = [n for n in specs if n not in dict(assignment)]
        if complete and missing:
            raise item.error(f"include lacks axes {', '.join(missing)}",
                             hint="an include gives a value for every axis")
        rules.append(Rule(assignment, item.where))
    return tuple(rules)


def _entry_requires(node: Node | None, defaults: _Defaults) -> Requirements:
    if node is None:
        return defaults.requires
    own = parse_requirements(node)
    if own.host_patterns and defaults.requires_where:
        raise node.error(f"hosts is already required at {defaults.requires_where}",
                         hint="give hosts patterns in one place")
    return merge_requirements(defaults.requires, own)


def _requires_when(node: Node | None,
                   specs: Mapping[str, ParamSpec]) -> tuple[ConditionalRequirement, ...]:
    if node is None:
        return ()
    rules = []
    for item in node.sequence("requires_when"):
        fields = item.fields("a requires_when rule", required=("match", "requires"))
        rules.append(ConditionalRequirement(
            _assignment(fields["match"], "requires_when match", specs),
            parse_requirements(fields["requires"], allow_hosts=False), item.where))
    return tuple(rules)
