"""`fleet provision`: desired state from the inventory, one probe per host, Ansible only for
the hosts not in state.

The steps, in order: read the fleet_* variables (bad values stop here, exit 2); refuse
persistent changes on hosts that share this machine's kernel and root fs; probe every host
once (in parallel, fleet's own transport); compare in pure code (a setting the host lacks
stops here, nothing applied); run each step's playbook for the hosts not in state only
(``--limit`` to them); report per host. ``STEPS`` is a list so later steps (kernel variants,
boot) run the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import FleetError, ProvisionError
from fleet.hosts import Host
from fleet.provision.ansible import (
    PLAYBOOKS_DIR,
    HostRecap,
    PlaybookRequest,
    TaskEvent,
    run_playbook,
)
from fleet.provision.compare import Difference, differences, files_to_probe
from fleet.provision.desired import DesiredState
from fleet.provision.probe import ProbedState, parse_probe, probe_argv
from fleet.provision.report import HostReport, ProvisionReport, host_status
from fleet.transport import connect

PROBE_TIMEOUT_SECONDS = 30.0
Progress = Callable[[str, str], None]  # (host, what happened)


@dataclass(frozen=True)
class Step:
    name: str
    playbook: Path


STEPS: tuple[Step, ...] = (Step("host", PLAYBOOKS_DIR / "host.yml"),)


@dataclass(frozen=True)
class ProvisionRequest:
    inventory: tuple[Path, ...]
    limit: str | None = None
    check: bool = False
    diff: bool = False


def refuse_shared_hosts(desired: Sequence[DesiredState]) -> None:
    """Persistent state, or PCI devices taken from their drivers, on a host that shares this
    machine's kernel and root fs: refused."""
    for d in desired:
        if d.shared_host and d.shared_host_refused and not d.allow_shared_host_changes:
            raise ProvisionError(
                f"{', '.join(d.shared_host_refused)}: refused on a network-namespace lab host "
                "(it shares this machine's kernel and root filesystem)", where=d.host,
                hint="set fleet_allow_shared_host_changes: true for it to allow this")


def refuse_conflicting_shared_hosts(desired: Sequence[DesiredState]) -> None:
    """Network-namespace hosts share one kernel: hugepages and THP are one setting for all."""
    seen: dict[str, tuple[str, str]] = {}  # setting -> (host, value)
    for d in (d for d in desired if d.shared_host):
        settings = [(f"hugepages node{p.node} {p.size_kb}kB", str(p.count)) for p in d.hugepages]
        settings += [(f"thp {name}", value) for name, value in d.thp]
        for setting, value in settings:
            first = seen.setdefault(setting, (d.host, value))
            if first[1] != value:
                raise ProvisionError(
                    f"{setting}: {value} here but {first[1]} on {first[0]}, and both share this "
                    "machine's kernel (network-namespace lab hosts)", where=d.host,
                    hint="declare one value for all of them (group vars)")


def refuse_shared_installs(desired: DesiredState, found: Sequence[Difference]) -> None:
    missing = [d.item for d in found if d.role == "tools"]
    if missing and desired.shared_host and not desired.allow_shared_host_changes:
        raise ProvisionError(
            f"fleet_tools: installing {', '.join(missing)} refused on a network-namespace lab "
            "host (it would change this machine's root filesystem)", where=desired.host,
            hint="install them here yourself, or set fleet_allow_shared_host_changes: true")


def probe_state(host: Host, desired: DesiredState) -> ProbedState:
    """One command on the host reads every file the comparison needs and the packages."""
    with connect(host) as transport:
        result = transport.run(probe_argv(files_to_probe(desired), desired.tools,
                                          desired.vfio_devices),
                               timeout_seconds=PROBE_TIMEOUT_SECONDS)
    if not result.ok:
        detail = (result.stderr.strip().splitlines() or ["no stderr"])[-1]
        raise ProvisionError(f"state probe exited {result.exit_code}: {detail}", where=host.name)
    return parse_probe(result.stdout, host=host.name)


