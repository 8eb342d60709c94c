"""Ansible inventories -> Hosts. The only module that imports ansible (lazily: it is slow).

Sources are read by Ansible's own API (DataLoader, InventoryManager, VariableManager), so
YAML and INI files, directories, group_vars/ and host_vars/, children and patterns behave as
in ``ansible -i``. What Ansible would only warn about (an unparsable source, a --limit that
matches nothing) is an InventoryError here; Ansible's own output is captured, never printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.config.inventory.host import to_host
from fleet.config.inventory.limit import apply_limit
from fleet.config.inventory.ssh_config import resolve, user_config
from fleet.config.inventory.variables import fleet_variables
from fleet.config.inventory.variants import HostProvisioning, parse_provisioning
from fleet.errors import InventoryError
from fleet.hosts import Host

YAML_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Inventory:
    """The hosts selected from some inventory sources; ``groups`` maps group -> host names.

    ``warnings`` are the one-line warnings Ansible gave while loading (for the CLI to show).
    ``provisioning`` maps host name -> its kernel variants, boot method and power command.
    """

    sources: tuple[Path, ...]
    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]]
    warnings: tuple[str, ...] = ()
    provisioning: Mapping[str, HostProvisioning] = field(default_factory=dict)

    def host_variants(self) -> dict[str, tuple[str, ...]]:
        """Host name -> the names of its declared variants (hosts that declare some)."""
        return {name: p.variant_names() for name, p in self.provisioning.items() if p.variants}

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def load_inventory(sources: Sequence[Path], *, limit: str | None = None) -> Inventory:
    """Read Ansible inventory sources (files or directories), keep the hosts ``limit`` selects."""
    return load_with_variables(sources, limit=limit)[0]


def load_with_variables(sources: Sequence[Path], *, limit: str | None = None
                        ) -> tuple[Inventory, dict[str, Mapping[str, Any]]]:
    """The inventory, and host name -> its ``fleet_*`` variables as Ansible resolves them
    (group_vars, host_vars, the inventory's vars), in one parse: only ``fleet_`` names are
    kept, so connection secrets never leave this package."""
    paths = tuple(Path(s) for s in sources)
    if not paths:
        raise InventoryError("no inventory given", hint="pass -i FILE")
    for path in paths:
        _check_source(path)
    from ansible.errors import AnsibleError

    where = ", ".join(map(str, paths))
    with _captured_output() as output:
        try:
            inventory, variables = _load(paths, limit)
        except AnsibleError as e:
            raise InventoryError(_first_line(str(e)), where=where,
                                 hint="fix the inventory") from None
    return dataclasses.replace(inventory, warnings=_warnings(output.getvalue())), variables


def _load(paths: tuple[Path, ...], limit: str | None
          ) -> tuple[Inventory, dict[str, Mapping[str, Any]]]:
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    manager = _parse(loader, paths)
    everyone = [h.name for h in manager.get_hosts("all")]
    if not everyone:
        raise InventoryError("the inventory has no hosts", where=", ".join(map(str, paths)),
                             hint="add hosts, or check that you passed the right file")
    if limit is not None:
        apply_limit(manager, limit, everyone)
    selected = manager.get_hosts("all")
    variables = VariableManager(loader=loader, inventory=manager)
    host_vars = [(h.name, variables.get_vars(host=h, include_hostvars=False)) for h in selected]
    hosts = tuple(to_host(name, v, loader) for name, v in host_vars)
    config = user_config()
    if config is not None:  # OpenSSH's view of ~/.ssh/config for each address, behind the inventory
        found = resolve(config, [h.address for h in hosts if h.connection == "ssh"])
        hosts = tuple(to_host(name, v, loader, ssh_config=found.get(h.address, ()))
                      if h.connection == "ssh" and found.get(h.address) else h
                      for (name, v), h in zip(host_vars, hosts, strict=True))
    provisioning = {name: parse_provisioning(name, v, _origin, boot=h.boot)
                    for (name, v), h in zip(host_vars, hosts, strict=True)}
    inventory = Inventory(sources=paths, hosts=hosts, groups=_groups(hosts),
                          provisioning=provisioning)
    return inventory, {name: fleet_variables(v, _origin) for name, v in host_vars}


def _origin(value: object) -> str | None:
    """file:line:col where Ansible read a variable's value (None when it does not know)."""
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # another ansible-core: errors then name the inventory file only
        return None
    origin = Origin.get_tag(value)
    if origin is None or origin.path is None:
        return None
    return str(origin)


# ---- sources: existence, YAML syntax, Ansible's parse ----------------------------------------


def _check_source(path: Path) -> None:
    if not path.exists():
        raise InventoryError("inventory file not found", where=str(path),
                             hint="check the -i path")
    base = path if path.is_dir() else path.parent
    yaml_files = [*_vars_files(base / "group_vars"), *_vars_files(base / "host_vars")]
    if path.is_dir():
        yaml_files += sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES)
    elif path.suffix in YAML_SUFFIXES:
        yaml_files.insert(0, path)
    for file in yaml_files:
        _check_yaml(file)


