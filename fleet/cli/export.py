"""`fleet export serve`, `text`, `rules` and `import`: the store as Prometheus metrics."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from fleet.cli.args import add_store, sub, subcommands
from fleet.errors import ConfigError

EXIT_OK = 0
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9471
DEFAULT_LAST_RUNS = 10
RENDER_INTERVAL_SECONDS = 1.0
DEFAULT_BATCH_SAMPLES = 10_000  # fleet.export.remote_write_codec's (not imported: --help)
SERVE_EXAMPLE = f"""examples:
  fleet export serve                               # http://{DEFAULT_HOST}:{DEFAULT_PORT}/metrics
  fleet export serve --listen 127.0.0.1:0 --store /tmp/fleet.sqlite   # any free port
  fleet export serve --run r20261125-083000-3f2a --axis-label block_size
  fleet export serve --listen 0.0.0.0:{DEFAULT_PORT}         # other machines too (explicit)

Exports the {DEFAULT_LAST_RUNS} newest runs (--last N, or --run RUN_ID ...). The metrics
are rendered once before it listens, then again in the background whenever something
was written to the store (checked every {RENDER_INTERVAL_SECONDS:g} s). A scrape is served
the last complete rendering at once, so it can be one rendering behind the store (a new
run of 10,000 cases takes a few seconds to render). Ctrl-C stops it. Point a Prometheus
at it with a scrape_config (see README, section Prometheus).
"""
RULES_EXAMPLE = """examples:
  fleet export rules -o /etc/prometheus/fleet.rules.yml && promtool check rules $_
  fleet export rules                               # on stdout