def probe_all(hosts: Sequence[Host], desired: Mapping[str, DesiredState]
              ) -> dict[str, ProbedState | str]:
    """host -> its state, or the one line why it could not be probed."""
    def one(host: Host) -> ProbedState | str:
        try:
            return probe_state(host, desired[host.name])
        except FleetError as exc:
            return exc.line()

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(hosts)))) as pool:
        return dict(zip((h.name for h in hosts), pool.map(one, hosts), strict=True))


def provision(request: ProvisionRequest, hosts: Sequence[Host],
              desired: Mapping[str, DesiredState], *, progress: Progress | None = None
              ) -> ProvisionReport:
    """Bring ``hosts`` into their desired state (``request.check``: only say what would change)."""
    started = time.time()
    note = progress or (lambda host, text: None)
    refuse_shared_hosts(list(desired.values()))
    refuse_conflicting_shared_hosts([desired[h.name] for h in hosts])
    probed = probe_all(hosts, desired)
    found: dict[str, tuple[Difference, ...]] = {}
    for name, state in probed.items():
        if isinstance(state, ProbedState):
            found[name] = differences(desired[name], state)
            refuse_shared_installs(desired[name], found[name])
    pending = [h.name for h in hosts if not isinstance(probed[h.name], ProbedState)
               or found[h.name]]
    for name in (h.name for h in hosts):
        note(name, "in state" if name not in pending else
             f"probe failed: {probed[name]}" if name not in found else
             "; ".join(d.describe() for d in found[name]))
    recaps = _run_steps(request, pending, note) if pending else {}
    reports = tuple(_host_report(h.name, probed[h.name], found.get(h.name, ()), recaps)
                    for h in hosts)
    return ProvisionReport(started_at_unix_seconds=started, finished_at_unix_seconds=time.time(),
                           inventory=request.inventory, limit=request.limit,
                           check=request.check, hosts=reports, ansible_hosts=tuple(pending))


def _run_steps(request: ProvisionRequest, pending: Sequence[str], note: Progress
               ) -> dict[str, HostRecap]:
    said: set[tuple[str, str, str]] = set()

    def event(task: TaskEvent) -> None:
        """Changes and failures as they happen (a loop's summary repeats its item: once)."""
        key = (task.host, task.task, task.status)
        if task.status in ("changed", "failed", "unreachable") and key not in said:
            said.add(key)
            role = f"{task.role}: " if task.role else ""
            text = f"{role}{task.task}: {task.status}"
            note(task.host, f"{text}: {task.message}" if task.message else text)

    recaps: dict[str, HostRecap] = {}
    remaining = list(pending)
    for step in STEPS:
        if not remaining:
            break
        result = run_playbook(PlaybookRequest(
            playbook=step.playbook, inventory=request.inventory, limit=",".join(remaining),
            check=request.check, diff=request.diff, host_count=len(remaining)), on_event=event)
        if not result.hosts:
            raise ProvisionError(f"ansible-playbook ended {result.status} (exit {result.rc}) "
                                 "before any host reported", where=str(step.playbook),
                                 hint="run ansible-playbook --syntax-check on it")
        for recap in result.hosts:
            recaps[recap.host] = _merge(recaps.get(recap.host), recap)
        remaining = [h for h in remaining if h in recaps and recaps[h].succeeded]
    return recaps


def _merge(before: HostRecap | None, after: HostRecap) -> HostRecap:
    if before is None:
        return after
    return HostRecap(host=after.host, ok=before.ok + after.ok,
                     changed=before.changed + after.changed, failed=after.failed,
                     unreachable=after.unreachable, skipped=before.skipped + after.skipped,
                     failed_task=after.failed_task, message=after.message)


def _host_report(name: str, state: ProbedState | str, found: tuple[Difference, ...],
                 recaps: Mapping[str, HostRecap]) -> HostReport:
    probe_error = state if isinstance(state, str) else None
    if probe_error is None and not found:
        return HostReport(host=name, status="in_state")
    recap = recaps.get(name)
    return HostReport(host=name, status=host_status(recap), differences=found, recap=recap,
                      probe_error=probe_error)
