"""Argument definitions for every subcommand, each with an example in its --help."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

FACTS_EXAMPLE = """examples:
  fleet facts                                   # this machine (embedded default inventory)
  fleet facts -i inventories/lab.yml --limit 'lab[0:1]' --json
  fleet facts -i hosts.ini -i more.yml --limit 'epyc:!broken' --accept-new-host-keys
"""
HOSTS_EXAMPLE = """examples:
  fleet hosts -i inventories/lab.yml
  fleet hosts -i hosts.ini --limit 'skylake*' --json
"""
PLAN_EXAMPLE = """examples:
  fleet plan benchmarks/quickstart.yml                  # localhost, facts from the store
  fleet plan benchmarks/examples/kvm_dirty_log_perf.yml -i inventories/lab.yml --gather
  fleet plan suite.yml -i hosts.ini --limit epyc --seed 42 --json

The plan uses each host's latest facts in the store (gathered by `fleet facts`); no host is
touched unless --gather is given. Hosts without stored facts are listed, not planned.
"""
LAB_UP_EXAMPLE = """examples:
  sudo fleet lab up 3                 # three sshd hosts in network namespaces (instant)
  fleet lab up --numa 2n,4n           # two QEMU guests: 2 sockets/2 nodes and 4 nodes
  fleet facts -i ~/.local/state/fleet/lab/inventory.yml
  fleet lab down

NUMA specs: 2n (2 sockets, 2 nodes, 4 CPUs), 4n (4 nodes, 4 CPUs, distances 10/16/22/28),
2n-asym (3+1 CPUs, memory 3:1). Guests boot Debian's kernel under TCG with nested KVM; the
root filesystem is built once from Debian packages (about a minute) and cached in
~/.cache/fleet/lab. Boot to SSH takes 25-50 s; each guest uses about 1 GiB of RAM.
"""
LAB_DOWN_EXAMPLE = "example:\n  sudo fleet lab down\n"
LAB_STATUS_EXAMPLE = "example:\n  fleet lab status --json\n"
STORE_INFO_EXAMPLE = "example:\n  fleet store info --store /tmp/fleet.sqlite\n"


def _sub(subparsers: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _add_inventory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", action="append", metavar="INVENTORY",
                        help="Ansible inventory file or directory (YAML or INI); repeatable. "
                             "Default: $FLEET_INVENTORY, else localhost (local connection)")
    parser.add_argument("-l", "--limit", metavar="PATTERN",
                        help="Ansible host pattern, e.g. 'lab', 'web*:!web3', 'g1:&g2'")


def _add_store(parser: argparse.ArgumentParser, default_store: Callable[[], Path]) -> None:
    parser.add_argument("--store", type=Path, default=None, metavar="PATH",
                        help=f"SQLite store file (default: $FLEET_STORE, else {default_store()})")


MAX_SEED = 2**63 - 1  # the store keeps the seed as a signed 64-bit integer
DEFAULT_MAX_JOBS = 10_000  # fleet.matrix.DEFAULT_MAX_JOBS (not imported: --help stays fast)


def _bounded(text: str, kind: type[int] | type[float], low: float, high: float | None,
             what: str) -> Any:
    """``text`` as ``kind`` within [low, high] (high None: no upper bound), or one line that
    argparse reports."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if high is None and value < low:
        raise argparse.ArgumentTypeError(f"{text} must be at least {low:g}")
    if high is not None and not low <= value <= high:
        unit = " seconds" if kind is float else ""
        raise argparse.ArgumentTypeError(f"{text} is out of range: give {low:g} to {high}{unit}")
    return value


def seed_arg(text: str) -> int:
    """--seed: an integer from 0 to 2**63 - 1."""
    return int(_bounded(text, int, 0, MAX_SEED, "an integer"))


def max_jobs_arg(text: str) -> int:
    return int(_bounded(text, int, 1, None, "an integer"))


def wait_seconds_arg(text: str) -> float:
    """--host-lock-wait: seconds, 0 (do not wait) up to a day."""
    return float(_bounded(text, float, 0, 86400, "a number of seconds"))


def _add_host_lock_wait(parser: argparse.ArgumentParser) -> None:
    """--host-lock-wait (fleet run, gate): how long a host held by another controller is
    waited for before it is quarantined as busy."""
    from fleet.execute_worker import DEFAULT_HOST_LOCK_WAIT_SECONDS

    parser.add_argument("--host-lock-wait", type=wait_seconds_arg, metavar="SECONDS",
                        default=DEFAULT_HOST_LOCK_WAIT_SECONDS,
                        help="wait this long for a host that another controller's run holds, "
                             "naming the holder, then quarantine it as busy "
                             "(default: %(default)g)")


def _add_plan(parser: argparse.ArgumentParser, seed_note: str) -> None:
    """--seed and --max-jobs (fleet plan, run, gate)."""
    parser.add_argument("--seed", type=seed_arg, default=None, metavar="N",
                        help=f"seed for the per-host order, 0 to 2**63-1 (default: random, "
                             f"{seed_note})")
    parser.add_argument("--max-jobs", type=max_jobs_arg, default=DEFAULT_MAX_JOBS, metavar="N",
                        help="refuse a suite with more jobs (cases x repetitions x hosts) than "
                             "N, before any host is touched or anything recorded "
                             "(default: %(default)s)")


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def _lab_dir(parser: argparse.ArgumentParser) -> None:
    from fleet.lab import default_state_dir

    parser.add_argument("--dir", type=Path, default=default_state_dir(),
                        help="lab state directory (default: %(default)s)")


