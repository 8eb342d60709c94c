"""How long does planning take at fleet scale? 100,000 cases over 1,000 synthetic hosts.

The hosts are Facts shaped like the corpus' machines (1, 2, 4 and 8 NUMA nodes; 16 to 224
CPUs; KVM on most, 1 GiB pages and IOMMUs on some; inventory groups). The suite has two
entries: 99,000 ``any`` cases (45 x 110 x 10 x 2; LPT balancing under six requirement sets)
and 1,000 ``every`` cases limited to the 10 hosts of group ``canary``. Measures, as medians:
  expand   parse_suite + matrix.expand (100,000 Cases with ids)
  plan     schedule.plan (eligibility, assignment, per-host ordering)   goal: <= 2 s
  summary  plan_api.plan_summary (the --json document)

    .venv/bin/python benchmarks/perf/plan_scale.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from fleet.api.plan import plan_summary
from fleet.config.suite import parse_suite
from fleet.hosts import Host
from fleet.model import CpuInfo, Facts, HugePagePool, IommuInfo, KvmInfo, NumaNode, Topology
from fleet.plan.matrix import expand
from fleet.plan.schedule import Candidate, plan

T = TypeVar("T")
MIB, GIB = 1 << 20, 1 << 30
# (nodes, cpus per node, GiB per node, distances): shapes of corpus numactl outputs
SHAPES = [(1, 16, 64, (10,)), (2, 32, 256, (10, 21)), (4, 24, 188, (10, 12, 20, 22)),
          (8, 14, 62, (10, 12, 12, 12, 21, 21, 21, 21)), (2, 112, 768, (10, 21))]

SUITE = """
schema_version: 1
name: plan-scale
repetitions: 1
timeout_seconds: 600
workloads:
  - name: throughput
    type: command
    argv: [/opt/bench/run, --a, "{a}", --b, "{b}", --c, "{c}"]
    spread: any
    requires: {kvm: true}
    axes:
      a: [%(a)s]
      b: [%(b)s]
      c: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      numa_balancing: [0, 1]
    requires_when:
      - {match: {c: 1}, requires: {min_numa_nodes: 2}}
      - {match: {c: 2}, requires: {min_numa_nodes: 4, min_cpus: 64}}
      - {match: {c: 3}, requires: {hugepages_1g: true}}
      - {match: {c: 4}, requires: {iommu: true, min_memory_gib: 500}}
      - {match: {c: 5}, requires: {groups: [rack1]}}
  - name: canary
    type: sleep
    spread: every
    repetitions: 1
    requires: {groups: [canary]}
    axes:
      seconds: [%(seconds)s]
"""


def synthetic_facts(index: int) -> tuple[Host, Facts]:
    count, per_node, gib, row = SHAPES[index % len(SHAPES)]
    nodes = tuple(NumaNode(node_id=n, cpus=tuple(range(n * per_node, (n + 1) * per_node)),
                           mem_total_bytes=gib * GIB, mem_free_bytes=gib * GIB // 2,
                           distances=row[n:] + row[:n] if count > 1 else row)
                  for n in range(count))
    name = f"host{index:04d}"
    pools = (HugePagePool(2 * MIB, 1024, 1024),) + (
        (HugePagePool(GIB, 4, 4),) if index % 3 == 0 else ())
    facts = Facts(
        host=name, collected_at_unix_seconds=0.0, hostname=name, kernel_release="6.1.0-18-amd64",
        kernel_cmdline="BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro", topology=Topology(
            nodes=nodes, socket_ids=(0, 1) if count > 1 else (0,)),
        cpu=CpuInfo(vendor="GenuineIntel", model_name="Intel(R) Xeon(R) Platinum 8358",
                    microcode="0xd0003a5", logical_cpus=count * per_node, flags=("vmx",)),
        mem_total_bytes=count * gib * GIB, hugepages=pools, thp_enabled="madvise",
        thp_defrag="madvise", numa_balancing=1,
        kvm=KvmInfo(dev_kvm=index % 10 != 0, modules=()),
        iommu=IommuInfo(present=index % 2 == 0, groups=()), fingerprint=f"{index:016x}")
    groups = ("all", f"rack{index % 4}") + (("canary",) if index % 100 == 0 else ())
    return Host(name, f"10.{index >> 8}.{index & 255}.1", groups=groups), facts


def median_seconds(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()
    text = SUITE % {"a": ", ".join(map(str, range(45))), "b": ", ".join(map(str, range(110))),
                    "seconds": ", ".join(f"{1 + s / 1000:.3f}" for s in range(1000))}
    candidates = [Candidate(*synthetic_facts(i)) for i in range(args.hosts)]
    expand_s, cases = median_seconds(lambda: expand(parse_suite(text, source="scale")),
                                     args.repeat)
    plan_s, result = median_seconds(lambda: plan("scale", cases, candidates, seed=1),
                                    args.repeat)
    summary_s, _ = median_seconds(lambda: plan_summary(result), args.repeat)
    print(f"cases {len(cases)}, hosts {len(candidates)}, runs {result.entry_count}, "
          f"skipped {len(result.skipped)}, makespan {result.estimate_seconds:.0f} s, "
          f"work {result.work_seconds:.0f} s")
    print(f"expand  {expand_s:6.3f} s")
    print(f"plan    {plan_s:6.3f} s   (goal <= 2 s)")
    print(f"summary {summary_s:6.3f} s")


if __name__ == "__main__":
    main()
