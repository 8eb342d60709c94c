"""Open one authenticated SSH connection to a host: directly, through ProxyJump hops, or over
a ProxyCommand. Every hop's host key is checked against the same known_hosts files.

A ProxyJump hop is an SSH connection of its own (same key files and ssh-agent; its user is the
one in ``user@host``, else paramiko's default, the local user, as with ssh) whose
``direct-tcpip`` channel to the next hop is the next connection's socket. A ProxyCommand is run
by ``sh -c`` on the controller with %h %p %r %% expanded: inventories are trusted code.
"""

from __future__ import annotations

import errno
import logging
import shlex
import socket
from dataclasses import dataclass, field
from typing import Any

import paramiko

from fleet.errors import TransportError
from fleet.hosts import Host, JumpHost
from fleet.transport.base import KEY_FILE_HINT, not_a_private_key
from fleet.transport.ssh.known_hosts import (
    HostKeyPolicy,
    KnownHosts,
    changed_key_error,
    known_hosts_paths,
    load_known_hosts,
)

DEFAULT_KEEPALIVE_SECONDS = 10.0


@dataclass
class Connection:
    """The target's client and the hops (clients or a ProxyCommand) it depends on."""

    client: paramiko.SSHClient
    hops: list[Any] = field(default_factory=list)

    def close(self) -> None:
        self.client.close()
        for hop in reversed(self.hops):
            hop.close()


def quiet_paramiko_logging() -> None:
    """paramiko logs failures from its own thread; keep them out of the user's terminal."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def check_key_files(host: Host) -> list[str]:
    """The key files, each readable and a private key: one line naming the host otherwise."""
    paths = []
    for name in host.key_files:
        path = str(name)
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError as e:
            raise TransportError(f"cannot read SSH key file {path}: {e.strerror}",
                                 where=host.name,
                                 hint="fix ansible_ssh_private_key_file in the inventory") from e
        problem = not_a_private_key(path, head)
        if problem is not None:
            raise TransportError(problem, where=host.name, hint=KEY_FILE_HINT)
        paths.append(path)
    return paths


def open_connection(host: Host, accept_new: bool) -> Connection:
    """Authenticated, with keepalive on; TransportError/HostKeyError naming the host otherwise."""
    key_files = check_key_files(host)
    known = load_known_hosts(host, known_hosts_paths(host))
    quiet_paramiko_logging()
    hops: list[Any] = []
    try:
        sock = _relay(host, key_files, known, accept_new, hops)
        client = _login(host, key_files, known, accept_new,
                        (host.address, host.port, host.user), sock=sock,
                        password=host.password.reveal() if host.password else None)
    except BaseException:
        for hop in reversed(hops):
            hop.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        interval = host.keepalive_interval_seconds
        interval = DEFAULT_KEEPALIVE_SECONDS if interval is None else interval
        transport.set_keepalive(round(interval))
    return Connection(client, hops)


def _relay(host: Host, key_files: list[str], known: KnownHosts, accept_new: bool,
           hops: list[Any]) -> Any:
    """None (connect directly), a ProxyCommand, or the last jump's channel to the target."""
    if host.proxy_command:
        return _proxy_command(host)
    sock: Any = None
    targets = [*host.proxy_jump[1:], JumpHost(host.address, host.port, host.user)]
    for hop, target in zip(host.proxy_jump, targets, strict=False):
        client = _login(host, key_files, known, accept_new, (hop.address, hop.port, hop.user),
                        sock=sock, password=None, via=hop)
        hops.append(client)
        sock = _channel(host, client, hop, target)
    return sock


def _channel(host: Host, client: paramiko.SSHClient, hop: JumpHost,
             target: JumpHost) -> paramiko.Channel:
    transport = client.get_transport()
    try:
        assert transport is not None
        return transport.open_channel("direct-tcpip", (target.address, target.port),
                                      ("127.0.0.1", 0), timeout=host.connect_timeout_seconds)
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise TransportError(f"jump host {hop.describe()} could not connect to "
                             f"{target.address}:{target.port}: {e or 'refused'}",
                             where=host.name,
                             hint="check that the jump host can reach the target and that its "
                                  "sshd allows TCP forwarding (AllowTcpForwarding)") from None


