"""Desired state against probed state, in pure code: what each role would change.

The paths and file texts here mirror the roles in playbooks/roles (a test runs the roles and
then checks that this finds nothing to change).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet.errors import ProvisionError
from fleet.provision.desired import DesiredState, HugepagePool
from fleet.provision.probe import ProbedState
from fleet.provision.vfio import CMDLINE_FILE, VFIO_DRIVER, parse_pci, to_bind

SYSCTL_FILE = "/etc/sysctl.d/90-fleet.conf"
KVM_OPTIONS_FILE = "/etc/modprobe.d/fleet-kvm.conf"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
_SELECTED = re.compile(r"\[([^\]]+)\]")


@dataclass(frozen=True)
class Difference:
    """One thing a role would change: ``current`` None means missing."""

    role: str
    item: str
    current: str | None
    wanted: str

    def describe(self) -> str:
        current = "missing" if self.current is None else repr(self.current)
        return f"{self.role}: {self.item} {current} -> {self.wanted!r}"


def sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def hugepages_path(pool: HugepagePool) -> str:
    return (f"/sys/devices/system/node/node{pool.node}/hugepages/"
            f"hugepages-{pool.size_kb}kB/nr_hugepages")


def sysctl_file_text(desired: DesiredState) -> str:
    """What the sysctl role's template writes."""
    lines = ["# managed by fleet provision (fleet_sysctl)"]
    lines += [f"{name} = {value}" for name, value in desired.sysctl]
    return "\n".join(lines) + "\n"


def kvm_options_text(desired: DesiredState) -> str:
    """What the kvm role's template writes."""
    lines = ["# managed by fleet provision (fleet_kvm_options)"]
    for module, options in desired.kvm_options:
        lines.append(" ".join([f"options {module}", *(f"{k}={v}" for k, v in options)]))
    return "\n".join(lines) + "\n"


def files_to_probe(desired: DesiredState) -> tuple[str, ...]:
    paths = [sysctl_path(name) for name, _ in desired.sysctl]
    paths += [hugepages_path(pool) for pool in desired.hugepages]
    paths += [f"{THP_DIR}/{name}" for name, _ in desired.thp]
    if desired.persistent:
        paths += [SYSCTL_FILE, KVM_OPTIONS_FILE]
    if desired.vfio_devices:
        paths.append(CMDLINE_FILE)
    return tuple(paths)


def differences(desired: DesiredState, state: ProbedState) -> tuple[Difference, ...]:
    """Everything not in state; a setting the host does not have (an unknown sysctl, a node or
    page size it lacks) is a ProvisionError: bad input, nothing is applied."""
    found: list[Difference] = []
    for name, value in desired.sysctl:
        current = _existing(desired.host, state, sysctl_path(name), f"fleet_sysctl: {name}",
                            "no such sysctl on this host (check the name)")
        if current.split() != value.split():
            found.append(Difference("sysctl", name, " ".join(current.split()), value))
    for pool in desired.hugepages:
        current = _existing(desired.host, state, hugepages_path(pool),
                            f"fleet_hugepages: node {pool.node}, {pool.size_kb} kB pages",
                            "this host has no such NUMA node or page size")
        if current.strip() != str(pool.count):
            found.append(Difference("memory", f"hugepages node{pool.node} {pool.size_kb}kB",
                                    current.strip(), str(pool.count)))
    for name, value in desired.thp:
        text = _existing(desired.host, state, f"{THP_DIR}/{name}", f"fleet_thp: {name}",
                         "this kernel has no transparent hugepages")
        selected = _SELECTED.search(text)
        current = selected.group(1) if selected else text.strip()
        if current != value:
            found.append(Difference("memory", f"thp {name}", current, value))
    found += [Difference("tools", package, state.packages.get(package), "installed")
              for package in desired.tools if not state.installed(package)]
    found += _persistent(desired, state)
    found += [Difference("vfio", device.address, device.driver, VFIO_DRIVER)
              for device in to_bind(desired.host, desired.vfio_devices, parse_pci(state.pci),
                                    state.files.get(CMDLINE_FILE))]
    return tuple(found)


def _persistent(desired: DesiredState, state: ProbedState) -> list[Difference]:
    found = []
    if desired.sysctl_persistent and desired.sysctl:
        wanted = sysctl_file_text(desired)
        if _file_text(state.files.get(SYSCTL_FILE)) != wanted:
            found.append(Difference("sysctl", SYSCTL_FILE, state.files.get(SYSCTL_FILE), wanted))
    if desired.kvm_options:
        wanted = kvm_options_text(desired)
        if _file_text(state.files.get(KVM_OPTIONS_FILE)) != wanted:
            found.append(Difference("kvm", KVM_OPTIONS_FILE, state.files.get(KVM_OPTIONS_FILE),
                                    wanted))
    return found


def _file_text(content: str | None) -> str | None:
    """The probe's $(cat) drops trailing newlines; the roles' files end in exactly one."""
    return None if content is None else content + "\n"


def _existing(host: str, state: ProbedState, path: str, what: str, hint: str) -> str:
    content = state.files.get(path)
    if content is None:
        raise ProvisionError(f"{what}: {path} does not exist", where=host, hint=hint)
    return content
