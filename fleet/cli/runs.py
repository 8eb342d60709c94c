"""`fleet run`, `fleet runs`, `fleet show`: arguments, progress, summaries, exit codes.

Progress goes to stderr (a rich display on a terminal, else one plain line per event);
`--json` writes one JSON event per line on stdout (`run`) or one document (`runs`, `show`).
A closed output pipe (`fleet run ... | head -1`) never stops a run: that output is dropped
and the run goes on. SIGTERM and SIGHUP stop `fleet run` like Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fleet.cli.args import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
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

if TYPE_CHECKING:
    from rich.table import Table

    from fleet.execute.events import RunEvent

_QUIET_TAGS = ("date", "fleet_version", "git_sha")  # in `fleet runs --json`, not the table
RUN_EXAMPLE = """examples:
  fleet run benchmarks/quickstart.yml -i inventories/local.yml
  fleet run suite.yml -i inventories/lab.yml --limit 'lab[0:2]' --seed 42 --json
  fleet run suite.yml -i inventories/lab.yml --tag branch=main --tag kernel=6.12
  fleet run --resume r20261125-083000-3f2a          # after Ctrl-C, a crash, or failures

Exit codes: 0 every job completed; 1 some failed (see `fleet show RUN_ID`) or a host was
unreachable (recorded with the run; --allow-unreachable: exit 0 anyway); 2 bad input (nothing
recorded), or the run is held by a live controller (--resume); 130 interrupted by Ctrl-C,
SIGTERM or SIGHUP (resume it with --resume).
"""
RUNS_EXAMPLE = ("examples:\n  fleet runs\n  fleet runs --tag branch=main\n"
                "  fleet runs --json --store /tmp/fleet.sqlite\n")
SHOW_EXAMPLE = "examples:\n  fleet show r20261125-083000-3f2a\n  fleet show RUN_ID --json\n"


def register(subparsers: Any) -> None:
    run = sub(subparsers, "run", "run a suite on the inventory's hosts, or resume a run",
              RUN_EXAMPLE)
    run.add_argument("suite", type=Path, nargs="?", metavar="SUITE", help="suite file (YAML)")
    run.add_argument("--resume", metavar="RUN_ID",
                     help="run the jobs of RUN_ID that have no completed attempt (no re-plan)")
    add_inventory(run)
    add_store(run)
    add_plan(run, "recorded")
    add_host_lock_wait(run)
    run.add_argument("--accept-new-host-keys", action="store_true",
                     help="add unknown SSH host keys to known_hosts (changed keys are refused)")
    run.add_argument("--allow-unreachable", action="store_true",
                     help="exit 0 although hosts were unreachable or refused (changed key) and "
                          "left out; they are recorded with the run either way")
    run.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                     help="tag the run (repeatable), e.g. branch=main; date, git_sha (of the "
                          "suite's repository) and fleet_version are recorded by default")
    run.add_argument("--pushgateway", metavar="URL", default=None,
                     help="push each completed attempt's results to this Pushgateway as it "
                          "finishes (e.g. http://127.0.0.1:9091; basic auth: http://USER@HOST:"
                          "9091 and $FLEET_PUSHGATEWAY_PASSWORD, or http://USER:PASSWORD@...)")
    add_json(run)
    run.set_defaults(handler=cmd_run)
    runs = sub(subparsers, "runs", "list the runs in the store", RUNS_EXAMPLE)
    runs.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                      help="only runs with this tag (repeatable: all must match)")
    add_store(runs)
    add_json(runs)
    runs.set_defaults(handler=cmd_runs)
    show = sub(subparsers, "show", "one run's cases, attempts, results and reasons (store only)",
                SHOW_EXAMPLE)
    show.add_argument("run_id", metavar="RUN_ID")
    add_store(show)
    add_json(show)
    show.set_defaults(handler=cmd_show)


# ---- fleet run ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from fleet.cli.progress import RunView, summary_view, warn, write
    from fleet.compare.tags import parse_tags

    tags = parse_tags(args.tag)
    view = RunView(as_json=args.json)
    on_event: Callable[[RunEvent], None] = view.event
    pusher = None
    if args.pushgateway is not None:  # checked before anything runs or is recorded
        from fleet.export.live_push import LivePusher, parse_gateway

        gateway = parse_gateway(args.pushgateway,
                                password=os.environ.get("FLEET_PUSHGATEWAY_PASSWORD"))
        pusher = LivePusher(gateway, warn)
        on_event = _both(on_event, pusher.event)
    with _stop_signals_interrupt():
        report = _start_or_resume(args, tags, on_event)
    view.close()
    if pusher is not None:
        write(sys.stderr, f"fleet: {pusher.summary()}\n")
    if not args.json:  # rendered first: rich exits 1 itself on a broken pipe
        console = stdout_console()
        with console.capture() as captured:
            console.print(summary_view(report.summary))
        write(sys.stdout, captured.get())
    if report.interrupted:
        write(sys.stderr, f"fleet: interrupted; resume with: fleet run --resume "
                           f"{report.run_id} --store {report.store_path}\n")
        return EXIT_INTERRUPTED
    if report.summary.unreachable and not args.allow_unreachable:
        return EXIT_PARTIAL
    return EXIT_OK if report.summary.all_completed else EXIT_PARTIAL


def _start_or_resume(args: argparse.Namespace, tags: Mapping[str, str],
                     on_event: Callable[[RunEvent], None]) -> Any:
    from fleet.api.run import ResumeRequest, RunRequest, resume_run, start_run
    from fleet.cli.progress import warn
    from fleet.execute.executor import ExecuteOptions

    options = ExecuteOptions(host_lock_wait_seconds=args.host_lock_wait)
    if args.resume:
        if args.suite is not None or args.seed is not None:
            raise ConfigError("--resume takes no SUITE and no --seed", where="fleet run",
                              hint="a resumed run keeps its recorded suite, plan and seed")
        request = ResumeRequest(args.resume, args.store,
                                tuple(map(Path, args.inventory)) if args.inventory else None,
                                args.limit, args.accept_new_host_keys, tags=tags)
        return resume_run(request, on_event=on_event, on_warning=warn, options=options)
    if args.suite is None:
        raise ConfigError("no suite given", where="fleet run",
                          hint="fleet run SUITE -i INVENTORY, or fleet run --resume RUN_ID")
    return start_run(RunRequest(args.suite, tuple(inventory_sources(args)), args.limit,
                                args.seed, args.store, args.accept_new_host_keys,
                                args.max_jobs, tags=tags),
                     on_event=on_event, on_warning=warn, options=options)


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP act as Ctrl-C does (KeyboardInterrupt: exit 130) for the whole
    command; while jobs run, the executor handles all three alike (fleet.execute.executor)."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


def _both(first: Callable[[RunEvent], None],
          second: Callable[[RunEvent], None]) -> Callable[[RunEvent], None]:
    def both(event: RunEvent) -> None:
        first(event)
        second(event)

    return both


# ---- fleet runs / fleet show --------------------------------------------------------------


def cmd_runs(args: argparse.Namespace) -> int:
    from rich.table import Table

    from fleet.api.runs import run_listing, tags_by_run
    from fleet.compare.tags import parse_tags

    wanted = parse_tags(args.tag).items()
    listing = run_listing(args.store)
    tags = tags_by_run(args.store)
    listing = tuple(r for r in listing
                    if all(tags.get(r.info.run_id, {}).get(k) == v for k, v in wanted))
    if args.json:
        rows = [{"run_id": r.info.run_id, "suite": r.info.suite, "status": r.info.status,
                 "created_at_unix_seconds": r.info.created_at_unix_seconds,
                 "finished_at_unix_seconds": r.info.finished_at_unix_seconds,
                 "seed": r.info.seed, "jobs_done": r.jobs_done, "jobs_total": r.jobs_total,
                 "tags": tags.get(r.info.run_id, {})}
                for r in listing]
        sys.stdout.write(json.dumps({"runs": rows}, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    table = Table(title=f"Runs in {args.store}", title_justify="left")
    for col in ("run", "suite", "status", "created", "jobs done/total", "tags"):
        table.add_column(col)
    for r in listing:
        shown = {k: v for k, v in tags.get(r.info.run_id, {}).items() if k not in _QUIET_TAGS}
        table.add_row(r.info.run_id, r.info.suite, r.info.status,
                      _local_time(r.info.created_at_unix_seconds),
                      f"{r.jobs_done}/{r.jobs_total}",
                      " ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    stdout_console().print(table)
    return EXIT_OK


def _local_time(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_seconds))


def cmd_show(args: argparse.Namespace) -> int:
    from fleet.api.runs import run_detail, run_sample_counts, tags_by_run
    from fleet.cli.progress import summary_view
    from fleet.execute.events import attempt_json, summary_json

    detail, summary = run_detail(args.store, args.run_id)
    counts = run_sample_counts(args.store, args.run_id)
    tags = tags_by_run(args.store).get(detail.info.run_id, {})
    if args.json:
        data = {"run": {**summary_json(summary), "seed": detail.info.seed, "tags": tags,
                        "suite_path": detail.info.suite_path,
                        "suite_sha256": detail.info.suite_sha256,
                        "created_at_unix_seconds": detail.info.created_at_unix_seconds,
                        "finished_at_unix_seconds": detail.info.finished_at_unix_seconds},
                "cases": [{"case_id": c, "workload": w, "params": json.loads(p)}
                          for c, w, p in detail.cases],
                "jobs": [j.text for j in detail.jobs],
                "attempts": [{**attempt_json(a.attempt), "attempt_id": a.attempt_id,
                              "samples": _samples_json(counts.get(a.attempt_id, {}))}
                             for a in detail.attempts],
                "in_flight": [{"job": c.job.text, "host": c.host, "attempt_no": c.attempt_no,
                               "started_at_unix_seconds": c.started_at_unix_seconds}
                              for c in detail.in_flight]}
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return EXIT_OK
    console = stdout_console()
    info = detail.info
    console.print(f"run {info.run_id}: suite {info.suite} ({info.suite_path}, sha256 "
                  f"{info.suite_sha256[:12]}), seed {info.seed}, created "
                  f"{_local_time(info.created_at_unix_seconds)}, status {info.status}")
    if tags:
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())),
                      markup=False, highlight=False)
    console.print(_cases_view(detail.cases))
    console.print(_attempts_view(detail))
    if any(_sampler_measurements(a.attempt.measurements) for a in detail.attempts):
        console.print(_sampler_view(detail, counts))
    console.print(summary_view(summary))
    return EXIT_OK


def _cases_view(cases: Any) -> Table:
    from rich.table import Table

    table = Table(title="cases", title_justify="left")
    for col in ("case", "workload", "params"):
        table.add_column(col)
    for case_id, workload, params in cases:
        table.add_row(case_id, workload, params)
    return table


def _attempts_view(detail: Any) -> Table:
    from rich.table import Table

    from fleet.model import MISSING_TEXT

    table = Table(title="attempts", title_justify="left")
    for col in ("job", "host", "#", "status", "seconds", "exit", "results / reason"):
        table.add_column(col)
    for stored in detail.attempts:
        a = stored.attempt
        results = ", ".join(f"{m.metric}={_value(m.value)} {m.unit}" for m in a.measurements
                            if m not in _sampler_measurements(a.measurements))
        knobs = ", ".join(f"{k.name} {k.before}->{k.requested}"
                          f"{'' if k.restored else ' (NOT restored)'}" for k in a.knobs)
        note = "; ".join(x for x in (a.error or "", results, knobs) if x)
        table.add_row(a.job.text, a.host, str(a.attempt_no), a.status,
                      f"{a.duration_seconds:.2f}", MISSING_TEXT if a.exit_code is None else
                      str(a.exit_code), note)
    for c in detail.in_flight:  # claimed, no attempt yet: running, or its controller died
        table.add_row(c.job.text, c.host, str(c.attempt_no), "in flight", "", MISSING_TEXT,
                      f"since {_local_time(c.started_at_unix_seconds)}")
    return table


def _value(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4g}"


def _sampler_measurements(measurements: Any) -> list[Any]:
    return [m for m in measurements if ("source", "sampler") in m.labels]


def _samples_json(series: Mapping[str, int]) -> dict[str, Any]:
    return {"points": sum(series.values()), "series": dict(series)}


def _sampler_view(detail: Any, counts: Mapping[int, Mapping[str, int]]) -> Table:
    """Per attempt, each sampler metric: its total and its per-node values; then its notes."""
    from rich.table import Table

    table = Table(title="sampled while running (source: sampler)", title_justify="left")
    for col in ("job", "#", "metric", "value", "per node"):
        table.add_column(col)
    for stored in detail.attempts:
        a = stored.attempt
        mine = _sampler_measurements(a.measurements)
        for metric in dict.fromkeys(m.metric for m in mine):
            rows = [m for m in mine if m.metric == metric]
            total = [m for m in rows if "node" not in dict(m.labels)]
            nodes = ", ".join(f"{dict(m.labels)['node']}: {_value(m.value)}"
                              for m in rows if "node" in dict(m.labels))
            table.add_row(a.job.text, str(a.attempt_no), metric,
                          f"{_value(total[0].value)} {rows[0].unit}" if total else "", nodes)
        if mine:
            points = sum(counts.get(stored.attempt_id, {}).values())
            table.add_row(a.job.text, str(a.attempt_no), "(series stored)", f"{points} points",
                          "")
        for line in (a.notes or "").splitlines():
            table.add_row(a.job.text, str(a.attempt_no), "note", line, "")
    return table
