"""ansible_ssh_common_args / ansible_ssh_extra_args -> SshArgs. Pure: no I/O, no ansible.

Arguments are split like a shell would (shlex) and read like ssh reads them: ``-o Key=Value``,
``-oKey=Value``, ``-o 'Key Value'``, ``-J jump``, ``-p port``, ``-i file``, ``-l user``; the
first value of an option wins (as in ssh), except IdentityFile, which accumulates. Every option
is either used, accepted as a no-op (``NO_OPS``: they do not change where or how fleet connects
and authenticates), or refused in one line: nothing is silently ignored.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fleet.errors import InventoryError
from fleet.hosts import JumpHost

# Options that only tune OpenSSH's own process, logging or multiplexing.
NO_OPS = frozenset({
    "controlmaster", "controlpersist", "controlpath", "loglevel", "compression", "batchmode",
    "serveralivecountmax", "tcpkeepalive", "hashknownhosts", "checkhostip", "visualhostkey",
    "updatehostkeys", "requesttty", "forwardx11", "forwardagent", "gssapiauthentication",
    "connectionattempts",
})
# Of these, only the value that keeps ssh's default behaviour is a no-op.
_ONLY_OFF = {"forwardx11": "no", "forwardagent": "no", "gssapiauthentication": "no",
             "connectionattempts": "1"}
USED = frozenset({
    "userknownhostsfile", "stricthostkeychecking", "proxyjump", "proxycommand", "port",
    "identityfile", "user", "connecttimeout", "serveraliveinterval", "identitiesonly",
})
_FLAGS = {"-p": "port", "-i": "identityfile", "-J": "proxyjump", "-l": "user"}
_NO_OP_FLAGS = frozenset({"-C", "-q", "-v", "-vv", "-vvv", "-T", "-n", "-x", "-a"})
_HINT = ("fleet supports ConnectTimeout, IdentitiesOnly, IdentityFile, Port, ProxyCommand, "
         "ProxyJump, ServerAliveInterval, StrictHostKeyChecking, User, UserKnownHostsFile")


@dataclass(frozen=True)
class SshArgs:
    """What the SSH arguments ask for; None where they say nothing."""

    options: tuple[tuple[str, str], ...] = ()  # (lower-case key, value), first one per key
    all_options: tuple[tuple[str, str], ...] = ()  # every (key, value), in order

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.options if k == key), None)

    @property
    def identity_files(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.all_options if k == "identityfile")


def behind(args: SshArgs, config: tuple[tuple[str, str], ...]) -> SshArgs:
    """``args`` first, then what an SSH config file sets (first value wins, IdentityFile
    accumulates, as in ssh). A relay (ProxyJump or ProxyCommand) the arguments choose keeps
    the config's out: ssh uses the first of the two it sees."""
    if not config:
        return args
    relay = {"proxyjump", "proxycommand"}
    has_relay = any(k in relay for k, _ in args.options)
    extra = [(k, v) for k, v in config if not (has_relay and k in relay)]
    first = dict(args.options)
    for key, value in extra:
        first.setdefault(key, value)
    return SshArgs(options=tuple(first.items()), all_options=(*args.all_options, *extra))


def parse_ssh_args(where: str, args: Sequence[object]) -> SshArgs:
    """Every ``-o`` and flag from the argument strings, each checked; InventoryError otherwise."""
    pairs: list[tuple[str, str]] = []
    for text in args:
        if text is None or text == "":
            continue
        try:
            tokens = shlex.split(str(text))
        except ValueError as e:
            raise InventoryError(f"cannot split SSH arguments {str(text)!r}: {e}", where=where,
                                 hint="check the quotes in ansible_ssh_common_args") from None
        pairs += _pairs(where, tokens)
    first: dict[str, str] = {}
    for key, value in pairs:
        _check_option(where, key, value)
        first.setdefault(key, value)
    return SshArgs(options=tuple(first.items()), all_options=tuple(pairs))


