"""What a lab is (public dataclasses) and what it started (state.json, the teardown record).

state.json is written before anything is created and again as each sshd is started, so
``lab_down`` can remove exactly what ``lab_up`` made, even after a crash halfway.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from fleet.errors import LabError

STATE_FORMAT_VERSION = 1
STATE_FILE = "state.json"
INVENTORY_FILE = "inventory.yml"
KNOWN_HOSTS_FILE = "known_hosts"
CLIENT_KEY_FILE = "client_ed25519"
AUTHORIZED_KEYS_FILE = "authorized_keys"
HOSTS_DIR = "hosts"


LabKind = Literal["netns", "vm"]


@dataclass(frozen=True)
class LabHost:
    """One lab host. A netns host has a namespace and an sshd PID on this machine; a vm host
    (a QEMU guest, its sshd inside) has neither, but a QEMU PID, a NUMA spec and a console log.
    """

    name: str
    namespace: str | None
    address: str
    port: int
    sshd_pid: int | None
    kind: LabKind = "netns"
    qemu_pid: int | None = None
    spec: str | None = None
    console_log_path: Path | None = None


@dataclass(frozen=True)
class LabState:
    lab_id: str
    state_dir: Path
    hosts: tuple[LabHost, ...]
    inventory_path: Path
    known_hosts_path: Path
    client_key_path: Path


@dataclass(frozen=True)
class HostStatus:
    """A netns host: namespace, sshd, port. A vm host (kind "vm"): qemu_alive and port_open
    (its sshd runs in the guest, so sshd_alive is the banner check and there is no namespace).
    """

    name: str
    namespace: str | None
    address: str
    port: int
    sshd_pid: int | None
    namespace_exists: bool
    sshd_alive: bool
    port_open: bool  # TCP connect from the root namespace AND an "SSH-2.0-" banner
    kind: LabKind = "netns"
    qemu_pid: int | None = None
    qemu_alive: bool | None = None  # None: not a vm host
    spec: str | None = None
    console_log_path: Path | None = None

    @property
    def healthy(self) -> bool:
        if self.kind == "vm":
            return bool(self.qemu_alive) and self.port_open
        return self.namespace_exists and self.sshd_alive and self.port_open


@dataclass(frozen=True)
class LabStatus:
    state_dir: Path
    lab_id: str | None  # None: no lab recorded in state_dir
    complete: bool  # lab_up finished (False: a partial lab, `up` or `down` will clean it)
    hosts: tuple[HostStatus, ...] = ()
    kind: LabKind | None = None  # None: no lab recorded

    @property
    def exists(self) -> bool:
        return self.lab_id is not None

    @property
    def healthy(self) -> bool:
        return self.complete and bool(self.hosts) and all(h.healthy for h in self.hosts)


@dataclass(frozen=True)
class HostRecord:
    """One planned/started lab host, as state.json keeps it. Paths are absolute."""

    name: str
    namespace: str
    veth_root: str  # root-namespace end
    veth_peer: str  # end inside the namespace
    root_address: str
    address: str
    prefix_len: int
    port: int
    config_path: str
    host_key_path: str
    pid_file: str
    log_path: str
    sshd_pid: int | None = None


@dataclass(frozen=True)
class LabRecord:
    lab_id: str
    subnet: str
    hosts: tuple[HostRecord, ...]
    files: tuple[str, ...]  # every file lab_up may write, absolute
    dirs: tuple[str, ...]  # directories lab_up may create, deepest first
    complete: bool = False
    format_version: int = field(default=STATE_FORMAT_VERSION)


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/fleet/lab, else ~/.local/state/fleet/lab (``environ`` defaults to os's)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "fleet" / "lab"


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def atomic_write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to a temp file beside ``path``, then os.replace it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_state_json(state_dir: Path, record: object) -> None:
    """state.json of either kind of lab (a dataclass record), written atomically, 0600."""
    text = json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"  # type: ignore[call-overload]
    atomic_write(state_path(state_dir), text, mode=0o600)


def read_state_json(state_dir: Path, *, hint: str) -> object | None:
    """The parsed state.json, or None when there is none; LabError (with ``hint``) if unreadable."""
    path = state_path(state_dir)
    try:
        return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read lab state: {exc}", where=str(path), hint=hint) from exc


def write_record(state_dir: Path, record: LabRecord) -> None:
    write_state_json(state_dir, record)


def recorded_kind(state_dir: Path) -> LabKind | None:
    """Which kind of lab state_dir holds: None (none), "netns" or "vm" (its state.json "kind")."""
    path = state_path(state_dir)
    raw = read_state_json(state_dir, hint="remove what the lab started by hand, then the file")
    if raw is None:
        return None
    kind = raw.get("kind", "netns") if isinstance(raw, dict) else None
    if kind == "netns":
        return "netns"
    if kind == "vm":
        return "vm"
    raise LabError(f"unknown lab kind {kind!r}", where=str(path),
                   hint="this state.json was not written by this fleet version")


def read_record(state_dir: Path) -> LabRecord | None:
    """The recorded lab, or None when state_dir holds none."""
    raw = read_state_json(
        state_dir, hint="remove the lab's namespaces by hand (ip netns list) and the file")
    return None if raw is None else _record_from_json(raw, state_path(state_dir))


def _record_from_json(raw: object, path: Path) -> LabRecord:
    try:
        if not isinstance(raw, dict) or raw.get("format_version") != STATE_FORMAT_VERSION:
            raise TypeError(f"expected format_version {STATE_FORMAT_VERSION}")
        hosts = tuple(HostRecord(**h) for h in raw["hosts"])
        return LabRecord(lab_id=raw["lab_id"], subnet=raw["subnet"], hosts=hosts,
                         files=tuple(raw["files"]), dirs=tuple(raw["dirs"]),
                         complete=bool(raw["complete"]),
                         format_version=raw["format_version"])
    except (KeyError, TypeError) as exc:
        raise LabError(f"unexpected lab state format: {exc}", where=str(path),
                       hint="this state.json was not written by this fleet version") from exc
