"""Store records -> the report's tables, host views and chosen series. Pure.

Only completed attempts count. A value stored as None is counted as missing, never as 0.
Sampler results per NUMA node and the sampler's neutral health figures are left out of the
tables (the per-node view is the time series); every workload metric is kept, one table per
metric and label set (e.g. ``dirty_memory_seconds{iteration=1}``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from fleet.catalogue import SAMPLER_SOURCE, lookup
from fleet.compare.engine import metric_text
from fleet.compare.stats import compare_many, median_intervals
from fleet.config.compare import DEFAULT_COMPARE, CompareConfig, Policy, policy_for
from fleet.errors import ConfigError
from fleet.facts.parsers import format_cpulist
from fleet.model import MISSING_TEXT, Facts, ParamValue
from fleet.report.model import (
    Cell,
    Change,
    HostView,
    MetricTable,
    Mode,
    NodeView,
    RunSummary,
)
from fleet.runs import RunDetail, StoredAttempt
from fleet.workloads.base import format_param_value

SERIES_SHOWN = ("tlb_shootdowns", "sec_page_tables_bytes")


@dataclass(frozen=True)
class RunRecords:
    """One stored run and each case's full settings (params, knobs and variant)."""

    detail: RunDetail
    settings: Mapping[str, Mapping[str, ParamValue]]  # case_id -> name -> value
    workloads: Mapping[str, str]  # case_id -> workload entry name
    compare: Mapping[str, CompareConfig] = field(default_factory=dict)  # workload -> config
    default_compare: CompareConfig = DEFAULT_COMPARE  # the suite's own


@dataclass(frozen=True)
class Selection:
    mode: Mode
    axis: str | None = None  # mode "axis": the setting whose values are the columns
    values: tuple[str, ...] = ()  # mode "axis": the values compared, in order


def check_selection(runs: Sequence[RunRecords], selection: Selection) -> None:
    """ConfigError naming the run when it has no completed attempt or lacks an axis value."""
    for run in runs:
        if not any(a.attempt.status == "completed" for a in run.detail.attempts):
            raise ConfigError(f"run {run.detail.info.run_id} has no completed attempt",
                              where="fleet report", hint="`fleet show RUN_ID` says why")
    if selection.mode != "axis" or selection.axis is None:
        return
    run = runs[0]
    present = {format_param_value(s[selection.axis]) for s in run.settings.values()
               if selection.axis in s}
    if not present:
        names = sorted({k for s in run.settings.values() for k in s})
        raise ConfigError(f"run {run.detail.info.run_id} has no setting {selection.axis!r}",
                          where="--axis", hint=f"its settings: {', '.join(names) or 'none'}")
    for value in selection.values:
        if value not in present:
            raise ConfigError(f"{selection.axis}={value} is not in run {run.detail.info.run_id}",
                              where="--axis",
                              hint=f"its values: {', '.join(sorted(present, key=_natural))}")


# ---- rows and columns -------------------------------------------------------------------


