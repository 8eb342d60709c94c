"""Local transport (``ansible_connection: local``): argv runs as a subprocess, never via a shell."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType

from fleet.errors import TransportError
from fleet.model import Host
from fleet.transport.base import Result

# What a POSIX shell (and so an SSH host) reports when it cannot find or execute a command.
_NOT_FOUND_EXIT = 127
_NOT_EXECUTABLE_EXIT = 126


class LocalTransport:
    """Runs commands on this machine with the same Result and timeout semantics as SSH."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.host_name = host.name

    def __repr__(self) -> str:
        return f"LocalTransport({self.host.describe()})"

    def run(self, argv: Sequence[str], *, stdin: str | None = None,
            timeout_seconds: float = 60.0) -> Result:
        argv = tuple(argv)
        if not argv:
            raise TransportError("cannot run an empty command", where=self.host_name,
                                 hint="pass at least the program name")
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            return self._failed(argv, _NOT_FOUND_EXIT, f"{argv[0]}: command not found", started)
        except PermissionError:
            return self._failed(argv, _NOT_EXECUTABLE_EXIT, f"{argv[0]}: Permission denied",
                                started)
        except OSError as e:
            raise TransportError(f"cannot start {shlex.join(argv)}: {e.strerror}",
                                 where=self.host_name, hint="check the command") from None
        data = stdin.encode("utf-8") if stdin is not None else None
        try:
            out, err = proc.communicate(data, timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise TransportError(
                f"timed out after {timeout_seconds:g}s running {shlex.join(argv)}",
                where=self.host_name,
                hint="raise the timeout or check the command") from None
        return Result(self.host_name, argv, proc.returncode,
                      out.decode("utf-8", errors="replace"),
                      err.decode("utf-8", errors="replace"), time.monotonic() - started)

    def _failed(self, argv: tuple[str, ...], code: int, message: str, started: float) -> Result:
        return Result(self.host_name, argv, code, "", message + "\n", time.monotonic() - started)

    def read_file(self, path: str) -> str:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise TransportError(f"cannot read {path}: {e.strerror}", where=self.host_name,
                                 hint="check the path") from None
        return data.decode("utf-8", errors="replace")

    def close(self) -> None:
        """Nothing to release: each command is its own process."""

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (it leads its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
