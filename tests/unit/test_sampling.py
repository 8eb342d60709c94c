"""Controller side of sampling (pure): decode sample messages, keep series, derive metrics.

The files are real captures (node_exporter's /proc/interrupts with 4 CPUs and its 3-node sysfs,
real numa_maps and kernel log lines); the "later" captures change them as a workload would.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from fleet.agent.protocol import ProtocolError
from fleet.model import Measurement
from fleet.sampling.collect import Collected, SampleCollector, series_points, thin
from fleet.sampling.decode import SampleDecoder
from fleet.sampling.derive import derive_metrics, intended_nodes

NODE = "sys/devices/system/node"
# two real numa_maps lines (numa_outputs/numa_maps_real_lines.txt [A]: a VM bound to node 0)
NUMA_MAPS = ("7fa3c7e00000 bind:0 anon=262144 dirty=262144 active=39847 N0=262144 "
             "kernelpagesize_kB=4\n"
             "7fa277e00000 bind:0 file=/dev/hugepages/qemu_back_mem.mem.WQDRfi\\040(deleted) "
             "huge dirty=512 N0=512 kernelpagesize_kB=2048\n")
OTHER_PROCESS_MAPS = "7f5000000000 default anon=256 N1=256 kernelpagesize_kB=4\n"
# a real splat's first line (github.com/gentoo-zh/overlay/issues/1172) and an info record
KMSG = ("4,8812,10942794979,-;WARNING: CPU: 22 PID: 416 at kvm_mmu_notifier_change_pte+0x1e4\n"
        "6,8813,10942794980,-;kvm-guest: KVM setup pv remote TLB flush\n")


def tlb(text: str, add: tuple[int, int, int, int]) -> str:
    """The interrupts text with ``add`` added to the TLB row's four CPU columns."""
    def bump(match: re.Match[str]) -> str:
        counts = [int(n) + a for n, a in zip(match.group(0).split()[1:5], add, strict=True)]
        return "TLB:" + "".join(f" {c:10d}" for c in counts) + "   TLB shootdowns"
    return re.sub(r"^TLB:.*$", bump, text, flags=re.M)


def with_sec(text: str, node: int, kib: int) -> str:
    return text + f"Node {node} SecPageTables:  {kib:8d} kB\n"


@pytest.fixture
def files(corpus: Path, node_exporter_sys_root: Path) -> dict[str, str]:
    out = {"vmstat": (corpus / "node_exporter/fixtures/proc/vmstat").read_text(),
           "interrupts": (corpus / "node_exporter/fixtures/proc/interrupts").read_text()}
    for node in (0, 1, 2):
        for name in ("meminfo", "cpulist"):
            out[f"node{node}/{name}"] = (node_exporter_sys_root / NODE / f"node{node}" /
                                         name).read_text()
    return out


def body(seq: int, t: float, files: dict[str, Any], *, pids: list[int] | None = None,
         final: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": "sample", "id": 3, "seq": seq, "monotonic_seconds": t,
            "wall_seconds": 1.7e9 + t, "pids": pids or [], "files": files, "missed": 0,
            "final": final, "sample_seconds": 0.001, "agent_cpu_seconds": 1.0 + t / 200,
            **extra}


def history(files: dict[str, str]) -> list[dict[str, Any]]:
    """0 s, 1 s, 2 s and a final 2.5 s sample: TLB +100/s per node-0 CPU, +10/s on node 1
    (CPU 3's counter reset at 2 s), SecPageTables 1 MiB on node 0 grows to 3 MiB and 4 KiB on
    node 1 to 260 KiB; the workload (pid 7, child 8 from 1 s) holds 1 GiB + 1 GiB of 2 MiB
    pages on node 0 and 1 MiB on node 1."""
    irq, mem0, mem1 = files["interrupts"], files["node0/meminfo"], files["node1/meminfo"]
    first = dict(files, **{"node0/meminfo": with_sec(mem0, 0, 1024),
                           "node1/meminfo": with_sec(mem1, 1, 4),
                           "pid/7/numa_maps": NUMA_MAPS, "pid/7/status": "Pid:\t7\n"})
    reset = tlb(irq, (200, 200, 20, 0)).replace(" 10345022 ", " " * 9 + "7 ")
    return [
        body(0, 0.0, first, pids=[7]),
        body(1, 1.0, {"interrupts": [[24, tlb(irq, (100, 100, 10, 10)).split("\n")[24]]],
                      "pid/8/numa_maps": OTHER_PROCESS_MAPS}, pids=[7, 8], kmsg=KMSG),
        body(2, 2.0, {"interrupts": reset, "node0/meminfo": with_sec(mem0, 0, 3072),
                      "node1/meminfo": with_sec(mem1, 1, 260)}, pids=[7, 8]),
        body(3, 2.5, {"pid/7/numa_maps": None}, pids=[7], final=True),
    ]


