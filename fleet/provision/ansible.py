"""The ansible_runner adapter: run one playbook against inventory hosts, events per host.

The only module that imports ansible_runner (lazily). Ansible runs as a child process with
fleet's speed settings (pipelining, ControlPersist, forks sized to the hosts) and with host key
checking on; its output is never printed: each task result per host reaches ``on_event`` as a
:class:`TaskEvent`, and the run ends with one :class:`HostRecap` per host, so one failed or
unreachable host never hides the others. The runner's private directory (which holds the extra
variables) is a fresh 0700 temporary directory, removed afterwards.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleet.config.inventory.ssh_config import user_config
from fleet.errors import ProvisionError

TaskStatus = Literal["ok", "changed", "failed", "unreachable", "skipped"]
_MESSAGE_CHARS = 300
PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent.parent / "playbooks"


@dataclass(frozen=True)
class PlaybookRequest:
    """One ansible-playbook run: ``extravars`` reach the playbook as variables (never a shell)."""

    playbook: Path
    inventory: tuple[Path, ...]
    limit: str | None = None
    extravars: Mapping[str, object] = field(default_factory=dict)
    check: bool = False
    diff: bool = False
    forks: int | None = None  # None: one per host, at most 50
    host_count: int = 1
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class TaskEvent:
    """One task's result on one host."""

    host: str
    task: str
    role: str | None
    status: TaskStatus
    message: str | None = None  # the failing or unreachable task's message, one line


@dataclass(frozen=True)
class HostRecap:
    """A host's totals at the end of the run, and its first failure."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    failed_task: str | None = None
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass(frozen=True)
class PlaybookResult:
    """``status`` is ansible-runner's (successful, failed, canceled, timeout)."""

    status: str
    rc: int | None
    hosts: tuple[HostRecap, ...]


_STATUS_BY_EVENT: Mapping[str, TaskStatus] = {
    "runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped", "runner_item_on_failed": "failed",
}


def ansible_environment(host_count: int, scratch: Path) -> dict[str, str]:
    """fleet's Ansible settings: fast (pipelining, one SSH master per host) and strict."""
    return {
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": _ssh_args(),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(scratch / "cp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_FORKS": str(max(1, min(host_count, 50))),
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS_DIR / "roles"),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_LOCAL_TEMP": str(scratch / "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        # ansible-playbook from fleet's own environment first
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
    }


def _ssh_args() -> str:
    """One SSH master per host; the same ~/.ssh/config ($HOME's) as fleet's own transport."""
    args = ["-o", "ControlMaster=auto", "-o", "ControlPersist=120s"]
    config = user_config()
    if config is not None:
        args += ["-F", str(config)]
    return shlex.join(args)


def run_playbook(request: PlaybookRequest, *,
                 on_event: Callable[[TaskEvent], None] | None = None,
                 cancel: threading.Event | None = None) -> PlaybookResult:
    """Run the playbook; every task result per host goes to ``on_event`` as it happens."""
    if not request.playbook.is_file():
        raise ProvisionError("playbook not found", where=str(request.playbook),
                             hint="reinstall fleet: playbooks/ ships with it")
    import ansible_runner

    collector = _Collector(on_event)
    with tempfile.TemporaryDirectory(prefix="fleet-ansible-") as scratch_name:
        scratch = Path(scratch_name)
        os.chmod(scratch, 0o700)
        (scratch / "tmp").mkdir()
        (scratch / "cp").mkdir()
        (scratch / "runner").mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(scratch / "runner"),
            playbook=str(request.playbook.resolve()),
            inventory=[str(p.resolve()) for p in request.inventory],
            limit=request.limit,
            extravars=dict(request.extravars),
            cmdline=_cmdline(request),
            forks=request.forks or max(1, min(request.host_count, 50)),
            envvars=ansible_environment(request.host_count, scratch),
            quiet=True,
            event_handler=collector.event,
            cancel_callback=cancel.is_set if cancel is not None else (lambda: False),
            timeout=int(request.timeout_seconds) if request.timeout_seconds else None,
            suppress_env_files=True,
        )
        return PlaybookResult(status=str(runner.status), rc=runner.rc, hosts=collector.recaps())


def _cmdline(request: PlaybookRequest) -> str | None:
    flags = [*(["--check"] if request.check else []), *(["--diff"] if request.diff else [])]
    return " ".join(flags) or None


