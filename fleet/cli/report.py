"""`fleet report` (static HTML with plots) and `fleet history` (series and change points)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.cli.args import add_json, add_store, stdout_console, sub

if TYPE_CHECKING:
    from rich.table import Table

REPORT_EXAMPLE = """examples:
  fleet report r20261125-083000-3f2a -o report/           # columns: the hosts
  fleet report RUN_ID --axis eager_page_split=N,Y -o eps/   # columns: two values of a setting
  fleet report RUN_A --compare RUN_B -o before-after/       # columns: the two runs

One index.html plus PNG plots, no server and nothing fetched: open it in any browser.
With --compare, the hosts must match like for like (as in fleet compare) unless
--allow-mismatch names the differing fields (they are then listed in the report).
Exit codes: 0 written; 2 bad input (unknown run, axis value not in the run, empty run,
fingerprint mismatch).
"""
HISTORY_EXAMPLE = """examples:
  fleet history --metric elapsed_seconds
  fleet history --metric elapsed_seconds --case vcpus=16,backing=anonymous --host lab1
  fleet history --metric tlb_shootdowns_per_second --tag branch=main --last 30 --json

One point per run (median of its completed attempts), oldest first; change points by Apache
Otava (E-divisive with t-tests). Exit codes: 0 shown; 2 nothing matches.
"""


def register(subparsers: Any) -> None:
    report = sub(subparsers, "report", "a run as a static HTML report with plots", REPORT_EXAMPLE)
    report.add_argument("run_id", metavar="RUN_ID")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--compare", metavar="RUN_B", default=None,
                       help="columns: RUN_ID (before) and RUN_B (after)")
    which.add_argument("--axis", metavar="NAME=A,B", default=None,
                       help="columns: these values of one setting (param, knob or variant)")
    report.add_argument("--allow-mismatch", nargs="+", default=[], metavar="FIELD",
                        help="--compare although the hosts differ in these fingerprint fields")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="directory to write (created; a previous report there is replaced)")
    add_store(report)
    add_json(report)
    report.set_defaults(handler=cmd_report)
    history = sub(subparsers, "history", "a metric across every stored run, with change points",
                   HISTORY_EXAMPLE)
    history.add_argument("--metric", required=True, metavar="NAME",
                         help="stored metric name (as `fleet show` lists it)")
    history.add_argument("--case", metavar="CASE_ID|K=V[,K=V]", default=None,
                         help="one case: its id, or settings it must have")
    history.add_argument("--host", default=None, metavar="HOST", help="one host")
    history.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                         help="only runs tagged so (repeatable: all must match)")
    history.add_argument("--last", type=int, default=None, metavar="N",
                         help="the newest N runs of each series")
    add_store(history)
    add_json(history)
    history.set_defaults(handler=cmd_history)



def cmd_report(args: argparse.Namespace) -> int:
    from fleet.compare.fingerprint import validate_allowed
    from fleet.report.build import ReportRequest, build_report, parse_axis

    axis, values = parse_axis(args.axis) if args.axis else (None, ())
    result = build_report(ReportRequest(args.store, args.run_id, args.output,
                                        compare_run_id=args.compare, axis=axis,
                                        axis_values=values,
                                        allow_mismatch=validate_allowed(args.allow_mismatch)))
    if args.json:
        sys.stdout.write(json.dumps({"index": str(result.index_path),
                                     "images": list(result.images),
                                     "tables": len(result.data.tables),
                                     "mismatches_allowed": list(result.data.mismatches)},
                                    sort_keys=True) + "\n")
    else:
        sys.stdout.write(f"report: {result.index_path} ({len(result.data.tables)} table(s), "
                         f"{len(result.images)} plot(s))\n")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from fleet.compare.tags import parse_tag
    from fleet.errors import ConfigError
    from fleet.report.history import HistoryQuery, load_history

    case_id: str | None = None
    settings: tuple[tuple[str, str], ...] = ()
    if args.case:
        if "=" in args.case:
            settings = tuple(parse_tag(p, where="--case") for p in args.case.split(",") if p)
        else:
            case_id = args.case
    if args.last is not None and args.last < 1:
        raise ConfigError("--last must be at least 1", where="--last")
    series = load_history(HistoryQuery(args.store, args.metric, case_id, settings, args.host,
                                       tuple(parse_tag(t) for t in args.tag), args.last))
    if args.json:
        sys.stdout.write(json.dumps({"series": [_series_json(s) for s in series]}, indent=2,
                                    sort_keys=True) + "\n")
        return 0
    console = stdout_console()
    if len(series) <= 3:
        for s in series:
            console.print(_points_view(s))
    console.print(_summary_view(series))
    return 0


def _series_json(s: Any) -> dict[str, Any]:
    return {"metric": s.metric, "unit": s.unit, "case_id": s.case_id, "case": s.case,
            "host": s.host,
            "points": [{"run_id": p.run_id, "created_at_unix_seconds": p.created_at_unix_seconds,
                        "tags": dict(p.tags), "value": p.value, "n": p.n} for p in s.points],
            "change_points": [{"index": c.index, "run_id": s.points[c.index].run_id,
                               "mean_before": c.mean_before, "mean_after": c.mean_after,
                               "relative_change": c.relative_change, "p_value": c.p_value}
                              for c in s.change_points]}


def _when(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(unix_seconds))


def _points_view(s: Any) -> Table:
    from rich.table import Table

    from fleet.model import percent_text

    table = Table(title=f"{s.metric} ({s.unit}) on {s.host}, case {s.case_id} {s.case}",
                  title_justify="left")
    for col in ("#", "run", "created (UTC)", "tags", "value", "n", "change"):
        table.add_column(col)
    marks = {c.index: c for c in s.change_points}
    for i, p in enumerate(s.points):
        c = marks.get(i)
        change = "" if c is None else f"change point {percent_text(c.relative_change)}"
        table.add_row(str(i), p.run_id, _when(p.created_at_unix_seconds),
                      ", ".join(f"{k}={v}" for k, v in p.tags), f"{p.value:.6g}", str(p.n),
                      change)
    return table


def _summary_view(series: Sequence[Any]) -> Table:
    from rich.table import Table

    from fleet.model import percent_text

    table = Table(title=f"{len(series)} series", title_justify="left")
    for col in ("metric", "case", "host", "runs", "newest", "change points"):
        table.add_column(col)
    for s in series:
        cps = ", ".join(f"#{c.index} {s.points[c.index].run_id} {percent_text(c.relative_change)}"
                        for c in s.change_points) or "none"
        table.add_row(s.metric, f"{s.case_id} {s.case}".strip(), s.host, str(len(s.points)),
                      f"{s.points[-1].value:.6g} {s.unit}", cps)
    return table
