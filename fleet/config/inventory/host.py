"""One host's Ansible variables -> Host, as ``ansible -i`` would connect to it.

Precedence is Ansible's: its ssh connection puts ansible_port, ansible_user,
ansible_ssh_private_key_file and the timeout on the command line before
ansible_ssh_common_args and ansible_ssh_extra_args, and ssh takes the first value it sees.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from fleet.config.inventory.ssh_args import (
    SshArgs,
    behind,
    parse_jumps,
    parse_port,
    parse_seconds,
    parse_ssh_args,
    parse_yes_no,
)
from fleet.config.inventory.ssh_config import Options
from fleet.errors import InventoryError
from fleet.hosts import Become, BootMethod, ConnectionKind, Host, Secret
from fleet.transport.base import KEY_FILE_HINT, not_a_private_key

_CONNECTIONS: Mapping[str, ConnectionKind] = {
    "local": "local", "ansible.builtin.local": "local",
    "ssh": "ssh", "ansible.builtin.ssh": "ssh", "smart": "ssh",
    "paramiko": "ssh", "paramiko_ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh",
}
_STRICT = {"yes": False, "true": False, "ask": False,
           "accept-new": True, "no": True, "false": True, "off": True}

Var = Callable[..., Any]


def to_host(name: str, variables: Mapping[str, Any], loader: Any, *,
            ssh_config: Options = ()) -> Host:
    """``ssh_config``: what ~/.ssh/config sets for the host's address (behind the inventory)."""
    from ansible.template import Templar

    templar = Templar(loader=loader, variables=variables)
    where = f"{name} ({variables.get('inventory_file') or 'inventory'})"

    def var(*keys: str) -> Any:
        for key in keys:
            if variables.get(key) is not None:
                return templar.template(variables[key])
        return None

    base = Path(str(variables.get("inventory_dir") or "."))
    connection = _connection(where, var("ansible_connection"))
    args = parse_ssh_args(where, [var("ansible_ssh_common_args"), var("ansible_ssh_extra_args")]
                          if connection == "ssh" else [])
    args = behind(args, ssh_config)
    address = str(var("ansible_host", "ansible_ssh_host") or name)
    password = var("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    return Host(
        name=name,
        address=args.get("hostname") or address,
        connection=connection,
        port=_port(where, var("ansible_port", "ansible_ssh_port"), args),
        user=_optional_str(var("ansible_user", "ansible_ssh_user") or args.get("user")),
        key_files=_key_files(where, var, args, base) if connection == "ssh" else (),
        known_hosts_files=_known_hosts(where, args.get("userknownhostsfile"), base),
        password=Secret(str(password)) if password is not None else None,
        groups=tuple(str(g) for g in variables.get("group_names", ())),
        connect_timeout_seconds=_timeout(where, var("ansible_ssh_timeout", "ansible_timeout"),
                                         args),
        accept_new_host_keys=_accept_new(where, args.get("stricthostkeychecking"),
                                         var("ansible_host_key_checking")),
        become=_become(where, var),
        boot=_boot(where, var("fleet_boot"), var("fleet_lab_kind")),
        **_relay(where, args),
    )


_BECOME_METHODS = ("sudo", "ansible.builtin.sudo")


def _become(where: str, var: Var) -> Become | None:
    """ansible_become and its user, method (sudo only) and password."""
    enabled = var("ansible_become", "ansible_sudo")
    if enabled is None or not _truthy(where, enabled, "ansible_become"):
        return None
    method = var("ansible_become_method")
    if method is not None and str(method) not in _BECOME_METHODS:
        raise InventoryError(f"ansible_become_method={method} is not supported", where=where,
                             hint="fleet becomes root through sudo: use ansible_become_method: "
                                  "sudo (or connect as root)")
    user = var("ansible_become_user")
    password = var("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
    return Become(user=str(user) if user is not None else "root",
                  password=Secret(str(password)) if password is not None else None)


def _truthy(where: str, value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1", "y", "t"):
        return True
    if text in ("false", "no", "off", "0", "n", "f", ""):
        return False
    raise InventoryError(f"{name}={value!r} is not a boolean", where=where,
                         hint="use true or false")


def _relay(where: str, args: SshArgs) -> dict[str, Any]:
    """ProxyJump / ProxyCommand (ssh refuses both at once), keepalive, IdentitiesOnly."""
    jump, command = args.get("proxyjump"), args.get("proxycommand")
    if command is not None and command.strip().lower() == "none":
        command = None
    jumps = parse_jumps(where, jump) if jump is not None else ()
    if jumps and command is not None:
        raise InventoryError("both ProxyJump and ProxyCommand are set", where=where,
                             hint="keep one of them in ansible_ssh_common_args")
    alive = args.get("serveraliveinterval")
    only = args.get("identitiesonly")
    return {
        "proxy_jump": jumps,
        "proxy_command": command,
        "keepalive_interval_seconds": (parse_seconds(where, alive, "ServerAliveInterval",
                                                     zero_ok=True) if alive else None),
        "identities_only": parse_yes_no(where, only, "IdentitiesOnly") if only else False,
    }


def _boot(where: str, value: Any, lab_kind: Any) -> BootMethod | None:
    """fleet_boot: kexec or reboot; an emulated lab guest (fleet_lab_kind: vm) kexecs."""
    if value is None:
        return "kexec" if lab_kind == "vm" else None
    if value in {"kexec", "reboot"}:
        return cast(BootMethod, value)
    raise InventoryError(f"fleet_boot={value!r} is not kexec or reboot", where=where,
                         hint="set fleet_boot to kexec, or to reboot (the default)")


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


def _port(where: str, value: Any, args: SshArgs) -> int:
    if value is None:
        option = args.get("port")
        return parse_port(where, option, "SSH option Port") if option is not None else 22
    return parse_port(where, str(value).strip(), "ansible_port")


def _timeout(where: str, value: Any, args: SshArgs) -> float:
    if value is None:
        option = args.get("connecttimeout")
        return (parse_seconds(where, option, "ConnectTimeout") if option is not None
                else Host.connect_timeout_seconds)
    try:
        seconds = float(str(value))
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise InventoryError(f"ansible_timeout {str(value)!r} is not a positive number",
                             where=where, hint="use seconds, e.g. 10")
    return seconds


def _key_files(where: str, var: Var, args: SshArgs, base: Path) -> tuple[str, ...]:
    """The key files; one that exists but is not a private key is refused here, before any
    command records anything (a missing one is the host's connection error)."""
    key = var("ansible_ssh_private_key_file", "ansible_private_key_file")
    files = [_path(str(key), base)] if key else []
    for extra in args.identity_files:
        path = _path(extra, base)
        if path not in files:
            files.append(path)
    for path in files:
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue  # missing or unreadable: the connection says so, naming the host
        problem = not_a_private_key(path, head)
        if problem is not None:
            raise InventoryError(problem, where=where, hint=KEY_FILE_HINT)
    return tuple(files)


def _path(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


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
