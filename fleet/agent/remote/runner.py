"""fleet-agent: the long-lived program that runs ON a host, one per host, over one SSH channel.

Stdlib only, python3 >= 3.8: fleet/agent/session.py ships this text, followed by the texts of
every other file of fleet/agent/remote/ (fleet/agent/shipping.py), to a constant bootstrap
that exec()s them and calls ``main()``. fleet/agent/protocol.py documents the messages and what
the agent guarantees (process groups, timeouts, stdin EOF, the host lock, the knob journal,
heartbeats); PROTOCOL_VERSION (version.py) is the same for both.
One thread: a selector over stdin, the child's pipes and a SIGCHLD wakeup pipe; a run with a
``sample`` spec is sampled from the same loop, at the sampler's deadlines; a lock request that
has to wait is polled from it too. Whatever way the agent goes (shutdown, stdin EOF, a broken
stdout, no word from the controller for ``silence_seconds``, SIGTERM, SIGHUP), it kills the
running group and writes back every knob in its journal; only SIGKILL skips that, and the next
agent to take the host lock replays the journal.
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
    from fleet.agent.remote.child import Run, killpg_quietly, run_result
    from fleet.agent.remote.host_files import Capture, read_files, write_file
    from fleet.agent.remote.host_state import HostGuard, StateError
    from fleet.agent.remote.sampler import Sampler, SampleSpecError, check_spec
    from fleet.agent.remote.version import AGENT_NAME, PROTOCOL_VERSION

CHUNK_BYTES = 65536
HEARTBEAT_SECONDS = 5.0  # until the controller's first heartbeat says otherwise
SILENCE_SECONDS = 30.0  # no input for this long: the controller is gone
LOCK_POLL_SECONDS = 0.2  # how often a waiting lock request tries again
KNOB_WRITES = (None, "set", "restore")


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
        self.last_input = self.last_emit = time.monotonic()
        self.heartbeat_seconds, self.silence_seconds = HEARTBEAT_SECONDS, SILENCE_SECONDS
        self.guard = HostGuard()
        self.waiting_lock: dict[str, Any] | None = None  # a lock request not answered yet
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
            for key, _ in self.sel.select(self._wake_in(time.monotonic())):
                key.data(key.fd)
            now = time.monotonic()
            if self.stdin_open and now - self.last_input >= self.silence_seconds:
                self._stdin_closed()  # no word from the controller: it is gone
            if self.sampler is not None and self.run is not None and self.run.ended is None \
                    and now >= self.sampler.due:
                self.emit(self.sampler.sample(time.monotonic(), self.run.req["id"]))
            if self.waiting_lock is not None:
                self._poll_lock(now)
            if self.run is not None:
                if now - self.last_emit >= self.heartbeat_seconds:
                    self.emit({"type": "heartbeat", "monotonic_seconds": now})
                self._step_run()
            if not self.stdin_open and self.run is None:
                return

    def _wake_in(self, now: float) -> float | None:
        """How long the selector may sleep: the next deadline of whatever is going on."""
        waits = [self.last_input + self.silence_seconds] if self.stdin_open else []
        if self.run is not None:
            waits += [now + self.run.wake_in(now), self.last_emit + self.heartbeat_seconds]
            if self.sampler is not None:
                waits.append(now + self.sampler.wake_in(now))
        if self.waiting_lock is not None:
            waits.append(now + LOCK_POLL_SECONDS)
        return max(0.0, min(waits) - now) if waits else None

    def emit(self, message: dict[str, Any]) -> None:
        view = memoryview(self.encoder.encode(message).encode("ascii") + b"\n")
        self.last_emit = time.monotonic()
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
        self.last_input = time.monotonic()
        self.inbuf += chunk
        while b"\n" in self.inbuf and not self.done:
            line, _, rest = bytes(self.inbuf).partition(b"\n")
            self.inbuf = bytearray(rest)
            self._handle_line(line)

    def _stdin_closed(self) -> None:
        """The controller is gone (EOF, broken pipe, silence): end the run; nobody waits for
        the lock's answer any more."""
        if self.stdin_open:
            self.stdin_open = False
            self.sel.unregister(0)
        self.waiting_lock = None
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
        if req.get("type") == "heartbeat":  # one way, no id, no reply
            self.heartbeat_seconds = float(_get(req, "interval_seconds", (int, float),
                                                minimum=0.05))
            self.silence_seconds = float(_get(req, "silence_seconds", (int, float),
                                              minimum=0.1))
            return
        kind, rid = req.get("type"), _get(req, "id", (int,))
        if kind == "ping":
            self.emit({"type": "pong", "id": rid, "monotonic_seconds": time.monotonic(),
                       "wall_seconds": time.time()})
        elif kind == "read":
            max_bytes = _get(req, "max_bytes", (int,), minimum=0)
            self.emit({"type": "read_result", "id": rid,
                       "files": read_files(_strings(req, "paths"), max_bytes)})
        elif kind == "write":
            self.emit(dict(self._write(req), type="write_result", id=rid))
        elif kind == "lock":
            self._start_lock(req, rid)
        elif kind == "run":
            self._start_run(req)
        elif kind == "shutdown":
            self._shutdown(rid)
        else:
            raise RequestError(f"unknown request type {kind!r}")

    def _write(self, req: dict[str, Any]) -> dict[str, Any]:
        """A plain write, or a knob's: "set" journals its original value first (refused
        without the host lock), "restore" takes it out of the journal once written."""
        path, value = _get(req, "path", (str,)), _get(req, "value", (str,))
        knob = req.get("knob")
        if knob not in KNOB_WRITES:
            raise RequestError("field 'knob' must be null, 'set' or 'restore'")
        if knob == "set":
            refused = self.guard.before_knob_write(path)
            if refused is not None:
                return {"path": path, "errno": None, "error": refused}
        outcome = write_file(path, value)
        if knob == "restore" and outcome["error"] is None:
            self.guard.restored(path)
        return outcome

    def _start_lock(self, req: dict[str, Any], rid: int) -> None:
        if self.waiting_lock is not None:
            raise RequestError(f"busy: lock request {self.waiting_lock['id']} is still waiting")
        holder = {"controller": _get(req, "controller", (str,)),
                  "controller_pid": _get(req, "controller_pid", (int,)),
                  "run_id": _get(req, "run_id", (str,)), "agent_pid": os.getpid(),
                  "since_wall_seconds": time.time()}
        now = time.monotonic()
        self.waiting_lock = {"id": rid, "holder": holder, "started": now, "report_at": now,
                             "deadline": now + _get(req, "wait_seconds", (int, float),
                                                    minimum=0)}
        self._poll_lock(now)

    def _poll_lock(self, now: float) -> None:
        """Try the host lock once: answer when taken or given up; else say who holds it."""
        waiting = self.waiting_lock
        assert waiting is not None
        answer = {"type": "lock_result", "id": waiting["id"], "acquired": False,
                  "waited_seconds": now - waiting["started"]}
        try:
            recovered = self.guard.take(waiting["holder"])
        except StateError as e:
            self.waiting_lock = None
            self.emit(dict(answer, error=str(e)))
            return
        if recovered is not None:
            self.waiting_lock = None
            self.emit(dict(answer, acquired=True, recovered=recovered))
            return
        assert self.guard.lock is not None
        holder = self.guard.lock.holder()
        if now >= waiting["deadline"]:
            self.waiting_lock = None
            self.emit(dict(answer, holder=holder))
        elif now >= waiting["report_at"]:
            waiting["report_at"] = now + self.heartbeat_seconds
            self.emit(dict(answer, type="lock_wait", holder=holder))

    def _shutdown(self, rid: int) -> None:
        self.shutdown_id = rid
        if self.waiting_lock is not None:
            self.emit({"type": "lock_result", "id": self.waiting_lock["id"], "acquired": False,
                       "waited_seconds": time.monotonic() - self.waiting_lock["started"],
                       "error": "the agent was shut down while waiting"})
            self.waiting_lock = None
        if self.run is None:
            self._bye()
        else:
            self.run.terminate(time.monotonic(), timed_out=False)

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
            killpg_quietly(self.run.pid, signal.SIGKILL)
            self.run.proc.wait()
        self.close_sampler()

    def restore_knobs(self) -> None:
        """On the way out: write back every knob still in the journal (said on stderr)."""
        try:
            restored = self.guard.restore_all()
        except StateError as e:
            restored = [{"path": "journal", "value": "", "error": str(e)}]
        for r in restored:
            done = "restored" if r["error"] is None else f"could not restore ({r['error']})"
            line = f"{AGENT_NAME}: {done} {r['path']} to {r['value']!r}\n"
            with contextlib.suppress(OSError):  # nobody reads stderr any more
                os.write(2, line.encode("utf-8", errors="replace"))


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
        for signum in (signal.SIGTERM, signal.SIGHUP):  # the cleanup below is not cut short
            signal.signal(signum, signal.SIG_IGN)
        agent.kill_child()
        agent.restore_knobs()


if __name__ == "__main__":
    main()
