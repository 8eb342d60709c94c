"""fleet's command line: parse arguments, call the API, print, choose the exit code.

Each command module registers its own subcommands (``register(subparsers)``); this module
only puts them together and dispatches. Nothing imports it but the package's entry point.

Exit codes: 0 success; 1 some hosts failed (the others still reported); 2 bad input or a
failure that stopped the command, every host failed included (one line on stderr); 70 a bug in
fleet; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from fleet import __version__
from fleet.cli import compare, dashboards, export, facts, lab, provision, report, runs, store
from fleet.cli.args import EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED, Parser, default_store_path
from fleet.errors import FleetError

Handler = Callable[[argparse.Namespace], int]
# in --help's order
COMMANDS = (facts, lab, provision, store, runs, export, dashboards, report, compare)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="fleet", description="Benchmark fleet runner for Linux/KVM memory-management work "
        "on multi-socket NUMA servers.", epilog=facts.FACTS_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_ERROR
    if hasattr(args, "store") and args.store is None:
        args.store = default_store_path()
    try:
        return handler(args)
    except FleetError as exc:
        sys.stderr.write(f"fleet: error: {exc.line()}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("fleet: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("FLEET_DEBUG"):
            raise
        sys.stderr.write(f"fleet: internal error: {type(exc).__name__}: {exc} (a bug in fleet:"
                         " rerun with FLEET_DEBUG=1 for the traceback and report it)\n")
        return EXIT_INTERNAL
