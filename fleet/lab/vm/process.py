"""QEMU processes of a vm lab: overlay, start, identify by PID, QMP quit, verified stop.

A QEMU is only ever signalled after /proc/PID/cmdline shows it is a qemu-system binary started
with this guest's own -pidfile, so a recycled PID is never killed.
"""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import BinaryIO

from fleet.errors import LabError
from fleet.lab import sshd
from fleet.lab.command import run

QEMU_IMG = "qemu-img"
INSTALL_HINT = "install qemu-system-x86 and qemu-utils (scripts/bootstrap does)"
START_TIMEOUT_SECONDS = 60.0  # the daemonising parent returns once the guest is set up
QMP_TIMEOUT_SECONDS = 2.0
QUIT_WAIT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05
MAX_PORT_TRIES = 50
CONSOLE_TAIL_LINES = 3
MAX_CONSOLE_LINE_CHARS = 160
PANIC_MARKER = "Kernel panic - not syncing"


def pick_port(taken: Collection[int]) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that is not in ``taken``."""
    for _ in range(MAX_PORT_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port
    raise LabError("no free TCP port on 127.0.0.1", where="fleet lab",
                   hint="free some ports on the loopback address")


def image_format(path: Path) -> str:
    """The format of a disk image as qemu-img detects it (the base image is raw ext4)."""
    info = json.loads(run([QEMU_IMG, "info", "--output=json", str(path)], where=str(path),
                          hint=INSTALL_HINT))
    fmt = info.get("format") if isinstance(info, dict) else None
    if not isinstance(fmt, str):
        raise LabError("qemu-img reports no format", where=str(path),
                       hint="rebuild the lab image (fleet.lab.image.rootfs)")
    return fmt


def create_overlay(base_image: Path, base_format: str, overlay: Path) -> None:
    """A qcow2 overlay backed by the shared base image (which is never written)."""
    overlay.unlink(missing_ok=True)
    run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", str(base_image), "-F", base_format,
         str(overlay)], where=str(overlay), hint=INSTALL_HINT)


def start(argv: Sequence[str], name: str, console_log: Path) -> None:
    """Run the daemonising qemu; it returns once the guest is set up, or fails with a reason
    (QEMU's own error lines, not the long argv)."""
    hint = (f"QEMU could not set this guest up on this machine (console log {console_log}); "
            "check the accelerator and the lab image")
    run(argv, where=name, hint=hint, timeout_seconds=START_TIMEOUT_SECONDS, what="QEMU",
        doing="starting", missing_hint=INSTALL_HINT, skip_marker="warning:")


def is_lab_qemu(pid: int, pid_file: str) -> bool:
    """True when ``pid`` is alive and is the qemu started with ``-pidfile pid_file``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    args = raw.decode("utf-8", "replace").split("\0")
    if not args or not Path(args[0]).name.startswith("qemu-system"):
        return False
    pairs = itertools.pairwise(args)
    return any(a == "-pidfile" and b == pid_file for a, b in pairs) and _running(pid)


def _running(pid: int) -> bool:
    """Any thread of ``pid`` not yet dead. A killed multi-threaded QEMU shows its main thread
    as a zombie while the other threads still exit, holding its sockets and files open.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text(encoding="ascii", errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        state = stat.rsplit(")", 1)[-1].split()
        if state and state[0] not in {"Z", "X"}:
            return True
    return False


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot, /proc/PID/stat field 22): with the PID it
    names one process for good, even while it exits (when its cmdline is already empty).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def wait_exited(pid: int, timeout_seconds: float = QUIT_WAIT_SECONDS) -> bool:
    """Wait (never signal) until every thread of ``pid`` is gone; False on timeout."""
    return _wait_gone(pid, timeout_seconds)


def qmp_quit(qmp_path: Path) -> bool:
    """Ask QEMU to quit over its QMP socket; False when the socket does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(QMP_TIMEOUT_SECONDS)
            conn.connect(str(qmp_path))
            reader = conn.makefile("rb")
            _qmp_reply(reader, "QMP")  # the greeting
            for command in ("qmp_capabilities", "quit"):
                conn.sendall(json.dumps({"execute": command}).encode() + b"\n")
                _qmp_reply(reader, "return")
    except (OSError, ValueError):
        return False
    return True


def _qmp_reply(reader: BinaryIO, key: str) -> None:
    """Read QMP messages until one carrying ``key`` (events in between are skipped)."""
    for _ in range(100):
        line = reader.readline()
        if not line:
            raise ValueError("QMP connection closed")
        message = json.loads(line)
        if isinstance(message, dict) and "error" in message:
            raise ValueError(f"QMP error: {message['error']}")
        if isinstance(message, dict) and key in message:
            return
    raise ValueError(f"no QMP {key!r} message")


def stop(pid: int, pid_file: str, qmp_path: Path) -> str:
    """QMP quit, wait; then SIGTERM/SIGKILL by PID. Returns how it stopped."""
    if qmp_quit(qmp_path) and _wait_gone(pid, QUIT_WAIT_SECONDS):
        return "quit over QMP"
    if is_lab_qemu(pid, pid_file):
        sshd.stop(pid)  # SIGTERM, then SIGKILL; raises if its main thread survives
        if not _wait_gone(pid, QUIT_WAIT_SECONDS):  # ... and its other threads, sockets
            raise LabError(f"qemu pid {pid} is still exiting after SIGKILL", where="lab",
                           hint="wait a moment and run `fleet lab down` again")
        return "signalled"
    return "already gone"


def _wait_gone(pid: int, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_SECONDS)
    return True


def console_tail(path: Path, lines: int = CONSOLE_TAIL_LINES,
                 markers: tuple[str, ...] = ()) -> str:
    """The last non-empty lines of a console log joined with ' | ' ('' when there are none),
    after the kernel's panic reason when it panicked (its stack trace follows that line) and
    the last lines holding one of ``markers`` (e.g. systemd's "[FAILED]"), at most three.
    """
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    kept = [" ".join(line.split())[:MAX_CONSOLE_LINE_CHARS] for line in text.splitlines()]
    kept = [line for line in kept if line]
    tail = kept[-lines:]
    flagged = [line for line in kept[:-lines] if any(m in line for m in markers)]
    if flagged:
        tail = [*flagged[-CONSOLE_TAIL_LINES:], "...", *tail]
    panics = [line for line in kept if PANIC_MARKER in line]
    if panics and panics[-1] not in tail:
        tail = [panics[-1], "...", *tail]
    return " | ".join(tail)


def memory_available_mib(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_binaries(qemu_binary: str) -> None:
    for binary in (qemu_binary, QEMU_IMG):
        if shutil.which(binary) is None:
            raise LabError(f"{binary} not found", where="fleet lab --numa", hint=INSTALL_HINT)
