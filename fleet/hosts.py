"""Inventory hosts as fleet connects to them: frozen dataclasses, stdlib only. No secret is
ever shown (``Secret``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConnectionKind = Literal["ssh", "local"]
BootMethod = Literal["kexec", "reboot"]


class Secret:
    """A string that never shows itself in repr(), str(), logs or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class JumpHost:
    """One ProxyJump hop: ``[user@]address[:port]``."""

    address: str
    port: int = 22
    user: str | None = None

    def describe(self) -> str:
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.address}:{self.port}"


@dataclass(frozen=True)
class Become:
    """Privilege escalation (``ansible_become``): fleet's agent and probe run through sudo as
    ``user``; ``password`` (``ansible_become_password``) goes to sudo's stdin, never argv."""

    user: str = "root"
    password: Secret | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Host:
    """One inventory host, as fleet needs it to connect. No secret is ever printed."""

    name: str
    address: str
    connection: ConnectionKind = "ssh"
    port: int = 22
    user: str | None = None
    key_files: tuple[str, ...] = ()
    known_hosts_files: tuple[str, ...] = ()
    password: Secret | None = field(default=None, repr=False, compare=False)
    groups: tuple[str, ...] = ()
    connect_timeout_seconds: float = 10.0
    # StrictHostKeyChecking=accept-new/no in the inventory: add unknown keys (changed ones: never)
    accept_new_host_keys: bool = False
    # ProxyJump hops, in order (the first is connected to directly)
    proxy_jump: tuple[JumpHost, ...] = ()
    # ProxyCommand with OpenSSH's %h %p %r %% tokens unexpanded; run by sh on the controller
    proxy_command: str | None = field(default=None, repr=False)
    # ServerAliveInterval: SSH keepalive every N seconds (None: the transport's default; 0: off)
    keepalive_interval_seconds: float | None = None
    # IdentitiesOnly=yes: offer only key_files, not ssh-agent's keys
    identities_only: bool = False
    # ansible_become: run the agent and the fact probe as another user (root) through sudo
    become: Become | None = None
    # how it boots another kernel: `fleet_boot` (kexec or reboot); emulated lab guests
    # (fleet_lab_kind: vm) kexec; None: reboot
    boot: BootMethod | None = None

    def via(self) -> str | None:
        """How the connection is relayed, without secrets: 'jump a:22,b:22' or 'proxy sh'."""
        if self.proxy_jump:
            return "jump " + ",".join(j.describe() for j in self.proxy_jump)
        if self.proxy_command:
            words = self.proxy_command.split()
            return f"proxy command {words[0] if words else ''}".rstrip()
        return None

    def describe(self) -> str:
        if self.connection == "local":
            return f"{self.name} (local)"
        who = f"{self.user}@" if self.user else ""
        via = self.via()
        return f"{self.name} ({who}{self.address}:{self.port}{f' via {via}' if via else ''})"
