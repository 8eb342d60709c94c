"""The lab: real OpenSSH hosts in network namespaces on this machine (root only).

``lab_up`` / ``lab_down`` / ``lab_status`` back `fleet lab up|down|status` and the pytest
``lab`` fixture in tests/integration/conftest.py.
"""

from fleet.lab.lab import lab_down, lab_status, lab_up
from fleet.lab.state import HostStatus, LabHost, LabState, LabStatus, default_state_dir

__all__ = [
    "HostStatus",
    "LabHost",
    "LabState",
    "LabStatus",
    "default_state_dir",
    "lab_down",
    "lab_status",
    "lab_up",
]