def _natural(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


@dataclass(frozen=True)
class Rows:
    header: str
    label: Mapping[tuple[int, str], str]  # (run index, case_id) -> row label
    order: tuple[str, ...]


def case_rows(runs: Sequence[RunRecords], axis: str | None) -> Rows:
    """Row labels from the settings that vary across all cases (the column axis left out)."""
    cases = [(i, cid, s) for i, run in enumerate(runs) for cid, s in run.settings.items()]
    names = sorted({k for _, _, s in cases for k in s} - {axis})
    varying = [n for n in names
               if len({format_param_value(s[n]) if n in s else None for _, _, s in cases}) > 1]
    workloads = {w for run in runs for w in run.workloads.values()}
    labels: dict[tuple[int, str], str] = {}
    keys: dict[str, tuple[object, ...]] = {}
    for i, cid, s in cases:
        values = [format_param_value(s[n]) if n in s else MISSING_TEXT for n in varying]
        parts = (values if len(varying) == 1
                 else [f"{n}={v}" for n, v in zip(varying, values, strict=True)])
        workload = runs[i].workloads.get(cid, "")
        if len(workloads) > 1:
            parts = [workload, *parts]
        label = ", ".join(parts) or workload or "all"
        labels[(i, cid)] = label
        keys[label] = (workload, *(_natural(v) for v in values))
    header = ", ".join(varying) if varying else "case"
    if len(workloads) > 1:
        header = f"workload, {header}" if varying else "workload"
    return Rows(header, labels, tuple(sorted(keys, key=lambda k: keys[k])))


def column_of(runs: Sequence[RunRecords], selection: Selection
              ) -> Callable[[int, StoredAttempt], str | None]:
    """The column an attempt of run ``index`` belongs to (None: not in the report)."""
    def by_host(index: int, stored: StoredAttempt) -> str | None:
        return stored.attempt.host

    def by_run(index: int, stored: StoredAttempt) -> str | None:
        return runs[index].detail.info.run_id

    def by_axis(index: int, stored: StoredAttempt) -> str | None:
        settings = runs[index].settings.get(stored.attempt.job.case_id, {})
        if selection.axis is None or selection.axis not in settings:
            return None
        text = format_param_value(settings[selection.axis])
        return text if text in selection.values else None

    if selection.mode == "runs":
        return by_run
    return by_axis if selection.mode == "axis" else by_host


def columns(runs: Sequence[RunRecords], selection: Selection) -> tuple[str, ...]:
    if selection.mode == "runs":
        return tuple(r.detail.info.run_id for r in runs)
    if selection.mode == "axis":
        return selection.values
    return tuple(sorted({a.attempt.host for r in runs for a in r.detail.attempts}))


# ---- tables -------------------------------------------------------------------------------

_Key = tuple[str, str, str, str | None]  # metric key, unit, source, table host


def _wanted(metric: str, unit: str, labels: tuple[tuple[str, str], ...]) -> str | None:
    """The source of a result the tables show, or None to leave it out."""
    if (("source", SAMPLER_SOURCE)) not in labels:
        return "workload"
    if any(k == "node" for k, _ in labels):
        return None
    entry = lookup(metric, unit, labels)
    return None if entry.direction == "neutral" else "sampler"


def metric_tables(runs: Sequence[RunRecords], selection: Selection
                  ) -> tuple[MetricTable, ...]:
    """One table per metric (and per host unless the columns are hosts), workload first."""
    rows = case_rows(runs, selection.axis)
    cols = columns(runs, selection)
    col_of = column_of(runs, selection)
    values: dict[_Key, dict[tuple[str, str], list[float]]] = {}
    missing: dict[_Key, dict[tuple[str, str], int]] = {}
    workloads: dict[_Key, set[str]] = {}
    for index, run in enumerate(runs):
        for stored in run.detail.attempts:
            a = stored.attempt
            column = col_of(index, stored) if a.status == "completed" else None
            if column is None:
                continue
            row = rows.label.get((index, a.job.case_id), a.job.case_id)
            host = None if selection.mode == "hosts" else a.host
            for m in a.measurements:
                source = _wanted(m.metric, m.unit, m.labels)
                if source is None:
                    continue
                key = (metric_text(m.metric, m.labels), m.unit, source, host)
                workloads.setdefault(key, set()).add(run.workloads.get(a.job.case_id, ""))
                cell = values.setdefault(key, {}).setdefault((row, column), [])
                if m.value is None:
                    gaps = missing.setdefault(key, {})
                    gaps[(row, column)] = gaps.get((row, column), 0) + 1
                else:
                    cell.append(m.value)
    order = sorted(values, key=lambda k: (k[2] != "workload", k[0], k[1], k[3] or ""))
    return tuple(_table(k, values[k], missing.get(k, {}), rows=rows, cols=cols,
                        config=_config(runs[0], workloads[k]),
                        compare=selection.mode != "hosts")
                 for k in order)


def _config(run: RunRecords, workloads: set[str]) -> CompareConfig:
    """The suite's compare settings: the workload entry's when one workload has the metric."""
    if len(workloads) == 1:
        return run.compare.get(next(iter(workloads)), run.default_compare)
    return run.default_compare


def _table(key: _Key, values: Mapping[tuple[str, str], list[float]],
           missing: Mapping[tuple[str, str], int], *, rows: Rows, cols: tuple[str, ...],
           config: CompareConfig, compare: bool) -> MetricTable:
    """``compare``: with two columns, judge the second against the first (not across
    hosts: machines are compared side by side, never judged)."""
    metric, unit, source, host = key
    used = {r for r, _ in values}
    shown = tuple(r for r in rows.order if r in used) + tuple(sorted(used - set(rows.order)))
    base = metric.split("{", 1)[0]
    labels = (("source", SAMPLER_SOURCE),) if source == "sampler" else ()
    policy, _ = policy_for(config, base, unit, labels)
    filled = [values[k] for k in sorted(values) if values[k]]
    intervals = dict(zip(map(id, filled), median_intervals(filled, policy=policy), strict=True))
    cells = tuple(tuple(_cell(values.get((r, c)), missing.get((r, c), 0), intervals)
                        for c in cols) for r in shown)
    changes = _changes(cells, policy) if compare and len(cols) == 2 else ()
    return MetricTable(metric, unit, policy.direction, source, host, rows.header, shown, cols,
                       cells, changes)


def _cell(values: list[float] | None, missing: int,
          intervals: Mapping[int, tuple[float, float] | None]) -> Cell | None:
    if not values:
        return None if not missing else Cell((), None, None, None, missing)
    interval = intervals.get(id(values))
    low, high = interval if interval is not None else (None, None)
    return Cell(tuple(values), statistics.median(values), low, high, missing)


def _changes(cells: Sequence[Sequence[Cell | None]], policy: Policy
             ) -> tuple[Change | None, ...]:
    """Per row: the second column against the first (fleet.compare.stats, batched)."""
    pairs = [i for i, (before, after) in enumerate(cells)
             if before is not None and after is not None and before.values and after.values]
    done = compare_many([(cells[i][0].values, cells[i][1].values, policy)  # type: ignore[union-attr]
                         for i in pairs])
    out: list[Change | None] = [None] * len(cells)
    for i, c in zip(pairs, done, strict=True):
        out[i] = Change(c.relative_change, c.ci_low, c.ci_high, c.p_value, c.verdict, c.reason)
    return tuple(out)


# ---- hosts and runs ---------------------------------------------------------------------


def host_views(runs: Sequence[RunRecords], facts: Mapping[str, Facts | None]
               ) -> tuple[HostView, ...]:
    attempts: dict[str, list[str]] = {}
    for run in runs:
        for stored in run.detail.attempts:
            attempts.setdefault(stored.attempt.host, []).append(stored.attempt.status)
    return tuple(_host_view(h, facts.get(h), attempts[h]) for h in sorted(attempts))


def _host_view(host: str, f: Facts | None, statuses: list[str]) -> HostView:
    done = statuses.count("completed")
    if f is None:
        return HostView(host, None, None, None, None, None, None, None, None, (),
                        len(statuses), done)
    nodes = tuple(NodeView(n.node_id, format_cpulist(n.cpus), n.mem_total_bytes, n.distances)
                  for n in f.topology.nodes)
    return HostView(host, f.fingerprint, f.hostname, f.cpu.model_name, f.cpu.logical_cpus,
                    f.kernel_release, f.kernel_cmdline, f.thp_enabled, f.mem_total_bytes,
                    nodes, len(statuses), done)


def run_summary(run: RunRecords) -> RunSummary:
    d = run.detail
    return RunSummary(d.info.run_id, d.info.suite, d.info.status, d.info.created_at_unix_seconds,
                      d.info.finished_at_unix_seconds, d.info.seed, len(d.cases), len(d.jobs),
                      len(d.attempts),
                      sum(1 for a in d.attempts if a.attempt.status == "completed"), d.skipped)
