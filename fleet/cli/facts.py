"""`fleet facts`, `fleet hosts` and `fleet plan`: the inventory's hosts, their facts, and
what a suite would run where."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fleet.cli.args import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    add_inventory,
    add_json,
    add_plan,
    add_store,
    load_hosts,
    print_json,
    stdout_console,
    sub,
)

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


def register(subparsers: Any) -> None:
    facts = sub(subparsers, "facts", "gather NUMA topology and host facts, in parallel",
                FACTS_EXAMPLE)
    add_inventory(facts)
    add_store(facts)
    facts.add_argument("--no-store", action="store_true", help="do not save snapshots")
    facts.add_argument("--accept-new-host-keys", action="store_true",
                       help="add unknown SSH host keys to known_hosts (changed keys are refused)")
    add_json(facts)
    facts.set_defaults(handler=cmd_facts)

    hosts = sub(subparsers, "hosts", "list the inventory's hosts as fleet sees them",
                HOSTS_EXAMPLE)
    add_inventory(hosts)
    add_json(hosts)
    hosts.set_defaults(handler=cmd_hosts)

    plan = sub(subparsers, "plan", "expand a suite into cases and show which host runs what",
               PLAN_EXAMPLE)
    plan.add_argument("suite", type=Path, metavar="SUITE", help="suite file (YAML)")
    add_inventory(plan)
    add_store(plan)
    add_plan(plan, "printed")
    plan.add_argument("--gather", action="store_true",
                      help="gather fresh facts first (and store them)")
    plan.add_argument("--accept-new-host-keys", action="store_true",
                      help="with --gather: add unknown SSH host keys to known_hosts")
    add_json(plan)
    plan.set_defaults(handler=cmd_plan)


def cmd_facts(args: argparse.Namespace) -> int:
    from fleet.cli.render import outcomes_view
    from fleet.codec import to_jsonable
    from fleet.facts.gather import gather_facts
    from fleet.store import Store

    inventory = load_hosts(args)
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
        print_json({"hosts": [to_jsonable(o) for o in outcomes],
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
    inventory = load_hosts(args)
    rows = [{"name": h.name, "address": h.address, "port": h.port, "user": h.user,
             "connection": h.connection, "via": h.via(),
             "become": h.become.user if h.become is not None else None,
             "groups": list(h.groups)}
            for h in inventory.hosts]
    if args.json:
        print_json({"hosts": rows})
        return EXIT_OK
    from rich.table import Table

    from fleet.model import MISSING_TEXT

    table = Table(title="Inventory", title_justify="left")
    for col in ("name", "address", "port", "user", "connection", "via", "become", "groups"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["address"], str(r["port"]), r["user"] or MISSING_TEXT,
                      r["connection"], r["via"] or MISSING_TEXT, r["become"] or MISSING_TEXT,
                      ",".join(r["groups"]))
    stdout_console().print(table)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    import secrets

    from fleet.api.plan import (
        check_suite_size,
        declared_variants,
        kernel_releases,
        plan_suite,
        plan_summary,
        provisioning_needed,
    )
    from fleet.cli.render import plan_view
    from fleet.config.suite import load_suite

    suite = load_suite(args.suite)
    check_suite_size(suite, args.max_jobs)  # before --gather touches a host
    inventory = load_hosts(args)
    facts = _facts_for_plan(args, inventory)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    plan = plan_suite(suite, facts, inventory.hosts, seed=seed, where=str(args.suite),
                      max_jobs=args.max_jobs, host_variants=inventory.host_variants())
    needed = provisioning_needed(plan, facts, inventory.hosts, kernel_releases(inventory),
                                 declared_variants(inventory))
    if args.json:
        print_json(plan_summary(plan, needed))
    else:
        stdout_console().print(plan_view(plan, needed))
    return EXIT_OK


def _facts_for_plan(args: argparse.Namespace, inventory: Any) -> list[Any]:
    """Stored facts (no host is touched), or fresh ones with --gather."""
    from fleet.store import Store

    names = {h.name for h in inventory.hosts}
    if args.gather:
        from fleet.facts.gather import gather_facts

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
