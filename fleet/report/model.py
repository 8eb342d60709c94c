"""Frozen records a report is made of. Pure.

A *column* is what a table compares: the two values of ``--axis NAME=A,B``, the two runs of
``--compare``, or (neither given) the hosts. A *row* is a case's remaining settings (the
settings that vary across the run's cases, the column axis left out), so a table reads like
the ones posted on the kernel lists: rows = vCPU count, columns = variant, cells = time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["hosts", "axis", "runs"]


@dataclass(frozen=True)
class Cell:
    """The stored values of one (row, column): their median and the median's confidence
    interval (None when too few values, see fleet.compare.stats)."""

    values: tuple[float, ...]
    median: float | None  # None: every attempt stored the metric without a value
    ci_low: float | None
    ci_high: float | None
    missing: int  # completed attempts that stored no value (None) for this metric

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Change:
    """Second column against the first (fleet.compare.stats.compare_samples)."""

    relative_change: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str
    reason: str


@dataclass(frozen=True)
class MetricTable:
    """One metric (with its non-node labels) on one host (``host`` None: columns are hosts)."""

    metric: str  # e.g. elapsed_seconds, or dirty_memory_seconds{iteration=1}
    unit: str
    direction: str  # lower_is_better / higher_is_better / neutral (fleet.catalogue)
    source: str  # workload or sampler
    host: str | None
    row_header: str  # the varying setting names, e.g. "vcpus"
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[tuple[Cell | None, ...], ...]  # [row][column]
    changes: tuple[Change | None, ...] = ()  # per row, when there are exactly two columns

    def cell(self, row: str, column: str) -> Cell | None:
        return self.cells[self.rows.index(row)][self.columns.index(column)]


@dataclass(frozen=True)
class NodeView:
    node_id: int
    cpus: str  # cpulist text, e.g. 0-3,8-11
    mem_total_bytes: int | None
    distances: tuple[int, ...]


@dataclass(frozen=True)
class HostView:
    host: str
    fingerprint: str | None
    hostname: str | None
    cpu_model: str | None
    logical_cpus: int | None
    kernel_release: str | None
    kernel_cmdline: str | None
    thp_enabled: str | None
    mem_total_bytes: int | None
    nodes: tuple[NodeView, ...]
    attempts: int
    completed: int


@dataclass(frozen=True)
class NodeSeries:
    """One series of one attempt, per NUMA node: seconds since the first sample -> value."""

    node: str  # "all" when the series has no node label
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class CaseSeries:
    """The sampled series of one attempt chosen to show a case as it ran."""

    host: str
    column: str
    case_id: str
    row: str
    attempt_id: int
    series: str  # tlb_shootdowns or sec_page_tables_bytes
    unit: str
    nodes: tuple[NodeSeries, ...]


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    suite: str
    status: str
    created_at_unix_seconds: float
    finished_at_unix_seconds: float | None
    seed: int
    cases: int
    jobs: int
    attempts: int
    completed: int
    skipped: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReportData:
    title: str
    mode: Mode
    column_axis: str  # what the columns are: "host", the axis name, or "run"
    runs: tuple[RunSummary, ...]
    hosts: tuple[HostView, ...]
    tables: tuple[MetricTable, ...]
    series: tuple[CaseSeries, ...]
    mismatches: tuple[str, ...] = ()  # allowed fingerprint differences (--allow-mismatch)
