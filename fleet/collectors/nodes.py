"""Memory per NUMA node: ``nodeN/{meminfo,numastat,vmstat,cpulist}`` and ``/proc/meminfo``.

The line parsers are those of :mod:`fleet.facts.parsers` (kB -> bytes, HugePages_* stay
counts); this module names the fields fleet samples and reads them per node, from texts
(:func:`node_stats`) or from a directory laid out like ``/`` (:func:`read_node_stats`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.collectors.vmstat import VmStat, parse_vmstat
from fleet.facts.parsers import parse_cpulist, parse_meminfo, parse_node_meminfo, parse_numastat

NODE_ROOT = "sys/devices/system/node"
_NODE_DIR = re.compile(r"node(\d+)")


@dataclass(frozen=True)
class MemInfo:
    """A meminfo file: sizes in bytes, ``HugePages_*`` as page counts. Absent keys -> None."""

    values: Mapping[str, int]

    def get(self, key: str) -> int | None:
        return self.values.get(key)

    @property
    def mem_total_bytes(self) -> int | None:
        return self.get("MemTotal")

    @property
    def mem_free_bytes(self) -> int | None:
        return self.get("MemFree")

    @property
    def file_pages_bytes(self) -> int | None:
        """``FilePages`` (node meminfo; /proc/meminfo has ``Cached`` instead)."""
        return self.get("FilePages")

    @property
    def page_tables_bytes(self) -> int | None:
        return self.get("PageTables")

    @property
    def sec_page_tables_bytes(self) -> int | None:
        """``SecPageTables``: KVM/IOMMU secondary page tables (Linux >= 6.1)."""
        return self.get("SecPageTables")

    @property
    def anon_huge_pages_bytes(self) -> int | None:
        return self.get("AnonHugePages")

    @property
    def hugepages_total_pages(self) -> int | None:
        return self.get("HugePages_Total")

    @property
    def hugepages_free_pages(self) -> int | None:
        return self.get("HugePages_Free")

    @property
    def hugepages_surplus_pages(self) -> int | None:
        return self.get("HugePages_Surp")


@dataclass(frozen=True)
class NodeStats:
    """One NUMA node's files; a file that was not read is None."""

    node_id: int
    cpus: tuple[int, ...] | None
    meminfo: MemInfo | None
    numastat: Mapping[str, int] | None  # pages: numa_hit, numa_miss, ... local_node, other_node
    vmstat: VmStat | None

    @property
    def sec_page_tables_bytes(self) -> int | None:
        return None if self.meminfo is None else self.meminfo.sec_page_tables_bytes


def parse_system_meminfo(text: str, *, where: str | None = None) -> MemInfo:
    """``/proc/meminfo`` -> MemInfo."""
    return MemInfo(parse_meminfo(text, where=where))


def node_stats(node_id: int, *, meminfo: str | None = None, numastat: str | None = None,
               vmstat: str | None = None, cpulist: str | None = None,
               where: str | None = None) -> NodeStats:
    """A NodeStats from the texts of one node's files (None: the file was not read)."""
    base = where or f"/{NODE_ROOT}/node{node_id}"
    return NodeStats(
        node_id=node_id,
        cpus=None if cpulist is None else parse_cpulist(cpulist, where=f"{base}/cpulist"),
        meminfo=None if meminfo is None else MemInfo(
            parse_node_meminfo(meminfo, where=f"{base}/meminfo")),
        numastat=None if numastat is None else parse_numastat(numastat,
                                                              where=f"{base}/numastat"),
        vmstat=None if vmstat is None else parse_vmstat(vmstat, where=f"{base}/vmstat"),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_node_stats(root: Path) -> tuple[NodeStats, ...]:
    """Every ``<root>/sys/devices/system/node/nodeN`` in node order; () if there is none."""
    base = root / NODE_ROOT
    if not base.is_dir():
        return ()
    ids = sorted(int(m.group(1)) for p in base.iterdir()
                 if (m := _NODE_DIR.fullmatch(p.name)) and p.is_dir())
    return tuple(
        node_stats(i, meminfo=_read(base / f"node{i}" / "meminfo"),
                   numastat=_read(base / f"node{i}" / "numastat"),
                   vmstat=_read(base / f"node{i}" / "vmstat"),
                   cpulist=_read(base / f"node{i}" / "cpulist"),
                   where=str(base / f"node{i}"))
        for i in ids)


def sec_page_tables_by_node(nodes: tuple[NodeStats, ...]) -> dict[int, int | None]:
    """``{node: SecPageTables bytes or None}``: the input of :mod:`fleet.sampling.formulas`
    locality."""
    return {n.node_id: n.sec_page_tables_bytes for n in nodes}
