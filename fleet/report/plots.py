"""The report's plots, as PNG files: the only module that imports matplotlib (Agg, no pyplot).

Per metric: for each column (host, variant or run) the median of every row with its
confidence interval as an error bar, and the single values as small dots. Per host and
sampled series: one panel per column, one line per NUMA node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fleet.report.model import CaseSeries, MetricTable

DPI = 80
MAX_TICK_LABELS = 16
MANY_ROWS = 60
ROTATE_ABOVE = 4  # rows: more than this, tick labels are slanted
MAX_DOTS = 20_000
_DIRECTION = {"lower_is_better": "lower is better", "higher_is_better": "higher is better"}


def metric_plot(table: MetricTable, path: Path) -> None:
    rows = len(table.rows)
    width = min(14.0, max(6.0, 0.35 * rows + 3.0))
    slanted = _slanted(table.rows)
    fig = Figure(figsize=(width, 4.1 if slanted else 3.6), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for j, column in enumerate(table.columns):
        points = _column_points(table, j)
        if points:
            _draw_column(ax, points, column, _offset(j, len(table.columns), rows))
    _row_ticks(ax, table.rows)
    ax.set_xlabel(table.row_header)
    ax.set_ylabel(table.unit)
    where = f" on {table.host}" if table.host else ""
    note = _DIRECTION.get(table.direction, "")
    ax.set_title(f"{table.metric}{where}: median, 95% CI" + (f" ({note})" if note else ""),
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(table.columns) > 1:
        ax.legend(fontsize=8, loc="upper left")
    # fixed margins: tight_layout measures every label first (a third of the time)
    fig.subplots_adjust(left=0.6 / width + 0.04, right=0.98, top=0.9,
                        bottom=0.38 if slanted else 0.16)
    fig.savefig(path, format="png")


_Point = tuple[int, float, float, float, tuple[float, ...]]  # row, median, low, high, values


def _column_points(table: MetricTable, j: int) -> list[_Point]:
    out = []
    for i, row in enumerate(table.cells):
        cell = row[j]
        if cell is not None and cell.median is not None:
            low = cell.ci_low if cell.ci_low is not None else cell.median
            high = cell.ci_high if cell.ci_high is not None else cell.median
            out.append((i, cell.median, low, high, cell.values))
    return out


def _offset(j: int, count: int, rows: int) -> float:
    """Columns side by side within a row; none on a crowded axis (lines and bands there)."""
    return (j - (count - 1) / 2) * 0.6 / max(count, 1) if rows <= MANY_ROWS else 0.0


def _draw_column(ax: Any, points: list[_Point], column: str, offset: float) -> None:
    xs = [i + offset for i, *_ in points]
    medians = [m for _, m, *_ in points]
    lows = [lo for _, _, lo, _, _ in points]
    highs = [hi for _, _, _, hi, _ in points]
    dots_x = [i + offset for i, _, _, _, values in points for _ in values]
    dots_y = [v for *_, values in points for v in values]
    if len(points) > MANY_ROWS:  # a line and a band: thousands of error bars draw slowly
        (line,) = ax.plot(xs, medians, linewidth=1.0, label=column)
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.25, linewidth=0)
        color = line.get_color()
    else:
        bars = ax.errorbar(xs, medians, yerr=[[m - lo for m, lo in zip(medians, lows,
                                                                          strict=True)],
                                              [hi - m for m, hi in zip(medians, highs,
                                                                        strict=True)]],
                           fmt="o", markersize=4, capsize=3, label=column, linestyle="none")
        color = bars.lines[0].get_color()
    if len(points) <= MANY_ROWS and len(dots_y) <= MAX_DOTS:  # the band shows the spread
        ax.scatter(dots_x, dots_y, s=6, color=color, alpha=0.35, linewidths=0)


def _row_ticks(ax: Any, rows: Sequence[str]) -> None:
    step = max(1, math.ceil(len(rows) / MAX_TICK_LABELS))
    ticks = list(range(0, len(rows), step))
    ax.set_xticks(ticks)
    turn = _slanted(rows)
    ax.set_xticklabels([rows[i][:32] for i in ticks], rotation=30 if turn else 0,
                       ha="right" if turn else "center", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)


def _slanted(rows: Sequence[str]) -> bool:
    return len(rows) > ROTATE_ABOVE or any(len(r) > 14 for r in rows)


def series_plot(series: Sequence[CaseSeries], path: Path, *, column_axis: str = "",
                row_header: str = "") -> None:
    """One host's one series name: a panel per column, a line per node."""
    count = len(series)
    fig = Figure(figsize=(min(14.0, 4.2 * count + 1.0), 3.2), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, count, squeeze=False, sharey=True)[0]
    for ax, one in zip(axes, series, strict=True):
        for node in one.nodes:
            xs = [t for t, _ in node.points]
            ys = [v for _, v in node.points]
            label = "all nodes" if node.node == "all" else f"node {node.node}"
            ax.plot(xs, ys, marker="." if len(xs) < 40 else None, linewidth=1.2, label=label)
        case = one.row if "=" in one.row or not row_header else f"{row_header}={one.row}"
        ax.set_title(f"{column_axis} {one.column}"[:48] + "\n" + case[:48], fontsize=8)
        ax.set_xlabel("seconds since the first sample")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel(series[0].unit if series else "")
    first = series[0]
    fig.suptitle(f"{first.series} on {first.host}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
