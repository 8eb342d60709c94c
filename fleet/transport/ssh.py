"""SSH transport: one persistent paramiko connection per host. The only paramiko import.

The connection is opened on first use and reused by every ``run``, ``read_file`` and
``open_stream``; ``read_file`` goes through one SFTP session that stays open. Host keys are
checked against known_hosts files by our own policy: an unknown key is refused unless
``accept_new_host_keys`` (then it is appended to the first file); a changed key is always refused.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import paramiko

from fleet.errors import HostKeyError, TransportError
from fleet.model import Host
from fleet.transport.base import Result

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
_CHUNK_BYTES = 65536


def _quiet_paramiko_logging() -> None:
    """paramiko logs failures from its own thread; keep them out of the user's terminal."""
    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def known_hosts_paths(host: Host) -> tuple[Path, ...]:
    """The files to check, in order; the first one is where accepted keys are appended."""
    if host.known_hosts_files:
        return tuple(Path(p).expanduser() for p in host.known_hosts_files)
    defaults = tuple(Path(p).expanduser() for p in DEFAULT_KNOWN_HOSTS)
    existing = tuple(p for p in defaults if p.exists())
    return existing or defaults[:1]


def _entry_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only when no key at all is known for the host: refuse or append."""

    def __init__(self, host: Host, files: tuple[Path, ...], accept_new: bool) -> None:
        self._host = host
        self._files = files
        self._accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        if not self._accept_new:
            raise HostKeyError(
                f"host key for {self._host.address}:{self._host.port} is not in "
                f"{', '.join(map(str, self._files))}",
                where=self._host.name,
                hint="verify it, then add it with ssh-keyscan or rerun with --accept-new-host-keys")
        self._append(hostname, key)

    def _append(self, hostname: str, key: paramiko.PKey) -> None:
        path = self._files[0]
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                if f.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                    f.write("\n")
                f.write(line)
        except OSError as e:
            raise TransportError(f"cannot add the new host key to {path}: {e.strerror}",
                                 where=self._host.name,
                                 hint="check that the known_hosts file is writable") from e


def _check_key_files(host: Host) -> list[str]:
    paths = []
    for name in host.key_files:
        path = os.path.expanduser(name)
        try:
            open(path, "rb").close()  # readable by us: paramiko would say less
        except OSError as e:
            raise TransportError(f"cannot read SSH key file {path}: {e.strerror}",
                                 where=host.name,
                                 hint="fix ansible_ssh_private_key_file in the inventory") from e
        paths.append(path)
    return paths


def _client_with_host_keys(host: Host, files: tuple[Path, ...]) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    for path in files:
        try:
            client.load_system_host_keys(str(path))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as e:
            raise TransportError(f"cannot read known_hosts file {path}: {e}", where=host.name,
                                 hint="check UserKnownHostsFile in the inventory") from None
    return client


def _changed_key_error(host: Host, files: tuple[Path, ...],
                       e: paramiko.BadHostKeyException) -> HostKeyError:
    return HostKeyError(
        f"host key for {host.address}:{host.port} has CHANGED: the server sent "
        f"{e.key.get_name()} {e.key.fingerprint} but {', '.join(map(str, files))} has "
        f"{e.expected_key.get_name()} {e.expected_key.fingerprint}; this may be a "
        "man-in-the-middle attack",
        where=host.name,
        hint="do not connect until the new key is verified; if the host was reinstalled, remove "
             f"the old entry with ssh-keygen -R '{_entry_name(host.address, host.port)}'")


def _connect_error(host: Host, e: Exception) -> TransportError:
    """One line naming the host for every way a connection can fail."""
    target = f"{host.address}:{host.port}"
    if isinstance(e, paramiko.PasswordRequiredException):
        what, hint = "the SSH key file is encrypted", "load the key into ssh-agent"
    elif isinstance(e, paramiko.AuthenticationException):
        what = f"authentication failed for user {host.user or '(default)'} at {target}"
        hint = "check ansible_user, the key files and ssh-agent"
    elif isinstance(e, socket.gaierror):
        what, hint = f"cannot resolve {host.address}: {e.strerror}", "check ansible_host"
    elif isinstance(e, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        what, hint = f"connection refused by {target}", "is sshd running on that port?"
    elif isinstance(e, TimeoutError):
        what, hint = f"timed out connecting to {target}", "is the host up and reachable?"
    elif isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        what, hint = f"no route to {target}", "check the network and ansible_host"
    elif isinstance(e, OSError):
        what, hint = f"cannot connect to {target}: {e.strerror or e}", "check the host"
    else:
        what, hint = f"SSH error with {target}: {e}", "check sshd on the host"
    return TransportError(what, where=host.name, hint=hint)


def _drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(_CHUNK_BYTES)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(_CHUNK_BYTES)


def _wait_readable(chan: paramiko.Channel, deadline: float) -> bool:
    """Wait until stdout/stderr data or EOF is there; False once the deadline passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    select.select([chan.fileno()], [], [], remaining)
    return True


