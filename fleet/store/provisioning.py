"""Provisioning records: one per `fleet provision`, with each host's outcome.

Never extra variables or secrets: the inventory's paths, the limit, check mode, and per host
the status, Ansible's counts (None when Ansible did not run for the host), the failing task and
its message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fleet.store.db import Store


@dataclass(frozen=True)
class ProvisioningHost:
    host: str
    status: str
    ok: int | None = None
    changed: int | None = None
    failed: int | None = None
    unreachable: int | None = None
    skipped: int | None = None
    failed_task: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ProvisioningRecord:
    started_at_unix_seconds: float
    finished_at_unix_seconds: float
    inventory: tuple[str, ...]
    limit: str | None
    check_mode: bool
    hosts: tuple[ProvisioningHost, ...]


def save_provisioning(store: Store, record: ProvisioningRecord) -> int:
    """Store the record in one transaction; returns its id."""
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO provisionings (started_at_unix_seconds, finished_at_unix_seconds,"
            " inventory_json, limit_pattern, check_mode) VALUES (?, ?, ?, ?, ?)",
            (record.started_at_unix_seconds, record.finished_at_unix_seconds,
             json.dumps(list(record.inventory)), record.limit, int(record.check_mode)))
        provisioning_id = int(cursor.lastrowid or 0)
        conn.executemany(
            "INSERT INTO provisioning_hosts (provisioning_id, host, status, ok, changed, failed,"
            " unreachable, skipped, failed_task, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(provisioning_id, h.host, h.status, h.ok, h.changed, h.failed, h.unreachable,
              h.skipped, h.failed_task, h.message) for h in record.hosts])
    return provisioning_id


def load_provisionings(store: Store) -> tuple[ProvisioningRecord, ...]:
    """Every record, oldest first."""
    conn = store._connection
    records = []
    for pid, started, finished, inventory, limit, check in conn.execute(
            "SELECT provisioning_id, started_at_unix_seconds, finished_at_unix_seconds,"
            " inventory_json, limit_pattern, check_mode FROM provisionings"
            " ORDER BY provisioning_id"):
        hosts = tuple(ProvisioningHost(*row) for row in conn.execute(
            "SELECT host, status, ok, changed, failed, unreachable, skipped, failed_task,"
            " message FROM provisioning_hosts WHERE provisioning_id = ? ORDER BY host", (pid,)))
        records.append(ProvisioningRecord(started, finished, tuple(json.loads(inventory)),
                                          limit, bool(check), hosts))
    return tuple(records)
