"""The fleet_* variables of inventory hosts, as Ansible resolves them (group_vars, host_vars,
the inventory's own vars), for `fleet provision` (fleet.provision.desired checks them).

Variables are read here, beside fleet.config.inventory (the only module that imports
ansible); only names starting with ``fleet_`` are kept, so connection secrets never leave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet.config.inventory import (
    Inventory,
    _captured_output,
    _check_source,
    _first_line,
    _groups,
    _parse,
)
from fleet.config.inventory.host import to_host
from fleet.config.inventory.limit import apply_limit
from fleet.errors import InventoryError

PREFIX = "fleet_"


def load_with_variables(sources: Sequence[Path], *, limit: str | None = None
                        ) -> tuple[Inventory, dict[str, Mapping[str, Any]]]:
    """The inventory (as load_inventory reads it) and host name -> its fleet_* variables, for
    the hosts ``limit`` selects, in one parse."""
    paths = tuple(Path(s) for s in sources)
    for path in paths:
        _check_source(path)
    from ansible.errors import AnsibleError
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    with _captured_output():
        try:
            loader = DataLoader()
            manager = _parse(loader, paths)
            everyone = [h.name for h in manager.get_hosts("all")]
            if not everyone:
                raise InventoryError("the inventory has no hosts", where=", ".join(map(str, paths)),
                                     hint="add hosts, or check that you passed the right file")
            if limit is not None:
                apply_limit(manager, limit, everyone)
            manager_vars = VariableManager(loader=loader, inventory=manager)
            selected = manager.get_hosts("all")
            every = {h.name: manager_vars.get_vars(host=h, include_hostvars=False)
                     for h in selected}
            hosts = tuple(to_host(name, values, loader) for name, values in every.items())
        except AnsibleError as e:
            raise InventoryError(_first_line(str(e)), where=", ".join(map(str, paths)),
                                 hint="fix the inventory") from None
    inventory = Inventory(sources=paths, hosts=hosts, groups=_groups(hosts))
    return inventory, {name: _plain({k: v for k, v in values.items() if k.startswith(PREFIX)})
                       for name, values in every.items()}


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
