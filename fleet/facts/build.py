"""Pure: a host's FileTree -> Facts (topology, CPU, memory, hugepages, THP, KVM, IOMMU).

sysfs is the source of truth; ``numactl -H`` output, when present, is only cross-checked.
A malformed file raises ParseError naming ``host:path``; a missing one becomes None.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from typing import TypeVar

from fleet.errors import ParseError
from fleet.facts.numactl import parse_numactl_hardware
from fleet.facts.parsers import (
    format_cpulist,
    hugepage_size_bytes,
    parse_cpuinfo,
    parse_cpulist,
    parse_distance_row,
    parse_int,
    parse_meminfo,
    parse_node_meminfo,
    parse_thp_mode,
)
from fleet.facts.probe import NUMACTL_COMMAND
from fleet.facts.tree import FileTree, path_matches
from fleet.model import (
    CpuInfo,
    Facts,
    HugePagePool,
    IommuGroup,
    IommuInfo,
    KvmInfo,
    KvmModule,
    NumaNode,
    Topology,
    comparable_fields,
)

NODE_ROOT = "/sys/devices/system/node"
SYSTEM_HUGEPAGES = "/sys/kernel/mm/hugepages"
KVM_MODULES = ("kvm", "kvm_intel", "kvm_amd")
_NODE_DIR = re.compile(r"node(\d+)")
_FINGERPRINT_HEX_CHARS = 16

T = TypeVar("T")


class _Reader:
    """Reads and parses files of one host's tree; errors name ``host:path``."""

    def __init__(self, host: str, tree: FileTree) -> None:
        self.host = host
        self.tree = tree
        self.warnings: list[str] = []

    def where(self, path: str) -> str:
        return f"{self.host}:{path}"

    def parse(self, path: str, parser: Callable[..., T]) -> T | None:
        text = self.tree.text(path)
        if text is None:
            return None
        result: T = parser(text, where=self.where(path))
        return result

    def line(self, path: str) -> str | None:
        text = self.tree.text(path)
        return (text.strip() or None) if text is not None else None


def build_facts(host_name: str, tree: FileTree, *, collected_at_unix_seconds: float,
                probe_seconds: float | None = None) -> Facts:
    """Facts of ``host_name`` from its probed tree. ParseError on a malformed file."""
    reader = _Reader(host_name, tree)
    meminfo = reader.parse("/proc/meminfo", parse_meminfo) or {}
    topology = _topology(reader, meminfo)
    thp_enabled = reader.parse("/sys/kernel/mm/transparent_hugepage/enabled", parse_thp_mode)
    thp_defrag = reader.parse("/sys/kernel/mm/transparent_hugepage/defrag", parse_thp_mode)
    _check_numactl(reader, topology)
    _check_node_memory(reader, topology, meminfo.get("MemTotal"))
    facts = Facts(
        host=host_name,
        collected_at_unix_seconds=collected_at_unix_seconds,
        hostname=reader.line("/proc/sys/kernel/hostname"),
        kernel_release=reader.line("/proc/sys/kernel/osrelease"),
        kernel_cmdline=reader.line("/proc/cmdline"),
        cpu=_cpu_info(reader, topology),
        topology=topology,
        mem_total_bytes=meminfo.get("MemTotal"),
        hugepages=_pools(reader, SYSTEM_HUGEPAGES),
        thp_enabled=thp_enabled,
        thp_defrag=thp_defrag,
        numa_balancing=reader.parse("/proc/sys/kernel/numa_balancing", parse_int),
        kvm=_kvm(tree),
        iommu=_iommu(reader),
        fingerprint="",
        probe_seconds=probe_seconds,
        warnings=tuple(reader.warnings),
    )
    return dataclasses.replace(facts, fingerprint=fingerprint(facts))


# Node MemTotals normally add up to /proc/meminfo MemTotal; a larger gap means memory that is
# not (yet) on any node's books: deferred struct-page init, hot-plug, or a balloon.
_NODE_MEMORY_GAP_FRACTION = 0.05


