"""What `fleet provision` found and did, per host (frozen data, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.provision.ansible import HostRecap
from fleet.provision.compare import Difference

# in_state: the probe found nothing to change (Ansible did not run for the host);
# changed / ok: Ansible ran (in check mode: would change / would not); failed, unreachable
HostStatus = Literal["in_state", "changed", "ok", "failed", "unreachable"]


@dataclass(frozen=True)
class HostReport:
    host: str
    status: HostStatus
    differences: tuple[Difference, ...] = ()
    recap: HostRecap | None = None  # None: Ansible did not run for this host
    probe_error: str | None = None  # why the state probe failed (Ansible then ran for it)

    @property
    def failed_task(self) -> str | None:
        return self.recap.failed_task if self.recap is not None else None

    @property
    def message(self) -> str | None:
        if self.recap is not None and self.recap.message:
            return self.recap.message
        return None

    @property
    def succeeded(self) -> bool:
        return self.status not in ("failed", "unreachable")


@dataclass(frozen=True)
class ProvisionReport:
    started_at_unix_seconds: float
    finished_at_unix_seconds: float
    inventory: tuple[Path, ...]
    limit: str | None
    check: bool
    hosts: tuple[HostReport, ...]
    ansible_hosts: tuple[str, ...]  # the hosts Ansible ran for (empty: all were in state)

    @property
    def failed(self) -> tuple[HostReport, ...]:
        return tuple(h for h in self.hosts if not h.succeeded)


def host_status(recap: HostRecap | None) -> HostStatus:
    """A host's status from its Ansible recap (None: Ansible never reported it)."""
    if recap is None or recap.unreachable:
        return "unreachable"
    if recap.failed:
        return "failed"
    return "changed" if recap.changed else "ok"
