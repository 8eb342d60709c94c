"""Frozen dataclasses carried between layers. Stdlib only; units are in the field names.

A value that could not be read is ``None``, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ConnectionKind = Literal["ssh", "local"]


class Secret:
    """A string that never shows itself in repr(), str(), logs or JSON."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Host:
    """One inventory host, as fleet needs it to connect. No secret is ever printed."""

    name: str
    address: str
    connection: ConnectionKind = "ssh"
    port: int = 22
    user: str | None = None
    key_files: tuple[str, ...] = ()
    known_hosts_files: tuple[str, ...] = ()
    password: Secret | None = field(default=None, repr=False, compare=False)
    groups: tuple[str, ...] = ()
    connect_timeout_seconds: float = 10.0
    # StrictHostKeyChecking=accept-new/no in the inventory: add unknown keys (changed ones: never)
    accept_new_host_keys: bool = False

    def describe(self) -> str:
        if self.connection == "local":
            return f"{self.name} (local)"
        who = f"{self.user}@" if self.user else ""
        return f"{self.name} ({who}{self.address}:{self.port})"


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
    """The fields whose equality makes two hosts' results comparable (fingerprint input)."""
    return {
        "cpu_model": facts.cpu.model_name,
        "microcode": facts.cpu.microcode,
        "nodes": [(n.node_id, list(n.cpus), n.mem_total_bytes) for n in facts.topology.nodes],
        "distances": [list(n.distances) for n in facts.topology.nodes],
        "sockets": list(facts.topology.socket_ids),
        "kernel_release": facts.kernel_release,
        "kernel_cmdline": facts.kernel_cmdline,
        "thp_enabled": facts.thp_enabled,
    }
