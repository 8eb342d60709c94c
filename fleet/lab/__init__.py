"""The lab: real OpenSSH hosts in network namespaces on this machine (root only), or QEMU
guests with real NUMA topologies (``vm_lab_up``).

``lab_up`` / ``lab_down`` / ``lab_status`` back `fleet lab up|down|status` and the pytest
``lab`` fixture in tests/integration/conftest.py; ``lab_down`` and ``lab_status`` handle
whichever kind of lab the state directory holds. ``vm_lab_up`` backs `fleet lab up --numa`.
"""

from fleet.lab.lab import lab_down, lab_status, lab_up
from fleet.lab.state import (
    HostStatus,
    LabHost,
    LabKind,
    LabState,
    LabStatus,
    default_state_dir,
    recorded_kind,
)
from fleet.lab.vm import vm_lab_down, vm_lab_status, vm_lab_up

__all__ = [
    "HostStatus",
    "LabHost",
    "LabKind",
    "LabState",
    "LabStatus",
    "default_state_dir",
    "lab_down",
    "lab_status",
    "lab_up",
    "recorded_kind",
    "vm_lab_down",
    "vm_lab_status",
    "vm_lab_up",
]