def _proxy_command(host: Host) -> paramiko.ProxyCommand:
    assert host.proxy_command is not None
    tokens = {"%h": host.address, "%p": str(host.port), "%r": host.user or "", "%%": "%"}
    expanded = "".join(shlex.quote(tokens[piece]) if piece in tokens and piece != "%%"
                       else tokens.get(piece, piece)
                       for piece in _split_tokens(host.proxy_command))
    try:
        return paramiko.ProxyCommand(shlex.join(["sh", "-c", f"exec {expanded}"]))
    except (paramiko.SSHException, OSError) as e:
        raise TransportError(f"cannot start ProxyCommand: {e}", where=host.name,
                             hint="check ProxyCommand in ansible_ssh_common_args") from None


def _split_tokens(text: str) -> list[str]:
    """'nc %h %p' -> ['nc ', '%h', ' ', '%p']: OpenSSH's two-character % tokens kept whole."""
    pieces, i = [], 0
    while i < len(text):
        if text[i] == "%" and i + 1 < len(text):
            pieces.append(text[i:i + 2])
            i += 2
        else:
            pieces.append(text[i])
            i += 1
    return pieces


def _login(host: Host, key_files: list[str], known: KnownHosts, accept_new: bool,
           target: tuple[str, int, str | None], *, sock: Any, password: str | None,
           via: JumpHost | None = None) -> paramiko.SSHClient:
    address, port, user = target
    client = paramiko.SSHClient()
    for name, keys in known.keys.items():
        for key_type, key in keys.items():
            client.get_host_keys().add(name, key_type, key)
    client.set_missing_host_key_policy(HostKeyPolicy(host, known, accept_new, address, port))
    timeout = host.connect_timeout_seconds
    try:
        client.connect(
            address, port=port, username=user, password=password, sock=sock,
            key_filename=key_files or None,  # type: ignore[arg-type]  # a list is fine
            allow_agent=not (host.identities_only and key_files),
            look_for_keys=not key_files, timeout=timeout, banner_timeout=timeout,
            auth_timeout=timeout)
    except TransportError:
        client.close()
        raise
    except paramiko.BadHostKeyException as e:
        client.close()
        raise changed_key_error(host, known, (address, port), e) from None
    except (paramiko.SSHException, OSError, EOFError, ValueError, TypeError) as e:
        client.close()
        raise connect_error(host, e, (address, port, user), via) from None
    return client


def connect_error(host: Host, e: Exception, target: tuple[str, int, str | None],
                  via: JumpHost | None) -> TransportError:
    """One line naming the host (and the jump host) for every way a connection can fail."""
    address, port, user = target
    where = f"{address}:{port}" + (" (jump host)" if via else "")
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError) and e.errors:
        e = next(iter(e.errors.values()))  # paramiko wraps every socket error of connect()
    if isinstance(e, paramiko.PasswordRequiredException | TypeError) and "password" in str(e):
        what, hint = "the SSH key file is encrypted", "load the key into ssh-agent"
    elif isinstance(e, ValueError | TypeError):
        what, hint = f"cannot load the SSH key file: {e}", "check ansible_ssh_private_key_file"
    elif isinstance(e, paramiko.AuthenticationException):
        what = f"authentication failed for user {user or '(default)'} at {where}"
        hint = "check ansible_user, the key files and ssh-agent"
    elif isinstance(e, socket.gaierror):
        what, hint = f"cannot resolve {address}: {e.strerror}", "check ansible_host"
    elif isinstance(e, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        what, hint = f"connection refused by {where}", "is sshd running on that port?"
    elif isinstance(e, TimeoutError):
        what, hint = f"timed out connecting to {where}", "is the host up and reachable?"
    elif isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        what, hint = f"no route to {where}", "check the network and ansible_host"
    elif isinstance(e, OSError):
        what, hint = f"cannot connect to {where}: {e.strerror or e}", "check the host"
    elif isinstance(e, EOFError) or "Error reading SSH protocol banner" in str(e):
        what = f"the connection to {where} closed before SSH started"
        hint = "check the ProxyCommand/ProxyJump and sshd on the host"
    else:
        what, hint = f"SSH error with {where}: {e}", "check sshd on the host"
    return TransportError(what, where=host.name, hint=hint)
