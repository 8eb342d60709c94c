"""SshTransport: one persistent paramiko connection per host, opened on first use and reused
by every ``run``, ``read_file`` (one SFTP session that stays open) and ``open_stream``."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import paramiko

from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.transport.base import Result
from fleet.transport.ssh.connect import Connection, open_connection
from fleet.transport.ssh.stream import SshStream, drain, send_stdin, wait_readable


class SshTransport:
    """Runs commands on one host over one lazily opened, persistent SSH connection."""

    def __init__(self, host: Host, *, accept_new_host_keys: bool = False) -> None:
        self.host = host
        self.host_name = host.name
        self._accept_new = accept_new_host_keys or host.accept_new_host_keys
        self._conn: Connection | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self.connect_count = 0
        self.connect_seconds: float | None = None

    def __repr__(self) -> str:
        return f"SshTransport({self.host.describe()})"

    def _connection(self) -> paramiko.Transport:
        with self._lock:
            if self._conn is not None:
                live = self._conn.client.get_transport()
                if live is not None and live.is_active():
                    return live
                self._close_locked()
            started = time.monotonic()
            self._conn = open_connection(self.host, self._accept_new)
            self.connect_count += 1
            self.connect_seconds = time.monotonic() - started
            live = self._conn.client.get_transport()
            assert live is not None
            return live

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
                writer = threading.Thread(target=send_stdin, daemon=True,
                                          args=(chan, stdin.encode("utf-8")))
                writer.start()
            out, err = bytearray(), bytearray()
            while True:
                eof = chan.eof_received or chan.closed
                drain(chan, out, err)
                if eof:
                    break
                if not wait_readable(chan, deadline):
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
        live = self._conn.client.get_transport() if self._conn else None
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
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