Recording rules for the derived comparisons (worst case and average over a run's cases, per
host and per NUMA node); list the file under rule_files: in prometheus.yml.
"""
IMPORT_EXAMPLE = """examples:
  fleet export import RUN_ID --remote-write http://127.0.0.1:9090/api/v1/write
  fleet export import RUN_ID --store /tmp/fleet.sqlite --openmetrics /tmp/run.om
  promtool tsdb create-blocks-from openmetrics /tmp/run.om /tmp/blocks   # then move the
  mv /tmp/blocks/* /var/lib/prometheus/metrics2/                # blocks into its data dir

Writes the run's host time series (fleet_host_*: TLB shootdowns, SecPageTables and page
tables per node, numa_* counters, KVM remote TLB flushes...) with the times they were
sampled at. Remote write needs Prometheus started with --web.enable-remote-write-receiver;
runs older than about 1 h before Prometheus' newest sample, and re-imports (idempotent),
also need in prometheus.yml:
  storage:
    tsdb:
      out_of_order_time_window: 30d
or go through --openmetrics + promtool (blocks for any past time). The store is only read.
"""
TEXT_EXAMPLE = """examples:
  fleet export text RUN_ID --store /tmp/fleet.sqlite
  fleet export text | promtool check metrics
"""


def register(subparsers: Any) -> None:
    export = sub(subparsers, "export", "export the store's runs as Prometheus metrics",
                 SERVE_EXAMPLE)
    export_sub = subcommands(export, "export commands")
    serve = sub(export_sub, "serve", "serve /metrics over HTTP for Prometheus", SERVE_EXAMPLE)
    serve.add_argument("--listen", metavar="[HOST:]PORT", default=None,
                       help=f"address to listen on (default {DEFAULT_HOST}:{DEFAULT_PORT}; a "
                            "non-loopback HOST must be given here explicitly)")
    _add_selection(serve, default_last=DEFAULT_LAST_RUNS)
    add_store(serve)
    serve.set_defaults(handler=cmd_export_serve)
    text = sub(export_sub, "text", "print the metrics exposition (for promtool, debugging)",
                TEXT_EXAMPLE)
    text.add_argument("run_id", metavar="RUN_ID", nargs="?", default=None,
                      help="only this run (default: the newest runs, see --last)")
    _add_selection(text, default_last=DEFAULT_LAST_RUNS)
    add_store(text)
    text.set_defaults(handler=cmd_export_text)
    rules = sub(export_sub, "rules", "print or write the Prometheus recording rules",
                 RULES_EXAMPLE)
    rules.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                       help="write the rule file here (default: stdout)")
    rules.set_defaults(handler=cmd_export_rules)
    _register_import(export_sub)


def _register_import(export_sub: Any) -> None:
    imp = sub(export_sub, "import", "write a run's host time series into Prometheus with "
               "their sample times", IMPORT_EXAMPLE)
    imp.add_argument("run_id", metavar="RUN_ID", help="the run to import (`fleet runs`)")
    target = imp.add_mutually_exclusive_group(required=True)
    target.add_argument("--remote-write", metavar="URL", default=None,
                        help="Prometheus remote-write endpoint, e.g. "
                             "http://127.0.0.1:9090/api/v1/write")
    target.add_argument("--openmetrics", metavar="FILE", type=Path, default=None,
                        help="write OpenMetrics text with timestamps here instead (for "
                             "promtool tsdb create-blocks-from openmetrics)")
    imp.add_argument("--batch-samples", type=int, default=DEFAULT_BATCH_SAMPLES, metavar="N",
                     help="samples per remote-write request (default %(default)s)")
    add_store(imp)
    imp.set_defaults(handler=cmd_export_import)


def _add_selection(parser: argparse.ArgumentParser, *, default_last: int) -> None:
    parser.add_argument("--run", action="append", default=[], metavar="RUN_ID",
                        help="export this run (repeatable; default: the newest runs)")
    parser.add_argument("--last", type=int, default=default_last, metavar="N",
                        help="without --run: export the N newest runs (default %(default)s;"
                             " 0: all)")
    parser.add_argument("--axis-label", action="append", default=[], metavar="AXIS",
                        help="add this case parameter as a label axis_<AXIS> on "
                             "fleet_workload_result (repeatable, at most 4)")


def parse_listen(text: str | None) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); None: the loopback default."""
    if text is None:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--listen {text!r} is not [HOST:]PORT", where="fleet export serve",
                          hint=f"e.g. --listen {DEFAULT_HOST}:{DEFAULT_PORT}, or a port alone")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _selection(args: argparse.Namespace, run_ids: list[str]) -> Any:
    from fleet.catalogue import MAX_AXIS_LABELS
    from fleet.export.prometheus import Selection

    if len(args.axis_label) > MAX_AXIS_LABELS:
        raise ConfigError(f"{len(args.axis_label)} --axis-label given, at most "
                          f"{MAX_AXIS_LABELS}", where="fleet export",
                          hint="every label multiplies nothing but makes series wider; pick the"
                               " axes your dashboards group by")
    if args.last < 0:
        raise ConfigError("--last must be >= 0", where="fleet export", hint="0 exports all runs")
    return Selection(tuple(run_ids), args.last or None, tuple(args.axis_label))


def cmd_export_text(args: argparse.Namespace) -> int:
    from fleet.export.prometheus import exposition_text
    from fleet.export.store_reader import open_read_only

    run_ids = [*([args.run_id] if args.run_id else []), *args.run]
    selection = _selection(args, run_ids)
    with open_read_only(args.store) as store:
        text = exposition_text(store, selection)
    sys.stdout.write(text)
    return EXIT_OK


def cmd_export_rules(args: argparse.Namespace) -> int:
    from fleet.export.rules import rules_yaml

    text = rules_yaml()
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        args.output.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write the rule file: {exc.strerror or exc}",
                          where=str(args.output),
                          hint="pick a writable path with -o FILE, or omit -o for stdout") from exc
    sys.stdout.write(f"wrote {args.output}\n")
    return EXIT_OK


def cmd_export_import(args: argparse.Namespace) -> int:
    from fleet.export.importer import import_run

    report = import_run(args.store, args.run_id, remote_write_url=args.remote_write,
                        openmetrics_path=args.openmetrics, batch_samples=args.batch_samples)
    how = (f"in {report.requests} remote-write requests" if report.requests
           else "as OpenMetrics")
    span = ""
    if report.first_unix_seconds is not None and report.last_unix_seconds is not None:
        span = (f", sampled {_utc(report.first_unix_seconds)} .. "
                f"{_utc(report.last_unix_seconds)} UTC")
    sys.stdout.write(f"imported {report.samples} samples of {report.series} series of run "
                     f"{report.run_id} {how} to {report.target}{span} "
                     f"({report.seconds:.2f} s)\n")
    if report.skipped_series:
        sys.stderr.write("fleet: warning: stored series not in the catalogue, not imported: "
                         f"{', '.join(report.skipped_series)}\n")
    return EXIT_OK


def _utc(unix_seconds: float) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def cmd_export_serve(args: argparse.Namespace) -> int:
    from fleet.export.prometheus import StoreCollector, start_server
    from fleet.export.store_reader import open_read_only

    host, port = parse_listen(args.listen)
    selection = _selection(args, args.run)
    with open_read_only(args.store) as store:
        collector = StoreCollector(store, selection)
        collector.start_background(RENDER_INTERVAL_SECONDS)  # renders once before listening
        try:
            server = start_server(collector, host, port)
        except BaseException:
            collector.stop_background()
            raise
        if not is_loopback(host):
            sys.stderr.write(f"fleet: warning: serving on {host}, not loopback: anyone who can "
                             "reach it can read the exported results\n")
        sys.stdout.write(f"serving {server.url} (store {args.store}); Ctrl-C stops\n")
        sys.stdout.flush()
        try:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
                _wait_for_stop()
        finally:
            server.close()
            collector.stop_background()
    sys.stderr.write("fleet: exporter stopped\n")
    return EXIT_OK


def _wait_for_stop() -> None:
    """Until Ctrl-C (KeyboardInterrupt) or SIGTERM."""
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while not stop.wait(timeout=3600.0):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
