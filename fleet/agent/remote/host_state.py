"""fleet-agent's state on its host: the host lock and the knob journal.

HOST side, stdlib only, python3 >= 3.8: shipped after runner.py's text (see fleet/agent/session.py).

Where: one private directory, ``state_directory()``: ``/run/fleet-agent`` for root (a tmpfs, so a
reboot, which resets runtime knobs anyway, empties it); otherwise ``$XDG_RUNTIME_DIR/fleet-agent``,
or ``/tmp/fleet-agent-<uid>`` without one (then the lock only excludes agents of the same user:
knob writes need root anyway). ``$FLEET_AGENT_STATE_DIR`` overrides it (tests: over SSH the
controller's environment never reaches the agent). The directory is created 0700 and refused when
it is a symlink, someone else's, or open to others.

Which host: ``host_key()`` is the boot id plus the inode of the agent's network namespace
(``/proc/self/ns/net``). Two sessions to one server share one lock and one journal; the netns lab's
hosts (each an sshd in its own network namespace on one machine, sharing its /run and kernel) are
distinct hosts, so runs on different lab hosts never wait for each other.

The lock is ``flock(2)`` on ``host-<key>.lock`` (never removed: the lock lives on its inode), held
from a ``lock`` request until the agent exits (the kernel drops it even on SIGKILL). While held the
file says who holds it (one JSON object), so a waiting agent can name the holder.

The journal ``host-<key>.journal`` holds each knob's ORIGINAL value (what it read before the first
write of this session; later writes keep it) as JSON ``{"knobs": [{"path", "value"}]}``, replaced
atomically (temp file, fsync, rename, fsync of the directory) BEFORE the knob is written. A knob
restored by the controller leaves it. Only the lock holder writes it, so a journal found by the
next holder was left by a dead agent and is replayed (written back) before anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from typing import Any

if __name__ != "fleet_agent":  # imported as a package module; shipped, the texts share a scope
    from fleet.agent.remote.host_files import write_file

STATE_DIR_ENV = "FLEET_AGENT_STATE_DIR"
ROOT_STATE_DIR = "/run/fleet-agent"
HOLDER_MAX_BYTES = 4096


class StateError(OSError):
    """The state directory, the lock file or the journal cannot be used (one line)."""


def state_directory() -> str:
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return override
    if os.geteuid() == 0:
        return ROOT_STATE_DIR
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "fleet-agent")
    return f"/tmp/fleet-agent-{os.geteuid()}"  # noqa: S108 (private_directory checks it)


def private_directory(path: str) -> str:
    """``path`` created 0700, or refused unless it is our own private directory."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as e:
        raise StateError(f"cannot create {path}: {e.strerror or e}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise StateError(f"{path} must be a directory of uid {os.geteuid()} with mode 0700")
    return path


def host_key() -> str:
    """This host as the agent sees it: boot id and network namespace (see the module doc)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip().replace("-", "")[:12]
    except OSError:
        boot = "noboot"
    try:
        netns = str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        netns = "nonet"
    return f"{boot}-{netns}"


def knob_original(text: str) -> str:
    """A knob file's value to write back: the bracketed choice ("always [madvise] never" ->
    "madvise"), else the stripped text (the controller's execute_policy.current_value)."""
    stripped = text.strip()
    start = stripped.find("[")
    end = stripped.find("]", start + 1)
    return stripped[start + 1:end] if start >= 0 and end > start else stripped


class HostLock:
    """The host's lock file, opened once; ``try_take`` polls flock without blocking."""

    def __init__(self, directory: str, key: str) -> None:
        self.path = os.path.join(directory, f"host-{key}.lock")
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                              0o600)
        except OSError as e:
            raise StateError(f"cannot open {self.path}: {e.strerror or e}") from None
        self.held = False

    def try_take(self, holder: dict[str, Any]) -> bool:
        if self.held:
            return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as e:
            raise StateError(f"cannot lock {self.path}: {e.strerror or e}") from None
        self.held = True
        data = json.dumps(holder, separators=(",", ":")).encode("ascii")[:HOLDER_MAX_BYTES]
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        return True

    def holder(self) -> dict[str, Any] | None:
        """Who holds it, as its holder wrote (None: unreadable or being written)."""
        try:
            data = os.pread(self.fd, HOLDER_MAX_BYTES, 0)
            found = json.loads(data)
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def close(self) -> None:
        os.close(self.fd)  # releases the flock


