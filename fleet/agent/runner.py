"""fleet-agent: the long-lived program that runs ON a host, one per host, over one SSH channel.

Stdlib only, python3 >= 3.8: fleet/agent/session.py ships this text, followed by the texts of
host_files.py and sampler.py, to a constant bootstrap that exec()s them and calls ``main()``.
fleet/agent/protocol.py documents the messages and what the agent guarantees (process groups,
timeouts, stdin EOF); PROTOCOL_VERSION is equal in both.
One thread: a selector over stdin, the child's pipes and a SIGCHLD wakeup pipe; a run with a
``sample`` spec is sampled from the same loop, at the sampler's deadlines.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

if __name__ != "fleet_agent":  # imported as a package module; shipped, their texts follow
    from fleet.agent.host_files import Capture, read_files, write_file
    from fleet.agent.sampler import Sampler, SampleSpecError, check_spec

PROTOCOL_VERSION = 3
AGENT_NAME = "fleet-agent"
DRAIN_SECONDS = 1.0  # once the child is reaped, how long leftovers may keep its pipes open
SAFETY_WAKEUP_SECONDS = 0.5  # the selector never sleeps longer than this while a child runs
CHUNK_BYTES = 65536


class RequestError(ValueError):
    """A request the agent cannot act on; answered with an "error" reply."""


def _get(req: dict[str, Any], key: str, kinds: tuple[type, ...], optional: bool = False,
         minimum: float | None = None) -> Any:
    value = req.get(key)
    if value is None and optional:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise RequestError(f"field {key!r} must be {' or '.join(k.__name__ for k in kinds)}")
    if minimum is not None and req[key] < minimum:
        raise RequestError(f"field {key!r} must be at least {minimum}")
    return value


def _strings(req: dict[str, Any], key: str) -> list[str]:
    items = _get(req, key, (list,))
    if not items or not all(isinstance(a, str) for a in items):
        raise RequestError(f"field {key!r} must be a non-empty list of strings")
    return list(items)


def _child_env(additions: Any) -> dict[str, str] | None:
    """The agent's environment plus ``additions`` (None: inherit it unchanged)."""
    if additions is not None and (not isinstance(additions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in additions.items())):
        raise RequestError("field 'env' must map strings to strings")
    return None if additions is None else dict(os.environ, **additions)


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group has gone
        os.killpg(pgid, signum)


class Run:
    """One child process: its pipes, bounded captures, timeout clock and how it ended."""

    def __init__(self, req: dict[str, Any], proc: subprocess.Popen[bytes], started: float,
                 started_wall: float) -> None:
        self.req = req
        self.proc = proc
        self.pid = proc.pid
        self.started = started
        self.started_wall = started_wall
        self.deadline = started + float(req["timeout_seconds"])
        self.grace = float(req["kill_grace_seconds"])
        self.kill_at: float | None = None  # set once SIGTERM went to the group
        self.killed = self.timed_out = self.cancelled = self.leftovers_killed = False
        self.ended: tuple[float, float] | None = None  # (monotonic, wall) when its exit was seen
        self.reaped: dict[str, Any] = {}
        self.captures = {"stdout": Capture(req["stdout_cap_bytes"]),
                         "stderr": Capture(req["stderr_cap_bytes"])}
        self.pipes: dict[int, str] = {}  # fd -> stream name, while not at EOF

    def terminate(self, now: float, *, timed_out: bool) -> None:
        """SIGTERM the whole group now; SIGKILL follows after the grace period."""
        if self.kill_at is not None or self.ended is not None:
            return
        self.timed_out, self.cancelled = timed_out, not timed_out
        _killpg(self.pid, signal.SIGTERM)
        self.kill_at = now + self.grace

    def step(self, now: float) -> None:
        """Advance the clock: notice the exit, time out, escalate to SIGKILL."""
        if self.ended is not None:
            return
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid:
            self.ended = (time.monotonic(), time.time())
            self._reaped(status, usage)
        elif self.kill_at is None and now >= self.deadline:
            self.terminate(now, timed_out=True)
        elif self.kill_at is not None and now >= self.kill_at and not self.killed:
            _killpg(self.pid, signal.SIGKILL)
            self.killed = True

    def _reaped(self, status: int, usage: Any) -> None:
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = None if signum is not None else os.WEXITSTATUS(status)
        self.proc.returncode = -signum if signum is not None else code  # Popen must not wait
        self.reaped = {"exit_code": code, "signal": signum,
                       "child_max_rss_bytes": usage.ru_maxrss * 1024,
                       "child_user_cpu_seconds": usage.ru_utime,
                       "child_system_cpu_seconds": usage.ru_stime}

    def kill_leftovers(self) -> None:
        """SIGKILL what the child left in its group (a live member keeps the group's id taken;
        an empty group's id is not reused within microseconds: Linux hands out PIDs cyclically)."""
        if not self.leftovers_killed:
            self.leftovers_killed = True
            _killpg(self.pid, signal.SIGKILL)

    def wake_in(self, now: float) -> float:
        if self.ended is not None:
            target = self.ended[0] + DRAIN_SECONDS
        elif self.kill_at is not None:
            target = now + SAFETY_WAKEUP_SECONDS if self.killed else self.kill_at
        else:
            target = self.deadline
        return max(0.0, min(target - now, SAFETY_WAKEUP_SECONDS))

    def finished(self, now: float) -> bool:
        return self.ended is not None and (
            not self.pipes or now >= self.ended[0] + DRAIN_SECONDS)

    def report(self) -> dict[str, Any]:
        assert self.ended is not None
        return run_result(self.req, (self.started, self.started_wall), self.ended,
                          self.captures, spawn_error=None, timed_out=self.timed_out,
                          cancelled=self.cancelled, **self.reaped)