def _check_node_memory(reader: _Reader, topology: Topology, mem_total_bytes: int | None) -> None:
    per_node = [n.mem_total_bytes for n in topology.nodes]
    if mem_total_bytes is None or not per_node or None in per_node:
        return
    node_sum = sum(n for n in per_node if n is not None)
    if abs(mem_total_bytes - node_sum) > _NODE_MEMORY_GAP_FRACTION * mem_total_bytes:
        reader.warnings.append(
            f"NUMA nodes hold {node_sum >> 20} MiB but MemTotal is {mem_total_bytes >> 20} MiB: "
            "per-node memory figures do not cover all memory (deferred init, hot-plug or "
            "balloon?)")


def fingerprint(facts: Facts) -> str:
    """Stable short sha256 hex of ``model.comparable_fields(facts)``."""
    canonical = json.dumps(comparable_fields(facts), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_FINGERPRINT_HEX_CHARS]


# --------------------------------------------------------------------------- topology


def node_ids(tree: FileTree) -> tuple[int, ...]:
    """NUMA node ids present in sysfs (from the node directory listing and node files)."""
    names = set(tree.listing(NODE_ROOT) or ())
    prefix = NODE_ROOT + "/"
    names.update(p[len(prefix):].split("/", 1)[0] for p in tree.files if p.startswith(prefix))
    ids = (m.group(1) for m in map(_NODE_DIR.fullmatch, names) if m is not None)
    return tuple(sorted(int(i) for i in ids))


def _topology(reader: _Reader, meminfo: dict[str, int]) -> Topology:
    ids = node_ids(reader.tree)
    if ids:
        nodes = tuple(_node(reader, node_id) for node_id in ids)
        for node in nodes:
            if node.distances and len(node.distances) != len(nodes):
                reader.warnings.append(
                    f"node {node.node_id} distance row has {len(node.distances)} entries "
                    f"for {len(nodes)} nodes")
    else:
        reader.warnings.append(
            f"no {NODE_ROOT} (kernel without NUMA): synthesised node 0 with all CPUs and "
            "MemTotal")
        nodes = (_synthetic_node(reader, meminfo),)
    return Topology(nodes=nodes, socket_ids=_socket_ids(reader))


def _node(reader: _Reader, node_id: int) -> NumaNode:
    base = f"{NODE_ROOT}/node{node_id}"
    cpus = reader.parse(f"{base}/cpulist", parse_cpulist)
    if cpus is None:
        reader.warnings.append(f"{base}/cpulist is missing: node {node_id} has no known CPUs")
    meminfo = reader.parse(f"{base}/meminfo", parse_node_meminfo) or {}
    return NumaNode(
        node_id=node_id,
        cpus=cpus or (),
        mem_total_bytes=meminfo.get("MemTotal"),
        mem_free_bytes=meminfo.get("MemFree"),
        distances=reader.parse(f"{base}/distance", parse_distance_row) or (),
        hugepages=_pools(reader, f"{base}/hugepages"),
        sec_page_tables_bytes=meminfo.get("SecPageTables"),
    )


def _all_cpus(reader: _Reader) -> tuple[int, ...]:
    online = reader.parse("/sys/devices/system/cpu/online", parse_cpulist)
    if online:
        return online
    pattern = "/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id"
    paths = [*reader.tree.matching(pattern),
             *(p for p in reader.tree.missing if path_matches(pattern, p))]
    from_topology = sorted(int(p.split("/")[5][3:]) for p in paths)
    if from_topology:
        return tuple(from_topology)
    cpuinfo = reader.parse("/proc/cpuinfo", parse_cpuinfo)
    return tuple(range(cpuinfo.logical_cpus)) if cpuinfo else ()


def _synthetic_node(reader: _Reader, meminfo: dict[str, int]) -> NumaNode:
    return NumaNode(
        node_id=0,
        cpus=_all_cpus(reader),
        mem_total_bytes=meminfo.get("MemTotal"),
        mem_free_bytes=meminfo.get("MemFree"),
        distances=(),
        hugepages=_pools(reader, SYSTEM_HUGEPAGES),
    )


def _socket_ids(reader: _Reader) -> tuple[int, ...]:
    ids = set()
    for path in reader.tree.matching(
            "/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id"):
        value = reader.parse(path, parse_int)
        if value is not None:
            ids.add(value)
    return tuple(sorted(ids))