class KnobJournal:
    """Original values of the knobs this agent changed, kept on disk before each first write."""

    def __init__(self, directory: str, key: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, f"host-{key}.journal")
        self.entries: dict[str, str] = {}  # path -> original value, in first-write order

    def left_behind(self) -> tuple[dict[str, str], str | None]:
        """What a dead agent left in the file, and why it could not be read (None: it was, or
        there is none). An unreadable journal is moved aside, never dropped; raises StateError
        when it cannot be."""
        try:
            with open(self.path, encoding="utf-8") as f:
                knobs = json.load(f).get("knobs", [])
            return {str(k["path"]): str(k["value"]) for k in knobs}, None
        except FileNotFoundError:
            return {}, None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            aside = f"{self.path}.unreadable-{int(time.time())}"
            try:
                os.rename(self.path, aside)
            except OSError as moving:
                raise StateError(f"the knob journal {self.path} cannot be read ({e}) nor moved "
                                 f"aside: {moving.strerror or moving}") from None
            return {}, (f"the knob journal a dead agent left cannot be read "
                        f"({type(e).__name__}: {e}); kept as {aside}: the knobs it held were "
                        "not written back, check them by hand")

    def record(self, path: str, original: str) -> None:
        """Keep ``original`` durably before ``path`` is first written (a later one is kept)."""
        if path in self.entries:
            return
        self._save(dict(self.entries, **{path: original}))
        self.entries[path] = original

    def forget(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self._save(self.entries)

    def restore(self, entries: dict[str, str]) -> list[dict[str, Any]]:
        """Write each original back; keep on disk only those that failed (for the next agent)."""
        done = []
        for path, value in entries.items():
            outcome = write_file(path, value)
            done.append({"path": path, "value": value, "error": outcome["error"]})
        self.entries = {d["path"]: d["value"] for d in done if d["error"] is not None}
        self._save(self.entries)
        return done

    def _save(self, entries: dict[str, str]) -> None:
        if not entries:
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            except OSError as e:
                raise StateError(f"cannot remove {self.path}: {e.strerror or e}") from None
            return
        body = {"knobs": [{"path": p, "value": v} for p, v in entries.items()],
                "agent_pid": os.getpid(), "saved_wall_seconds": time.time()}
        temp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                         | os.O_NOFOLLOW, 0o600)
            try:
                view = memoryview(json.dumps(body).encode("ascii"))
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, self.path)
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise StateError(f"cannot save the knob journal {self.path}: "
                             f"{e.strerror or e}") from None


class HostGuard:
    """The agent's lock and journal together: opened at the first ``lock`` request."""

    def __init__(self) -> None:
        self.lock: HostLock | None = None
        self.journal: KnobJournal | None = None

    @property
    def held(self) -> bool:
        return self.lock is not None and self.lock.held

    def open(self) -> HostLock:
        """The lock file (opened once); raises StateError."""
        if self.lock is None:
            directory, key = private_directory(state_directory()), host_key()
            self.lock = HostLock(directory, key)
            self.journal = KnobJournal(directory, key)
        return self.lock

    def take(self, holder: dict[str, Any]) -> list[dict[str, Any]] | None:
        """None while another agent holds the lock; once taken, the knobs a dead agent left
        changed, each written back ({path, value, error}); raises StateError."""
        if not self.open().try_take(holder):
            return None
        assert self.journal is not None
        left, unreadable = self.journal.left_behind()
        done = self.journal.restore(left) if left else []
        if unreadable is not None:
            done.append({"path": self.journal.path, "value": "", "error": unreadable})
        return done

    def before_knob_write(self, path: str) -> str | None:
        """Journal ``path``'s original value before its first write; the reason it must not be
        written (None: go ahead)."""
        if not self.held or self.journal is None:
            return "knob writes need the host lock: send a lock request first"
        if path in self.journal.entries:
            return None
        try:
            with open(path, "rb") as f:
                text = f.read(HOLDER_MAX_BYTES).decode("utf-8", errors="replace")
        except OSError as e:
            return f"cannot read its original value: {e.strerror or e}"
        try:
            self.journal.record(path, knob_original(text))
        except StateError as e:
            return f"cannot journal its original value: {e}"
        return None

    def restored(self, path: str) -> None:
        """The controller wrote the original back: the entry leaves the journal."""
        if self.journal is not None:
            with contextlib.suppress(StateError):  # kept: at exit it writes the same value
                self.journal.forget(path)

    def restore_all(self) -> list[dict[str, Any]]:
        """Write every journaled knob back (the controller is gone); raises StateError."""
        if self.journal is None or not self.journal.entries:
            return []
        return self.journal.restore(dict(self.journal.entries))
