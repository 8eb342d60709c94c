"""fleet_vfio_devices against a host's PCI state (pure): which devices the vfio role binds, and
the refusals made before anything changes.

A device can be handed to vfio-pci only when its whole IOMMU group is viable: every other
device of the group is bound to vfio-pci (or pci-stub), has no driver, is a PCI bridge, or is
listed too. The IOMMU must be on, which needs kernel command line words (:func:`iommu_cmdline`)
that only a boot gives: the boot role appends them for a host with fleet_vfio_devices.

The probe's PCI lines (fleet.provision.probe): ``vendor <cpu vendor_id>``; per listed device
``device <addr> <group>`` (group ``-``: no IOMMU group; ``missing``: no such device), followed
by ``pci <addr> <class> <driver>`` for each device of its group (the device itself when it has
no group; driver ``-``: none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.errors import ProvisionError

VFIO_DRIVER = "vfio-pci"
_HARMLESS_DRIVERS = (VFIO_DRIVER, "pci-stub")
_BRIDGE_CLASS_PREFIX = "0x0604"  # PCI-to-PCI bridge
CMDLINE_FILE = "/proc/cmdline"
_VARIABLE = "fleet_vfio_devices"


@dataclass(frozen=True)
class PciFunction:
    address: str
    pci_class: str | None  # 0x020000; None: unreadable
    driver: str | None  # None: no driver bound


@dataclass(frozen=True)
class VfioDevice:
    """A listed device as found: ``group`` None means no IOMMU group (the IOMMU is off);
    ``present`` False means there is no such device."""

    address: str
    present: bool
    group: str | None
    members: tuple[PciFunction, ...]  # its group's devices (itself only when no group)

    @property
    def driver(self) -> str | None:
        own = [m for m in self.members if m.address == self.address]
        return own[0].driver if own else None


@dataclass(frozen=True)
class PciState:
    cpu_vendor: str | None
    devices: Mapping[str, VfioDevice]


def iommu_cmdline(cpu_vendor: str | None) -> tuple[str, ...]:
    """The kernel command line words a host needs for vfio: passthrough mode and the
    vendor's IOMMU on (Intel's is off by default; AMD's is on, the word makes it explicit)."""
    vendor_word = "intel_iommu=on" if cpu_vendor == "GenuineIntel" else "amd_iommu=on"
    return ("iommu=pt", vendor_word)


def parse_pci(lines: Sequence[str]) -> PciState:
    """The probe's PCI lines as data (unknown lines are ignored)."""
    vendor: str | None = None
    devices: dict[str, VfioDevice] = {}
    current: VfioDevice | None = None
    for line in lines:
        words = line.split()
        if words[:1] == ["vendor"]:
            vendor = words[1] if len(words) > 1 else None
        elif words[:1] == ["device"] and len(words) == 3:
            address, group = words[1], words[2]
            current = VfioDevice(address=address, present=group != "missing",
                                 group=None if group in ("-", "missing") else group, members=())
            devices[address] = current
        elif words[:1] == ["pci"] and len(words) == 4 and current is not None:
            member = PciFunction(address=words[1], pci_class=_none(words[2]),
                                 driver=_none(words[3]))
            current = VfioDevice(address=current.address, present=current.present,
                                 group=current.group, members=(*current.members, member))
            devices[current.address] = current
    return PciState(cpu_vendor=vendor, devices=devices)


def _none(word: str) -> str | None:
    return None if word in ("-", "") else word


def to_bind(host: str, listed: Sequence[str], state: PciState, cmdline: str | None
            ) -> tuple[VfioDevice, ...]:
    """The listed devices not yet on vfio-pci; a ProvisionError (nothing applied) when one
    cannot be: no such device, the IOMMU off, or its group not viable."""
    if not listed:
        return ()
    words = iommu_cmdline(state.cpu_vendor)
    running = (cmdline or "").split()
    missing_words = [w for w in words if w not in running]
    for address in listed:
        device = state.devices.get(address)
        if device is None or not device.present:
            raise ProvisionError(f"{_VARIABLE}: no PCI device {address} on this host",
                                 where=host, hint="check the address with lspci -D")
        if device.group is None or missing_words:
            raise ProvisionError(
                f"{_VARIABLE}: {address} has no IOMMU group: the IOMMU is off"
                if device.group is None else
                f"{_VARIABLE}: the running kernel command line lacks {' '.join(missing_words)}",
                where=host, hint=f"boot the host with '{' '.join(words)}' on its kernel command "
                "line: a kernel variant's cmdline, or GRUB_CMDLINE_LINUX and a reboot")
        refuse_unviable(host, device, listed)
    return tuple(state.devices[a] for a in listed if state.devices[a].driver != VFIO_DRIVER)


def refuse_unviable(host: str, device: VfioDevice, listed: Sequence[str]) -> None:
    """A group member that keeps a host driver makes the group unusable for vfio."""
    for member in device.members:
        if member.address in listed or member.driver is None:
            continue
        if member.driver in _HARMLESS_DRIVERS:
            continue
        if (member.pci_class or "").startswith(_BRIDGE_CLASS_PREFIX):
            continue
        raise ProvisionError(
            f"{_VARIABLE}: {device.address} is in IOMMU group {device.group} with "
            f"{member.address}, which is bound to {member.driver}: the group is not viable",
            where=host, hint=f"list {member.address} too (it then leaves {member.driver}), or "
            "move the device to a slot with an IOMMU group of its own")
