"""`fleet provision`: bring hosts into the state their inventory variables declare."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fleet.cli.args import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_inventory,
    add_json,
    add_store,
    inventory_sources,
    print_json,
    stdout_console,
    sub,
)

PROVISION_EXAMPLE = """examples:
  fleet provision -i inventories/lab.yml              # sysctls, hugepages, THP, tools, kvm options
  fleet provision -i hosts.yml --limit epyc --check --diff
  fleet provision -i hosts.yml --json --no-store

The desired state is the hosts' inventory variables: fleet_sysctl, fleet_sysctl_persistent,
fleet_hugepages, fleet_thp, fleet_tools, fleet_kvm_options, fleet_vfio_devices (README:
Provisioning). Each host is probed once; Ansible runs only for the hosts not in state.
Network-namespace lab hosts refuse persistent changes and vfio devices unless
fleet_allow_shared_host_changes: true.
Exit: 0 every host in state, 1 some host failed or was unreachable, 2 bad input.
"""


def register(subparsers: Any) -> None:
    parser = sub(subparsers, "provision", "bring hosts into their declared state (Ansible)",
                 PROVISION_EXAMPLE)
    add_inventory(parser)
    parser.add_argument("--check", action="store_true",
                        help="change nothing: say what would change (Ansible's check mode)")
    parser.add_argument("--diff", action="store_true", help="Ansible's --diff")
    parser.add_argument("--variant", metavar="NAME",
                        help="bring each host onto its kernel variant NAME from the inventory "
                             "(fleet_variants: package, deb, kvm_modules, kernel): install, "
                             "boot, verify")
    add_store(parser)
    parser.add_argument("--no-store", action="store_true", help="do not record the run")
    add_json(parser)
    parser.set_defaults(handler=cmd_provision)


def cmd_provision(args: argparse.Namespace) -> int:
    from fleet.api.provision import provision_hosts, report_json
    from fleet.provision.run import ProvisionRequest

    if args.variant is not None:
        return _cmd_variant(args)
    request = ProvisionRequest(inventory=tuple(inventory_sources(args)), limit=args.limit,
                               check=args.check, diff=args.diff)
    report = provision_hosts(request, store_path=None if args.no_store else args.store,
                             progress=_progress)
    if args.json:
        print_json(report_json(report))
    else:
        stdout_console().print(_table(report))
    for host in report.failed:  # on stderr, also with --json
        detail = host.message or host.probe_error or "no message"
        task = f" at {host.failed_task!r}" if host.failed_task else ""
        sys.stderr.write(f"fleet: error: {host.host}: {host.status}{task}: {detail}\n")
    return EXIT_PARTIAL if report.failed else EXIT_OK


def _cmd_variant(args: argparse.Namespace) -> int:
    from fleet.api.provision import variant_json, variant_on_hosts
    from fleet.errors import ProvisionError

    if args.check or args.diff:
        raise ProvisionError("--check and --diff do not apply to --variant", where="--variant",
                             hint="`fleet plan` says how each host reaches a variant")
    outcomes = variant_on_hosts(tuple(inventory_sources(args)), args.limit, args.variant,
                                store_path=None if args.no_store else args.store,
                                progress=_say)
    if args.json:
        print_json(variant_json(outcomes))
    else:
        stdout_console().print(_variant_table(outcomes))
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        sys.stderr.write(f"fleet: error: {outcome.error}\n")
    return EXIT_PARTIAL if failed else EXIT_OK


def _say(line: str) -> None:
    from fleet.cli.progress import write

    write(sys.stderr, f"{line}\n")


def _variant_table(outcomes: Any) -> Any:
    from rich.table import Table

    from fleet.model import MISSING_TEXT

    table = Table(title="Kernel variant", title_justify="left")
    for col in ("host", "variant", "status", "kernel", "kvm modules"):
        table.add_column(col)
    for o in outcomes:
        ident = o.identity
        table.add_row(o.host, o.variant, "verified" if ident is not None else "failed",
                      ident.kernel_release if ident is not None else MISSING_TEXT,
                      " ".join(f"{m}={v}" for m, v in ident.kvm_modules)
                      if ident is not None else (o.error or MISSING_TEXT))
    return table


def _progress(host: str, text: str) -> None:
    from fleet.cli.progress import write

    write(sys.stderr, f"{host}: {text}\n")


def _table(report: Any) -> Any:
    from rich.table import Table

    from fleet.model import MISSING_TEXT

    mode = " (check mode: nothing changed)" if report.check else ""
    table = Table(title=f"Provisioning{mode}", title_justify="left")
    for col in ("host", "status", "ok", "changed", "failed", "unreachable", "failing task",
                "message"):
        table.add_column(col)
    for h in report.hosts:
        r = h.recap
        counts = [str(v) if r else MISSING_TEXT
                  for v in ((r.ok, r.changed, r.failed, r.unreachable) if r else (0,) * 4)]
        table.add_row(h.host, h.status.replace("_", " "), *counts,
                      h.failed_task or MISSING_TEXT, h.message or h.probe_error or MISSING_TEXT)
    return table
