"""FileTree -> Facts on real fixture trees (node_exporter, procfs) and the fingerprint."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from fleet.errors import ParseError
from fleet.facts.build import build_facts, fingerprint
from fleet.facts.tree import FileTree, tree_from_root
from fleet.model import HugePagePool

KB = 1024


def test_node_exporter_tree_two_sockets_three_nodes(node_exporter_sys_root: Path) -> None:
    facts = build_facts("ne", tree_from_root(node_exporter_sys_root),
                        collected_at_unix_seconds=1.5)
    topo = facts.topology
    assert topo.node_ids == (0, 1, 2)
    assert [n.cpus for n in topo.nodes] == [(0, 1), (2, 3), ()]
    assert [n.mem_total_bytes for n in topo.nodes] == [134182340 * KB, 134217728 * KB,
                                                       134217728 * KB]
    assert [n.mem_free_bytes for n in topo.nodes] == [53030372 * KB, 39634788 * KB,
                                                      39634788 * KB]
    assert topo.socket_ids == (0, 1)  # cpu0,1 -> package 0; cpu2,3 -> package 1
    assert topo.cpu_count == 4
    assert all(n.distances == () and n.sec_page_tables_bytes is None for n in topo.nodes)
    assert topo.distance(0, 1) is None  # no distance file in the fixture: unknown, not 0
    assert facts.cpu.logical_cpus == 4
    assert facts.cpu.model_name is None
    assert facts.mem_total_bytes is None  # this fixture has no /proc/meminfo
    assert facts.numa_balancing is None and facts.thp_enabled is None
    assert facts.kvm.dev_kvm is False and facts.kvm.modules == ()
    assert facts.iommu.present is False
    assert facts.warnings == ("/proc/cpuinfo is missing: CPU model and flags unknown",)
    assert facts.collected_at_unix_seconds == 1.5
    assert len(facts.fingerprint) == 16
    assert facts.fingerprint == fingerprint(facts)


def non_numa_root(procfs_root: Path, dest: Path) -> Path:
    """A kernel without /sys/devices/system/node: procfs' real proc files and cpu topology."""
    for rel in ("proc/meminfo", "proc/cpuinfo", "proc/cmdline"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(procfs_root / rel, dest / rel)
    shutil.copytree(procfs_root / "sys" / "devices" / "system" / "cpu",
                    dest / "sys" / "devices" / "system" / "cpu", symlinks=True)
    return dest


def test_non_numa_kernel_gets_one_synthetic_node(procfs_root: Path, tmp_path: Path) -> None:
    root = non_numa_root(procfs_root, tmp_path)
    facts = build_facts("flat", tree_from_root(root), collected_at_unix_seconds=0)
    (node,) = facts.topology.nodes
    assert node.node_id == 0
    assert node.cpus == (0, 1, 2)  # cpu0..cpu2 directories of the fixture
    assert node.mem_total_bytes == 16042172416 == facts.mem_total_bytes
    assert node.mem_free_bytes == 440324 * KB
    assert node.distances == ()
    assert facts.cpu.logical_cpus == 8  # what /proc/cpuinfo says
    assert facts.cpu.model_name == "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"
    assert facts.topology.socket_ids == (0,)
    assert any("kernel without NUMA" in w for w in facts.warnings)


def test_numactl_disagreement_is_a_warning_and_sysfs_wins(node_exporter_sys_root: Path,
                                                          corpus: Path) -> None:
    tree = tree_from_root(node_exporter_sys_root)
    other = (corpus / "numa_outputs" / "numactl_-H__k8s_2node_64cpu_even_odd.txt").read_text()
    facts = build_facts("ne", dataclasses.replace(tree, commands={"numactl -H": other}),
                        collected_at_unix_seconds=0)
    assert facts.topology.node_ids == (0, 1, 2)
    (warning,) = [w for w in facts.warnings if "numactl" in w]
    assert "0:[0-1]; 1:[2-3]; 2:[]" in warning
    assert "0:[0,2,4" in warning


def test_numactl_agreement_adds_no_warning(node_exporter_sys_root: Path) -> None:
    tree = tree_from_root(node_exporter_sys_root)
    same = ("available: 3 nodes (0-2)\nnode 0 cpus: 0 1\nnode 0 size: 131037 MB\n"
            "node 0 free: 51787 MB\nnode 1 cpus: 2 3\nnode 1 size: 131072 MB\n"
            "node 1 free: 38705 MB\nnode 2 cpus:\nnode 2 size: 131072 MB\n"
            "node 2 free: 38705 MB\n")
    facts = build_facts("ne", dataclasses.replace(tree, commands={"numactl -H": same}),
                        collected_at_unix_seconds=0)
    assert not [w for w in facts.warnings if "numactl" in w]


def test_unparsable_numactl_output_is_a_warning(node_exporter_sys_root: Path,
                                                corpus: Path) -> None:
    merged = (corpus / "numa_outputs" /
              "numactl_-H__amd_cxl_cpuless_node_email_wrapped.txt").read_text()
    tree = dataclasses.replace(tree_from_root(node_exporter_sys_root),
                               commands={"numactl -H": merged})
    facts = build_facts("ne", tree, collected_at_unix_seconds=0)
    assert any(w.startswith("numactl -H output ignored: ne: numactl -H:4:") for w in facts.warnings)


NODE = "/sys/devices/system/node"
POOL = "/sys/kernel/mm/hugepages"


def synthetic_tree() -> FileTree:
    """Shapes seen on this machine's kernel (6.x): hugepage pools, SecPageTables, KVM, IOMMU."""
    files = {
        f"{NODE}/node0/cpulist": "0-1\n", f"{NODE}/node1/cpulist": "\n",
        f"{NODE}/node0/distance": "10 20\n", f"{NODE}/node1/distance": "20 10\n",
        f"{NODE}/node0/meminfo": "Node 0 MemTotal: 4 kB\nNode 0 MemFree: 1 kB\n"
                                 "Node 0 SecPageTables: 8 kB\n",
        f"{NODE}/node0/hugepages/hugepages-2048kB/nr_hugepages": "16\n",
        f"{NODE}/node0/hugepages/hugepages-2048kB/free_hugepages": "12\n",
        f"{NODE}/node0/hugepages/hugepages-2048kB/surplus_hugepages": "0\n",
        f"{POOL}/hugepages-1048576kB/nr_hugepages": "2\n",
        f"{POOL}/hugepages-1048576kB/free_hugepages": "\n",
        f"{POOL}/hugepages-2048kB/nr_hugepages": "16\n",
        "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never\n",
        "/sys/kernel/mm/transparent_hugepage/defrag":
            "always defer [defer+madvise] madvise never\n",
        "/proc/sys/kernel/numa_balancing": "1\n", "/proc/sys/kernel/osrelease": "6.18.44\n",
        "/sys/module/kvm_amd/parameters/npt": "Y\n", "/sys/module/kvm_amd/parameters/avic": "N\n",
    }
    return FileTree(
        files=files,
        listings={NODE: ("node0", "node1", "online"), "/sys/class/iommu": ("ivhd0",),
                  "/sys/kernel/iommu_groups/12/devices": ("0000:00:02.0",),
                  "/sys/kernel/iommu_groups/3/devices": ("0000:00:01.1", "0000:00:01.0")},
        existing=frozenset({"/dev/kvm"}),
        missing=frozenset({f"{POOL}/hugepages-1048576kB/surplus_hugepages"}),
    )


def test_synthetic_tree_every_field() -> None:
    facts = build_facts("h", synthetic_tree(), collected_at_unix_seconds=0)
    node0, node1 = facts.topology.nodes
    assert node0.hugepages == (HugePagePool(2097152, 16, 12, 0),)
    assert node0.sec_page_tables_bytes == 8192
    assert (node1.cpus, node1.mem_total_bytes, node1.hugepages) == ((), None, ())
    assert facts.topology.distance(0, 1) == 20
    assert facts.hugepages == (HugePagePool(2097152, 16, None, None),
                               HugePagePool(1073741824, 2, None, None))
    assert (facts.thp_enabled, facts.thp_defrag) == ("madvise", "defer+madvise")
    assert facts.numa_balancing == 1
    assert facts.kernel_release == "6.18.44"
    assert facts.kvm.available
    assert [(m.name, m.parameters) for m in facts.kvm.modules] == \
        [("kvm_amd", (("avic", "N"), ("npt", "Y")))]
    assert facts.iommu.present
    assert [(g.group_id, g.devices) for g in facts.iommu.groups] == \
        [(3, ("0000:00:01.0", "0000:00:01.1")), (12, ("0000:00:02.0",))]


def test_malformed_sysfs_file_names_host_and_path() -> None:
    tree = synthetic_tree()
    broken = dataclasses.replace(tree, files={**tree.files, f"{NODE}/node0/cpulist": "0-x\n"})
    with pytest.raises(ParseError) as info:
        build_facts("h", broken, collected_at_unix_seconds=0)
    assert info.value.where == f"h:{NODE}/node0/cpulist"


def test_fingerprint_is_stable_and_tracks_comparable_fields() -> None:
    facts = build_facts("h", synthetic_tree(), collected_at_unix_seconds=0)
    later = build_facts("other", synthetic_tree(), collected_at_unix_seconds=99)
    assert facts.fingerprint == later.fingerprint
    # pinned: a change here changes every host's fingerprint (stored runs still compare:
    # comparisons read the facts behind each fingerprint and compare their fields)
    assert facts.fingerprint == "3e9274ad1f4a756e"
    tree = synthetic_tree()
    new_kernel = dataclasses.replace(
        tree, files={**tree.files, "/proc/sys/kernel/osrelease": "6.19.0\n"})
    assert build_facts("h", new_kernel, collected_at_unix_seconds=0).fingerprint \
        != facts.fingerprint


def test_node_memory_that_does_not_add_up_to_memtotal_is_a_warning() -> None:
    from fleet.facts.tree import FileTree

    base = "/sys/devices/system/node"
    tree = FileTree(
        files={
            "/proc/meminfo": "MemTotal:       24684084 kB\nMemFree: 1 kB\n",
            f"{base}/node0/cpulist": "0-1\n",
            f"{base}/node0/meminfo": "Node 0 MemTotal:        4679884 kB\n",
            f"{base}/node0/distance": "10\n",
        },
        listings={base: ("node0",)}, commands={}, existing=frozenset(), missing=frozenset())
    facts = build_facts("h", tree, collected_at_unix_seconds=0.0)
    assert any("4570 MiB but MemTotal is 24105 MiB" in w for w in facts.warnings), facts.warnings
    assert facts.topology.nodes[0].mem_total_bytes == 4679884 * 1024
    assert facts.mem_total_bytes == 24684084 * 1024


def test_node_memtotal_drift_keeps_the_fingerprint_and_the_compared_fields() -> None:
    """A ballooned VM: node and total MemTotal change minutes apart, the host does not."""
    from fleet.compare.fingerprint import host_fields

    tree = synthetic_tree()
    before = build_facts("h", tree, collected_at_unix_seconds=0)
    ballooned = dataclasses.replace(tree, files={
        **tree.files, f"{NODE}/node0/meminfo": "Node 0 MemTotal: 3 kB\nNode 0 MemFree: 1 kB\n",
        "/proc/meminfo": "MemTotal: 3 kB\nMemFree: 1 kB\n"})
    after = build_facts("h", ballooned, collected_at_unix_seconds=60)
    assert before.topology.nodes[0].mem_total_bytes == 4 * KB  # kept in the facts
    assert after.topology.nodes[0].mem_total_bytes == 3 * KB
    assert after.fingerprint == before.fingerprint
    assert host_fields(after, ()) == host_fields(before, ())
    moved = dataclasses.replace(tree, files={**tree.files, f"{NODE}/node0/cpulist": "0\n"})
    assert build_facts("h", moved, collected_at_unix_seconds=0).fingerprint != before.fingerprint
