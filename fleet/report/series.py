"""Which attempts' sampled series a report shows, and their points per NUMA node. Pure.

Per host, one case (row) is shown in every column: the first row, in table order, whose
columns all have a completed attempt with stored samples (else the row covering the most
columns); in each column its first such attempt. So the plots put the same case side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.report.assemble import (
    SERIES_SHOWN,
    RunRecords,
    Selection,
    case_rows,
    column_of,
    columns,
)
from fleet.report.model import CaseSeries, NodeSeries
from fleet.runs import SeriesPoint

SERIES_UNITS = {"tlb_shootdowns": "shootdowns since the first sample",
                "sec_page_tables_bytes": "bytes"}


@dataclass(frozen=True)
class SeriesChoice:
    run_index: int
    attempt_id: int
    host: str
    column: str
    case_id: str
    row: str


def choose_attempts(runs: Sequence[RunRecords], selection: Selection,
                    counts: Sequence[Mapping[int, Mapping[str, int]]],
                    max_columns: int = 4) -> tuple[SeriesChoice, ...]:
    """``counts[i]``: run i's attempt id -> {series: stored points}
    (fleet.store.runs.sample_counts)."""
    rows = case_rows(runs, selection.axis)
    col_of = column_of(runs, selection)
    shown_columns = columns(runs, selection)[:max_columns]
    found: dict[str, dict[str, dict[str, SeriesChoice]]] = {}  # host -> row -> column -> first
    for index, run in enumerate(runs):
        for stored in run.detail.attempts:
            a = stored.attempt
            series = counts[index].get(stored.attempt_id, {})
            if a.status != "completed" or not any(s in series for s in SERIES_SHOWN):
                continue
            column = col_of(index, stored)
            if column not in shown_columns:
                continue
            row = rows.label.get((index, a.job.case_id), a.job.case_id)
            per_row = found.setdefault(a.host, {}).setdefault(row, {})
            per_row.setdefault(column, SeriesChoice(index, stored.attempt_id, a.host, column,
                                                    a.job.case_id, row))
    chosen: list[SeriesChoice] = []
    order = {r: i for i, r in enumerate(rows.order)}
    for host in sorted(found):
        by_row = found[host]
        best = max(by_row, key=lambda r: (len(by_row[r]), -order.get(r, len(order))))
        chosen.extend(by_row[best][c] for c in shown_columns if c in by_row[best])
    return tuple(chosen)


def case_series(choice: SeriesChoice, points: Sequence[SeriesPoint]) -> tuple[CaseSeries, ...]:
    """The shown series of one attempt, per node, time relative to the attempt's first sample."""
    if not points:
        return ()
    start = min(p.monotonic_seconds for p in points)
    out = []
    for name in SERIES_SHOWN:
        per_node: dict[str, list[tuple[float, float]]] = {}
        for p in points:
            if p.series != name or p.value is None:
                continue
            node = dict(p.labels).get("node", "all")
            per_node.setdefault(node, []).append((p.monotonic_seconds - start, p.value))
        if not per_node:
            continue
        nodes = tuple(NodeSeries(node, tuple(sorted(values)))
                      for node, values in sorted(per_node.items(), key=lambda kv: _node_key(kv[0])))
        out.append(CaseSeries(choice.host, choice.column, choice.case_id, choice.row,
                              choice.attempt_id, name, SERIES_UNITS[name], nodes))
    return tuple(out)


def _node_key(node: str) -> tuple[int, int, str]:
    return (0, int(node), node) if node.isdigit() else (1, 0, node)
