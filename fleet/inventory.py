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
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InventoryError
from fleet.model import ConnectionKind, Host, Secret

YAML_SUFFIXES = (".yml", ".yaml")
_CONNECTIONS: Mapping[str, ConnectionKind] = {
    "local": "local", "ansible.builtin.local": "local",
    "ssh": "ssh", "ansible.builtin.ssh": "ssh", "smart": "ssh",
    "paramiko": "ssh", "paramiko_ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh",
}
_STRICT = {"yes": False, "true": False, "ask": False,
           "accept-new": True, "no": True, "false": True, "off": True}
_MAX_NAMES_SHOWN = 20


@dataclass(frozen=True)
class Inventory:
    """The hosts selected from some inventory sources; ``groups`` maps group -> host names.

    ``warnings`` are the one-line warnings Ansible gave while loading (for the CLI to show).
    """

    sources: tuple[Path, ...]
    hosts: tuple[Host, ...]
    groups: Mapping[str, tuple[str, ...]]
    warnings: tuple[str, ...] = ()

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def load_inventory(sources: Sequence[Path], *, limit: str | None = None) -> Inventory:
    """Read Ansible inventory sources (files or directories), keep the hosts ``limit`` selects."""
    paths = tuple(Path(s) for s in sources)
    if not paths:
        raise InventoryError("no inventory given", hint="pass -i FILE")
    for path in paths:
        _check_source(path)
    from ansible.errors import AnsibleError

    where = ", ".join(map(str, paths))
    with _captured_output() as output:
        try:
            inventory = _load(paths, limit)
        except AnsibleError as e:
            raise InventoryError(_first_line(str(e)), where=where,
                                 hint="fix the inventory") from None
    return dataclasses.replace(inventory, warnings=_warnings(output.getvalue()))


def _load(paths: tuple[Path, ...], limit: str | None) -> Inventory:
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    manager = _parse(loader, paths)
    everyone = [h.name for h in manager.get_hosts("all")]
    if not everyone:
        raise InventoryError("the inventory has no hosts", where=", ".join(map(str, paths)),
                             hint="add hosts, or check that you passed the right file")
    if limit:
        _apply_limit(manager, limit, everyone)
    selected = manager.get_hosts("all")
    variables = VariableManager(loader=loader, inventory=manager)
    hosts = tuple(_to_host(h.name, variables.get_vars(host=h, include_hostvars=False), loader)
                  for h in selected)
    return Inventory(sources=paths, hosts=hosts, groups=_groups(hosts))


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


# ---- --limit ------------------------------------------------------------------------------


def _apply_limit(manager: Any, limit: str, everyone: list[str]) -> None:
    """Ansible's --limit, but a pattern (or a part of one) that matches nothing is an error."""
    from ansible.inventory.manager import split_host_pattern

    for term in split_host_pattern(limit):
        bare = term.lstrip("!&")
        if bare and not bare.startswith("@") and not manager.get_hosts(bare):
            raise _no_match(limit, everyone, part=bare)
    manager.subset(limit)
    if not manager.get_hosts("all"):
        raise _no_match(limit, everyone)


def _no_match(limit: str, everyone: list[str], *, part: str | None = None) -> InventoryError:
    shown = ", ".join(everyone[:_MAX_NAMES_SHOWN])
    if len(everyone) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(everyone)} in all)"
    what = (f"no host matches '{part}' in --limit '{limit}'" if part and part != limit
            else f"no host matches --limit '{limit}'")
    return InventoryError(f"{what} (hosts: {shown})",
                          hint="use host or group names, globs, 'a:b', '!x', '&y'")


# ---- variables -> Host --------------------------------------------------------------------


