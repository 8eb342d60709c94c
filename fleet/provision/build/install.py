"""Install a build on hosts (or roll back) through the ``kvm_modules`` role and the
ansible_runner adapter; every host's failure is reported, none hides another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from fleet.errors import ProvisionError
from fleet.provision.ansible import PLAYBOOKS_DIR, PlaybookRequest, TaskEvent, run_playbook
from fleet.provision.build.model import MODULE_NAMES, InstalledModules, InstallRequest

PLAYBOOK = PLAYBOOKS_DIR / "kvm_modules.yml"


def install(request: InstallRequest, *,
            on_event: Callable[[TaskEvent], None] | None = None) -> tuple[InstalledModules, ...]:
    """Copy the build's .ko files to updates/fleet, depmod, reload when no VM runs; the role
    verifies every loaded KVM module's srcversion against the build's."""
    if request.build is None:
        raise ProvisionError("no build to install", where="kvm modules",
                             hint="build_kvm_modules() first, or rollback()")
    if request.build.kernel_release != request.kernel_release:
        raise ProvisionError(f"the build is for {request.build.kernel_release}, not "
                             f"{request.kernel_release}", where=str(request.build.directory))
    extravars: dict[str, object] = {
        "kvm_modules_state": "present",
        "kvm_modules_files": [str(m.path) for m in request.build.modules],
        "kvm_modules_srcversions": request.build.srcversions(),
    }
    hosts = _run(request, extravars, on_event)
    expected: dict[str, str | None] = dict(request.build.srcversions())
    return tuple(InstalledModules(host, request.kernel_release, expected) for host in hosts)


def rollback(request: InstallRequest, *,
             on_event: Callable[[TaskEvent], None] | None = None) -> tuple[InstalledModules, ...]:
    """Remove updates/fleet, depmod, reload: the hosts run their stock KVM modules again
    (verified: each loaded module is the one modprobe resolves)."""
    request = replace(request, remove=True)
    hosts = _run(request, {"kvm_modules_state": "absent", "kvm_modules_files": [],
                           "kvm_modules_srcversions": {}}, on_event)
    stock: dict[str, str | None] = {name: None for name in MODULE_NAMES}
    return tuple(InstalledModules(host, request.kernel_release, stock) for host in hosts)


def _run(request: InstallRequest, extravars: dict[str, object],
         on_event: Callable[[TaskEvent], None] | None) -> tuple[str, ...]:
    variables = {**extravars, "kvm_modules_release": request.kernel_release,
                 "kvm_modules_allow_shared_kernel": request.allow_shared_kernel}
    result = run_playbook(PlaybookRequest(playbook=PLAYBOOK, inventory=request.inventory,
                                          limit=request.limit, extravars=variables,
                                          host_count=request.host_count), on_event=on_event)
    failed = [r for r in result.hosts if not r.succeeded]
    if failed:
        reasons = "; ".join(f"{r.host}: {'unreachable' if r.unreachable else r.failed_task}: "
                            f"{r.message or 'failed'}" for r in failed)
        raise ProvisionError(f"kvm modules not {'removed' if request.remove else 'installed'} "
                             f"on {len(failed)} host(s): {reasons}", where="kvm_modules role")
    if not result.hosts:
        raise ProvisionError("no host matched", where="kvm_modules role",
                             hint="check the inventory and --limit")
    return tuple(r.host for r in result.hosts)