def _pools(reader: _Reader, directory: str) -> tuple[HugePagePool, ...]:
    """Hugepage pools under ``directory`` (``.../hugepages``), smallest page size first."""
    names = {p[len(directory) + 1:].split("/", 1)[0]
             for p in reader.tree.matching(f"{directory}/hugepages-*/*")}
    names.update(p.rsplit("/", 2)[1] for p in reader.tree.missing
                 if p.startswith(directory + "/hugepages-"))
    pools = []
    for name in names:
        base = f"{directory}/{name}"
        pools.append(HugePagePool(
            page_size_bytes=hugepage_size_bytes(name, where=reader.where(base)),
            total_pages=reader.parse(f"{base}/nr_hugepages", parse_int),
            free_pages=reader.parse(f"{base}/free_hugepages", parse_int),
            surplus_pages=reader.parse(f"{base}/surplus_hugepages", parse_int),
        ))
    return tuple(sorted(pools, key=lambda pool: pool.page_size_bytes))


# --------------------------------------------------------------------------- cpu, kvm, iommu


def _cpu_info(reader: _Reader, topology: Topology) -> CpuInfo:
    cpuinfo = reader.parse("/proc/cpuinfo", parse_cpuinfo)
    if cpuinfo is None:
        reader.warnings.append("/proc/cpuinfo is missing: CPU model and flags unknown")
        return CpuInfo(vendor=None, model_name=None, microcode=None,
                       logical_cpus=topology.cpu_count)
    if cpuinfo.logical_cpus == 0:
        return dataclasses.replace(cpuinfo, logical_cpus=topology.cpu_count)
    return cpuinfo


def _kvm(tree: FileTree) -> KvmInfo:
    modules = []
    for name in KVM_MODULES:
        prefix = f"/sys/module/{name}/parameters/"
        params = tuple(sorted(
            (path[len(prefix):], tree.files[path].strip())
            for path in tree.matching(prefix + "*")))
        if params:
            modes = [(param, tree.mode(prefix + param)) for param, _ in params]
            known = tuple((param, bool(m & 0o200)) for param, m in modes if m is not None)
            writable = known or None  # a parameter without a mode: unknown, not read-only
            modules.append(KvmModule(name=name, parameters=params, writable=writable))
    return KvmInfo(dev_kvm="/dev/kvm" in tree.existing, modules=tuple(modules))


def _iommu(reader: _Reader) -> IommuInfo:
    groups = []
    for path in reader.tree.listings_matching("/sys/kernel/iommu_groups/*/devices"):
        group_name = path.split("/")[4]
        if not group_name.isdigit():
            raise ParseError(f"IOMMU group directory {group_name!r} is not a number",
                             where=reader.where(path), hint="report this kernel's layout")
        devices = reader.tree.listings[path]
        groups.append(IommuGroup(group_id=int(group_name), devices=tuple(sorted(devices))))
    groups.sort(key=lambda g: g.group_id)
    units = reader.tree.listing("/sys/class/iommu") or ()
    return IommuInfo(present=bool(units) or bool(groups), groups=tuple(groups))


def _check_numactl(reader: _Reader, topology: Topology) -> None:
    """Warn when ``numactl -H`` disagrees with sysfs on nodes or CPUs (sysfs wins)."""
    output = reader.tree.command(NUMACTL_COMMAND)
    if output is None:
        return
    try:
        hardware = parse_numactl_hardware(output, source=f"{reader.host}: {NUMACTL_COMMAND}")
    except ParseError as error:
        reader.warnings.append(f"numactl -H output ignored: {error}")
        return
    sysfs = {n.node_id: n.cpus for n in topology.nodes}
    numactl = {n.node_id: n.cpus for n in hardware.nodes}
    if sysfs != numactl:
        reader.warnings.append(
            f"numactl -H disagrees with sysfs (sysfs used): sysfs nodes/cpus {_describe(sysfs)}, "
            f"numactl {_describe(numactl)}")


def _describe(nodes: dict[int, tuple[int, ...]]) -> str:
    return "; ".join(f"{n}:[{format_cpulist(c)}]" for n, c in sorted(nodes.items()))
