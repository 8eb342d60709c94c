"""The ``fleet_*`` variables of an inventory host as plain Python values (for `fleet provision`,
fleet.provision.desired checks them; kernel variants). Pure: only names starting with
``fleet_`` are kept, so connection secrets never leave fleet.config.inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "fleet_"


def fleet_variables(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fleet_*`` entries of a host's resolved variables, as plain values."""
    return {str(k): _plain(v) for k, v in values.items() if str(k).startswith(PREFIX)}


def shares_controller(variables: Mapping[str, Any]) -> bool:
    """A network-namespace lab host: this machine's own kernel and root filesystem."""
    return variables.get("fleet_lab_kind") == "netns" or "fleet_lab_namespace" in variables


def _plain(value: Any) -> Any:
    """Ansible's tagged str/dict/list subclasses as plain Python values."""
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, kind):
            return kind(value)
    return value
