"""The lab: real OpenSSH hosts in network namespaces on this machine (root only), or QEMU
guests with real NUMA topologies (``vm_lab_up``).

``lab_up`` / ``lab_down`` / ``lab_status`` back `fleet lab up|down|status` and the pytest
``lab`` fixture in tests/integration/conftest.py; ``lab_down`` and ``lab_status`` handle
whichever kind of lab the state directory holds. ``vm_lab_up`` backs `fleet lab up --numa`.

The netns lab is ``lab``, ``netns``, ``sshd``, ``state``, ``teardown``; the QEMU lab is ``vm/``
and its guest image ``image/``; ``command`` runs a local command with a one-line error.
The names are loaded on first use (PEP 562), so the pure modules of the package (lab/vm/qemu.py,
lab/vm/topologies.py) load no I/O module through this front door.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from fleet.lab.vm.lab import vm_lab_down, vm_lab_status, vm_lab_up

_HOMES = {
    "lab_down": "fleet.lab.lab", "lab_status": "fleet.lab.lab", "lab_up": "fleet.lab.lab",
    "HostStatus": "fleet.lab.state", "LabHost": "fleet.lab.state", "LabKind": "fleet.lab.state",
    "LabState": "fleet.lab.state", "LabStatus": "fleet.lab.state",
    "default_state_dir": "fleet.lab.state", "recorded_kind": "fleet.lab.state",
    "vm_lab_down": "fleet.lab.vm.lab", "vm_lab_status": "fleet.lab.vm.lab",
    "vm_lab_up": "fleet.lab.vm.lab",
}
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fleet.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