def run_result(req: dict[str, Any], started: tuple[float, float], ended: tuple[float, float],
               captures: dict[str, Capture], **fields: Any) -> dict[str, Any]:
    """A run_result: ``started``/``ended`` are (monotonic, wall). Compact (version 3): a field
    whose value is null, false, "" or a zero byte count is left out (the controller knows the
    defaults); an exit code of 0 is sent."""
    result = {"type": "run_result", "id": req["id"], "started_monotonic_seconds": started[0],
              "started_wall_seconds": started[1], "ended_monotonic_seconds": ended[0],
              "ended_wall_seconds": ended[1]}
    for key, value in fields.items():
        if value is not None and value is not False:
            result[key] = value
    for name, capture in captures.items():
        if capture.total_bytes:
            result[name], truncated = capture.text()
            result[name + "_total_bytes"] = capture.total_bytes
            if truncated:
                result[name + "_truncated"] = True
    return result


class Agent:
    """The event loop: requests from stdin, one child, replies on stdout."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.encoder = json.JSONEncoder(separators=(",", ":"))  # built once: emit is hot
        self.inbuf = bytearray()
        self.run: Run | None = None
        self.sampler: Sampler | None = None
        self.stdin_open = True
        self.shutdown_id: Any = None
        self.done = False
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, lambda fd: os.read(fd, 4096))
        self.sel.register(0, selectors.EVENT_READ, self._on_stdin)

    def serve(self) -> None:
        self.emit({"type": "hello", "protocol_version": PROTOCOL_VERSION, "agent": AGENT_NAME,
                   "python_version": ".".join(map(str, sys.version_info[:3])), "pid": os.getpid(),
                   "hostname": os.uname().nodename, "monotonic_seconds": time.monotonic(),
                   "wall_seconds": time.time()})
        while not self.done:
            now = time.monotonic()
            timeout = self.run.wake_in(now) if self.run else None
            if self.sampler is not None and timeout is not None:
                timeout = min(timeout, self.sampler.wake_in(now))
            for key, _ in self.sel.select(timeout):
                key.data(key.fd)
            if self.sampler is not None and self.run is not None and self.run.ended is None \
                    and time.monotonic() >= self.sampler.due:
                self.emit(self.sampler.sample(time.monotonic(), self.run.req["id"]))
            if self.run is not None:
                self._step_run()
            if not self.stdin_open and self.run is None:
                return

    def emit(self, message: dict[str, Any]) -> None:
        view = memoryview(self.encoder.encode(message).encode("ascii") + b"\n")
        while view:
            try:
                view = view[os.write(1, view):]
            except BrokenPipeError:  # the controller is gone: stop as if stdin had closed
                self._stdin_closed()
                return

    def _on_stdin(self, fd: int) -> None:
        chunk = os.read(fd, CHUNK_BYTES)
        if not chunk:
            self._stdin_closed()
            return
        self.inbuf += chunk
        while b"\n" in self.inbuf and not self.done:
            line, _, rest = bytes(self.inbuf).partition(b"\n")
            self.inbuf = bytearray(rest)
            self._handle_line(line)

    def _stdin_closed(self) -> None:
        if self.stdin_open:
            self.stdin_open = False
            self.sel.unregister(0)
        if self.run is not None:
            self.run.terminate(time.monotonic(), timed_out=False)

    def _handle_line(self, line: bytes) -> None:
        try:
            req = json.loads(line)
        except ValueError:
            req = None
        if not isinstance(req, dict):
            self.emit({"type": "error", "id": None, "message": f"not a JSON object: {line[:99]!r}"})
            return
        try:
            self._handle(req)
        except RequestError as e:
            self.emit({"type": "error", "id": req.get("id"), "message": str(e)})

    def _handle(self, req: dict[str, Any]) -> None:
        kind, rid = req.get("type"), _get(req, "id", (int,))
        if kind == "ping":
            self.emit({"type": "pong", "id": rid, "monotonic_seconds": time.monotonic(),
                       "wall_seconds": time.time()})
        elif kind == "read":
            max_bytes = _get(req, "max_bytes", (int,), minimum=0)
            self.emit({"type": "read_result", "id": rid,
                       "files": read_files(_strings(req, "paths"), max_bytes)})
        elif kind == "write":
            outcome = write_file(_get(req, "path", (str,)), _get(req, "value", (str,)))
            self.emit(dict(outcome, type="write_result", id=rid))
        elif kind == "run":
            self._start_run(req)
        elif kind == "shutdown":
            self.shutdown_id = rid
            if self.run is None:
                self._bye()
            else:
                self.run.terminate(time.monotonic(), timed_out=False)
        else:
            raise RequestError(f"unknown request type {kind!r}")

    def _start_run(self, req: dict[str, Any]) -> None:
        if self.run is not None:
            raise RequestError(f"busy: run {self.run.req['id']} is still in progress")
        argv, env = _strings(req, "argv"), _child_env(req.get("env"))
        cwd = _get(req, "cwd", (str,), optional=True)
        for key in ("timeout_seconds", "kill_grace_seconds", "stdout_cap_bytes",
                    "stderr_cap_bytes"):
            _get(req, key, (int,) if key.endswith("_bytes") else (int, float), minimum=0)
        try:
            spec = None if req.get("sample") is None else check_spec(req["sample"])
        except SampleSpecError as e:
            raise RequestError(str(e)) from None
        started, started_wall = time.monotonic(), time.time()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, cwd=cwd, env=env,
                                    start_new_session=True)
        except (OSError, ValueError) as e:
            empty = {"stdout": Capture(0), "stderr": Capture(0)}
            self.emit(run_result(req, (started, started_wall), (started, started_wall), empty,
                                 spawn_error=str(e), timed_out=False, cancelled=False))
            return
        self.run = Run(req, proc, started, started_wall)
        if spec is not None:  # the first sample: as the child starts
            self.sampler = Sampler(spec, proc.pid, time.monotonic())
            self.emit(self.sampler.sample(time.monotonic(), req["id"]))
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert pipe is not None
            os.set_blocking(pipe.fileno(), False)
            self.run.pipes[pipe.fileno()] = name
            self.sel.register(pipe.fileno(), selectors.EVENT_READ, self._on_pipe)

    def _on_pipe(self, fd: int) -> bool:
        """Read one chunk of the child's output; False at EOF or when nothing is there now."""
        assert self.run is not None
        try:
            data = os.read(fd, CHUNK_BYTES)
        except BlockingIOError:
            return False
        if data:
            self.run.captures[self.run.pipes[fd]].feed(data)
            return True
        self.sel.unregister(fd)
        del self.run.pipes[fd]
        return False

    def _step_run(self) -> None:
        run = self.run
        assert run is not None
        now = time.monotonic()
        run.step(now)
        if run.ended is None:
            return
        if self.sampler is not None:  # the last sample: as the child's exit is seen
            self.emit(self.sampler.sample(time.monotonic(), run.req["id"], final=True))
            self.close_sampler()
        for fd in list(run.pipes):  # reaped: what is left in the pipes is there now
            while self._on_pipe(fd):
                pass
        if run.pipes:  # something the child left still holds them: kill it now
            run.kill_leftovers()
        if not run.finished(now):
            return
        self.run = None
        self.emit(run.report())  # first: the cleanup below is off the controller's clock
        run.kill_leftovers()  # before the next request is read
        for fd in list(run.pipes):
            self.sel.unregister(fd)
        with run.proc:  # closes its pipes; it is reaped already
            pass
        if self.shutdown_id is not None:
            self._bye()

    def close_sampler(self) -> None:
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            sampler.close()

    def _bye(self) -> None:
        self.emit({"type": "bye", "id": self.shutdown_id})
        self.done = True

    def kill_child(self) -> None:
        """Last resort on the way out: SIGKILL the running group and reap its leader."""
        if self.run is not None and self.run.ended is None:
            _killpg(self.run.pid, signal.SIGKILL)
            self.run.proc.wait()
        self.close_sampler()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Serve until shutdown or EOF; on any way out, nothing started here keeps running."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    agent = Agent()
    try:
        agent.serve()
    finally:
        agent.kill_child()


if __name__ == "__main__":
    main()
