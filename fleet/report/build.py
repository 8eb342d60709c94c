"""`fleet report`: read the store, assemble, plot, render, and write the directory atomically.

The report is built in a temporary directory beside the target and renamed into place; an
existing target is replaced only when it holds a previous report (an ``index.html``), so a
failure leaves either the old report or nothing, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fleet.compare.load import facts_by_fingerprint
from fleet.errors import ConfigError, FleetError
from fleet.report.assemble import (
    RunRecords,
    Selection,
    check_selection,
    host_views,
    metric_tables,
    run_summary,
)
from fleet.report.html import render
from fleet.report.likeness import check_runs_alike, run_fingerprints
from fleet.report.load import (
    load_chosen_samples,
    load_counts,
    load_facts,
    load_records,
)
from fleet.report.model import CaseSeries, ReportData
from fleet.report.plots import metric_plot, series_plot
from fleet.report.series import case_series, choose_attempts
from fleet.store import Store


@dataclass(frozen=True)
class ReportRequest:
    store_path: Path
    run_id: str
    out_dir: Path
    compare_run_id: str | None = None
    axis: str | None = None  # --axis NAME=A,B
    axis_values: tuple[str, ...] = ()
    allow_mismatch: frozenset[str] = frozenset()  # --compare: fingerprint fields let differ


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    index_path: Path
    images: tuple[str, ...]
    data: ReportData


def parse_axis(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME=A,B`` -> (NAME, (A, B)); ConfigError otherwise."""
    name, sep, values = text.partition("=")
    parts = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or not name.strip() or len(parts) < 2 or len(set(parts)) != len(parts):
        raise ConfigError(f"--axis {text!r} is not NAME=A,B", where="--axis",
                          hint="e.g. --axis eager_page_split=N,Y (two or more distinct values)")
    return name.strip(), parts


def build_report(request: ReportRequest) -> ReportResult:
    if request.compare_run_id is not None and request.axis is not None:
        raise ConfigError("--compare and --axis exclude each other", where="fleet report",
                          hint="compare two runs, or two values of one axis inside a run")
    if not request.store_path.exists():
        raise ConfigError(f"no store at {request.store_path}", where="--store",
                          hint="pass the store the run was recorded in")
    with Store.open_read(request.store_path) as store:
        runs = [load_records(store, request.run_id)]
        if request.compare_run_id is not None:
            runs.append(load_records(store, request.compare_run_id))
        selection = _selection(request)
        check_selection(runs, selection)
        mismatches = () if len(runs) < 2 else check_runs_alike(
            runs[0], runs[1], facts_by_fingerprint(
                store, run_fingerprints(runs[0]) | run_fingerprints(runs[1])),
            request.allow_mismatch)
        tables = metric_tables(runs, selection)
        facts = load_facts(store, runs)
        choices = choose_attempts(runs, selection, load_counts(store, runs))
        series = [s for choice, points in load_chosen_samples(store, choices)
                  for s in case_series(choice, points)]
    if not tables:
        raise ConfigError(f"run {request.run_id} has no stored result to report",
                          where="fleet report", hint="`fleet show RUN_ID` lists its attempts")
    if selection.mode == "runs" and not any(
            all(c is not None and c.values for c in row) for t in tables for row in t.cells):
        raise ConfigError(f"runs {request.run_id} and {request.compare_run_id} share no case "
                          "with results on the same host", where="--compare",
                          hint="compare runs of the same suite (`fleet show RUN_ID` lists cases)")
    data = ReportData(_title(runs, selection), selection.mode, _column_axis(selection),
                      tuple(run_summary(r) for r in runs), host_views(runs, facts), tables,
                      tuple(series), tuple(d.text() for d in mismatches))
    return _write(request.out_dir, data)


def _selection(request: ReportRequest) -> Selection:
    if request.compare_run_id is not None:
        return Selection("runs")
    if request.axis is not None:
        return Selection("axis", request.axis, request.axis_values)
    return Selection("hosts")


def _column_axis(selection: Selection) -> str:
    return {"runs": "run", "hosts": "host"}.get(selection.mode, selection.axis or "axis")


def _title(runs: list[RunRecords], selection: Selection) -> str:
    ids = " vs ".join(r.detail.info.run_id for r in runs)
    head = f"fleet report: {runs[0].detail.info.suite}, run {ids}"
    if selection.mode == "axis":
        head += f", {selection.axis} = {' vs '.join(selection.values)}"
    return head


def _write(out_dir: Path, data: ReportData) -> ReportResult:
    out_dir = out_dir.resolve()
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir())
                                                      and not (out_dir / "index.html").exists())):
        raise ConfigError(f"{out_dir} exists and is not a fleet report", where="-o",
                          hint="name a new directory (or a previous report's, to replace it)")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise FleetError(f"cannot create the report directory: {exc}", where=str(out_dir),
                         hint="pick a writable place with -o") from exc
    try:
        images = _render_into(tmp, data)
        os.chmod(tmp, 0o755)  # noqa: S103 (a report is for reading, like a mkdir'd dir)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReportResult(out_dir, out_dir / "index.html", images, data)


def _render_into(tmp: Path, data: ReportData) -> tuple[str, ...]:
    table_images: list[str | None] = []
    for i, table in enumerate(data.tables):
        if not any(c is not None and c.values for row in table.cells for c in row):
            table_images.append(None)
            continue
        name = f"metric-{i:03d}.png"
        metric_plot(table, tmp / name)
        table_images.append(name)
    by_host: dict[str, dict[str, list[CaseSeries]]] = {}
    for s in data.series:
        by_host.setdefault(s.host, {}).setdefault(s.series, []).append(s)
    series_images: dict[str, list[tuple[str, str]]] = {}
    for h, (host, per_series) in enumerate(sorted(by_host.items())):
        for name, group in per_series.items():
            file = f"series-{h:02d}-{name}.png"
            series_plot(group, tmp / file, column_axis=data.column_axis,
                        row_header=data.tables[0].row_header if data.tables else "")
            series_images.setdefault(host, []).append((name, file))
    page = render(data, table_images, series_images)
    (tmp / "index.html").write_text(page, encoding="utf-8")
    return tuple([t for t in table_images if t] + [f for v in series_images.values()
                                                    for _, f in v])


def _replace(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; a previous report there is moved aside, then removed."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError as exc:
        if old is not None:
            os.replace(old, out_dir)
        raise FleetError(f"cannot write the report: {exc}", where=str(out_dir)) from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