def build_parser(parser_class: type[argparse.ArgumentParser], *, handlers: Mapping[str, Any],
                 version: str, default_store: Callable[[], Path]) -> argparse.ArgumentParser:
    parser = parser_class(
        prog="fleet", description="Benchmark fleet runner for Linux/KVM memory-management work "
        "on multi-socket NUMA servers.", epilog=FACTS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fleet {version}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=parser_class)

    facts = _sub(sub, "facts", "gather NUMA topology and host facts, in parallel", FACTS_EXAMPLE)
    _add_inventory(facts)
    _add_store(facts, default_store)
    facts.add_argument("--no-store", action="store_true", help="do not save snapshots")
    facts.add_argument("--accept-new-host-keys", action="store_true",
                       help="add unknown SSH host keys to known_hosts (changed keys are refused)")
    _add_json(facts)
    facts.set_defaults(handler=handlers["facts"])

    hosts = _sub(sub, "hosts", "list the inventory's hosts as fleet sees them", HOSTS_EXAMPLE)
    _add_inventory(hosts)
    _add_json(hosts)
    hosts.set_defaults(handler=handlers["hosts"])

    plan = _sub(sub, "plan", "expand a suite into cases and show which host runs what",
                PLAN_EXAMPLE)
    plan.add_argument("suite", type=Path, metavar="SUITE", help="suite file (YAML)")
    _add_inventory(plan)
    _add_store(plan, default_store)
    _add_plan(plan, "printed")
    plan.add_argument("--gather", action="store_true",
                      help="gather fresh facts first (and store them)")
    plan.add_argument("--accept-new-host-keys", action="store_true",
                      help="with --gather: add unknown SSH host keys to known_hosts")
    _add_json(plan)
    plan.set_defaults(handler=handlers["plan"])

    _build_lab(sub, parser_class, handlers)
    _build_store(sub, parser_class, handlers, default_store)
    from fleet.cli.runs import build_run_parsers  # run, runs, show: their own module

    build_run_parsers(sub, handlers, default_store)
    from fleet.cli.export import build_export_parsers  # export serve, export text

    build_export_parsers(sub, parser_class, handlers, default_store)
    from fleet.cli.dashboards import build_dashboards_parsers  # dashboards build, push

    build_dashboards_parsers(sub, parser_class, handlers)
    from fleet.cli.report import build_report_parsers  # report, history

    build_report_parsers(sub, handlers, default_store)
    from fleet.cli.compare import build_compare_parsers  # compare, gate

    build_compare_parsers(sub, handlers, default_store)
    return parser


def _build_lab(sub: Any, parser_class: type[argparse.ArgumentParser],
               handlers: Mapping[str, Any]) -> None:
    lab = _sub(sub, "lab", "local lab of SSH hosts in network namespaces (root)", LAB_UP_EXAMPLE)
    lab_sub = lab.add_subparsers(title="lab commands", metavar="COMMAND", parser_class=parser_class)
    up = _sub(lab_sub, "up", "create N lab hosts (netns + sshd), inventory, known_hosts",
              LAB_UP_EXAMPLE)
    up.add_argument("count", type=int, metavar="N", nargs="?", default=None,
                    help="number of netns hosts (or, with --numa, omit it)")
    up.add_argument("--numa", metavar="SPEC[,SPEC...]",
                    help="QEMU guests with these NUMA topologies instead of netns hosts")
    up.add_argument("--memory-mib", type=int, default=None,
                    help="--numa: memory per guest in MiB (default 2048)")
    up.add_argument("--cpus", type=int, default=None,
                    help="--numa: vCPUs per guest (default 4)")
    up.add_argument("--accel", choices=("tcg", "kvm"), default="tcg",
                    help="--numa: QEMU accelerator (default tcg; kvm needs nested virt)")
    up.add_argument("--ready-timeout", type=float, default=240.0, metavar="SECONDS",
                    help="--numa: how long to wait for each guest's SSH (default 240)")
    _lab_dir(up)
    _add_json(up)
    up.set_defaults(handler=handlers["lab up"])
    down = _sub(lab_sub, "down", "stop and remove everything the lab started", LAB_DOWN_EXAMPLE)
    _lab_dir(down)
    _add_json(down)
    down.set_defaults(handler=handlers["lab down"])
    status = _sub(lab_sub, "status", "show the lab's hosts and their health", LAB_STATUS_EXAMPLE)
    _lab_dir(status)
    _add_json(status)
    status.set_defaults(handler=handlers["lab status"])


def _build_store(sub: Any, parser_class: type[argparse.ArgumentParser],
                 handlers: Mapping[str, Any], default_store: Callable[[], Path]) -> None:
    store = _sub(sub, "store", "inspect the SQLite store", STORE_INFO_EXAMPLE)
    store_sub = store.add_subparsers(title="store commands", metavar="COMMAND",
                                     parser_class=parser_class)
    info = _sub(store_sub, "info", "schema version, counts, latest snapshot per host",
                STORE_INFO_EXAMPLE)
    _add_store(info, default_store)
    _add_json(info)
    info.set_defaults(handler=handlers["store info"])


def stdout_console(piped_width: int = 160) -> Console:
    """rich on stdout: the terminal's width, or ``piped_width`` columns into a pipe or file."""
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else piped_width)
