"""Readable renderings (rich renderables). Nothing here prints: fleet/cli/main.py does."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from fleet.codec import to_jsonable
from fleet.facts.parsers import format_cpulist
from fleet.lab.state import LabStatus
from fleet.model import (
    MISSING_TEXT,
    Assignment,
    Case,
    Facts,
    HostOutcome,
    HugePagePool,
    NumaNode,
    Plan,
)
from fleet.plan.order import variant_text
from fleet.plan.provisioning import GroupProvisioning

MISSING = MISSING_TEXT


def format_cpus(cpus: Sequence[int]) -> str:
    """(0, 1, 2, 5, 7, 8) -> '0-2,5,7-8' (the kernel's cpulist form); () -> '-'."""
    return format_cpulist(cpus) if cpus else MISSING


def format_bytes(value: int | None) -> str:
    if value is None:
        return MISSING
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_pools(pools: Sequence[HugePagePool]) -> str:
    parts = []
    for p in sorted(pools, key=lambda p: p.page_size_bytes):
        total = MISSING if p.total_pages is None else str(p.total_pages)
        free = MISSING if p.free_pages is None else str(p.free_pages)
        parts.append(f"{format_bytes(p.page_size_bytes).replace('.0 ', ' ')}:{total}/{free}free")
    return " ".join(parts) or "-"


def _opt(value: object) -> str:
    return MISSING if value is None else str(value)


def hosts_table(facts: Sequence[Facts]) -> Table:
    table = Table(title="Hosts", title_justify="left")
    for col in ("host", "kernel", "cpu", "sockets", "nodes", "cpus", "memory", "THP",
                "numa_balancing", "kvm", "iommu groups", "fingerprint"):
        table.add_column(col, overflow="fold")
    for f in facts:
        kvm = ("yes" if f.kvm.dev_kvm else "no") + (
            f" ({f.cpu.virtualization})" if f.cpu.virtualization else "")
        table.add_row(
            f.host, _opt(f.kernel_release), _opt(f.cpu.model_name),
            str(len(f.topology.socket_ids)), str(len(f.topology.nodes)),
            str(f.topology.cpu_count), format_bytes(f.mem_total_bytes), _opt(f.thp_enabled),
            _opt(f.numa_balancing), kvm, str(len(f.iommu.groups)) if f.iommu.present else "none",
            f.fingerprint)
    return table


def nodes_table(facts: Sequence[Facts]) -> Table:
    table = Table(title="NUMA nodes", title_justify="left")
    for col in ("host", "node", "cpus", "memory", "free", "hugepages total/free", "distances"):
        table.add_column(col, overflow="fold")
    for f in facts:
        for node in f.topology.nodes:
            table.add_row(f.host, str(node.node_id), format_cpus(node.cpus),
                          format_bytes(node.mem_total_bytes), format_bytes(node.mem_free_bytes),
                          format_pools(node.hugepages), _distances(node))
    return table


def _distances(node: NumaNode) -> str:
    return " ".join(str(d) for d in node.distances) or MISSING


def outcomes_view(outcomes: Sequence[HostOutcome]) -> RenderableType:
    good = [o.facts for o in outcomes if o.facts is not None]
    parts: list[RenderableType] = []
    if good:
        parts += [hosts_table(good), nodes_table(good)]
        warnings = [f"{f.host}: {w}" for f in good for w in f.warnings]
        parts += [Text(f"warning: {w}", style="yellow") for w in warnings]
    parts += [Text(f"unreachable: {o.error}", style="bold red") for o in outcomes if o.error]
    return Group(*parts)


def lab_status_view(status: LabStatus) -> RenderableType:
    if not status.exists:
        return Text(f"no lab in {status.state_dir} (create one with: fleet lab up N)")
    table = Table(title=f"Lab {status.lab_id} ({status.kind}) in {status.state_dir}"
                  + ("" if status.complete else " (partial: run `fleet lab up` or `down`)"),
                  title_justify="left")
    vm = status.kind == "vm"
    columns = (("host", "address", "spec", "qemu pid", "qemu", "ssh", "health", "console log")
               if vm else
               ("host", "address", "namespace", "sshd pid", "netns", "sshd", "ssh port", "health"))
    for col in columns:
        table.add_column(col, overflow="fold")
    for h in status.hosts:
        health = Text("healthy", style="green") if h.healthy else Text("BROKEN", style="red")
        if vm:
            table.add_row(h.name, f"{h.address}:{h.port}", _opt(h.spec), _opt(h.qemu_pid),
                          _yes(bool(h.qemu_alive)), _yes(h.port_open), health,
                          _opt(h.console_log_path))
        else:
            table.add_row(h.name, f"{h.address}:{h.port}", _opt(h.namespace), _opt(h.sshd_pid),
                          _yes(h.namespace_exists), _yes(h.sshd_alive), _yes(h.port_open),
                          health)
    return table


def lab_status_data(status: LabStatus) -> dict[str, object]:
    data: dict[str, object] = to_jsonable(status)
    data["healthy"] = status.healthy
    hosts = data["hosts"]
    assert isinstance(hosts, list)
    for entry, host in zip(hosts, status.hosts, strict=True):
        entry["healthy"] = host.healthy
    return data


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _params_text(case: Case) -> str:
    parts = [f"{k}={v}" for k, v in (*case.params, *case.knobs, *case.variant)]
    return " ".join(parts) or "-"


def provisioning_view(needed: Sequence[GroupProvisioning]) -> RenderableType:
    """Per host, each variant group it is not in yet: how (knob: the run sets it; a declared
    kernel variant: the run provisions it before the group; other reloads, kexecs, reboots:
    `fleet provision` first; unknown, impossible: said why), case by case."""
    table = Table(title="Provisioning (per host, variant groups the host is not in yet)",
                  title_justify="left")
    for col in ("host", "group", "variant", "cases", "how", "steps"):
        table.add_column(col, overflow="fold")
    for g in needed:
        steps = "; ".join(s.text() for s in g.provisioning.steps)
        how = g.provisioning.how or "-"
        table.add_row(g.host, str(g.group + 1), variant_text(g.variant), ",".join(g.case_ids),
                      how, steps, style=None if how == "knob" else "yellow")
    return table


def _letter(number: int) -> str:
    return chr(ord("A") + number) if number < 26 else f"V{number + 1}"


def _order_parts(plan: Plan) -> tuple[dict[str, str], Text | None]:
    """host -> its groups' variants in queue order as letters (A B A B), and the legend;
    ({}, None) when no host has more than one group."""
    if all(len(q.groups) < 2 for q in plan.queues):
        return {}, None
    letters: dict[Assignment, str] = {}
    for variant in [c.variant for c in plan.cases] + [g.variant for q in plan.queues
                                                      for g in q.groups]:
        letters.setdefault(variant, _letter(len(letters)))
    used = {g.variant for q in plan.queues for g in q.groups}
    legend = ", ".join(f"{letter} = {variant_text(v)}" for v, letter in letters.items()
                       if v in used)
    return ({q.host: " ".join(letters[g.variant] for g in q.groups) for q in plan.queues},
            Text(f"variant groups: {legend}"))


def _per_host(plan: Plan, needed: Sequence[GroupProvisioning]) -> list[RenderableType]:
    """Runs, variant groups (their order, when a host has several: A B A B), switches (groups
    the run or `fleet provision` must bring the host onto first), estimate."""
    order, legend = _order_parts(plan)
    table = Table(title="Per host", title_justify="left")
    columns = ("host", "runs", "variant groups", *(("group order",) if order else ()),
               *(("switches",) if needed else ()), "estimate")
    for col in columns:
        table.add_column(col, overflow="fold")
    for q in plan.queues:
        switches = sum(1 for g in needed if g.host == q.host and g.provisioning.blocking)
        table.add_row(q.host, str(len(q.entries)), str(len(q.groups)),
                      *((order[q.host],) if order else ()),
                      *((str(switches),) if needed else ()), f"{q.estimate_seconds:.0f} s")
    return [table] if legend is None else [table, legend]


def plan_view(plan: Plan, needed: Sequence[GroupProvisioning] = ()) -> RenderableType:
    cases = {c.case_id: c for c in plan.cases}
    skipped = {s.case_id for s in plan.skipped}
    table = Table(title=f"Plan for suite {plan.suite} (seed {plan.seed})", title_justify="left")
    for col in ("case", "workload", "parameters", "reps", "hosts"):
        table.add_column(col, overflow="fold")
    hosts_of: dict[str, set[str]] = {}
    for q in plan.queues:
        for e in q.entries:
            hosts_of.setdefault(e.case_id, set()).add(q.host)
    for case in plan.cases:
        where = ("skipped" if case.case_id in skipped
                 else ",".join(sorted(hosts_of.get(case.case_id, ()))))
        table.add_row(case.case_id, case.workload, _params_text(case), str(case.repetitions),
                      where)
    parts: list[RenderableType] = [table]
    parts += _per_host(plan, needed)
    if needed:
        parts.append(provisioning_view(needed))
    parts += [Text(f"note: {note}", style="yellow") for note in plan.notes]
    for s in plan.skipped:
        parts.append(Text(f"skipped {s.case_id} ({cases[s.case_id].workload}): {s.reason}",
                          style="yellow"))
    for name in plan.hosts_without_facts:
        parts.append(Text(f"not planned: {name} has no stored facts (run: fleet facts)",
                          style="yellow"))
    planned = len(plan.cases) - len(plan.skipped)
    parts.append(Text(f"{planned} of {len(plan.cases)} case(s) planned, {plan.entry_count} run(s) "
                      f"on {len(plan.queues)} host(s); estimated makespan "
                      f"{plan.estimate_seconds:.0f} s, total work {plan.work_seconds:.0f} s"))
    return Group(*parts)
