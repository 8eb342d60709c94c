"""Probe a host's kernel over fleet's transport, and wait for it to come back from a boot.

A boot is over when the host answers with a boot id other than the one it had before (the old
kernel may still answer for a moment after the jump was scheduled). A kernel panic on the
host's console log (when the inventory names one) ends the wait early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from fleet.errors import FleetError, ProvisionError
from fleet.hosts import Host
from fleet.transport import connect
from fleet.variant import PROBE_SCRIPT, HostKernel, parse_probe

POLL_SECONDS = 3.0
PROBE_TIMEOUT_SECONDS = 30.0
MAX_CONNECT_SECONDS = 10.0
# a host that answers may still be loading modules (kvm_amd): its identity is read once udev's
# queue is empty and systemd's boot jobs are done (or after this long)
SETTLE_SECONDS = 120
SETTLE = ("sh", "-c", f"udevadm settle --timeout={SETTLE_SECONDS}; "
          f"timeout {SETTLE_SECONDS} systemctl is-system-running --wait; true")
PANIC_MARKERS = ("Kernel panic - not syncing", "end Kernel panic")
CONSOLE_TAIL_LINES = 6
CONSOLE_READ_BYTES = 64 * 1024
Progress = Callable[[str], None]


def probe(host: Host, *, connect_timeout_seconds: float | None = None) -> HostKernel:
    """What the host runs now (one SSH round-trip). TransportError when it cannot be reached."""
    if connect_timeout_seconds is not None:
        host = replace(host, connect_timeout_seconds=connect_timeout_seconds)
    with connect(host) as transport:
        result = transport.run(["sh", "-c", PROBE_SCRIPT], timeout_seconds=PROBE_TIMEOUT_SECONDS)
    if not result.ok:
        raise ProvisionError(f"the kernel probe failed: {result.stderr.strip()[:200]}",
                             where=host.name, hint="the host needs a POSIX sh and /proc")
    return parse_probe(result.stdout, host.name)


def _settled(host: Host, seen: HostKernel) -> HostKernel:
    """The host's kernel once its boot has settled (the first probe's if it cannot be asked)."""
    try:
        with connect(host) as transport:
            transport.run(list(SETTLE), timeout_seconds=2 * SETTLE_SECONDS + PROBE_TIMEOUT_SECONDS)
        settled = probe(host)
    except FleetError:
        return seen
    return settled if settled.boot_id == seen.boot_id else seen


def read_host_file(host: Host, path: str) -> str | None:
    """A small file on the host, or None when it is not there."""
    with connect(host) as transport:
        result = transport.run(["cat", path], timeout_seconds=PROBE_TIMEOUT_SECONDS)
    return result.stdout if result.ok else None


@dataclass(frozen=True)
class Console:
    """The host's console log on the controller, and where this boot's lines start."""

    path: Path | None
    offset: int = 0

    @staticmethod
    def mark(path: Path | None) -> Console:
        if path is None:
            return Console(None)
        try:
            return Console(path, path.stat().st_size)
        except OSError:
            return Console(path, 0)

    def text(self) -> str:
        if self.path is None:
            return ""
        try:
            with self.path.open("rb") as f:
                size = f.seek(0, 2)
                start = self.offset if size >= self.offset else 0  # truncated: a new log
                f.seek(max(start, size - CONSOLE_READ_BYTES))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def panicked(self) -> bool:
        text = self.text()
        return any(marker in text for marker in PANIC_MARKERS)

    def tail(self) -> str:
        """This boot's panic line (if any), then its last console lines, joined with ' | '
        ('' without a console log): a panic's last lines are its stack trace."""
        lines = [text for line in self.text().splitlines() if (text := " ".join(line.split()))]
        last = lines[-CONSOLE_TAIL_LINES:]
        panic = next((line for line in lines if any(m in line for m in PANIC_MARKERS[:1])), None)
        first = [panic] if panic is not None and panic not in last else []
        return " | ".join(first + last)


def wait_new_boot(host: Host, old_boot_id: str, *, timeout_seconds: float, console: Console,
                  progress: Progress) -> HostKernel | str:
    """The host's kernel once it answers from a new boot; else why not (a one-line reason)."""
    started = time.monotonic()
    deadline = started + timeout_seconds
    last = "no SSH answer"
    while time.monotonic() < deadline:
        if console.panicked():
            return "the kernel panicked (console log)"
        remaining = deadline - time.monotonic()
        try:
            seen = probe(host, connect_timeout_seconds=max(1.0, min(MAX_CONNECT_SECONDS,
                                                                    remaining)))
        except FleetError as exc:
            last = f"no SSH answer ({exc.what})"
        else:
            if seen.boot_id != old_boot_id:
                progress(f"{host.name}: back after {time.monotonic() - started:.0f} s on "
                         f"{seen.kernel_release}")
                return _settled(host, seen)
            last = "still the old boot"
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return f"not back within {timeout_seconds:g} s ({last})"
