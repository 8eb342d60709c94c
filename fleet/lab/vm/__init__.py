"""Lab guests: named NUMA topologies and the QEMU command line for them (both pure).

The lifecycle (boot, readiness, teardown) lives in fleet/lab/vm/lab.py.
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
