"""fleet's command line: parse arguments, call the API, print, choose the exit code.

Exit codes: 0 success; 1 some hosts failed (the others still reported); 2 bad input or a
failure that stopped the command, every host failed included (one line on stderr); 70 a bug in
fleet; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from fleet import __version__
from fleet.cli.args import build_parser, stdout_console
from fleet.cli.compare import cmd_compare, cmd_gate
from fleet.cli.dashboards import cmd_dashboards_build, cmd_dashboards_push
from fleet.cli.export import cmd_export_rules, cmd_export_serve, cmd_export_text
from fleet.cli.report import cmd_history, cmd_report
from fleet.cli.runs import cmd_run, cmd_runs, cmd_show
from fleet.codec import to_jsonable
from fleet.errors import FleetError

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_ERROR)



def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def default_store_path() -> Path:
    env = os.environ.get("FLEET_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleet" / "fleet.sqlite"


def _inventory_sources(args: argparse.Namespace) -> list[Path]:
    if args.inventory:
        return [Path(p) for p in args.inventory]
    env = os.environ.get("FLEET_INVENTORY")
    if env:
        return [Path(env)]
    return [Path(str(resources.files("fleet").joinpath("default_inventory.yml")))]


def _load_hosts(args: argparse.Namespace) -> Any:
    from fleet.inventory import load_inventory

    inventory = load_inventory(_inventory_sources(args), limit=args.limit)
    for warning in inventory.warnings:
        sys.stderr.write(f"fleet: warning: {warning}\n")
    return inventory


# ---------------------------------------------------------------- facts

def cmd_facts(args: argparse.Namespace) -> int:
    from fleet.gather import gather_facts
    from fleet.render import outcomes_view
    from fleet.store import Store

    inventory = _load_hosts(args)
    store = None if args.no_store else Store.open(args.store)
    try:
        outcomes = gather_facts(inventory.hosts, accept_new_host_keys=args.accept_new_host_keys)
        good = [o.facts for o in outcomes if o.facts is not None]
        if store is not None and good:
            store.save_snapshots(inventory.hosts, good)
    finally:
        if store is not None:
            store.close()
    if args.json:
        _print_json({"hosts": [to_jsonable(o) for o in outcomes],
                     "store": None if store is None else str(args.store)})
    else:
        console = stdout_console()
        console.print(outcomes_view([o for o in outcomes if o.ok]))
        if store is not None:
            console.print(f"saved {len(good)} snapshot(s) to {args.store}")
    failed = [o for o in outcomes if not o.ok]
    for o in failed:  # on stderr, also with --json (where the document has them too)
        sys.stderr.write(f"fleet: error: {o.error or o.host}\n")
    if failed and not good:
        return EXIT_ERROR  # every host failed: nothing to report
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_hosts(args: argparse.Namespace) -> int:
    inventory = _load_hosts(args)
    rows = [{"name": h.name, "address": h.address, "port": h.port, "user": h.user,
             "connection": h.connection, "via": h.via(), "groups": list(h.groups)}
            for h in inventory.hosts]
    if args.json:
        _print_json({"hosts": rows})
        return EXIT_OK
    from rich.table import Table

    table = Table(title="Inventory", title_justify="left")
    for col in ("name", "address", "port", "user", "connection", "via", "groups"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["address"], str(r["port"]), r["user"] or "-",
                      r["connection"], r["via"] or "-", ",".join(r["groups"]))
    stdout_console().print(table)
    return EXIT_OK


# ---------------------------------------------------------------- plan

def cmd_plan(args: argparse.Namespace) -> int:
    import secrets

    from fleet.plan_api import check_suite_size, plan_suite, plan_summary
    from fleet.render import plan_view
    from fleet.suite import load_suite

    suite = load_suite(args.suite)
    check_suite_size(suite, args.max_jobs)  # before --gather touches a host
    inventory = _load_hosts(args)
    facts = _facts_for_plan(args, inventory)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    plan = plan_suite(suite, facts, inventory.hosts, seed=seed, where=str(args.suite),
                      max_jobs=args.max_jobs)
    if args.json:
        _print_json(plan_summary(plan))
    else:
        stdout_console().print(plan_view(plan))
    return EXIT_OK


def _facts_for_plan(args: argparse.Namespace, inventory: Any) -> list[Any]:
    """Stored facts (no host is touched), or fresh ones with --gather."""
    from fleet.store import Store

    names = {h.name for h in inventory.hosts}
    if args.gather:
        from fleet.gather import gather_facts

        outcomes = gather_facts(inventory.hosts, accept_new_host_keys=args.accept_new_host_keys)
        for o in outcomes:
            if o.error:
                sys.stderr.write(f"fleet: warning: unreachable: {o.error}\n")
        facts = [o.facts for o in outcomes if o.facts is not None]
        with Store.open(args.store) as store:
            store.save_snapshots(inventory.hosts, facts)
        return facts
    if not args.store.exists():
        return []
    with Store.open_read(args.store, oldest=1) as store:
        return [s.facts for s in store.latest_snapshots() if s.host in names]


# ---------------------------------------------------------------- lab

def cmd_lab_up(args: argparse.Namespace) -> int:
    from fleet.lab import lab_up, vm_lab_up

    if args.numa is None and args.count is None:
        raise FleetError("say how many hosts (fleet lab up 3) or which NUMA guests "
                         "(fleet lab up --numa 2n,4n)", where="fleet lab up",
                         hint="see fleet lab up --help")
    if args.numa is not None:
        from fleet.lab.rootfs import ensure_rootfs

        def progress(message: str) -> None:
            sys.stderr.write(f"fleet: {message}\n")

        specs = [s.strip() for s in args.numa.split(",") if s.strip()]
        if args.count is not None and args.count != len(specs):
            raise FleetError(f"{args.count} hosts asked for but {len(specs)} --numa spec(s) given",
                             where="fleet lab up", hint="give one spec per guest, no count")
        image = ensure_rootfs(progress=progress)
        state = vm_lab_up(specs, args.dir, image=image, memory_mib=args.memory_mib,
                          cpus=args.cpus, accel=args.accel, progress=progress,
                          ready_timeout_seconds=args.ready_timeout)
    else:
        state = lab_up(args.count, args.dir)
    if args.json:
        _print_json(to_jsonable(state))
    else:
        console = stdout_console()
        for h in state.hosts:
            where = (f"netns {h.namespace}  sshd pid {h.sshd_pid}" if h.kind == "netns"
                     else f"{h.spec}  qemu pid {h.qemu_pid}  console {h.console_log_path}")
            console.print(f"{h.name}  {h.address}:{h.port}  {where}")
        console.print(f"inventory: {state.inventory_path}")
        console.print(f"try: fleet facts -i {state.inventory_path}")
    return EXIT_OK


def cmd_lab_down(args: argparse.Namespace) -> int:
    from fleet.lab import lab_down

    removed = lab_down(args.dir)
    if args.json:
        _print_json({"removed": list(removed)})
    else:
        console = stdout_console()
        for item in removed:
            console.print(item)
        if not removed:
            console.print(f"no lab in {args.dir}")
    return EXIT_OK


def cmd_lab_status(args: argparse.Namespace) -> int:
    from fleet.lab import lab_status
    from fleet.render import lab_status_data, lab_status_view

    status = lab_status(args.dir)
    if args.json:
        _print_json(lab_status_data(status))
    else:
        stdout_console().print(lab_status_view(status))
    return EXIT_OK if status.healthy or not status.exists else EXIT_PARTIAL


# ---------------------------------------------------------------- store

def cmd_store_info(args: argparse.Namespace) -> int:
    from fleet.store import Store

    with Store.open_read(args.store) as store:
        info = store.info()
        latest = store.latest_snapshots()
    if args.json:
        _print_json({"store": to_jsonable(info),
                     "latest": [{"host": s.host, "fingerprint": s.fingerprint,
                                 "collected_at_unix_seconds": s.collected_at_unix_seconds}
                                for s in latest]})
        return EXIT_OK
    console = stdout_console()
    console.print(f"store {info.path}: schema v{info.schema_version}, journal {info.journal_mode},"
                  f" {info.host_count} host(s), {info.snapshot_count} facts snapshot(s)")
    for s in latest:
        console.print(f"  {s.host}: fingerprint {s.fingerprint}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(_Parser, handlers={
        "facts": cmd_facts, "hosts": cmd_hosts, "plan": cmd_plan, "lab up": cmd_lab_up,
        "lab down": cmd_lab_down, "lab status": cmd_lab_status, "store info": cmd_store_info,
        "run": cmd_run, "runs": cmd_runs, "show": cmd_show,
        "export serve": cmd_export_serve, "export text": cmd_export_text,
        "export rules": cmd_export_rules,
        "dashboards build": cmd_dashboards_build, "dashboards push": cmd_dashboards_push,
        "report": cmd_report, "history": cmd_history,
        "compare": cmd_compare, "gate": cmd_gate,
    }, version=__version__, default_store=default_store_path)
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
