"""Frozen dataclasses carried between layers. Stdlib only; units are in the field names.

A value that could not be read is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# how every text output (CLI tables, Markdown, JUnit, HTML) shows a value that is None
MISSING_TEXT = "-"


def percent_text(ratio: float | None) -> str:
    """A relative change as every text output shows it: 0.123 -> '+12.3%'."""
    return MISSING_TEXT if ratio is None else f"{ratio * 100:+.1f}%"


def p_value_text(p_value: float | None) -> str:
    """A p-value as every text output shows it: 0.0123 -> '0.012'."""
    return MISSING_TEXT if p_value is None else f"{p_value:.2g}"


@dataclass(frozen=True)
class HugePagePool:
    """Huge pages of one size on one NUMA node (or system-wide)."""

    page_size_bytes: int
    total_pages: int | None
    free_pages: int | None
    surplus_pages: int | None = None


@dataclass(frozen=True)
class NumaNode:
    node_id: int
    cpus: tuple[int, ...]
    mem_total_bytes: int | None
    mem_free_bytes: int | None
    distances: tuple[int, ...]  # row of the distance matrix, ordered like Topology.node_ids
    hugepages: tuple[HugePagePool, ...] = ()
    sec_page_tables_bytes: int | None = None


@dataclass(frozen=True)
class Topology:
    nodes: tuple[NumaNode, ...]
    socket_ids: tuple[int, ...]  # distinct physical package ids

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n.node_id for n in self.nodes)

    @property
    def cpu_count(self) -> int:
        return sum(len(n.cpus) for n in self.nodes)

    def node(self, node_id: int) -> NumaNode:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def distance(self, from_node: int, to_node: int) -> int | None:
        row = self.node(from_node).distances
        idx = self.node_ids.index(to_node)
        return row[idx] if idx < len(row) else None


@dataclass(frozen=True)
class CpuInfo:
    vendor: str | None
    model_name: str | None
    microcode: str | None
    logical_cpus: int
    flags: tuple[str, ...] = ()

    @property
    def virtualization(self) -> str | None:
        if "vmx" in self.flags:
            return "vmx"
        if "svm" in self.flags:
            return "svm"
        return None


@dataclass(frozen=True)
class KvmModule:
    name: str  # kvm, kvm_intel, kvm_amd
    parameters: tuple[tuple[str, str], ...]  # sorted (name, value)
    # sorted (name, whether its mode has the owner write bit: settable at runtime); None: the
    # modes were not probed (facts stored before fleet recorded them, or `ls` failed there)
    writable: tuple[tuple[str, bool], ...] | None = None

    def value(self, param: str) -> str | None:
        """The parameter's value as the kernel prints it, or None: no such parameter."""
        return dict(self.parameters).get(param)

    def is_writable(self, param: str) -> bool | None:
        """Whether ``param`` can be set at runtime; None: unknown (no mode recorded)."""
        return None if self.writable is None else dict(self.writable).get(param)


@dataclass(frozen=True)
class KvmInfo:
    dev_kvm: bool
    modules: tuple[KvmModule, ...]

    @property
    def available(self) -> bool:
        return self.dev_kvm


@dataclass(frozen=True)
class IommuGroup:
    group_id: int
    devices: tuple[str, ...]  # PCI addresses, e.g. 0000:00:02.0


@dataclass(frozen=True)
class IommuInfo:
    present: bool  # /sys/class/iommu has at least one unit, or groups exist
    groups: tuple[IommuGroup, ...]


@dataclass(frozen=True)
class Facts:
    """What fleet knows about one host at one instant."""

    host: str
    collected_at_unix_seconds: float
    hostname: str | None
    kernel_release: str | None
    kernel_cmdline: str | None
    cpu: CpuInfo
    topology: Topology
    mem_total_bytes: int | None
    hugepages: tuple[HugePagePool, ...]  # system-wide pools
    thp_enabled: str | None  # the bracketed mode: always / madvise / never
    thp_defrag: str | None
    numa_balancing: int | None
    kvm: KvmInfo
    iommu: IommuInfo
    fingerprint: str
    probe_seconds: float | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostOutcome:
    """Facts or the reason a host could not report them."""

    host: str
    facts: Facts | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.facts is not None


def comparable_fields(facts: Facts) -> Mapping[str, object]:
    """The fields whose equality makes two hosts' results comparable (fingerprint input).

    Node memory is left out: a node's MemTotal drifts (a ballooned or hot-plugged VM, memory
    the kernel reserves) and would make the same host "not like for like" minutes later; the
    facts keep it (``NumaNode.mem_total_bytes``) for reports and ``requires``. KVM module
    parameters (values, not their modes) are in: ``eager_page_split=N`` is another setup."""
    return {
        "cpu_model": facts.cpu.model_name,
        "microcode": facts.cpu.microcode,
        "nodes": [(n.node_id, list(n.cpus)) for n in facts.topology.nodes],
        "distances": [list(n.distances) for n in facts.topology.nodes],
        "sockets": list(facts.topology.socket_ids),
        "kernel_release": facts.kernel_release,
        "kernel_cmdline": facts.kernel_cmdline,
        "thp_enabled": facts.thp_enabled,
        "kvm_parameters": kvm_parameters(facts),
    }


