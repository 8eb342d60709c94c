"""vm_lab_up / vm_lab_down / vm_lab_status: QEMU guests with real NUMA topologies.

One guest per spec (fleet.lab.vm.topologies), each a qcow2 overlay on a shared base image,
with its own SSH host key delivered in a seed tar, root login by the lab's client key and its
port 22 forwarded from 127.0.0.1 only. Guests boot in parallel; a guest is ready when its
forwarded port answers with an SSH banner. Everything is recorded in state.json before it is
started; ``vm_lab_down`` stops each QEMU by QMP ``quit`` (then signals, by verified PID) and
removes exactly the recorded files. No root is needed (TCG, user-mode networking).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Protocol

from fleet.errors import LabError
from fleet.lab import sshd
from fleet.lab.cleanup import build_or_clean
from fleet.lab.files import render_known_hosts
from fleet.lab.state import (
    CLIENT_KEY_FILE,
    INVENTORY_FILE,
    KNOWN_HOSTS_FILE,
    HostStatus,
    LabHost,
    LabState,
    LabStatus,
    atomic_write,
    recorded_kind,
)
from fleet.lab.vm import process as vm_process
from fleet.lab.vm.files import power_command, render_vm_inventory, write_seed
from fleet.lab.vm.lock import UNSAFE_PATH_CHARS, locked_state_dir
from fleet.lab.vm.qemu import (
    ACCELS,
    DEFAULT_CMDLINE,
    Accel,
    BootFiles,
    GuestDefinition,
    build_argv,
)
from fleet.lab.vm.ready import LOOPBACK, STATUS_BANNER_TIMEOUT_SECONDS, wait_ready
from fleet.lab.vm.state import (
    GuestRecord,
    VmLabRecord,
    check_base_unchanged,
    read_vm_record,
    write_vm_record,
)
from fleet.lab.vm.teardown import clean_after_failure, remove_vm_lab
from fleet.lab.vm.topologies import GuestTopology, known_specs, resolve

Progress = Callable[[str], None]
GuestHook = Callable[[GuestDefinition], GuestDefinition]  # for tests: alter a guest before boot

GUESTS_DIR = "guests"
HOST_MEMORY_RESERVE_MIB = 1024
MAX_UNIX_SOCKET_PATH = 107


class BootImage(Protocol):
    """What a guest boots from (fleet.lab.image.rootfs.RootfsImage has these fields)."""

    @property
    def base_image(self) -> Path: ...
    @property
    def kernel(self) -> Path: ...
    @property
    def initrd(self) -> Path: ...


@dataclass(frozen=True)
class _Build:
    """What building one lab needs besides its record."""

    state_dir: Path
    topologies: tuple[GuestTopology, ...]
    image: BootImage
    accel: Accel
    timeout_seconds: float
    say: Progress
    hook: GuestHook | None


def vm_lab_up(specs: Sequence[str], state_dir: Path, *, image: BootImage,
              memory_mib: int | None = None, cpus: int | None = None, accel: str = "tcg",
              ready_timeout_seconds: float = 240, progress: Progress | None = None,
              guest_hook: GuestHook | None = None) -> LabState:
    """Boot one guest per spec, recorded in ``state_dir``; or return the healthy lab there.

    ``memory_mib`` and ``cpus`` are per guest. A failure tears down everything this call
    started and raises LabError (a readiness error names the guest's console log).
    """
    state_dir = _check_state_dir(state_dir)
    topologies = _resolve_all(specs, cpus, memory_mib)
    accel_kind = _check_accel(accel)
    say = progress or _silent
    with locked_state_dir(state_dir) as created_now:
        existing = _reuse_or_clear(state_dir, tuple(specs))
        if existing is not None:
            say(f"vm lab {existing.lab_id} is already up in {state_dir}")
            return _lab_state(existing, state_dir)
        created = created_now or not state_dir.exists()  # a cleared lab may have removed it
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _preflight(image, topologies)
        record = _plan(topologies, state_dir, image, create_state_dir=created)
        build = _Build(state_dir=state_dir, topologies=topologies, image=image,
                       accel=accel_kind, timeout_seconds=ready_timeout_seconds, say=say,
                       hook=guest_hook)
        record = _build_or_clean(record, build)
    return _lab_state(record, state_dir)


def vm_lab_down(state_dir: Path) -> tuple[str, ...]:
    """Stop every recorded QEMU and remove every recorded file; () when there is no lab."""
    state_dir = Path(state_dir).resolve()
    if recorded_kind(state_dir) is None:
        return ()
    _require_vm_lab(state_dir)
    with locked_state_dir(state_dir):
        record = read_vm_record(state_dir)
        return () if record is None else remove_vm_lab(record, state_dir)


def vm_power_cycle(state_dir: Path, name: str) -> int:
    """Power-cycle one guest: stop its QEMU (if it still runs) and launch its recorded argv
    again, on the same disk; it boots the lab's kernel (the last good one). Returns the new
    QEMU PID; does not wait for SSH."""
    state_dir = Path(state_dir).resolve()
    _require_vm_lab(state_dir)
    with locked_state_dir(state_dir):
        record = read_vm_record(state_dir)
        names = [g.name for g in record.guests] if record is not None else []
        if record is None or name not in names:
            raise LabError(f"no guest {name} in this lab (guests: {', '.join(names) or 'none'})",
                           where=str(state_dir), hint="see fleet lab status")
        index = names.index(name)
        guest = record.guests[index]
        check_base_unchanged(record, guest)
        if guest.qemu_pid is not None and vm_process.is_lab_qemu(guest.qemu_pid, guest.pid_file):
            vm_process.stop(guest.qemu_pid, guest.pid_file, Path(guest.qmp_path))
        record = _with_guest(record, index, qemu_pid=None, qemu_start_ticks=None)
        write_vm_record(state_dir, record)
        record = _launch(record, index, state_dir)
        pid = record.guests[index].qemu_pid
        assert pid is not None
        return pid


def vm_lab_status(state_dir: Path) -> LabStatus:
    """Per guest: QEMU alive (verified PID), SSH banner on its port, console log path."""
    state_dir = Path(state_dir).resolve()
    if recorded_kind(state_dir) is None:
        return LabStatus(state_dir=state_dir, lab_id=None, complete=False)
    _require_vm_lab(state_dir)
    record = read_vm_record(state_dir)
    if record is None:
        return LabStatus(state_dir=state_dir, lab_id=None, complete=False)
    return LabStatus(state_dir=state_dir, lab_id=record.lab_id, complete=record.complete,
                     hosts=tuple(_guest_status(g) for g in record.guests), kind="vm")


def _guest_status(guest: GuestRecord) -> HostStatus:
    pid = guest.qemu_pid if guest.qemu_pid is not None else sshd.read_pid_file(guest.pid_file)
    alive = pid is not None and vm_process.is_lab_qemu(pid, guest.pid_file)
    # probe only a live guest's port: once QEMU is gone the port may be anyone's
    port_open = alive and sshd.banner_ok(LOOPBACK, guest.port,
                                         STATUS_BANNER_TIMEOUT_SECONDS)
    return HostStatus(name=guest.name, namespace=None, address=LOOPBACK, port=guest.port,
                      sshd_pid=None, namespace_exists=False, sshd_alive=port_open,
                      port_open=port_open, kind="vm", qemu_pid=pid, qemu_alive=alive,
                      spec=guest.spec, console_log_path=Path(guest.console_log_path))


def _silent(_message: str) -> None:
    return None


def _check_state_dir(state_dir: Path) -> Path:
    resolved = Path(state_dir).resolve()
    if UNSAFE_PATH_CHARS.search(str(resolved)):
        raise LabError("state directory path has whitespace, quotes, ',' or '#'",
                       where=str(resolved), hint="choose a plain path for the lab state")
    longest = resolved / GUESTS_DIR / "vm00-2n-asym" / "qmp.sock"
    if len(str(longest)) > MAX_UNIX_SOCKET_PATH:
        raise LabError("state directory path is too long for QEMU's QMP socket",
                       where=str(resolved), hint="choose a shorter --dir")
    return resolved


def _resolve_all(specs: Sequence[str], cpus: int | None,
                 memory_mib: int | None) -> tuple[GuestTopology, ...]:
    if isinstance(specs, str) or not specs:
        raise LabError("no NUMA spec given", where="fleet lab --numa",
                       hint=f"give one or more of: {', '.join(known_specs())}")
    return tuple(resolve(spec, cpus=cpus, memory_mib=memory_mib) for spec in specs)


def _check_accel(accel: str) -> Accel:
    for known in ACCELS:
        if accel == known:
            return known
    raise LabError(f"unknown accelerator {accel!r}", where="fleet lab --accel",
                   hint=f"use one of: {', '.join(ACCELS)}")


def _require_vm_lab(state_dir: Path) -> None:
    if recorded_kind(state_dir) == "netns":
        raise LabError("this state directory holds a netns lab, not a vm lab",
                       where=str(state_dir), hint="use `fleet lab down` / `fleet lab status`")


def _reuse_or_clear(state_dir: Path, specs: tuple[str, ...]) -> VmLabRecord | None:
    """The existing vm lab when healthy with these specs; clear a broken one; else refuse."""
    kind = recorded_kind(state_dir)
    if kind is None:
        return None
    if kind == "netns":
        raise LabError("this state directory already holds a netns lab", where=str(state_dir),
                       hint="run `fleet lab down` first, or use another --dir")
    record = read_vm_record(state_dir)
    if record is None:
        return None
    if vm_lab_status(state_dir).healthy:
        if tuple(g.spec for g in record.guests) == specs:
            return record
        have = ",".join(g.spec for g in record.guests)
        raise LabError(f"vm lab {record.lab_id} ({have}) is already up", where=str(state_dir),
                       hint="run `fleet lab down` first, or use another --dir")
    remove_vm_lab(record, state_dir)
    return None


def _preflight(image: BootImage, topologies: Sequence[GuestTopology]) -> None:
    vm_process.require_binaries("qemu-system-x86_64")
    for path in (image.base_image, image.kernel, image.initrd):
        if not Path(path).is_file():
            raise LabError("lab image file is missing", where=str(path),
                           hint="build the image again (fleet.lab.image.rootfs.ensure_rootfs)")
    wanted = sum(t.memory_mib for t in topologies)
    available = vm_process.memory_available_mib()
    if available is not None and wanted + HOST_MEMORY_RESERVE_MIB > available:
        raise LabError(f"the guests need {wanted} MiB but only {available} MiB are available",
                       where="fleet lab --numa", hint="boot fewer guests or pass --memory")


def _plan(topologies: Sequence[GuestTopology], state_dir: Path, image: BootImage, *,
          create_state_dir: bool) -> VmLabRecord:
    """The names, ports and files of every guest (ports are free now, checked again by QEMU)."""
    guests: list[GuestRecord] = []
    files: list[str] = []
    dirs: list[str] = []
    for index, topology in enumerate(topologies):
        name = f"vm{index + 1}-{topology.spec}"
        d = state_dir / GUESTS_DIR / name
        port = vm_process.pick_port({g.port for g in guests})
        guest = GuestRecord(
            name=name, spec=topology.spec, port=port, guest_dir=str(d),
            overlay_path=str(d / "disk.qcow2"), seed_path=str(d / "seed.tar"),
            host_key_path=str(d / "ssh_host_ed25519_key"), qmp_path=str(d / "qmp.sock"),
            console_log_path=str(d / "console.log"), pid_file=str(d / "qemu.pid"))
        guests.append(guest)
        files += [guest.overlay_path, guest.seed_path, guest.host_key_path,
                  f"{guest.host_key_path}.pub", guest.qmp_path, guest.console_log_path,
                  guest.pid_file]
        dirs.append(guest.guest_dir)
    dirs.append(str(state_dir / GUESTS_DIR))
    if create_state_dir:
        dirs.append(str(state_dir))
    client_key = state_dir / CLIENT_KEY_FILE
    files += [str(client_key), f"{client_key}.pub", str(state_dir / KNOWN_HOSTS_FILE),
              str(state_dir / INVENTORY_FILE)]
    return VmLabRecord(lab_id=secrets.token_hex(3), guests=tuple(guests), files=tuple(files),
                       dirs=tuple(dirs), base_image=str(image.base_image))


def _build_or_clean(record: VmLabRecord, build: _Build) -> VmLabRecord:
    state_dir = build.state_dir
    write_vm_record(state_dir, record)
    return build_or_clean("vm lab", state_dir, partial(_build, record, build),
                          partial(clean_after_failure, record, state_dir))


def _build(record: VmLabRecord, build: _Build) -> VmLabRecord:
    for directory in reversed(record.dirs):
        Path(directory).mkdir(mode=0o700, exist_ok=True)
    client_key = build.state_dir / CLIENT_KEY_FILE
    sshd.generate_key(client_key, f"fleet-lab-{record.lab_id}")
    authorized_keys = f"{sshd.public_key(client_key)}\n"
    base_image = Path(build.image.base_image)
    base_format = vm_process.image_format(base_image)
    for guest in record.guests:
        sshd.generate_key(Path(guest.host_key_path), f"fleet-lab-{record.lab_id}-{guest.name}")
        write_seed(Path(guest.seed_path), hostname=guest.name,
                   host_key=Path(guest.host_key_path), authorized_keys=authorized_keys)
        vm_process.create_overlay(base_image, base_format, Path(guest.overlay_path))
    _write_client_files(record, build.topologies, build.state_dir)
    started_at = time.monotonic()
    for index in range(len(record.guests)):
        record = _start_guest(record, index, build)
    holder = [record]
    wait_ready(record.guests, client_key=client_key,
               known_hosts=build.state_dir / KNOWN_HOSTS_FILE, started_at=started_at,
               timeout_seconds=build.timeout_seconds, say=build.say,
               restart=partial(_restart_guest, holder, build, base_format))
    record = replace(holder[0], complete=True)
    write_vm_record(build.state_dir, record)
    return record


def _start_guest(record: VmLabRecord, index: int, build: _Build) -> VmLabRecord:
    """Record the argv, start QEMU (it daemonises), record its PID."""
    guest, topology = record.guests[index], build.topologies[index]
    definition = GuestDefinition(
        name=guest.name, topology=topology,
        boot=BootFiles(kernel=Path(build.image.kernel), initrd=Path(build.image.initrd),
                       cmdline=DEFAULT_CMDLINE),
        disk=Path(guest.overlay_path), seed=Path(guest.seed_path), ssh_port=guest.port,
        qmp_socket=Path(guest.qmp_path), console_log=Path(guest.console_log_path),
        pid_file=Path(guest.pid_file), accel=build.accel)
    if build.hook is not None:
        definition = build.hook(definition)
    record = _with_guest(record, index, argv=build_argv(definition))
    write_vm_record(build.state_dir, record)
    build.say(f"{guest.name}: booting {len(topology.nodes)} nodes, {topology.cpu_count} CPUs, "
              f"{topology.memory_mib} MiB; SSH will be on {LOOPBACK}:{guest.port}")
    return _launch(record, index, build.state_dir)


def _launch(record: VmLabRecord, index: int, state_dir: Path) -> VmLabRecord:
    """Start the guest's recorded argv (QEMU daemonises), then record its PID."""
    guest = record.guests[index]
    vm_process.start(guest.argv, guest.name, Path(guest.console_log_path))
    pid = sshd.read_pid_file(guest.pid_file)
    if pid is None:
        raise LabError("QEMU started but wrote no PID file", where=guest.name,
                       hint=f"see the console log {guest.console_log_path}")
    record = _with_guest(record, index, qemu_pid=pid, qemu_start_ticks=vm_process.start_ticks(pid))
    write_vm_record(state_dir, record)
    return record


def _restart_guest(holder: list[VmLabRecord], build: _Build, base_format: str,
                   guest: GuestRecord) -> GuestRecord:
    """Stop a stuck guest's QEMU and boot it again from a fresh overlay (same seed, port and
    argv); the record is rewritten with the new PID before wait_ready goes on."""
    if guest.qemu_pid is not None:
        vm_process.stop(guest.qemu_pid, guest.pid_file, Path(guest.qmp_path))
    vm_process.create_overlay(Path(build.image.base_image), base_format,
                              Path(guest.overlay_path))
    index = [g.name for g in holder[0].guests].index(guest.name)
    record = _with_guest(holder[0], index, qemu_pid=None, qemu_start_ticks=None)
    write_vm_record(build.state_dir, record)
    record = holder[0] = _launch(record, index, build.state_dir)
    return record.guests[index]


def _with_guest(record: VmLabRecord, index: int, **changes: object) -> VmLabRecord:
    guests = list(record.guests)
    guests[index] = replace(guests[index], **changes)  # type: ignore[arg-type]
    return replace(record, guests=tuple(guests))


def _write_client_files(record: VmLabRecord, topologies: Sequence[GuestTopology],
                        state_dir: Path) -> None:
    entries = [(LOOPBACK, g.port, sshd.public_key(Path(g.host_key_path)))
               for g in record.guests]
    known_hosts = state_dir / KNOWN_HOSTS_FILE
    atomic_write(known_hosts, render_known_hosts(entries))
    inventory = render_vm_inventory(record.lab_id, list(zip(record.guests, topologies,
                                                            strict=True)),
                                    client_key=state_dir / CLIENT_KEY_FILE,
                                    known_hosts=known_hosts,
                                    power_command=power_command(state_dir))
    atomic_write(state_dir / INVENTORY_FILE, inventory)


def _lab_state(record: VmLabRecord, state_dir: Path) -> LabState:
    hosts = tuple(LabHost(name=g.name, namespace=None, address=LOOPBACK, port=g.port,
                          sshd_pid=None, kind="vm", qemu_pid=g.qemu_pid, spec=g.spec,
                          console_log_path=Path(g.console_log_path)) for g in record.guests)
    return LabState(lab_id=record.lab_id, state_dir=state_dir, hosts=hosts,
                    inventory_path=state_dir / INVENTORY_FILE,
                    known_hosts_path=state_dir / KNOWN_HOSTS_FILE,
                    client_key_path=state_dir / CLIENT_KEY_FILE)