def _vars_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from sorted(p for p in directory.rglob("*")
                          if p.is_file() and p.suffix in (*YAML_SUFFIXES, ""))


def _check_yaml(path: Path) -> None:
    """Syntax only (tags such as !vault stay unresolved): Ansible would just warn and go on."""
    try:
        yaml.compose(path.read_bytes(), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InventoryError(f"invalid YAML: {e.problem or e.context}", where=where,
                             hint="fix the YAML syntax") from None
    except yaml.YAMLError as e:
        raise InventoryError(f"invalid YAML: {_first_line(str(e))}", where=str(path),
                             hint="fix the file") from None
    except OSError as e:
        raise InventoryError(f"cannot read: {e.strerror}", where=str(path),
                             hint="check the file's permissions") from None


def _parse(loader: Any, paths: tuple[Path, ...]) -> Any:
    from ansible.inventory.manager import InventoryManager

    class _Manager(InventoryManager):  # type: ignore[misc]
        """Remembers the sources no plugin could parse (Ansible only warns about them)."""

        def __init__(self) -> None:
            self.unparsed: list[str] = []
            super().__init__(loader=loader, sources=[str(p) for p in paths])

        def parse_source(self, source: str, cache: bool = False) -> bool:
            parsed = bool(super().parse_source(source, cache=cache))
            if not parsed and not os.path.isdir(source):
                self.unparsed.append(source)
            return parsed

    manager = _Manager()
    if manager.unparsed:
        raise _unparsed_error(loader, manager.unparsed[0])
    return manager


def _unparsed_error(loader: Any, source: str) -> InventoryError:
    """Ask the plugin that should have read the file why it could not."""
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.plugins.loader import inventory_loader

    suffix = Path(source).suffix
    name = "yaml" if suffix in (*YAML_SUFFIXES, ".json") else "toml" if suffix == ".toml" else "ini"
    reason = f"not a {name.upper()} inventory Ansible can read"
    plugin = inventory_loader.get(name)
    if plugin is not None:
        try:
            plugin.parse(InventoryData(), loader, source, cache=False)
        except AnsibleError as e:
            reason = _first_line(str(e)).removeprefix("Failed to parse inventory: ")
    return InventoryError(f"invalid {name.upper()} inventory: {reason}", where=source,
                          hint="fix the file; see Ansible's inventory format")


def _groups(hosts: tuple[Host, ...]) -> dict[str, tuple[str, ...]]:
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    return {name: tuple(groups[name]) for name in sorted(groups)}


def _warnings(text: str) -> tuple[str, ...]:
    found = []
    for line in text.splitlines():
        for prefix in ("[WARNING]: ", "[DEPRECATION WARNING]: "):
            if line.startswith(prefix) and line[len(prefix):].strip() not in found:
                found.append(line[len(prefix):].strip())
    return tuple(found)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")


@contextlib.contextmanager
def _captured_output() -> Iterator[_Captured]:
    """Ansible's Display writes warnings to sys.stdout/sys.stderr; only fleet/cli/main.py prints.

    A real text stream over bytes (not StringIO): Ansible's Display patches the streams'
    ``buffer`` and calls ``reconfigure`` and would warn about a StringIO.
    """
    stream = _Captured(io.BytesIO(), encoding="utf-8", errors="replace")
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        yield stream


class _Captured(io.TextIOWrapper):
    def getvalue(self) -> str:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().decode("utf-8", errors="replace")

