"""Reading exec channels: SshStream (a long-lived command, line by line) and the helpers
SshTransport.run shares with it."""

from __future__ import annotations

import select
import shlex
import time
from types import TracebackType

import paramiko

from fleet.errors import TransportError

CHUNK_BYTES = 65536


def drain(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(CHUNK_BYTES)
    while chan.recv_stderr_ready():
        err += chan.recv_stderr(CHUNK_BYTES)


def wait_readable(chan: paramiko.Channel, deadline: float) -> bool:
    """Wait until stdout/stderr data or EOF is there; False once the deadline passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    select.select([chan.fileno()], [], [], remaining)
    return True


SEND_ERRORS = (OSError, EOFError, paramiko.SSHException)  # a send on a dead connection


def send_stdin(chan: paramiko.Channel, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except SEND_ERRORS:
        return  # the command exited (or timed out) without reading all its input


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
            drain(self._chan, self._out, self._err)
            cut = self._out.find(b"\n") + 1
            if cut or eof:
                line = bytes(self._out[:cut] if cut else self._out)
                del self._out[:len(line)]
                return line.decode("utf-8", errors="replace")
            if not wait_readable(self._chan, deadline):
                raise TransportError(f"no output line within {timeout_seconds:g}s from "
                                     f"{shlex.join(self.argv)}", where=self.host_name,
                                     hint="check that the command is running on the host")

    def write(self, text: str) -> None:
        try:
            self._chan.sendall(text.encode("utf-8"))
        except SEND_ERRORS as e:
            raise TransportError(f"cannot write to {shlex.join(self.argv)}: "
                                 f"{str(e) or 'connection closed'}", where=self.host_name,
                                 hint="the command has ended or the host is gone") from None

    def close_stdin(self) -> None:
        self._chan.shutdown_write()

    @property
    def stderr(self) -> str:
        drain(self._chan, self._out, self._err)
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
