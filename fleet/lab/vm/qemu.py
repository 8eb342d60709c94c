"""A lab guest as data, and the exact qemu-system-x86_64 argv for it (pure: no I/O).

The argv is a tuple of separate arguments, never a shell string. Values that QEMU parses as
comma-separated option lists (paths, ids) are checked for ',' so they cannot inject options.

Ready for passthrough work later: ``iommu`` adds an emulated intel-iommu / amd-iommu (and
switches the machine to ``q35,kernel-irqchip=split`` as those need); ``pci_devices`` adds spare
emulated PCI devices (e.g. an e1000e or a second virtio-net to bind to vfio-pci in the guest).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleet.errors import LabError
from fleet.lab.vm.topologies import GuestTopology

Accel = Literal["tcg", "kvm"]
IommuModel = Literal["intel-iommu", "amd-iommu"]
ACCELS: tuple[Accel, ...] = ("tcg", "kvm")
QEMU_BINARY = "qemu-system-x86_64"
GUEST_SSH_PORT = 22
LOOPBACK = "127.0.0.1"  # the only address a guest's SSH port is ever forwarded on


@dataclass(frozen=True)
class Iommu:
    """An emulated IOMMU; ``options`` are device properties, e.g. (("intremap", "on"),)."""

    model: IommuModel
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PciDevice:
    """A spare emulated PCI device: ``-device DRIVER,id=ID,KEY=VALUE...``."""

    driver: str
    device_id: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    cmdline: tuple[str, ...]  # kernel parameters, one per item


@dataclass(frozen=True)
class GuestDefinition:
    """Everything QEMU needs to boot one lab guest. Paths are absolute."""

    name: str
    topology: GuestTopology
    boot: BootFiles
    disk: Path  # qcow2 overlay on the shared base image -> /dev/vda
    seed: Path  # plain tar read by the guest's fleet-seed service -> /dev/vdb
    ssh_port: int  # forwarded from 127.0.0.1 only
    qmp_socket: Path
    console_log: Path
    pid_file: Path
    accel: Accel = "tcg"
    cpu_model: str = "max"  # under TCG: AuthenticAMD with svm and npt, and no warnings
    nested_virtualization: bool = True  # +svm: kvm_amd loads in the guest, /dev/kvm works
    iommu: Iommu | None = None
    pci_devices: tuple[PciDevice, ...] = ()
    qemu_binary: str = QEMU_BINARY


# nokaslr: the kernel image (~50 MiB) always lands in node 0, so per-node MemTotal (part of a
# host's fingerprint) is the same on every boot; with KASLR it moves to a random node.
# panic=-1 with -no-reboot: a guest whose kernel panics exits QEMU at once (seen as dead).
DEFAULT_CMDLINE = ("root=/dev/vda", "rw", "console=ttyS0", "nokaslr", "panic=-1", "quiet")


def build_argv(guest: GuestDefinition) -> tuple[str, ...]:
    """The qemu argv: daemonised, with a PID file, a QMP socket and the console in a file."""
    _check(guest)
    return (
        guest.qemu_binary,
        "-name", f"fleet-{guest.name}",
        *machine_args(guest),
        *cpu_args(guest),
        *numa_args(guest.topology),
        "-kernel", str(guest.boot.kernel),
        "-initrd", str(guest.boot.initrd),
        "-append", " ".join(guest.boot.cmdline),
        *device_args(guest),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{guest.console_log}",
        "-qmp", f"unix:{guest.qmp_socket},server=on,wait=off",
        "-pidfile", str(guest.pid_file),
        "-daemonize",
    )


def machine_args(guest: GuestDefinition) -> tuple[str, ...]:
    machine = "q35,kernel-irqchip=split" if guest.iommu is not None else "q35"
    return ("-machine", machine, "-accel", guest.accel)


def cpu_args(guest: GuestDefinition) -> tuple[str, ...]:
    model = f"{guest.cpu_model},+svm" if guest.nested_virtualization else guest.cpu_model
    topo = guest.topology
    smp = (f"{topo.cpu_count},sockets={topo.sockets},cores={topo.cores_per_socket},"
           f"threads={topo.threads_per_core}")
    return ("-cpu", model, "-smp", smp)


def numa_args(topology: GuestTopology) -> tuple[str, ...]:
    """-m, one RAM backend and one -numa node per node, and every off-diagonal distance."""
    args = ["-m", f"{topology.memory_mib}M"]
    for node in topology.nodes:
        args += ["-object", f"memory-backend-ram,id=ram{node.node_id},size={node.memory_mib}M"]
    for node in topology.nodes:
        args += ["-numa", f"node,nodeid={node.node_id},cpus={_cpu_range(node.cpus)},"
                          f"memdev=ram{node.node_id}"]
    for node in topology.nodes:
        for other, distance in zip(topology.nodes, node.distances, strict=True):
            if other.node_id != node.node_id:
                args += ["-numa", f"dist,src={node.node_id},dst={other.node_id},val={distance}"]
    return tuple(args)


def device_args(guest: GuestDefinition) -> tuple[str, ...]:
    """IOMMU first (it must exist before the devices it translates for), disks, NIC, extras."""
    args: list[str] = []
    if guest.iommu is not None:
        args += ["-device", _device(guest.iommu.model, guest.iommu.options)]
    args += ["-drive", f"file={guest.disk},if=none,id=disk0,format=qcow2",
             "-device", "virtio-blk-pci,drive=disk0",
             "-drive", f"file={guest.seed},if=none,id=seed0,format=raw,readonly=on",
             "-device", "virtio-blk-pci,drive=seed0",
             "-netdev", f"user,id=net0,restrict=on,"
                        f"hostfwd=tcp:{LOOPBACK}:{guest.ssh_port}-:{GUEST_SSH_PORT}",
             "-device", "virtio-net-pci,netdev=net0"]
    for device in guest.pci_devices:
        args += ["-device", _device(device.driver, (("id", device.device_id), *device.options))]
    return tuple(args)


def _device(driver: str, options: Iterable[tuple[str, str]]) -> str:
    return ",".join([driver, *(f"{key}={value}" for key, value in options)])


def _cpu_range(cpus: tuple[int, ...]) -> str:
    """'0-2' for consecutive CPUs (what topologies produce); a single CPU as '3'."""
    if list(cpus) != list(range(cpus[0], cpus[0] + len(cpus))):
        raise LabError(f"CPUs {cpus} of a node are not consecutive", where="fleet.lab.vm")
    return str(cpus[0]) if len(cpus) == 1 else f"{cpus[0]}-{cpus[-1]}"


def _check(guest: GuestDefinition) -> None:
    if guest.accel not in ACCELS:
        raise LabError(f"unknown accelerator {guest.accel!r}", where=guest.name,
                       hint=f"use one of: {', '.join(ACCELS)}")
    if not 1 <= guest.ssh_port <= 65535:
        raise LabError(f"SSH port {guest.ssh_port} is out of range", where=guest.name)
    values = [str(p) for p in (guest.disk, guest.seed, guest.qmp_socket, guest.console_log)]
    values += [guest.name]
    values += [v for d in guest.pci_devices for v in (d.driver, d.device_id)]
    values += [v for d in guest.pci_devices for pair in d.options for v in pair]
    if guest.iommu is not None:
        values += [v for pair in guest.iommu.options for v in pair]
    bad = [v for v in values if "," in v]
    if bad:
        raise LabError(f"{bad[0]!r} contains ',' which QEMU would read as another option",
                       where=guest.name, hint="use paths and names without commas")