def _pairs(where: str, tokens: list[str]) -> Iterator[tuple[str, str]]:
    i = 0
    while i < len(tokens):
        word, i = tokens[i], i + 1
        if word in _NO_OP_FLAGS:
            continue
        flag, attached = word[:2], word[2:]
        if flag == "-o" or flag in _FLAGS:
            if not attached:
                if i >= len(tokens):
                    raise InventoryError(f"SSH argument {word} has no value", where=where,
                                         hint=f"write {word} VALUE, e.g. -o ProxyJump=bastion")
                attached, i = tokens[i], i + 1
            if flag == "-o" and "=" not in attached and len(attached.split()) == 1 \
                    and i < len(tokens) and not tokens[i].startswith("-"):
                attached, i = f"{attached} {tokens[i]}", i + 1  # -o Key Value (two words)
            yield _option(where, attached) if flag == "-o" else (_FLAGS[flag], attached)
            continue
        raise InventoryError(f"unsupported SSH argument {word!r} in ansible_ssh_common_args",
                             where=where,
                             hint=f"use -o Option=value, -J, -p, -i or -l; {_HINT}")


def _option(where: str, text: str) -> tuple[str, str]:
    """'Key=Value' or 'Key Value' -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or " " in key.strip() or "\t" in key.strip():
        parts = text.split(None, 1)
        key, value = (parts[0], parts[1]) if len(parts) == 2 else (text, "")
    key, value = key.strip(), value.strip()
    if not key or not value:
        raise InventoryError(f"SSH option -o {text!r} has no value", where=where,
                             hint="write -o Option=value, e.g. -o ProxyJump=bastion")
    return key.lower(), value


def _check_option(where: str, key: str, value: str) -> None:
    if key in USED:
        return
    if key in NO_OPS and (key not in _ONLY_OFF or value.lower() == _ONLY_OFF[key]):
        return
    hint = (f"remove it or set it to {_ONLY_OFF[key]}" if key in NO_OPS else
            f"remove it from ansible_ssh_common_args/ansible_ssh_extra_args; {_HINT}")
    raise InventoryError(f"SSH option {key}={value} is not supported by fleet's SSH client",
                         where=where, hint=hint)


# ---- values ------------------------------------------------------------------------------


def parse_port(where: str, text: str, name: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise InventoryError(f"{name} {text!r} is not a TCP port", where=where,
                             hint="use an integer from 1 to 65535")
    return int(text)


def parse_jumps(where: str, text: str) -> tuple[JumpHost, ...]:
    """ProxyJump / -J: 'none', or a comma list of [ssh://][user@]host[:port] ([v6]:port too)."""
    if text.strip().lower() == "none":
        return ()
    return tuple(_jump(where, part.strip()) for part in text.split(","))


def _jump(where: str, text: str) -> JumpHost:
    hint = "write ProxyJump=[user@]host[:port], several separated by commas"
    rest = text.removeprefix("ssh://")
    user, at, hostport = rest.rpartition("@")
    if at and not user:
        raise InventoryError(f"ProxyJump {text!r} has an empty user", where=where, hint=hint)
    if hostport.startswith("["):
        address, close, tail = hostport[1:].partition("]")
        port_text = tail.removeprefix(":") if close and tail.startswith(":") else None
        if not close or (tail and port_text is None):
            raise InventoryError(f"ProxyJump {text!r} is not a host", where=where, hint=hint)
    elif hostport.count(":") == 1:
        address, _, port_text = hostport.partition(":")
    else:
        address, port_text = hostport, None
    if not address or any(c.isspace() for c in address):
        raise InventoryError(f"ProxyJump {text!r} is not a host", where=where, hint=hint)
    port = parse_port(where, port_text, "ProxyJump port") if port_text is not None else 22
    return JumpHost(address=address, port=port, user=user or None)


def parse_seconds(where: str, text: str, name: str, *, zero_ok: bool = False) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 or (zero_ok and seconds == 0)):
        raise InventoryError(f"{name}={text} is not a {'' if zero_ok else 'positive '}number "
                             "of seconds", where=where, hint="use seconds, e.g. 10")
    return seconds


def parse_yes_no(where: str, text: str, name: str) -> bool:
    word = text.strip().lower()
    if word not in ("yes", "no", "true", "false"):
        raise InventoryError(f"{name}={text} is not yes or no", where=where, hint="use yes or no")
    return word in ("yes", "true")
