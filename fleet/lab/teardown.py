"""Remove exactly what a lab record says was started: sshd, processes, veths, namespaces, files."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from fleet.agent.remote.host_state import ROOT_STATE_DIR
from fleet.lab import netns, sshd
from fleet.lab.cleanup import remove_all, remove_recorded_files
from fleet.lab.state import HostRecord, LabRecord, state_path


def remove_lab(record: LabRecord, state_dir: Path) -> tuple[str, ...]:
    """Stop, delete, remove; what was removed, one line each. Safe to call twice.

    Every host is attempted even when another fails; state.json is kept (so `down` can be
    retried) and one LabError names the failures when anything could not be removed.
    """
    return remove_all(f"lab {record.lab_id}", state_dir,
                      [(h.name, partial(_remove_host, h)) for h in record.hosts],
                      partial(remove_recorded_files, record.files, record.dirs,
                              state_path(state_dir)))


def _remove_host(host: HostRecord) -> list[str]:
    removed = []
    pid = host.sshd_pid if host.sshd_pid is not None else sshd.read_pid_file(host.pid_file)
    if pid is not None and sshd.is_lab_sshd(pid, host.config_path):
        sshd.stop(pid)
        removed.append(f"stopped sshd pid {pid} ({host.name})")
    # sessions opened through that sshd (ssh, ansible) still live in the namespace
    for other in netns.pids_in_namespace(host.namespace):
        if other != os.getpid():
            sshd.stop(other)
            removed.append(f"stopped pid {other} in namespace {host.namespace}")
    removed += _remove_host_locks(host.namespace)
    removed += netns.delete(host)
    return removed


def _remove_host_locks(namespace: str, state_dir: Path = Path(ROOT_STATE_DIR)) -> list[str]:
    """The host lock files fleet agents made for this namespace (their processes are gone: the
    lock is free). A knob journal is left: it holds values still to be written back."""
    inode = netns.namespace_inode(namespace)
    if inode is None:
        return []
    removed = []
    for lock in sorted(state_dir.glob(f"host-*-{inode}.lock")):
        lock.unlink(missing_ok=True)
        removed.append(f"removed {lock}")
    return removed
