"""`fleet provision`: read the inventory's desired state, provision, store the record."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fleet.provision.report import HostReport, ProvisionReport
from fleet.provision.run import Progress, ProvisionRequest

if TYPE_CHECKING:
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