_SEND_ERRORS = (OSError, EOFError, paramiko.SSHException)  # a send on a dead connection


def _send_stdin(chan: paramiko.Channel, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except _SEND_ERRORS:
        return  # the command exited (or timed out) without reading all its input


class SshTransport:
    """Runs commands on one host over one lazily opened, persistent SSH connection."""

    def __init__(self, host: Host, *, accept_new_host_keys: bool = False) -> None:
        self.host = host
        self.host_name = host.name
        self._accept_new = accept_new_host_keys or host.accept_new_host_keys
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self.connect_count = 0
        self.connect_seconds: float | None = None

    def __repr__(self) -> str:
        return f"SshTransport({self.host.describe()})"

    def _connection(self) -> paramiko.Transport:
        with self._lock:
            if self._client is not None:
                live = self._client.get_transport()
                if live is not None and live.is_active():
                    return live
                self._close_locked()
            self._client = self._connect()
            live = self._client.get_transport()
            assert live is not None
            return live

    def _connect(self) -> paramiko.SSHClient:
        host = self.host
        key_files = _check_key_files(host)
        files = known_hosts_paths(host)
        _quiet_paramiko_logging()
        client = _client_with_host_keys(host, files)
        started = time.monotonic()
        try:
            client.set_missing_host_key_policy(_HostKeyPolicy(host, files, self._accept_new))
            client.connect(
                host.address, port=host.port, username=host.user,
                password=host.password.reveal() if host.password else None,
                key_filename=key_files or None,  # type: ignore[arg-type]  # a list is fine
                allow_agent=True, look_for_keys=not key_files,
                timeout=host.connect_timeout_seconds, banner_timeout=host.connect_timeout_seconds,
                auth_timeout=host.connect_timeout_seconds)
        except TransportError:
            client.close()
            raise
        except paramiko.BadHostKeyException as e:
            client.close()
            raise _changed_key_error(host, files, e) from None
        except (paramiko.SSHException, OSError) as e:
            client.close()
            raise _connect_error(host, e) from None
        self.connect_count += 1
        self.connect_seconds = time.monotonic() - started
        return client

    def _open_channel(self, command: str, timeout_seconds: float) -> paramiko.Channel:
        try:
            chan = self._connection().open_session(timeout=timeout_seconds)
            chan.settimeout(timeout_seconds)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError) as e:
            raise TransportError(f"cannot start a command: {e}", where=self.host_name,
                                 hint="check sshd (MaxSessions) on the host") from None
        return chan

    def _timeout(self, argv: Sequence[str], timeout_seconds: float) -> TransportError:
        return TransportError(f"timed out after {timeout_seconds:g}s running {shlex.join(argv)}",
                              where=self.host_name,
                              hint="raise the timeout or check the command on the host")

    def run(self, argv: Sequence[str], *, stdin: str | None = None,
            timeout_seconds: float = 60.0) -> Result:
        argv = tuple(argv)
        if not argv:
            raise TransportError("cannot run an empty command", where=self.host_name,
                                 hint="pass at least the program name")
        started = time.monotonic()
        deadline = started + timeout_seconds
        chan = self._open_channel(shlex.join(argv), timeout_seconds)
        writer = None
        try:
            if stdin is None:
                chan.shutdown_write()
            else:
                writer = threading.Thread(target=_send_stdin, daemon=True,
                                          args=(chan, stdin.encode("utf-8")))
                writer.start()
            out, err = bytearray(), bytearray()
            while True:
                eof = chan.eof_received or chan.closed
                _drain(chan, out, err)
                if eof:
                    break
                if not _wait_readable(chan, deadline):
                    raise self._timeout(argv, timeout_seconds)
            exit_code = self._exit_status(chan, argv, deadline, timeout_seconds)
        finally:
            chan.close()
            if writer is not None:
                writer.join(timeout=1.0)
        return Result(self.host_name, argv, exit_code, out.decode("utf-8", errors="replace"),
                      err.decode("utf-8", errors="replace"), time.monotonic() - started)

    def _exit_status(self, chan: paramiko.Channel, argv: Sequence[str], deadline: float,
                     timeout_seconds: float) -> int:
        if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise self._timeout(argv, timeout_seconds)
        live = self._client.get_transport() if self._client else None
        if chan.exit_status == -1 and (live is None or not live.is_active()):
            raise TransportError(f"connection lost while running {shlex.join(argv)}",
                                 where=self.host_name, hint="check the host and rerun")
        return int(chan.exit_status)  # -1: ended without a status (killed by a signal)

    def read_file(self, path: str) -> str:
        try:
            with self._sftp_client().open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TransportError(f"cannot read {path}: {e.strerror or e}",
                                 where=self.host_name, hint="check the path on the host") from None
        return data.decode("utf-8", errors="replace")

    def _sftp_client(self) -> paramiko.SFTPClient:
        live = self._connection()
        with self._lock:
            if self._sftp is None or self._sftp.sock.closed:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(live)
                except (paramiko.SSHException, OSError) as e:
                    raise TransportError(f"cannot open SFTP: {e}", where=self.host_name,
                                         hint="enable the sftp subsystem in sshd") from None
                if self._sftp is None:
                    raise TransportError("cannot open SFTP", where=self.host_name,
                                         hint="enable the sftp subsystem in sshd")
                sftp_chan = self._sftp.get_channel()
                if sftp_chan is not None:
                    sftp_chan.settimeout(self.host.connect_timeout_seconds * 6)
            return self._sftp

    def open_stream(self, argv: Sequence[str]) -> SshStream:
        """Start a long-lived command whose stdout is read line by line."""
        argv = tuple(argv)
        chan = self._open_channel(shlex.join(argv), self.host.connect_timeout_seconds)
        chan.settimeout(None)
        return SshStream(self.host_name, argv, chan)

    def _close_locked(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SshStream:
    """An exec channel read line by line (stdout), with writable stdin; stderr is kept."""

    def __init__(self, host_name: str, argv: tuple[str, ...], chan: paramiko.Channel) -> None:
        self.host_name = host_name
        self.argv = argv
        self._chan = chan
        self._out = bytearray()
        self._err = bytearray()

    def readline(self, timeout_seconds: float | None = None) -> str:
        """The next line with its newline; '' at end of output. Raises on timeout."""
        deadline = time.monotonic() + (timeout_seconds if timeout_seconds is not None else 1e9)
        while True:
            eof = self._chan.eof_received or self._chan.closed
            _drain(self._chan, self._out, self._err)
            cut = self._out.find(b"\n") + 1
            if cut or eof:
                line = bytes(self._out[:cut] if cut else self._out)
                del self._out[:len(line)]
                return line.decode("utf-8", errors="replace")
            if not _wait_readable(self._chan, deadline):
                raise TransportError(f"no output line within {timeout_seconds:g}s from "
                                     f"{shlex.join(self.argv)}", where=self.host_name,
                                     hint="check that the command is running on the host")

    def write(self, text: str) -> None:
        try:
            self._chan.sendall(text.encode("utf-8"))
        except _SEND_ERRORS as e:
            raise TransportError(f"cannot write to {shlex.join(self.argv)}: "
                                 f"{str(e) or 'connection closed'}", where=self.host_name,
                                 hint="the command has ended or the host is gone") from None

    def close_stdin(self) -> None:
        self._chan.shutdown_write()

    @property
    def stderr(self) -> str:
        _drain(self._chan, self._out, self._err)
        return self._err.decode("utf-8", errors="replace")

    @property
    def exit_code(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        return self._chan.exit_status if self._chan.exit_status_ready() else None

    def close(self) -> None:
        self._chan.close()

    def __enter__(self) -> SshStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
