"""The QEMU lab: guests with real NUMA topologies (`fleet lab up --numa`).

Pure: ``topologies`` (named NUMA topologies) and ``qemu`` (a guest as data and its exact argv),
exported here. The lifecycle: ``lab`` (vm_lab_up / vm_lab_down / vm_lab_status), ``process``
(QEMU processes), ``ready`` (SSH readiness), ``files`` (seed and inventory), ``state`` (the
teardown record), ``teardown`` and ``lock``. The guest image is fleet.lab.image.
"""

from fleet.lab.vm.qemu import BootFiles, GuestDefinition, Iommu, PciDevice, build_argv
from fleet.lab.vm.topologies import (
    GuestNumaNode,
    GuestTopology,
    TopologySpec,
    known_specs,
    resolve,
)

__all__ = [
    "BootFiles",
    "GuestDefinition",
    "GuestNumaNode",
    "GuestTopology",
    "Iommu",
    "PciDevice",
    "TopologySpec",
    "build_argv",
    "known_specs",
    "resolve",
]
