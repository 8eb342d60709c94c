"""`fleet compare` and `fleet gate`: arguments, tables, files, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from fleet.cli.args import (
    add_host_lock_wait,
    add_inventory,
    add_json,
    add_plan,
    add_store,
    inventory_sources,
    stdout_console,
    sub,
)
from fleet.errors import ConfigError

COMPARE_EXAMPLE = """examples:
  fleet compare r20261125-083000-3f2a r20261125-091500-77c1      # baseline, candidate
  fleet compare main kernel=6.12-rc1 --markdown                 # REFs: run ids or tags
  fleet compare RUN --axis eager_page_split=N,Y                 # two variants in one run
  fleet compare RUN_A RUN_B --allow-mismatch microcode --json

A REF is a run id, KEY=VALUE (newest completed run with that tag) or NAME (newest completed
run tagged branch=NAME or tag=NAME). Hosts must match like for like (CPU, microcode, node
layout, kernel and cmdline apart from the axis, THP, knobs) unless --allow-mismatch names the
fields. Exit codes: 0 compared; 2 bad input (unknown run, axis or value, nothing overlaps,
fingerprint mismatch).
"""
GATE_EXAMPLE = """examples:
  fleet gate ci.yml -i lab.yml --limit ci --baseline main --junit gate.xml --markdown gate.md
  fleet gate ci.yml -i lab.yml --limit ci --baseline-axis kernel=base --tag branch=pr-42

Runs the suite (like fleet run), then compares every metric x case x host with the baseline;
thresholds, directions and minimum repetitions come from the suite's compare: section.
History: each gated row's values in the newest N earlier completed runs of the suite
(compare.history: N, default 20; --history N overrides, 0 turns it off). From 5 runs on, the
host's own noise raises the threshold (2 x its CV) and a change point at the newest run in
the worse direction fails the gate too ("found by history").
Exit codes: 0 pass; 1 significant regression; 2 could not decide (missing data, too few
repetitions, unreachable or quarantined hosts, fingerprint mismatch, bad input).
"""


def register(subparsers: Any) -> None:
    compare = sub(subparsers, "compare", "compare two runs, or two variants inside one run",
                   COMPARE_EXAMPLE)
    compare.add_argument("refs", nargs="+", metavar="REF",
                         help="baseline then candidate run (or one run with --axis)")
    compare.add_argument("--axis", metavar="NAME=A,B",
                         help="compare NAME=B (and further values) against NAME=A in one run")
    _common(compare)
    compare.add_argument("--markdown", action="store_true", help="Markdown on stdout")
    compare.set_defaults(handler=cmd_compare)
    gate = sub(subparsers, "gate", "run a suite and fail on a significant regression (CI)",
                GATE_EXAMPLE)
    gate.add_argument("suite", type=Path, metavar="SUITE", help="suite file (YAML)")
    add_inventory(gate)
    base = gate.add_mutually_exclusive_group(required=True)
    base.add_argument("--baseline", metavar="REF", help="stored run id, KEY=VALUE or tag name")
    base.add_argument("--baseline-axis", metavar="NAME=VALUE",
                      help="the baseline is the suite's own NAME=VALUE cases (interleaved)")
    gate.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    gate.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    gate.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                      help="tag the gate's run (repeatable)")
    add_plan(gate, "recorded")
    add_host_lock_wait(gate)
    gate.add_argument("--history", type=int, default=None, metavar="N",
                      help="earlier runs read as history (0: off; default: the suite's "
                           "compare.history, 20)")
    gate.add_argument("--accept-new-host-keys", action="store_true",
                      help="add unknown SSH host keys to known_hosts")
    _common(gate)
    gate.set_defaults(handler=cmd_gate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-mismatch", nargs="+", default=[], metavar="FIELD",
                        help="compare although hosts differ in these fingerprint fields")
    add_store(parser)
    add_json(parser)


def cmd_compare(args: argparse.Namespace) -> int:
    from fleet.api.compare import compare_stored, parse_axis
    from fleet.compare.fingerprint import validate_allowed
    from fleet.compare.output import markdown, report_json

    if args.json and args.markdown:
        raise ConfigError("--json and --markdown exclude each other", where="fleet compare",
                          hint="pick one output")
    axis = None if args.axis is None else parse_axis(args.axis)
    if not args.store.exists():
        raise ConfigError("no store at this path", where=str(args.store),
                          hint="pass --store, or run a suite first")
    report = compare_stored(args.store, args.refs, axis=axis,
                            allow_mismatch=validate_allowed(args.allow_mismatch))
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), indent=2, sort_keys=True) + "\n")
    elif args.markdown:
        sys.stdout.write(markdown(report) + "\n")
    else:
        _print_report(report)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from fleet.api.compare import GateRequest, parse_axis, run_gate
    from fleet.cli.progress import RunView, warn
    from fleet.compare.fingerprint import validate_allowed
    from fleet.compare.output import decision_json, junit, markdown, report_json
    from fleet.compare.tags import parse_tags
    from fleet.execute.executor import ExecuteOptions

    if args.history is not None and not 0 <= args.history <= 1000:
        raise ConfigError(f"--history {args.history}: must be between 0 and 1000",
                          where="--history", hint="e.g. --history 20 (0 turns it off)")
    axis = None
    if args.baseline_axis is not None:
        name, value, _ = parse_axis(args.baseline_axis, option="--baseline-axis", pair=False)
        axis = (name, value)
    request = GateRequest(args.suite, tuple(inventory_sources(args)), args.limit, args.store,
                          args.baseline, axis, validate_allowed(args.allow_mismatch),
                          parse_tags(args.tag), args.seed,
                          args.accept_new_host_keys, args.history, args.max_jobs)
    view = RunView(as_json=False)
    try:
        result = run_gate(request, on_event=view.event, on_warning=warn,
                          options=ExecuteOptions(host_lock_wait_seconds=args.host_lock_wait))
    finally:
        view.close()
    decision = result.decision
    if args.junit is not None:
        _write(args.junit, junit(result.report, decision))
    if args.markdown is not None:
        _write(args.markdown, markdown(result.report, decision, title="fleet gate") + "\n")
    if args.json:
        data = report_json(result.report, decision) if result.report is not None else \
            {"gate": decision_json(decision)}
        sys.stdout.write(json.dumps({**data, "run_id": result.run_id}, indent=2,
                                    sort_keys=True) + "\n")
    else:
        if result.report is not None:
            _print_report(result.report)
        for line in decision.undecided:
            sys.stderr.write(f"fleet: gate: could not decide: {line}\n")
        stdout_console(200).print(f"gate (run {result.run_id or 'none'}): {decision.headline}")
    return decision.exit_code


def _write(path: Path, text: str) -> None:
    """Atomically: a temp file in the same directory, then rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror}", where=str(path),
                          hint="pass a writable path") from None



