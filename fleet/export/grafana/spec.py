"""The Grafana dashboards fleet ships, as data: sections, panels, PromQL, units. Pure.

Every metric name comes from the catalogue (:mod:`fleet.catalogue`) or from the
recording rules generated from it (:mod:`fleet.export.rules`); nothing here spells one.
:mod:`fleet.export.grafana.build` turns these specs into Grafana JSON with Grafana's own
builder (grafana-foundation-sdk).

Template variables: ``datasource``, ``suite``, ``run``, ``host`` and ``kernel_variant`` (the
case parameter ``kernel_variant``, exported as the ``param_kernel_variant`` label of
``fleet_case_info`` and joined onto the per-case families on ``run_id, case_id``; a run
without that parameter matches "All"). The A/B dashboard has two sides instead of one
``run``/``kernel_variant``: ``run_a``/``variant_a`` and ``run_b``/``variant_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleet import catalogue as cat
from fleet.export import rules

PanelKind = Literal["stat", "table", "bargauge", "timeseries"]
VARIANT_PARAM = "kernel_variant"
VARIANT_LABEL = f"param_{cat.sanitise(VARIANT_PARAM)}"
ALL = ".*"  # the value "All" stands for in every multi-value variable (matches absent labels)

# Grafana unit ids for the catalogue's units ("a unit on every panel")
GRAFANA_UNITS = {"per_second": "cps", "bytes": "bytes", "ratio": "percentunit",
                 "bytes_per_gib": "bytes", "count": "short", "seconds": "s", "info": "short",
                 "version": "none", "label:unit": "short"}


@dataclass(frozen=True)
class Query:
    """One target: a PromQL expression, its legend, instant (one value) or range (a series)."""

    expr: str
    legend: str = ""
    instant: bool = True


@dataclass(frozen=True)
class Panel:
    title: str
    kind: PanelKind
    unit: str
    queries: tuple[Query, ...]
    description: str
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class Section:
    """A dashboard row and its panels."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query variable: ``label_values(selector, label)``; single or multi-value (with All)."""

    name: str
    label: str
    selector: str
    label_name: str
    multi: bool = True

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label_name})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    sections: tuple[Section, ...]

    @property
    def file_name(self) -> str:
        return f"{self.uid}.json"

    def panels(self) -> tuple[Panel, ...]:
        return tuple(p for s in self.sections for p in s.panels)


def unit(entry: cat.CatalogueEntry) -> str:
    return GRAFANA_UNITS[entry.unit]


def record(entry: cat.CatalogueEntry, level: str, op: str) -> str:
    """The name of a generated recording rule (fails if `fleet export rules` has none)."""
    names = {r.record for r in rules.recording_rules()}
    name = f"{level}:{entry.name}:{op}"
    if name not in names:
        raise KeyError(name)
    return name


# ---- selectors ---------------------------------------------------------------------------

RUN_SEL = 'suite=~"$suite", run_id=~"$run"'
HOST_SEL = f'{RUN_SEL}, host=~"$host"'
TOTAL, PER_NODE = ', node=""', ', node!=""'


def run_level(entry: cat.CatalogueEntry) -> str:
    """A per-run family, one value per run whichever jobs scrape it, summed over runs."""
    return f"sum(max by (run_id) ({entry.name}{{{RUN_SEL}}}))"


def per_case(entry: cat.CatalogueEntry, *, extra: str = "", run: str = "$run",
             variant: str = "$kernel_variant") -> str:
    """The per-case family on the selected suite/run/host, with the case's kernel variant as
    a label, keeping only the selected variants."""
    info = (f"max by (run_id, case_id, {VARIANT_LABEL}) "
            f'({cat.CASE_INFO.name}{{run_id=~"{run}", {VARIANT_LABEL}=~"{variant}"}})')
    return (f'{entry.name}{{suite=~"$suite", run_id=~"{run}", host=~"$host"{extra}}} '
            f"* on (run_id, case_id) group_left ({VARIANT_LABEL}) {info}")


def avg_by(by: str, expr: str) -> str:
    return f"avg by ({by}) ({expr})"


def per_host(entry: cat.CatalogueEntry, *, extra: str = "", title: str, description: str,
             node: bool = False) -> Panel:
    """Bars of a per-case family averaged over the cases, per host (and node) and variant."""
    by = f"host, node, {VARIANT_LABEL}" if node else f"host, {VARIANT_LABEL}"
    legend = ("{{host}} node {{node}} {{%s}}" if node else "{{host}} {{%s}}") % VARIANT_LABEL
    return Panel(title, "bargauge", unit(entry),
                 (Query(avg_by(by, per_case(entry, extra=extra)), legend),),
                 f"{description} Average over the selected runs' cases and repetitions. "
                 f"({entry.name}: {entry.help})")


def worst_table(title: str, entries: tuple[tuple[cat.CatalogueEntry, str], ...],
                description: str) -> Panel:
    """Recorded worst cases (and averages) per host (and node), from `fleet export rules`."""
    queries = []
    for entry, level in entries:
        for op in (rules.worst(entry), "avg"):
            name = record(entry, level, op)
            legend = "{{host}} {{node}} " + f"{op}" if "node" in level else "{{host}} " + op
            queries.append(Query(f'{name}{{{HOST_SEL}}}', legend))
    return Panel(title, "table", unit(entries[0][0]), tuple(queries), description, 24, 7)


# ---- the standard variables --------------------------------------------------------------

SUITE = Variable("suite", "suite", cat.RUN_INFO.name, "suite")
RUN = Variable("run", "run", f'{cat.RUN_INFO.name}{{suite=~"$suite"}}', "run_id")
HOST = Variable("host", "host", f'{cat.ATTEMPTS.name}{{suite=~"$suite", run_id=~"$run"}}',
                "host")
KERNEL_VARIANT = Variable("kernel_variant", "kernel variant",
                          f'{cat.CASE_INFO.name}{{run_id=~"$run"}}', VARIANT_LABEL)
STANDARD = (SUITE, RUN, HOST, KERNEL_VARIANT)
