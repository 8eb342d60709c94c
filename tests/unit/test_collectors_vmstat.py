"""/proc/vmstat and nodeN/vmstat on the node_exporter and procfs fixtures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet.collectors.vmstat import parse_vmstat
from fleet.errors import ParseError


def test_node_exporter_vmstat(corpus: Path) -> None:
    text = (corpus / "node_exporter/fixtures/proc/vmstat").read_text()
    vm = parse_vmstat(text)
    assert len(vm.counters) == len([line for line in text.splitlines() if line.strip()])
    numa = vm.numa
    assert numa.numa_hit == 2601972389 and numa.numa_local == 2601972389
    assert numa.numa_interleave == 32353
    assert (numa.numa_pte_updates, numa.numa_hint_faults, numa.numa_pages_migrated) == (0, 0, 0)
    assert numa.numa_hint_faults_local == 0 and numa.numa_huge_pte_updates == 0
    assert vm.pgmigrate == {"pgmigrate_success": 37070309, "pgmigrate_fail": 36815}
    assert vm.thp["thp_fault_alloc"] == 142261 and vm.thp["thp_split"] == 69984
    # no CONFIG_DEBUG_TLBFLUSH on that host: unknown, not zero
    tlb = vm.tlb
    assert tlb.nr_tlb_remote_flush is None and tlb.nr_tlb_local_flush_one is None
    assert tlb.nr_tlb_remote_flush_received is None and tlb.nr_tlb_local_flush_all is None
    assert vm.get("no_such_counter") is None


def test_agrees_with_node_exporter_e2e(corpus: Path) -> None:
    vm = parse_vmstat((corpus / "node_exporter/fixtures/proc/vmstat").read_text())
    expected = (corpus / "node_exporter/expected/e2e_vmstat.txt").read_text()
    samples = re.findall(r"^node_vmstat_(\w+) (\S+)$", expected, re.M)
    assert len(samples) == 7
    for name, value in samples:
        assert vm.get(name) == float(value), name
    assert vm.get("pgfault") == 2320168809 and vm.get("pswpout") == 35045


def test_tlb_counters_when_present() -> None:
    vm = parse_vmstat("nr_tlb_remote_flush 12\nnr_tlb_remote_flush_received 96\n"
                      "nr_tlb_local_flush_all 3\nnr_tlb_local_flush_one 40\n")
    assert vm.tlb.nr_tlb_remote_flush == 12 and vm.tlb.nr_tlb_remote_flush_received == 96
    assert vm.numa.numa_hit is None


def test_node_vmstat_files(procfs_root: Path) -> None:
    base = procfs_root / "sys/devices/system/node"
    node1 = parse_vmstat((base / "node1/vmstat").read_text())
    node2 = parse_vmstat((base / "node2/vmstat").read_text())
    assert (node1.get("nr_free_pages"), node1.get("nr_zone_active_file")) == (1, 5)
    assert (node2.get("nr_free_pages"), node2.get("nr_zone_active_file")) == (7, 11)


def test_malformed_line_names_file_and_line() -> None:
    with pytest.raises(ParseError, match=r"host:/proc/vmstat:2"):
        parse_vmstat("numa_hit 1\nnuma_miss x\n", where="host:/proc/vmstat")


def test_this_hosts_vmstat() -> None:
    vm = parse_vmstat(Path("/proc/vmstat").read_text())
    pgfault = vm.get("pgfault")
    assert pgfault is not None and pgfault > 0
