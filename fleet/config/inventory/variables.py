"""The ``fleet_*`` variables of an inventory host as plain Python values (for `fleet provision`,
fleet.provision.desired checks them; kernel variants). Pure: only names starting with
``fleet_`` are kept, so connection secrets never leave fleet.config.inventory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

PREFIX = "fleet_"
# not an inventory variable: where each fleet_* value (and each item of a list) was read,
# {"fleet_vfio_devices": "hosts.yml:4:5", "fleet_vfio_devices[0]": "hosts.yml:5:9"}
ORIGINS = "fleet__origins"


def fleet_variables(values: Mapping[str, Any],
                    locate: Callable[[object], str | None] | None = None) -> dict[str, Any]:
    """The ``fleet_*`` entries of a host's resolved variables, as plain values; with
    ``locate``, also ORIGINS: the file:line:col of each value Ansible knows it for."""
    plain = {str(k): _plain(v) for k, v in values.items() if str(k).startswith(PREFIX)}
    if locate is not None:
        plain[ORIGINS] = origins(values, locate)
    return plain


def origins(values: Mapping[str, Any], locate: Callable[[object], str | None]
            ) -> dict[str, str]:
    """name (and name[i] for a list's items) -> where it was read, for the fleet_* values."""
    found: dict[str, str] = {}
    for key, value in values.items():
        name = str(key)
        if not name.startswith(PREFIX):
            continue
        items = [(name, value)]
        if isinstance(value, (list, tuple)):
            items += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        found.update((n, where) for n, v in items if (where := locate(v)) is not None)
    return found


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
