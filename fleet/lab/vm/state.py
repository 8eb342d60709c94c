"""The teardown record of a vm lab (state.json with "kind": "vm").

Written before any file or process exists, and again as each QEMU reports its PID, so
``vm_lab_down`` removes exactly what ``vm_lab_up`` made, even after a crash halfway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fleet.errors import LabError
from fleet.lab.state import read_state_json, state_path, write_state_json

VM_STATE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GuestRecord:
    """One planned/started guest. Paths are absolute strings (JSON round-trip)."""

    name: str
    spec: str
    port: int  # forwarded from 127.0.0.1 to the guest's port 22
    guest_dir: str
    overlay_path: str
    seed_path: str
    host_key_path: str
    qmp_path: str
    console_log_path: str
    pid_file: str
    argv: tuple[str, ...] = ()
    qemu_pid: int | None = None
    qemu_start_ticks: int | None = None  # /proc/PID/stat starttime: PID + this = one process


@dataclass(frozen=True)
class VmLabRecord:
    lab_id: str
    guests: tuple[GuestRecord, ...]
    files: tuple[str, ...]  # every file vm_lab_up may write, absolute
    dirs: tuple[str, ...]  # directories vm_lab_up may create, deepest first
    base_image: str
    complete: bool = False
    kind: Literal["vm"] = "vm"
    format_version: int = field(default=VM_STATE_FORMAT_VERSION)


def write_vm_record(state_dir: Path, record: VmLabRecord) -> None:
    write_state_json(state_dir, record)


def read_vm_record(state_dir: Path) -> VmLabRecord | None:
    """The recorded vm lab, or None when state_dir holds no lab at all."""
    path = state_path(state_dir)
    raw = read_state_json(
        state_dir, hint="stop the lab's qemu processes by hand, then remove the file")
    if raw is None:
        return None
    try:
        if not isinstance(raw, dict) or raw.get("kind") != "vm" \
                or raw.get("format_version") != VM_STATE_FORMAT_VERSION:
            raise TypeError(f"expected kind vm, format_version {VM_STATE_FORMAT_VERSION}")
        guests = tuple(GuestRecord(**{**g, "argv": tuple(g.get("argv", ()))})
                       for g in raw["guests"])
        return VmLabRecord(lab_id=raw["lab_id"], guests=guests, files=tuple(raw["files"]),
                           dirs=tuple(raw["dirs"]), base_image=raw["base_image"],
                           complete=bool(raw["complete"]))
    except (KeyError, TypeError) as exc:
        raise LabError(f"unexpected vm lab state format: {exc}", where=str(path),
                       hint="this state.json was not written by this fleet version") from exc


def check_base_unchanged(record: VmLabRecord, guest: GuestRecord) -> None:
    """A guest's overlay is only valid on the base image it was made on: one rebuilt or removed
    since (the image cache keeps one recipe's image) would boot a corrupt disk."""
    base, seed = Path(record.base_image), Path(guest.seed_path)
    try:
        rebuilt = base.stat().st_mtime > seed.stat().st_mtime  # the seed is written once, after
    except OSError:
        rebuilt = True
    if rebuilt:
        raise LabError(f"the lab's base image {base} was rebuilt or removed after guest "
                       f"{guest.name} was made: it cannot boot again on it", where=guest.name,
                       hint="fleet lab down, then fleet lab up")
