"""`fleet store info`: the store's schema, counts and the latest facts per host."""

from __future__ import annotations

import argparse
from typing import Any

from fleet.cli.args import (
    EXIT_OK,
    add_json,
    add_store,
    print_json,
    stdout_console,
    sub,
    subcommands,
)

STORE_INFO_EXAMPLE = "example:\n  fleet store info --store /tmp/fleet.sqlite\n"


def register(subparsers: Any) -> None:
    store = sub(subparsers, "store", "inspect the SQLite store", STORE_INFO_EXAMPLE)
    store_sub = subcommands(store, "store commands")
    info = sub(store_sub, "info", "schema version, counts, latest snapshot per host",
               STORE_INFO_EXAMPLE)
    add_store(info)
    add_json(info)
    info.set_defaults(handler=cmd_store_info)


def cmd_store_info(args: argparse.Namespace) -> int:
    from fleet.codec import to_jsonable
    from fleet.store import Store

    with Store.open_read(args.store) as store:
        info = store.info()
        latest = store.latest_snapshots()
    if args.json:
        print_json({"store": to_jsonable(info),
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
