"""An opt-in lab guest for vfio work (`fleet lab up --numa 2n --vfio`): an emulated
intel-iommu (q35 with a split irqchip, interrupt remapping) and spare PCI devices in known
IOMMU groups (pure: a GuestDefinition -> the same guest with them).

The default guests have none of this (every other VM test uses them, and the IOMMU costs boot
time under TCG). The devices, as the guest numbers them (checked on a real guest):

* SHARED_GROUP: two e1000 behind one pcie-pci-bridge: a conventional PCI bus cannot isolate
  its devices, so both are in the bridge's IOMMU group (vfio can take one only with the other);
* OWN_GROUP: an e1000e on its own PCIe root port: an IOMMU group of its own.

The guest boots with ``intel_iommu=on iommu=pt`` and ``amd_iommu=on`` too: QEMU's TCG ``max``
CPU says AuthenticAMD, for which fleet.provision.vfio asks ``amd_iommu=on`` (harmless here).
"""

from __future__ import annotations

from dataclasses import replace

from fleet.lab.vm.qemu import GuestDefinition, Iommu, PciDevice

IOMMU_CMDLINE = ("intel_iommu=on", "amd_iommu=on", "iommu=pt")
SHARED_GROUP = ("0000:01:01.0", "0000:01:02.0")
OWN_GROUP = "0000:02:00.0"
_DEVICES = (
    PciDevice("pcie-pci-bridge", "vfiobr0", (("bus", "pcie.0"), ("addr", "0x10"))),
    PciDevice("e1000", "vfioshared0", (("bus", "vfiobr0"), ("addr", "0x1"))),
    PciDevice("e1000", "vfioshared1", (("bus", "vfiobr0"), ("addr", "0x2"))),
    PciDevice("pcie-root-port", "vfiorp0", (("bus", "pcie.0"), ("addr", "0x11"),
                                            ("chassis", "1"))),
    PciDevice("e1000e", "vfioalone0", (("bus", "vfiorp0"),)),
)


def with_passthrough(guest: GuestDefinition) -> GuestDefinition:
    """``guest`` with the IOMMU, the spare devices and the IOMMU command line words."""
    cmdline = (*guest.boot.cmdline, *(w for w in IOMMU_CMDLINE if w not in guest.boot.cmdline))
    return replace(guest, boot=replace(guest.boot, cmdline=cmdline),
                   iommu=Iommu("intel-iommu", (("intremap", "on"),)),
                   pci_devices=(*guest.pci_devices, *_DEVICES))
