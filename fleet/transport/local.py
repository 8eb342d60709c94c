"""Local transport (``ansible_connection: local``): argv runs as a subprocess, never via a shell.

Commands get the environment an SSH login would give (``session_environment``), not the
controller's: its tokens and keys (FLEET_*, AWS_*, ...) must not reach workloads or the store.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.transport.base import Result

# What a POSIX shell (and so an SSH host) reports when it cannot find or execute a command.
_NOT_FOUND_EXIT = 127
_NOT_EXECUTABLE_EXIT = 126
_CHUNK_BYTES = 65536
SESSION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# XDG_RUNTIME_DIR: an SSH login has it (pam_systemd); FLEET_AGENT_STATE_DIR: where the agent
# keeps its host lock and knob journal (fleet.agent.remote.host_state), fleet's own, never a secret
_KEPT = ("HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "LANGUAGE", "TZ", "XDG_RUNTIME_DIR",
         "FLEET_AGENT_STATE_DIR")


def session_environment(controller: Mapping[str, str]) -> dict[str, str]:
    """Pure: what an SSH login on this machine would have: HOME, USER/LOGNAME, SHELL, PATH
    (the same user's login PATH: the controller's, else a default), the locale and
    XDG_RUNTIME_DIR, taken from the controller's environment, plus fleet's own
    FLEET_AGENT_STATE_DIR. Nothing else passes (tokens, keys, TERM)."""
    env = {key: controller[key] for key in _KEPT if controller.get(key)}
    env.update({key: value for key, value in controller.items() if key.startswith("LC_")})
    env.setdefault("PATH", SESSION_PATH)
    user = env.get("USER") or env.get("LOGNAME")
    if user:
        env.setdefault("USER", user)
        env.setdefault("LOGNAME", user)
    return env


class LocalTransport:
    """Runs commands on this machine with the same Result and timeout semantics as SSH."""

    def __init__(self, host: Host, *, environment: Mapping[str, str] | None = None) -> None:
        """``environment``: the controller's (default os.environ), of which only what an SSH
        login would have is passed on."""
        self.host = host
        self.host_name = host.name
        self._env = session_environment(os.environ if environment is None else environment)

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
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                env=self._env)
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

    def open_stream(self, argv: Sequence[str]) -> LocalStream:
        """Start a long-lived command (its own session) whose stdout is read line by line.

        Like a shell on an SSH host, a missing program is a stream that ended with exit 127.
        """
        argv = tuple(argv)
        if not argv:
            raise TransportError("cannot run an empty command", where=self.host_name,
                                 hint="pass at least the program name")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True, env=self._env)
        except FileNotFoundError:
            return LocalStream(self.host_name, argv, None,
                               (_NOT_FOUND_EXIT, f"{argv[0]}: command not found\n"))
        except PermissionError:
            return LocalStream(self.host_name, argv, None,
                               (_NOT_EXECUTABLE_EXIT, f"{argv[0]}: Permission denied\n"))
        except OSError as e:
            raise TransportError(f"cannot start {shlex.join(argv)}: {e.strerror}",
                                 where=self.host_name, hint="check the command") from None
        return LocalStream(self.host_name, argv, proc, None)

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


class LocalStream:
    """A subprocess read line by line (stdout), with writable stdin; stderr is kept (as SshStream).

    ``proc`` None with ``failed`` (exit code, stderr): the program could not be started.
    """

    def __init__(self, host_name: str, argv: tuple[str, ...],
                 proc: subprocess.Popen[bytes] | None, failed: tuple[int, str] | None) -> None:
        self.host_name = host_name
        self.argv = argv
        self._proc = proc
        self._failed = failed
        self._out = bytearray()
        self._err = bytearray(failed[1].encode() if failed else b"")
        self._open: dict[int, bytearray] = {}
        if proc is not None:
            assert proc.stdout is not None and proc.stderr is not None
            self._open = {proc.stdout.fileno(): self._out, proc.stderr.fileno(): self._err}

    def _drain(self, timeout_seconds: float) -> bool:
        """Read what the pipes have (waiting up to the timeout); False if nothing was ready."""
        if not self._open:
            return False
        ready, _, _ = select.select(list(self._open), [], [], max(0.0, timeout_seconds))
        for fd in ready:
            chunk = os.read(fd, _CHUNK_BYTES)
            if chunk:
                self._open[fd] += chunk
            else:
                del self._open[fd]
        return bool(ready)

    def _out_eof(self) -> bool:
        return self._proc is None or self._proc.stdout is None or \
            self._proc.stdout.closed or self._proc.stdout.fileno() not in self._open

    def readline(self, timeout_seconds: float | None = None) -> str:
        """The next line with its newline; '' at end of output. Raises on timeout."""
        deadline = time.monotonic() + (timeout_seconds if timeout_seconds is not None else 1e9)
        while True:
            cut = self._out.find(b"\n") + 1
            eof = self._out_eof()
            if cut or eof:
                line = bytes(self._out[:cut] if cut else self._out)
                del self._out[:len(line)]
                return line.decode("utf-8", errors="replace")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(f"no output line within {timeout_seconds:g}s from "
                                     f"{shlex.join(self.argv)}", where=self.host_name,
                                     hint="check that the command is running")
            self._drain(remaining)

    def write(self, text: str) -> None:
        stdin = self._proc.stdin if self._proc is not None else None
        try:
            if stdin is None or stdin.closed:
                raise BrokenPipeError("stdin is closed")
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(stdin.fileno(), view):]
        except OSError as e:
            raise TransportError(f"cannot write to {shlex.join(self.argv)}: {e}",
                                 where=self.host_name, hint="the command has ended") from None

    def close_stdin(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()

    @property
    def stderr(self) -> str:
        while self._drain(0):
            pass
        return self._err.decode("utf-8", errors="replace")

    @property
    def exit_code(self) -> int | None:
        """The command's exit status once it has ended, else None (-1: ended by a signal)."""
        if self._proc is None:
            return self._failed[0] if self._failed else None
        code = self._proc.poll()
        return None if code is None else (code if code >= 0 else -1)

    def close(self) -> None:
        """Close the pipes: the command sees EOF on stdin (nothing is killed, as with SSH)."""
        if self._proc is None:
            return
        self._open.clear()
        for pipe in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        self._proc.poll()

    def __enter__(self) -> LocalStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
