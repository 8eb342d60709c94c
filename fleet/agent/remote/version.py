"""The agent protocol's version and the agent's name, defined once for both sides.

HOST side, stdlib only, python3 >= 3.8: shipped with the other files of fleet/agent/remote/;
the controller (fleet/agent/protocol.py) imports the same names.
"""

from __future__ import annotations

PROTOCOL_VERSION = 4
AGENT_NAME = "fleet-agent"