_STYLES = {"worse": "bold red", "better": "green", "changed": "yellow",
           "insufficient data": "magenta"}


def _print_report(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from fleet.compare.decide import by_history, row_title, threshold_text
    from fleet.compare.engine import case_text, cross_machine, metric_text
    from fleet.compare.output import change_text, history_text, number
    from fleet.model import MISSING_TEXT, p_value_text, percent_text

    console = stdout_console(200)
    table = Table(title=f"{report.candidate} vs baseline {report.baseline}",
                  title_justify="left")
    history = any(row.history is not None for row in report.rows)
    for col in ("verdict", "metric", "workload", "case", "host", "baseline (n)",
                "candidate (n)", "IQR b / c", "change [95% CI]", "p", "δ", "threshold",
                *(("history",) if history else ())):
        table.add_column(col, justify="right" if col in ("p", "δ") else "left")
    for row in report.rows:
        g, r = row.group, row.result
        verdict = r.verdict + ("" if row.gate else " ·")
        past = (f"[bold red]{history_text(row)}" if by_history(row) == "worse"
                else history_text(row),) if history else ()
        table.add_row(f"[{_STYLES.get(r.verdict, '')}]{verdict}" if r.verdict in _STYLES
                      else verdict, metric_text(g.metric, g.labels), g.workload,
                      case_text(g.case), g.host,
                      f"{number(r.baseline.median, g.unit)} ({r.baseline.n})",
                      f"{number(r.candidate.median, g.unit)} ({r.candidate.n})",
                      f"{number(r.baseline.iqr)} / {number(r.candidate.iqr)}",
                      change_text(row), p_value_text(r.p_value), number(r.cliffs_delta),
                      threshold_text(row), *past)
    console.print(table)
    cross = [c for c in cross_machine(report) if len(c.cells) > 1]
    if cross:
        hosts = sorted({h for c in cross for h, _ in c.cells})
        view = Table(title="across machines: candidate median (change)", title_justify="left")
        for col in ("metric", "workload", "case", *hosts):
            view.add_column(col)
        for c in cross:
            cells = dict(c.cells)
            view.add_row(metric_text(c.metric, c.labels), c.workload, case_text(c.case),
                         *(f"{number(cells[h].result.candidate.median, c.unit)} "
                           f"({percent_text(cells[h].result.relative_change)})" if h in cells
                           else MISSING_TEXT for h in hosts))
        console.print(view)
    for row in report.rows:
        if row.history is not None and by_history(row) is not None:
            console.print(escape(f"found by history ({row.history.verdict}): "
                                 f"{row_title(row)}: {row.history.reason}"))
    for d in report.mismatches:
        console.print(f"[yellow]allowed mismatch: {d.text()}")
    if any(not row.gate for row in report.rows):
        console.print("· not gated (no direction, or gate: false)")
