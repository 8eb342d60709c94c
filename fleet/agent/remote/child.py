"""fleet-agent's child: one running process, its pipes, timeout clock and run_result.

HOST side, stdlib only, python3 >= 3.8: shipped after runner.py's text (see fleet/agent/session.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

if __name__ != "fleet_agent":  # imported as a package module; shipped, the texts share a scope
    from fleet.agent.remote.host_files import Capture

DRAIN_SECONDS = 1.0  # once the child is reaped, how long leftovers may keep its pipes open
SAFETY_WAKEUP_SECONDS = 0.5  # the selector never sleeps longer than this while a child runs


def killpg_quietly(pgid: int, signum: int) -> None:
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
        killpg_quietly(self.pid, signal.SIGTERM)
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
            killpg_quietly(self.pid, signal.SIGKILL)
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
            killpg_quietly(self.pid, signal.SIGKILL)

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