def by_name(measurements: tuple[Measurement, ...]) -> dict[tuple[str, str | None], float | None]:
    return {(m.metric, dict(m.labels).get("node")): m.value for m in measurements}


def collected(bodies: list[dict[str, Any]]) -> Collected:
    collector = SampleCollector()
    for b in bodies:
        collector(b)
    return collector.result()


def test_decoder_applies_whole_texts_changed_lines_and_nulls(files: dict[str, str]) -> None:
    decoder = SampleDecoder()
    snaps = [decoder.feed(b) for b in history(files)]
    assert snaps[1].texts["interrupts"] == tlb(files["interrupts"], (100, 100, 10, 10))
    assert snaps[1].texts["vmstat"] == files["vmstat"]  # unchanged: still there
    assert snaps[1].kmsg == KMSG and snaps[2].kmsg == ""
    assert snaps[3].texts["pid/7/numa_maps"] is None
    assert "pid/8/numa_maps" not in snaps[3].texts  # pid 8 left the tree
    assert [s.final for s in snaps] == [False, False, False, True]


@pytest.mark.parametrize(("change", "message"), [
    ({"seq": 5}, r"sample 5 arrived, expected 0"),
    ({"files": {"vmstat": [[0, "x"]]}}, r"changes lines of vmstat, whose text it never sent"),
    ({"files": {"vmstat": 3}}, r"sample.files\['vmstat'\] is 3"),
    ({"pids": ["7"]}, r"sample.pids is not a list of ints"),
    ({"monotonic_seconds": None}, r"sample.monotonic_seconds is None, expected a number"),
])
def test_decoder_refuses_broken_samples(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        SampleDecoder().feed({**body(0, 0.0, {"vmstat": "a 1\n"}), **change})


def test_series_from_the_captures(files: dict[str, str]) -> None:
    c = collected(history(files))
    tlb_total = [v for _, _, v in c.points[("tlb_shootdowns", ())]]
    # CPU 3 reset to 7 at 2 s: counted from 0 -> 7 for that interval
    assert tlb_total == [0, 220, 220 + 200 + 10 + 7, 437]
    assert c.points[("tlb_shootdowns", (("node", "1"),))][2][2] == 20 + 10 + 7
    assert ("tlb_shootdowns", (("node", "2"),)) not in c.points  # a node without CPUs
    assert [v for _, _, v in c.points[("sec_page_tables_bytes", (("node", "0"),))]] == \
        [1 << 20, 1 << 20, 3 << 20, 3 << 20]
    assert ("sec_page_tables_bytes", (("node", "2"),)) not in c.points  # not printed there
    resident0 = [v for _, _, v in c.points[("workload_resident_bytes", (("node", "0"),))]]
    assert resident0 == [(1 << 30) * 2] * 3  # the final sample read no numa_maps: no point
    assert c.points[("workload_resident_bytes", (("node", "1"),))][1][2] == 1 << 20
    assert ("kvm_remote_tlb_flush", ()) not in c.points
    assert [v for _, _, v in c.points[("numa_hint_faults", ())]] == [0] * 4  # as captured
    assert ("nr_tlb_remote_flush", ()) not in c.points  # not a DEBUG_TLBFLUSH kernel


def test_derived_metrics(files: dict[str, str]) -> None:
    d = derive_metrics(collected(history(files)), intended_nodes=(0,))
    m = by_name(d.measurements)
    assert m[("tlb_shootdowns_per_second", None)] == pytest.approx(437 / 2.5)
    assert m[("tlb_shootdowns_per_second", "0")] == pytest.approx(400 / 2.5)
    assert m[("sec_page_tables_growth_bytes", None)] == (2 << 20) + (256 << 10)
    assert m[("sec_page_tables_growth_bytes", "1")] == 256 << 10
    memory = {0: 2 << 30, 1: 1 << 20, 2: 0}
    share0 = memory[0] / sum(memory.values())
    growth = {0: 2 << 20, 1: 256 << 10}
    expected = (min(growth[0], share0 * sum(growth.values()))
                + min(growth[1], (1 - share0) * sum(growth.values()))) / sum(growth.values())
    assert m[("page_table_locality", None)] == pytest.approx(expected)
    assert m[("sec_page_tables_bytes_per_gib", None)] == pytest.approx(
        sum(growth.values()) / (sum(memory.values()) / (1 << 30)))
    assert m[("placement_ratio", None)] == pytest.approx(share0)
    assert m[("sampler_samples", None)] == 4
    assert m[("sampler_interval_seconds", None)] == 1.0
    assert m[("sampler_max_gap_seconds", None)] == 1.0
    assert m[("sampler_agent_cpu_ratio", None)] == pytest.approx(1 / 200)
    assert m[("kernel_log_problems", None)] == 1
    assert m[("kvm_remote_tlb_flushes_per_second", None)] is None  # no KVM: unknown, not 0
    assert m[("numa_hint_faults_per_second", None)] == 0.0  # read, and it did not move
    assert d.notes is not None and d.notes.startswith("kernel log warn: WARNING: CPU: 22")
    assert all(("source", "sampler") in x.labels for x in d.measurements)


def test_missing_inputs_are_none_never_zero(files: dict[str, str]) -> None:
    bodies = [body(0, 0.0, {"vmstat": files["vmstat"], "interrupts": None},
                   errors={"kmsg": "EACCES: Permission denied"}),
              body(1, 1.0, {}, final=True)]
    d = derive_metrics(collected(bodies), intended_nodes=(0,))
    m = by_name(d.measurements)
    for name in ("tlb_shootdowns_per_second", "sec_page_tables_growth_bytes",
                 "page_table_locality", "sec_page_tables_bytes_per_gib", "placement_ratio",
                 "kernel_log_problems", "kvm_remote_tlb_flushes_per_second"):
        assert m[(name, None)] is None, name
    assert ("tlb_shootdowns_per_second", "0") not in m
    assert m[("sampler_interval_seconds", None)] is None  # one periodic sample only
    assert d.notes == "cannot read kmsg: EACCES: Permission denied"
    assert "placement_ratio" not in {x.metric for x in
                                     derive_metrics(collected(bodies),
                                                    intended_nodes=None).measurements}


def test_a_broken_sample_stops_collection_with_a_note(files: dict[str, str]) -> None:
    bodies = history(files)
    bodies[2]["seq"] = 9
    c = collected(bodies)
    assert len(c.times) == 2
    assert c.notes == ("sampling stopped: broken sample: sample 9 arrived, expected 2",)


def test_stored_points_are_thinned_evenly_keeping_both_ends(files: dict[str, str]) -> None:
    points = tuple((float(i), 1e9 + i, float(i)) for i in range(1000))
    kept = thin(points, 600)
    assert len(kept) == 600 and kept[0] == points[0] and kept[-1] == points[-1]
    steps = {b[0] - a[0] for a, b in itertools.pairwise(kept)}
    assert steps <= {1.0, 2.0}
    assert thin(points[:10], 600) == points[:10]
    rows = series_points(collected(history(files)))
    assert {p.series for p in rows} >= {"tlb_shootdowns", "workload_resident_bytes",
                                        "sec_page_tables_bytes", "agent_cpu_seconds"}
    assert all(p.wall_unix_seconds - p.monotonic_seconds == 1.7e9 for p in rows)


@pytest.mark.parametrize(("values", "nodes"), [
    ({"membind": "0"}, (0,)), ({"membind": 1}, (1,)), ({"nodes": "0-1,3"}, (0, 1, 3)),
    ({"membind": "0", "nodes": "1"}, (0,)), ({"size": 3}, None), ({"membind": "x"}, None),
    ({"membind": True}, None),
])
def test_intended_nodes(values: dict[str, Any], nodes: tuple[int, ...] | None) -> None:
    assert intended_nodes(values) == nodes


def test_workload_memory_is_taken_at_its_peak_not_at_teardown(files: dict[str, str]) -> None:
    bodies = history(files)  # at 2 s the workload has unmapped its buffers: libc is left
    bodies[2]["files"]["pid/7/numa_maps"] = ("7f0000000000 default file=/usr/lib/libc.so.6 "
                                            "mapped=100 N1=100 kernelpagesize_kB=4\n")
    c = collected(bodies)
    assert c.points[("workload_resident_bytes", (("node", "0"),))][2][2] == 0
    m = by_name(derive_metrics(c, intended_nodes=(0,)).measurements)
    assert m[("placement_ratio", None)] == pytest.approx((2 << 30) / ((2 << 30) + (1 << 20)))


def test_page_table_growth_is_taken_at_the_peak_not_after_the_vm_exits(
        files: dict[str, str]) -> None:
    """A VM frees its page tables when it exits, before the final sample: the growth is the
    peak sample's (a real KVM case in the lab guest: 140 KiB on node 0, then 0 again)."""
    bodies = history(files)
    bodies[3]["files"] = {"node0/meminfo": with_sec(files["node0/meminfo"], 0, 1024),
                          "node1/meminfo": with_sec(files["node1/meminfo"], 1, 4)}
    m = by_name(derive_metrics(collected(bodies), intended_nodes=(0,)).measurements)
    assert m[("sec_page_tables_growth_bytes", "0")] == 2 << 20
    assert m[("sec_page_tables_growth_bytes", "1")] == 256 << 10
    assert m[("page_table_locality", None)] is not None
