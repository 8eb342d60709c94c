"""What every command module shares: the parser class (usage errors in one line), exit codes,
the common options (inventory, store, plan, JSON, host lock wait), and the helpers every
command uses (the default store, the inventory, JSON and rich output).

Imported by ``fleet --version`` and ``--help``: nothing heavy at module level (rich, the
store, the inventory and the rest are imported inside the functions that use them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130
MAX_SEED = 2**63 - 1  # the store keeps the seed as a signed 64-bit integer
DEFAULT_MAX_JOBS = 10_000  # fleet.plan.matrix.DEFAULT_MAX_JOBS (not imported: --help stays fast)
DEFAULT_HOST_LOCK_WAIT_SECONDS = 600.0  # fleet.execute.worker's (not imported, as above)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_ERROR)


def sub(subparsers: Any, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    """A subcommand with its help text and an example epilog."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def subcommands(parser: argparse.ArgumentParser, title: str) -> Any:
    """The subparsers of a command group (``fleet lab up``...)."""
    return parser.add_subparsers(title=title, metavar="COMMAND", parser_class=Parser)


def add_inventory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", action="append", metavar="INVENTORY",
                        help="Ansible inventory file or directory (YAML or INI); repeatable. "
                             "Default: $FLEET_INVENTORY, else localhost (local connection)")
    parser.add_argument("-l", "--limit", metavar="PATTERN",
                        help="Ansible host pattern, e.g. 'lab', 'web*:!web3', 'g1:&g2'")


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=None, metavar="PATH",
                        help="SQLite store file (default: $FLEET_STORE, else "
                             f"{default_store_path()})")


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


def add_host_lock_wait(parser: argparse.ArgumentParser) -> None:
    """--host-lock-wait (fleet run, gate): how long a host held by another controller is
    waited for before it is quarantined as busy."""
    parser.add_argument("--host-lock-wait", type=wait_seconds_arg, metavar="SECONDS",
                        default=DEFAULT_HOST_LOCK_WAIT_SECONDS,
                        help="wait this long for a host that another controller's run holds, "
                             "naming the holder, then quarantine it as busy "
                             "(default: %(default)g)")


def add_plan(parser: argparse.ArgumentParser, seed_note: str) -> None:
    """--seed and --max-jobs (fleet plan, run, gate)."""
    parser.add_argument("--seed", type=seed_arg, default=None, metavar="N",
                        help=f"seed for the per-host order, 0 to 2**63-1 (default: random, "
                             f"{seed_note})")
    parser.add_argument("--max-jobs", type=max_jobs_arg, default=DEFAULT_MAX_JOBS, metavar="N",
                        help="refuse a suite with more jobs (cases x repetitions x hosts) than "
                             "N, before any host is touched or anything recorded "
                             "(default: %(default)s)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def default_store_path() -> Path:
    env = os.environ.get("FLEET_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleet" / "fleet.sqlite"


def inventory_sources(args: argparse.Namespace) -> list[Path]:
    """-i (repeatable), else $FLEET_INVENTORY, else the embedded default (this machine)."""
    if args.inventory:
        return [Path(p) for p in args.inventory]
    env = os.environ.get("FLEET_INVENTORY")
    if env:
        return [Path(env)]
    return [Path(str(resources.files("fleet").joinpath("default_inventory.yml")))]


def load_hosts(args: argparse.Namespace) -> Any:
    """The inventory the arguments select; its warnings on stderr."""
    from fleet.config.inventory import load_inventory

    inventory = load_inventory(inventory_sources(args), limit=args.limit)
    for warning in inventory.warnings:
        sys.stderr.write(f"fleet: warning: {warning}\n")
    return inventory


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def stdout_console(piped_width: int = 160) -> Console:
    """rich on stdout: the terminal's width, or ``piped_width`` columns into a pipe or file."""
    from rich.console import Console

    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else piped_width)