class _Collector:
    """Turns runner events into TaskEvents and per-host totals (the runner calls it from one
    thread; the lock keeps recaps() safe from another)."""

    def __init__(self, on_event: Callable[[TaskEvent], None] | None) -> None:
        self._on_event = on_event
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._first_failure: dict[str, tuple[str, str | None]] = {}
        self._stats: dict[str, dict[str, int]] | None = None

    def event(self, event: Mapping[str, Any]) -> bool:
        name = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if name == "playbook_on_stats":
            self._record_stats(data)
        task = task_event(name, data)
        if task is not None:
            self._record(task)
            if self._on_event is not None:
                self._on_event(task)
        return False  # the runner need not keep the event's stdout

    def _record(self, task: TaskEvent) -> None:
        with self._lock:
            counts = self._counts.setdefault(task.host, {})
            counts[task.status] = counts.get(task.status, 0) + 1
            if task.status in ("failed", "unreachable") and task.host not in self._first_failure:
                self._first_failure[task.host] = (task.task, task.message)

    def _record_stats(self, data: Mapping[str, Any]) -> None:
        stats: dict[str, dict[str, int]] = {}
        for key, status in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                            ("dark", "unreachable"), ("skipped", "skipped")):
            for host, count in (data.get(key) or {}).items():
                stats.setdefault(str(host), {})[status] = int(count)
        with self._lock:
            self._stats = stats

    def recaps(self) -> tuple[HostRecap, ...]:
        with self._lock:
            totals = self._stats if self._stats is not None else self._counts
            hosts = sorted(set(totals) | set(self._first_failure))
            return tuple(_recap(h, totals.get(h, {}), self._first_failure.get(h)) for h in hosts)


def _recap(host: str, counts: Mapping[str, int],
           failure: tuple[str, str | None] | None) -> HostRecap:
    return HostRecap(host=host, ok=counts.get("ok", 0), changed=counts.get("changed", 0),
                     failed=counts.get("failed", 0), unreachable=counts.get("unreachable", 0),
                     skipped=counts.get("skipped", 0),
                     failed_task=failure[0] if failure else None,
                     message=failure[1] if failure else None)


def task_event(name: str, data: Mapping[str, Any]) -> TaskEvent | None:
    """A runner event as a TaskEvent (None for events that are not a task result)."""
    status = _STATUS_BY_EVENT.get(name)
    host = data.get("host")
    if status is None or not host:
        return None
    result = data.get("res") or {}
    if status == "ok" and result.get("changed"):
        status = "changed"
    message = _message(result) if status in ("failed", "unreachable") else None
    if name == "runner_on_failed" and data.get("ignore_errors"):
        status, message = "ok", None
    return TaskEvent(host=str(host), task=str(data.get("task") or ""),
                     role=str(data["role"]) if data.get("role") else None,
                     status=status, message=message)


def _message(result: Mapping[str, Any]) -> str | None:
    """The one line that says why: Ansible's ``msg`` (with the module's first stderr line when
    the module itself failed), else the command's stderr or stdout."""
    items = result.get("results")
    if isinstance(items, list):  # a loop: its summary ("One or more items failed") says less
        for item in items:
            if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable")):
                return _message(item)
    keys: tuple[str, ...] = ("msg", "stderr", "stdout", "module_stderr")
    if result.get("msg") == "non-zero return code":  # a command's own words say more
        keys = ("stderr", "stdout", "msg")
    lines = [" ".join(t.split()) for t in (result.get(k) for k in keys)
             if isinstance(t, str) and t.strip()]
    if not lines:
        return None
    line = lines[0]
    module_stderr = result.get("module_stderr")
    if isinstance(module_stderr, str) and module_stderr.strip() and len(lines) > 1:
        first = next(ln.strip() for ln in module_stderr.splitlines() if ln.strip())
        line = f"{line}: {first}"
    return line if len(line) <= _MESSAGE_CHARS else line[:_MESSAGE_CHARS - 3] + "..."


def describe_recaps(recaps: Sequence[HostRecap]) -> str:
    """'a ok=3 changed=1, b unreachable' for logs and errors."""
    parts = []
    for r in recaps:
        if r.unreachable:
            parts.append(f"{r.host} unreachable")
        else:
            parts.append(f"{r.host} ok={r.ok} changed={r.changed} failed={r.failed}")
    return ", ".join(parts)