def _to_host(name: str, variables: Mapping[str, Any], loader: Any) -> Host:
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=variables)
    where = f"{name} ({variables.get('inventory_file') or 'inventory'})"

    def var(*keys: str) -> Any:
        for key in keys:
            if variables.get(key) is not None:
                return templar.template(variables[key])
        return None

    base = Path(str(variables.get("inventory_dir") or "."))
    options = _ssh_options(where, [var("ansible_ssh_common_args"), var("ansible_ssh_extra_args")])
    password = var("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    key = var("ansible_ssh_private_key_file", "ansible_private_key_file")
    return Host(
        name=name,
        address=str(var("ansible_host", "ansible_ssh_host") or name),
        connection=_connection(where, var("ansible_connection")),
        port=_port(where, var("ansible_port", "ansible_ssh_port")),
        user=_optional_str(var("ansible_user", "ansible_ssh_user")),
        key_files=(_path(str(key), base),) if key else (),
        known_hosts_files=_known_hosts(where, options.get("userknownhostsfile"), base),
        password=Secret(str(password)) if password is not None else None,
        groups=tuple(str(g) for g in variables.get("group_names", ())),
        connect_timeout_seconds=_timeout(where, var("ansible_ssh_timeout", "ansible_timeout")),
        accept_new_host_keys=_accept_new(where, options.get("stricthostkeychecking"),
                                         var("ansible_host_key_checking")),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _connection(where: str, value: Any) -> ConnectionKind:
    if value is None:
        return "ssh"
    kind = _CONNECTIONS.get(str(value))
    if kind is None:
        raise InventoryError(f"unsupported connection ansible_connection={value}", where=where,
                             hint="fleet supports local and ssh (also paramiko, smart)")
    return kind


def _port(where: str, value: Any) -> int:
    if value is None:
        return 22
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise InventoryError(f"ansible_port {text!r} is not a TCP port", where=where,
                             hint="use an integer from 1 to 65535")
    return int(text)


def _timeout(where: str, value: Any) -> float:
    if value is None:
        return Host.connect_timeout_seconds
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InventoryError(f"ansible_timeout {str(value)!r} is not a positive number",
                             where=where, hint="use seconds, e.g. 10")
    return seconds


def _path(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


def _ssh_options(where: str, args: Sequence[Any]) -> dict[str, str]:
    """``-o Key=Value`` / ``-oKey=Value`` / ``-o Key Value`` -> {key.lower(): value}; first wins."""
    options: dict[str, str] = {}
    for text in args:
        if not text:
            continue
        try:
            tokens = shlex.split(str(text))
        except ValueError as e:
            raise InventoryError(f"cannot split SSH arguments: {e}", where=where,
                                 hint="check the quotes in ansible_ssh_common_args") from None
        for key, value in _option_pairs(tokens):
            options.setdefault(key.lower(), value)
    return options


def _option_pairs(tokens: list[str]) -> Iterator[tuple[str, str]]:
    i = 0
    while i < len(tokens):
        word, i = tokens[i], i + 1
        if word == "-o" and i < len(tokens):
            option, i = tokens[i], i + 1
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        else:
            continue
        if "=" in option:
            key, value = option.split("=", 1)
        elif len(option.split(None, 1)) == 2:
            key, value = option.split(None, 1)
        elif i < len(tokens) and not tokens[i].startswith("-"):
            key, value, i = option, tokens[i], i + 1
        else:
            continue
        yield key.strip(), value.strip()


def _known_hosts(where: str, value: str | None, base: Path) -> tuple[str, ...]:
    """Like ssh: several files separated by spaces (quote a path with spaces), or none."""
    if value is None:
        return ()
    if value.lower() == "none":
        return (os.devnull,)
    try:
        return tuple(_path(p, base) for p in shlex.split(value))
    except ValueError as e:
        raise InventoryError(f"cannot split UserKnownHostsFile={value}: {e}", where=where,
                             hint="check the quotes in ansible_ssh_common_args") from None


def _accept_new(where: str, strict: str | None, checking: Any) -> bool:
    if strict is not None:
        if strict.lower() not in _STRICT:
            raise InventoryError(f"unknown StrictHostKeyChecking={strict}", where=where,
                                 hint="use yes, accept-new or no")
        return _STRICT[strict.lower()]
    if checking is None:
        return False
    return str(checking).strip().lower() in ("false", "no", "off", "0")


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
    """Ansible's Display writes warnings to sys.stdout/sys.stderr; only fleet/cli.py prints.

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

