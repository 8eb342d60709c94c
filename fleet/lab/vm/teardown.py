"""Remove exactly what a vm lab record says was started: QEMU processes, then files, dirs."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fleet.errors import LabError
from fleet.lab import sshd
from fleet.lab.cleanup import remove_all, remove_recorded_files
from fleet.lab.state import state_path
from fleet.lab.vm import process as vm_process
from fleet.lab.vm.state import GuestRecord, VmLabRecord, read_vm_record


def remove_vm_lab(record: VmLabRecord, state_dir: Path) -> tuple[str, ...]:
    """Stop, remove; what was removed, one line each. Safe to call twice.

    Every guest is attempted even when another fails; state.json is kept (so `down` can be
    retried) and one LabError names the failures when anything could not be stopped.
    """
    return remove_all(f"vm lab {record.lab_id}", state_dir,
                      [(g.name, partial(_stop_guest, g)) for g in record.guests],
                      partial(remove_recorded_files, record.files, record.dirs,
                              state_path(state_dir)))


def clean_after_failure(record: VmLabRecord, state_dir: Path, cause: BaseException) -> None:
    """After a failed up: remove what the latest record (with PIDs so far) says was started."""
    latest = read_vm_record(state_dir) or record
    try:
        remove_vm_lab(latest, state_dir)
    except LabError as cleanup:
        raise LabError(f"{cause}; cleanup also failed: {cleanup.what}", where=str(state_dir),
                       hint=cleanup.hint) from cause


def _stop_guest(guest: GuestRecord) -> list[str]:
    pid = guest.qemu_pid if guest.qemu_pid is not None else sshd.read_pid_file(guest.pid_file)
    if pid is None:
        return []
    if vm_process.is_lab_qemu(pid, guest.pid_file):
        how = vm_process.stop(pid, guest.pid_file, Path(guest.qmp_path))
        return [f"stopped qemu pid {pid} of {guest.name} ({how})"]
    if guest.qemu_start_ticks is not None and \
            vm_process.start_ticks(pid) == guest.qemu_start_ticks:
        # killed and still exiting (cmdline already empty, threads holding its port): wait
        if not vm_process.wait_exited(pid):
            raise LabError(f"qemu pid {pid} is still exiting", where=guest.name,
                           hint="wait a moment and run `fleet lab down` again")
        return [f"waited for qemu pid {pid} of {guest.name} to exit"]
    return []
