"""Per-node meminfo/numastat/vmstat/cpulist trees and /proc/meminfo, on the corpus."""

from __future__ import annotations

from pathlib import Path

from fleet.collectors.nodes import (
    node_stats,
    parse_system_meminfo,
    read_node_stats,
    sec_page_tables_by_node,
)


def test_node_exporter_tree(corpus: Path) -> None:
    nodes = read_node_stats(corpus / "node_exporter/fixtures")
    assert [n.node_id for n in nodes] == [0, 1, 2]
    n0, n1, n2 = nodes
    assert (n0.cpus, n1.cpus, n2.cpus) == ((0, 1), (2, 3), ())
    assert n0.meminfo is not None and n1.meminfo is not None
    assert n0.meminfo.get("Active(anon)") == 707915776 == 691324 * 1024
    assert n0.meminfo.anon_huge_pages_bytes == 150994944
    assert n1.meminfo.get("Inactive(anon)") == 291930112
    assert n1.meminfo.file_pages_bytes == 85585088512
    assert n0.meminfo.page_tables_bytes == 143304 * 1024
    assert n0.meminfo.hugepages_total_pages == 0  # a count, not bytes
    assert n0.numastat is not None and n1.numastat is not None
    assert n0.numastat["numa_hit"] == 193460335812 and n0.numastat["local_node"] == 193454780853
    assert n1.numastat["numa_miss"] == 59858626709 and n1.numastat["other_node"] == 59860526920
    # the fixture predates SecPageTables (Linux 6.1) and has no node vmstat: unknown, not 0
    assert n0.sec_page_tables_bytes is None and n0.vmstat is None
    assert sec_page_tables_by_node(nodes) == {0: None, 1: None, 2: None}


def test_node_exporter_e2e_numa_gauges(corpus: Path) -> None:
    """Every node_memory_numa_* sample equals our value (node_exporter renames '(anon)')."""
    nodes = {n.node_id: n for n in read_node_stats(corpus / "node_exporter/fixtures")}
    checked = 0
    for line in (corpus / "node_exporter/expected/e2e_meminfo_numa.txt").read_text().splitlines():
        if not line.startswith("node_memory_numa_"):
            continue
        metric, value = line.rsplit(" ", 1)
        name, node = metric[len("node_memory_numa_"):].split('{node="')
        stats = nodes[int(node.rstrip('"}'))]
        assert stats.meminfo is not None and stats.numastat is not None
        if name.endswith("_total") and name[:-len("_total")] in stats.numastat:
            ours = stats.numastat[name[:-len("_total")]]
        else:
            key = {"Active_anon": "Active(anon)", "Inactive_anon": "Inactive(anon)",
                   "Active_file": "Active(file)", "Inactive_file": "Inactive(file)"}.get(name, name)
            ours = stats.meminfo.values[key]
        assert ours == float(value), line
        checked += 1
    assert checked > 80


def test_procfs_tree_vmstat_only(procfs_root: Path) -> None:
    nodes = read_node_stats(procfs_root)
    assert [n.node_id for n in nodes] == [1, 2]
    assert nodes[0].vmstat is not None and nodes[1].vmstat is not None
    assert nodes[0].vmstat.get("nr_free_pages") == 1
    assert nodes[1].vmstat.get("nr_zone_active_file") == 11
    assert nodes[0].meminfo is None and nodes[0].cpus is None


def test_sec_page_tables_from_texts() -> None:
    node = node_stats(1, meminfo="Node 1 MemTotal: 100 kB\nNode 1 SecPageTables:   2048 kB\n",
                      cpulist="4-7\n")
    assert node.sec_page_tables_bytes == 2048 * 1024 and node.cpus == (4, 5, 6, 7)


def test_procfs_meminfo(corpus: Path) -> None:
    info = parse_system_meminfo((corpus / "procfs/fixtures/proc/meminfo").read_text())
    assert info.mem_total_bytes == 16042172416 and info.page_tables_bytes == 5288 * 1024
    assert info.anon_huge_pages_bytes == 12288 * 1024 and info.hugepages_total_pages == 0
    assert info.sec_page_tables_bytes is None


def test_this_host(tmp_path: Path) -> None:
    nodes = read_node_stats(Path("/"))
    assert nodes and nodes[0].meminfo is not None
    has_line = "SecPageTables" in Path("/sys/devices/system/node/node0/meminfo").read_text()
    assert (nodes[0].sec_page_tables_bytes is not None) == has_line  # Linux >= 6.1
    assert read_node_stats(tmp_path) == ()