def kvm_parameters(facts: Facts) -> dict[str, str]:
    """``{"kvm.eager_page_split": "Y", ...}``: every loaded KVM module's parameter values."""
    return {f"{m.name}.{name}": value for m in facts.kvm.modules for name, value in m.parameters}


# ---- suites, cases and plans (fleet.config.suite, fleet.plan.matrix, fleet.plan.schedule) --------

ParamValue = str | int | float | bool
Spread = Literal["every", "any"]
Assignment = tuple[tuple[str, ParamValue], ...]  # sorted (name, value) pairs


@dataclass(frozen=True)
class Requirements:
    """What a host must offer to run a case. Unknown facts (None) never satisfy a minimum.

    ``groups``: the host must be in every listed inventory group; ``host_patterns``: its
    name must match at least one fnmatch pattern (empty: any name).
    """

    min_numa_nodes: int | None = None
    min_cpus: int | None = None
    min_memory_bytes: int | None = None
    kvm: bool = False
    iommu: bool = False
    hugepages_1g: bool = False  # the kernel offers 1 GiB pages (a 1048576kB pool exists)
    groups: tuple[str, ...] = ()
    host_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One point of a suite's matrix: a workload with every parameter fixed.

    ``case_id`` hashes the workload name, kind, identity, params, knobs and variant (never
    the repetition), so the same case keeps its id across runs, suites and key orders.
    ``knobs`` are runtime settings the executor applies before the case; ``variant`` holds
    settings that need provisioning (kernel, cmdline, module params): the plan groups by it.
    """

    case_id: str
    workload: str  # the suite's workload entry name
    kind: str  # the workload family: command, sleep, ...
    params: Assignment
    knobs: Assignment
    variant: Assignment
    requirements: Requirements
    repetitions: int
    timeout_seconds: float
    estimate_seconds: float | None  # the workload's own estimate; None: use the timeout
    spread: Spread
    source: str = field(default="", compare=False)  # file:line of the suite entry

    @property
    def planned_seconds(self) -> float:
        return self.timeout_seconds if self.estimate_seconds is None else self.estimate_seconds


@dataclass(frozen=True)
class Measurement:
    """One value a workload reported. ``value`` None: the metric is missing (never 0)."""

    metric: str
    value: float | None
    unit: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PlanEntry:
    """One run of one case on one host: repetition is 1-based."""

    case_id: str
    repetition: int
    host: str
    estimate_seconds: float


AcrossHosts = Literal["same", "rotate"]


@dataclass(frozen=True)
class VariantOrder:
    """A suite's ``variant_order``: how each host's variant groups follow one another.

    ``across_hosts``: ``same`` (every host in case order) or ``rotate`` (the i-th planned host
    starts with its (i mod n)-th group: counterbalanced); ``blocks``: each group's runs split
    into this many blocks (every case's repetitions spread evenly), cycled A B A B."""

    across_hosts: AcrossHosts = "same"
    blocks: int = 1


DEFAULT_VARIANT_ORDER = VariantOrder()


@dataclass(frozen=True)
class VariantGroup:
    """Consecutive entries of a host's queue that share a variant (provisioned once)."""

    variant: Assignment
    entries: tuple[PlanEntry, ...]


@dataclass(frozen=True)
class HostQueue:
    host: str
    groups: tuple[VariantGroup, ...]
    estimate_seconds: float

    @property
    def entries(self) -> tuple[PlanEntry, ...]:
        return tuple(e for g in self.groups for e in g.entries)


@dataclass(frozen=True)
class Skip:
    """A case no host can run, and why (names the requirement and the host counts)."""

    case_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Cases x hosts: an ordered queue per host, the skipped cases, estimated durations."""

    suite: str
    seed: int
    cases: tuple[Case, ...]
    queues: tuple[HostQueue, ...]
    skipped: tuple[Skip, ...]
    hosts_without_facts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the planner decided for the user to know (one line each)

    @property
    def entry_count(self) -> int:
        return sum(len(g.entries) for q in self.queues for g in q.groups)

    @property
    def estimate_seconds(self) -> float:
        """Makespan: hosts run in parallel, each queue in sequence."""
        return max((q.estimate_seconds for q in self.queues), default=0.0)

    @property
    def work_seconds(self) -> float:
        return sum(q.estimate_seconds for q in self.queues)
