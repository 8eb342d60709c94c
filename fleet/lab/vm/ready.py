"""When is a guest ready: its forwarded port gives an SSH banner, then the lab key logs in and
the guest's boot has finished (udev queue empty: modules such as kvm_amd loaded; systemd done).

A QEMU that dies is noticed at every poll; every error names the guest's console log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fleet.errors import LabError, TransportError
from fleet.hosts import Host
from fleet.lab import sshd
from fleet.lab.vm import process as vm_process
from fleet.lab.vm.state import GuestRecord
from fleet.transport import connect

Restart = Callable[[GuestRecord], GuestRecord]  # stop a guest's QEMU, boot it afresh

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.25
# A guest's sshd under TCG re-execs itself for every connection before it sends its banner;
# on a loaded machine that can take seconds. Dropping a connection that is merely slow only
# adds load (and sshd's MaxStartups then drops new ones), so a silent connection is given
# longer each time, up to the cap; a refused or closed one is retried at the next poll.
FIRST_BANNER_WAIT_SECONDS = 2.0
MAX_BANNER_WAIT_SECONDS = 30.0
STATUS_BANNER_TIMEOUT_SECONDS = 15.0
LOGIN_TIMEOUT_SECONDS = 20.0
MIN_SETTLE_SECONDS = 5.0
# a booted guest shows its getty's prompt; sshd answers within seconds of it (20-40 s after
# QEMU starts; 15 s after it at a load average of 7 on 2 cores): 90 s later, it is stuck
LOGIN_PROMPT = "login:"
STUCK_AFTER_PROMPT_SECONDS = 90.0
# udevadm settle: coldplug events handled (kvm_amd loaded); --wait: every boot job done
BOOT_DONE = ("sh", "-c", "udevadm settle --timeout={t} && systemctl is-system-running --wait")
BOOT_STATES = ("running", "degraded")
# what the last probe of a guest's forwarded port saw, for the error when none gave a banner
PROBE_ANSWERS = {
    "closed": "the last probe was closed at once: the guest is reachable but nothing listens on "
              "its port 22",
    "silent": "the last probe got no answer: the guest's network may not be up",
}
# console lines worth quoting when a guest is late (systemd's unit failures, kernel oopses)
TROUBLE_MARKERS = ("[FAILED]", "Failed to start", "Dependency failed", "Oops", "BUG:")


def wait_ready(guests: tuple[GuestRecord, ...], *, client_key: Path, known_hosts: Path,
               started_at: float, timeout_seconds: float, say: Callable[[str], None],
               restart: Restart | None = None) -> tuple[GuestRecord, ...]:
    """Banner from every guest (polled together), then a finished boot on each.

    A guest whose console has shown its login prompt for ``STUCK_AFTER_PROMPT_SECONDS``
    without a banner is started again once by ``restart`` (said, with what its console and
    the last probe showed); the guests as they are at the end are returned.
    """
    deadline = started_at + timeout_seconds
    current = {guest.name: guest for guest in guests}
    probe = _Probe()
    pending = [guest.name for guest in guests]
    while pending:
        for name in list(pending):
            guest = current[name]
            fail_if_dead(guest)
            answer = probe.ask(guest, deadline)
            if answer == "ok":
                pending.remove(name)
                say(f"{name}: SSH banner after {time.monotonic() - started_at:.1f} s")
            elif restart is not None and probe.stuck(guest):
                console = vm_process.console_tail(Path(guest.console_log_path),
                                                  markers=TROUBLE_MARKERS)
                say(f"{name}: no SSH banner {STUCK_AFTER_PROMPT_SECONDS:g} s after its login "
                    f"prompt ({PROBE_ANSWERS[answer]}; console: {console}); starting it "
                    "again, once")
                current[name] = restart(guest)
                probe.restarted(name)
        if pending and time.monotonic() > deadline:
            late = current[pending[0]]
            _late(late, f"no SSH banner on {LOOPBACK}:{late.port} "
                        f"({PROBE_ANSWERS[probe.answers[late.name]]}; "
                        f"{len(pending)} of {len(guests)} guest(s) without one)", timeout_seconds)
        if pending:
            time.sleep(POLL_SECONDS)
    for guest in current.values():
        state = _boot_state(guest, client_key, known_hosts, deadline, timeout_seconds)
        note = "" if state == "running" else " (degraded: `systemctl --failed` tells why)"
        say(f"{guest.name}: ready after {time.monotonic() - started_at:.1f} s{note}")
    return tuple(current.values())


class _Probe:
    """Per guest: how long the next banner probe may wait, what the last one saw, since when
    the console shows the login prompt, and whether the guest was started again already."""

    def __init__(self) -> None:
        self.waits: dict[str, float] = {}
        self.answers: dict[str, str] = {}
        self.prompt_since: dict[str, float] = {}
        self.once: set[str] = set()

    def ask(self, guest: GuestRecord, deadline: float) -> str:
        wanted = self.waits.get(guest.name, FIRST_BANNER_WAIT_SECONDS)
        wait = max(min(wanted, deadline - time.monotonic()), POLL_SECONDS)
        answer = self.answers[guest.name] = sshd.banner(LOOPBACK, guest.port, wait)
        if answer == "silent":
            self.waits[guest.name] = min(2 * wait, MAX_BANNER_WAIT_SECONDS)
        return answer

    def stuck(self, guest: GuestRecord) -> bool:
        if guest.name in self.once:
            return False
        if not _shows_login_prompt(Path(guest.console_log_path)):
            return False
        since = self.prompt_since.setdefault(guest.name, time.monotonic())
        return time.monotonic() - since >= STUCK_AFTER_PROMPT_SECONDS

    def restarted(self, name: str) -> None:
        self.once.add(name)
        self.waits.pop(name, None)
        self.prompt_since.pop(name, None)


def _shows_login_prompt(console_log: Path) -> bool:
    tail = vm_process.console_tail(console_log, lines=1)
    return tail.endswith(LOGIN_PROMPT)


def _boot_state(guest: GuestRecord, client_key: Path, known_hosts: Path, deadline: float,
                timeout_seconds: float) -> str:
    remaining = max(deadline - time.monotonic(), MIN_SETTLE_SECONDS)
    host = Host(name=guest.name, address=LOOPBACK, port=guest.port, user="root",
                key_files=(str(client_key),), known_hosts_files=(str(known_hosts),),
                connect_timeout_seconds=min(LOGIN_TIMEOUT_SECONDS, remaining))
    argv = [*BOOT_DONE[:2], BOOT_DONE[2].format(t=int(remaining))]
    try:
        with connect(host) as transport:
            result = transport.run(argv, timeout_seconds=remaining + MIN_SETTLE_SECONDS)
    except TransportError as exc:
        fail_if_dead(guest)
        if time.monotonic() > deadline:
            _late(guest, "boot did not finish", timeout_seconds)
        tail = vm_process.console_tail(Path(guest.console_log_path))
        raise LabError(f"SSH login with the lab key failed: {exc.what}; console log "
                       f"{guest.console_log_path} ends: {tail or '(empty)'}", where=guest.name,
                       hint="check the seed (host key, authorized_keys) and sshd in the image"
                       ) from exc
    state = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    if state[0] not in BOOT_STATES:
        fail_if_dead(guest)
        if time.monotonic() > deadline:
            _late(guest, "boot did not finish", timeout_seconds)
        raise LabError(f"guest boot ended {state[0]!r} ({result.stderr.strip()[:200]}); console "
                       f"log {guest.console_log_path}", where=guest.name,
                       hint="log in and run `systemctl --failed`")
    return state[0]


def fail_if_dead(guest: GuestRecord) -> None:
    """LabError with the console log's last lines when the guest's QEMU is gone."""
    if guest.qemu_pid is not None and vm_process.is_lab_qemu(guest.qemu_pid, guest.pid_file):
        return
    tail = vm_process.console_tail(Path(guest.console_log_path))
    raise LabError(f"QEMU (pid {guest.qemu_pid}) exited during boot; console log "
                   f"{guest.console_log_path} ends: {tail or '(empty)'}", where=guest.name,
                   hint="check the kernel command line and the image")


def _late(guest: GuestRecord, what: str, timeout_seconds: float) -> None:
    tail = vm_process.console_tail(Path(guest.console_log_path), markers=TROUBLE_MARKERS)
    raise LabError(f"{what} within {timeout_seconds:g} s; console log "
                   f"{guest.console_log_path} ends: {tail or '(empty)'}", where=guest.name,
                   hint="give it more time (ready timeout) or check the image")
