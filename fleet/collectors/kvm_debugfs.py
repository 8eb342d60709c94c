"""KVM statistics in debugfs (``/sys/kernel/debug/kvm``): global sums and per-VM directories.

Layout (virt/kvm/kvm_main.c): ``kvm/<stat>`` holds one integer summed over every VM (VM
stats) or every vCPU (vCPU stats); ``kvm/<pid>-<fd>/<stat>`` is one VM (``475920-25``: the
creating process id and the VM's fd); ``<pid>-<fd>/vcpuN/`` holds arch files
(``guest_mode``, ``tsc-offset``, ...). Files that are not one integer (``mmu_rmaps_stat``,
arm64 ``vgic-state``) are listed in ``other_files``, not parsed. Histogram stats
(``*_hist``) read through debugfs give only their first bucket: use the binary stats fd
(:mod:`fleet.collectors.kvm_stats`) for histograms; they are kept out of ``stats`` here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEBUGFS_KVM = "sys/kernel/debug/kvm"
_VM_DIR = re.compile(r"(\d+)-(\d+)")
_VCPU_DIR = re.compile(r"vcpu(\d+)")
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class StatFiles:
    """One directory's integer files (``stats``) and the names of the others."""

    stats: Mapping[str, int]
    other_files: tuple[str, ...]

    def get(self, name: str) -> int | None:
        return self.stats.get(name)


@dataclass(frozen=True)
class KvmVcpuFiles:
    vcpu_id: int
    files: StatFiles


@dataclass(frozen=True)
class KvmVmStats:
    """One VM's directory ``<pid>-<fd>``."""

    pid: int
    fd: int
    files: StatFiles
    vcpus: tuple[KvmVcpuFiles, ...]

    def get(self, name: str) -> int | None:
        return self.files.get(name)

    @property
    def remote_tlb_flush(self) -> int | None:
        return self.get("remote_tlb_flush")

    @property
    def pages_bytes(self) -> dict[str, int | None]:
        """Guest memory mapped by the (TDP/shadow) MMU per page size, in bytes (x86)."""
        sizes = {"pages_4k": 4096, "pages_2m": 2 << 20, "pages_1g": 1 << 30}
        return {k: None if (v := self.get(k)) is None else v * size for k, size in sizes.items()}


@dataclass(frozen=True)
class KvmDebugfs:
    """The whole ``kvm`` directory: global sums and VMs sorted by (pid, fd)."""

    global_files: StatFiles
    vms: tuple[KvmVmStats, ...]

    def get(self, name: str) -> int | None:
        return self.global_files.get(name)

    def vm(self, pid: int) -> tuple[KvmVmStats, ...]:
        """The VMs created by process ``pid`` (a QEMU process has one; selftests may have many)."""
        return tuple(v for v in self.vms if v.pid == pid)


def stat_files(texts: Mapping[str, str | None]) -> StatFiles:
    """``{file name: text}`` of one directory -> StatFiles (None: unreadable -> other_files)."""
    stats: dict[str, int] = {}
    other: list[str] = []
    for name in sorted(texts):
        value = (texts[name] or "").strip()
        if name.endswith("_hist") or not _INT.fullmatch(value):
            other.append(name)
        else:
            stats[name] = int(value)
    return StatFiles(stats, tuple(other))


def _read_dir_files(directory: Path) -> dict[str, str | None]:
    """Texts of a directory's files; a file that vanished (its VM exited) is left out."""
    texts: dict[str, str | None] = {}
    for entry in directory.iterdir():
        try:
            if entry.is_file():
                texts[entry.name] = entry.read_text()
        except PermissionError:  # root-only file: listed, not parsed
            texts[entry.name] = None
        except FileNotFoundError:
            continue
    return texts


def _read_vm(directory: Path, pid: int, fd: int) -> KvmVmStats | None:
    """One VM directory; None if the VM went away while it was being read."""
    vcpus = []
    try:
        for entry in directory.iterdir():
            match = _VCPU_DIR.fullmatch(entry.name)
            if match and entry.is_dir():
                files = stat_files(_read_dir_files(entry))
                vcpus.append(KvmVcpuFiles(int(match.group(1)), files))
        own = stat_files(_read_dir_files(directory))
    except FileNotFoundError:
        return None
    return KvmVmStats(pid, fd, own, tuple(sorted(vcpus, key=lambda v: v.vcpu_id)))


def read_kvm_debugfs(root: Path) -> KvmDebugfs | None:
    """``<root>/sys/kernel/debug/kvm`` -> KvmDebugfs; None if that directory does not exist."""
    base = root / DEBUGFS_KVM
    if not base.is_dir():
        return None
    vms = []
    for entry in base.iterdir():
        match = _VM_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            vm = _read_vm(entry, int(match.group(1)), int(match.group(2)))
            if vm is not None:
                vms.append(vm)
    return KvmDebugfs(stat_files(_read_dir_files(base)),
                      tuple(sorted(vms, key=lambda v: (v.pid, v.fd))))
