"""`fleet provision`: read the inventory's desired state, provision, store the record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet.provision.report import HostReport, ProvisionReport
from fleet.provision.run import Progress, ProvisionRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet.provision.variants.apply import VariantOutcome
    from fleet.store.provisioning import ProvisioningHost


def provision_hosts(request: ProvisionRequest, *, store_path: Path | None,
                    progress: Progress | None = None) -> ProvisionReport:
    """Every host of the inventory (``request.limit``) into its declared state, and the record
    stored (``store_path`` None: not stored). Bad input raises before any host is touched."""
    from fleet.config.inventory import load_with_variables
    from fleet.provision.desired import desired_state
    from fleet.provision.run import provision

    inventory, variables = load_with_variables(request.inventory, limit=request.limit)
    desired = {h.name: desired_state(h.name, variables.get(h.name, {}))
               for h in inventory.hosts}
    report = provision(request, inventory.hosts, desired, progress=progress)
    if store_path is not None:
        save_report(store_path, report)
    return report


def save_report(store_path: Path, report: ProvisionReport) -> int:
    from fleet.store import Store
    from fleet.store.provisioning import ProvisioningRecord, save_provisioning

    record = ProvisioningRecord(
        started_at_unix_seconds=report.started_at_unix_seconds,
        finished_at_unix_seconds=report.finished_at_unix_seconds,
        inventory=tuple(str(p) for p in report.inventory), limit=report.limit,
        check_mode=report.check, hosts=tuple(_host_row(h) for h in report.hosts))
    with Store.open(store_path) as store:
        return save_provisioning(store, record)


def _host_row(host: HostReport) -> ProvisioningHost:
    from fleet.store.provisioning import ProvisioningHost

    r = host.recap
    return ProvisioningHost(
        host=host.host, status=host.status,
        ok=r.ok if r else None, changed=r.changed if r else None,
        failed=r.failed if r else None, unreachable=r.unreachable if r else None,
        skipped=r.skipped if r else None, failed_task=host.failed_task,
        message=host.message or host.probe_error)


def report_json(report: ProvisionReport) -> dict[str, object]:
    """The --json document."""
    return {
        "inventory": [str(p) for p in report.inventory], "limit": report.limit,
        "check": report.check, "ansible_hosts": list(report.ansible_hosts),
        "seconds": round(report.finished_at_unix_seconds - report.started_at_unix_seconds, 3),
        "hosts": [{"host": h.host, "status": h.status,
                   "differences": [d.describe() for d in h.differences],
                   "ok": h.recap.ok if h.recap else None,
                   "changed": h.recap.changed if h.recap else None,
                   "failed": h.recap.failed if h.recap else None,
                   "unreachable": h.recap.unreachable if h.recap else None,
                   "skipped": h.recap.skipped if h.recap else None,
                   "failed_task": h.failed_task, "message": h.message or h.probe_error}
                  for h in report.hosts],
    }


def variant_on_hosts(inventory_paths: tuple[Path, ...], limit: str | None, variant: str, *,
                     store_path: Path | None, progress: Callable[[str], None] | None = None,
                     cache_dir: Path | None = None) -> tuple[VariantOutcome, ...]:
    """`fleet provision --variant`: every selected host onto its variant ``variant``, each
    outcome stored as a provisioning record (status verified/failed, the identity or why)."""
    import time

    from fleet.config.inventory import load_inventory
    from fleet.provision.variants.apply import provision_variant
    from fleet.provision.variants.debs import default_cache_dir

    inventory = load_inventory(inventory_paths, limit=limit)
    started = time.time()
    outcomes = provision_variant(inventory, variant, cache_dir=cache_dir or default_cache_dir(),
                                 progress=progress)
    if store_path is not None:
        _save_variant(store_path, inventory_paths, limit, started, outcomes)
    return outcomes


def _save_variant(store_path: Path, inventory_paths: tuple[Path, ...], limit: str | None,
                  started: float, outcomes: tuple[VariantOutcome, ...]) -> None:
    import time

    from fleet.store import Store
    from fleet.store.provisioning import (
        ProvisioningHost,
        ProvisioningRecord,
        save_provisioning,
    )

    rows = tuple(ProvisioningHost(
        host=o.host, status="verified" if o.identity is not None else "failed",
        failed_task=None if o.identity is not None else f"variant {o.variant}",
        message=(f"variant {o.variant}: {o.identity.to_json()}" if o.identity is not None
                 else o.error)) for o in outcomes)
    record = ProvisioningRecord(started_at_unix_seconds=started,
                                finished_at_unix_seconds=time.time(),
                                inventory=tuple(str(p) for p in inventory_paths), limit=limit,
                                check_mode=False, hosts=rows)
    with Store.open(store_path) as store:
        save_provisioning(store, record)


def variant_json(outcomes: tuple[VariantOutcome, ...]) -> dict[str, object]:
    """The --json document of `fleet provision --variant`."""
    import json

    return {"hosts": [{"host": o.host, "variant": o.variant,
                       "status": "verified" if o.identity is not None else "failed",
                       "identity": json.loads(o.identity.to_json()) if o.identity else None,
                       "error": o.error} for o in outcomes]}
