"""The planner on hosts built from real captured facts (node_exporter tree, numactl outputs)."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.api.plan import plan_suite, plan_summary
from fleet.config.suite import load_suite
from fleet.errors import ConfigError
from fleet.facts.build import build_facts
from fleet.facts.numactl import parse_numactl_hardware
from fleet.facts.tree import tree_from_root
from fleet.hosts import Host
from fleet.model import Case, Facts, HugePagePool, KvmInfo, NumaNode, Plan, Requirements, Topology
from fleet.plan.matrix import expand
from fleet.plan.schedule import Candidate, eligibility, plan

REPO = Path(__file__).resolve().parents[2]
KVM_EXAMPLE = REPO / "benchmarks" / "examples" / "kvm_dirty_log_perf.yml"
QUICKSTART = REPO / "benchmarks" / "quickstart.yml"
MIB = 1 << 20
GIB_PAGE = HugePagePool(page_size_bytes=1 << 30, total_pages=0, free_pages=0)
TWO_MIB_PAGE = HugePagePool(page_size_bytes=2 << 20, total_pages=512, free_pages=512)


def numactl_facts(base: Facts, name: str, path: Path, *, kvm: bool,
                  pools: tuple[HugePagePool, ...]) -> Facts:
    """``base`` with the topology, CPU count and memory of a captured ``numactl -H``."""
    hw = parse_numactl_hardware(path.read_text(), source=str(path))
    rows = hw.distances or ()
    nodes = tuple(NumaNode(n.node_id, n.cpus, n.size_mb * MIB if n.size_mb else None,
                           n.free_mb * MIB if n.free_mb else None,
                           rows[i] if i < len(rows) else ())
                  for i, n in enumerate(hw.nodes))
    topology = Topology(nodes=nodes, socket_ids=(0, 1))
    return replace(base, host=name, topology=topology,
                   cpu=replace(base.cpu, logical_cpus=topology.cpu_count),
                   mem_total_bytes=sum(n.mem_total_bytes or 0 for n in nodes),
                   kvm=KvmInfo(dev_kvm=kvm, modules=()), hugepages=pools)


@pytest.fixture(scope="session")
def ne_facts(node_exporter_sys_root: Path) -> Facts:
    return build_facts("ne", tree_from_root(node_exporter_sys_root), collected_at_unix_seconds=0)


@pytest.fixture(scope="session")
def flat_facts(procfs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Facts:
    """A kernel without NUMA sysfs: procfs' real meminfo, cpuinfo and cpu topology."""
    dest = tmp_path_factory.mktemp("flat")
    for rel in ("proc/meminfo", "proc/cpuinfo", "proc/cmdline"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(procfs_root / rel, dest / rel)
    shutil.copytree(procfs_root / "sys" / "devices" / "system" / "cpu",
                    dest / "sys" / "devices" / "system" / "cpu", symlinks=True)
    return build_facts("flat", tree_from_root(dest), collected_at_unix_seconds=0)


@pytest.fixture(scope="session")
def fleet(corpus: Path, ne_facts: Facts) -> list[Candidate]:
    """4 hosts: 8-node Xeon (KVM, 1 GiB pages), 4-node Kunpeng (KVM), 2-node k8s, 3-node ne."""
    numa = corpus / "numa_outputs"
    leonardo = numactl_facts(ne_facts, "leonardo", numa /
                             "numactl_-H__leonardo_dcgp_8node_2socket_snc4.txt",
                             kvm=True, pools=(TWO_MIB_PAGE, GIB_PAGE))
    kunpeng = numactl_facts(ne_facts, "kunpeng", numa / "numactl_-H__kunpeng920_4node_2socket.txt",
                            kvm=True, pools=(TWO_MIB_PAGE,))
    k8s = numactl_facts(ne_facts, "k8s", numa / "numactl_-H__k8s_2node_64cpu_even_odd.txt",
                        kvm=False, pools=(TWO_MIB_PAGE, GIB_PAGE))
    return [Candidate(Host("leonardo", "10.0.0.1", groups=("hpc", "numa")), leonardo),
            Candidate(Host("kunpeng", "10.0.0.2", groups=("arm", "numa")), kunpeng),
            Candidate(Host("k8s", "10.0.0.3", groups=("k8s",)), k8s),
            Candidate(Host("ne", "10.0.0.4"), ne_facts)]


def flat_hosts(flat: Facts, count: int) -> list[Candidate]:
    return [Candidate(Host(f"flat{i}", f"10.1.0.{i}"), replace(flat, host=f"flat{i}"))
            for i in range(count)]


def make_case(i: int, *, seconds: float = 1.0, reps: int = 1, spread: str = "every",
              variant: tuple[tuple[str, str], ...] = (),
              req: Requirements | None = None) -> Case:
    return Case(case_id=f"c{i:05d}", workload="w", kind="sleep", params=(("i", i),), knobs=(),
                variant=variant, requirements=req or Requirements(), repetitions=reps,
                timeout_seconds=60, estimate_seconds=seconds, spread=spread)  # type: ignore[arg-type]


def placed(result: Plan) -> Counter[tuple[str, int, str]]:
    return Counter((e.case_id, e.repetition, q.host) for q in result.queues for e in q.entries)


# ---- eligibility and skip reasons -----------------------------------------------------------


def test_skip_reason_names_requirement_and_counts(flat_facts: Facts) -> None:
    hosts = flat_hosts(flat_facts, 3)
    assert flat_facts.topology.node_ids == (0,)
    result = plan("t", [make_case(0, req=Requirements(min_numa_nodes=2))], hosts, seed=1)
    assert result.skipped[0].reason == \
        "needs >= 2 NUMA nodes (0 of 3 hosts); eligible hosts: none of 3"
    assert result.entry_count == 0


def test_skip_reason_lists_each_failing_requirement(fleet: list[Candidate]) -> None:
    req = Requirements(min_numa_nodes=4, kvm=True, hugepages_1g=True, min_cpus=100,
                       groups=("arm",))
    assert eligibility(req, fleet) == ((), (
        "needs >= 4 NUMA nodes (2 of 4 hosts), >= 100 CPUs (1 of 4 hosts), KVM (/dev/kvm) "
        "(2 of 4 hosts), 1 GiB huge pages (2 of 4 hosts), inventory group arm (1 of 4 hosts); "
        "eligible hosts: none of 4"))


def test_unknown_facts_never_satisfy_a_minimum(fleet: list[Candidate]) -> None:
    ne = fleet[3]
    assert ne.facts.mem_total_bytes is None  # node_exporter's tree has no /proc/meminfo
    eligible, reason = eligibility(Requirements(min_memory_bytes=1), [ne])
    assert eligible == ()
    assert reason == "needs >= 9.31323e-10 GiB memory (0 of 1 hosts); eligible hosts: none of 1"


def test_groups_and_host_patterns(fleet: list[Candidate]) -> None:
    assert eligibility(Requirements(groups=("numa",)), fleet)[0] == (0, 1)
    assert eligibility(Requirements(groups=("numa", "arm")), fleet)[0] == (1,)
    assert eligibility(Requirements(host_patterns=("k*", "n?")), fleet)[0] == (1, 2, 3)
    assert eligibility(Requirements(min_memory_bytes=600 << 30), fleet)[0] == (1,)


def test_no_hosts_at_all() -> None:
    result = plan("t", [make_case(0)], [], seed=1)
    assert result.skipped[0].reason == "no host has facts to plan on"


# ---- the KVM example on the fleet ------------------------------------------------------------


def test_kvm_example_every_case_on_exactly_its_eligible_hosts(fleet: list[Candidate]) -> None:
    cases = expand(load_suite(KVM_EXAMPLE))
    result = plan("kvm", cases, fleet, seed=7)
    assert result.skipped == ()
    counts = placed(result)
    for case in cases:
        hosts = {h for (cid, _, h) in counts if cid == case.case_id}
        hugetlb = dict(case.params)["backing"] == "anonymous_hugetlb_1gb"
        assert hosts == ({"leonardo"} if hugetlb else {"leonardo", "kunpeng"})
        for host in hosts:
            assert sorted(r for (cid, r, h) in counts if cid == case.case_id and h == host) \
                == [1, 2, 3, 4, 5]
    assert set(counts.values()) == {1}
    queues = {q.host: q for q in result.queues}
    assert len(queues["leonardo"].entries) == 11 * 5 and len(queues["kunpeng"].entries) == 8 * 5
    assert queues["k8s"].entries == () and queues["ne"].entries == ()
    assert result.estimate_seconds == queues["leonardo"].estimate_seconds == 55 * 120
    assert result.work_seconds == (55 + 40) * 120


def test_plan_is_deterministic_for_a_seed(fleet: list[Candidate]) -> None:
    cases = expand(load_suite(KVM_EXAMPLE))
    assert plan("kvm", cases, fleet, seed=7) == plan("kvm", cases, fleet, seed=7)
    orders = {tuple(e.case_id for e in plan("kvm", cases, fleet, seed=s).queues[0].entries)
              for s in range(5)}
    assert len(orders) == 5


def test_a_hosts_queue_does_not_depend_on_other_hosts(fleet: list[Candidate]) -> None:
    cases = expand(load_suite(KVM_EXAMPLE))
    alone = plan("kvm", cases, fleet[:1], seed=3).queues[0]
    together = plan("kvm", cases, fleet, seed=3).queues[0]
    assert alone == together


# ---- any: one host per run, longest first onto the least loaded ------------------------------


def test_any_spread_places_each_run_once_on_an_eligible_host(fleet: list[Candidate]) -> None:
    cases = [replace(c, spread="any") for c in expand(load_suite(KVM_EXAMPLE))]
    result = plan("kvm", cases, fleet, seed=1)
    counts = placed(result)
    assert sum(counts.values()) == len(cases) * 5
    runs = Counter((cid, rep) for cid, rep, _ in counts)
    assert set(runs.values()) == {1}
    hugetlb = {c.case_id for c in cases if dict(c.params)["backing"] == "anonymous_hugetlb_1gb"}
    assert all(h == "leonardo" for cid, _, h in counts if cid in hugetlb)
    loads = {q.host: q.estimate_seconds for q in result.queues}
    # 15 hugetlb runs must go to leonardo; the 40 others fill kunpeng first: 27.5 runs each
    assert loads == {"leonardo": 28 * 120, "kunpeng": 27 * 120, "k8s": 0, "ne": 0}


def optimal_makespan(durations: list[float], host_count: int) -> float:
    return min(max(sum(d for d, h in zip(durations, assign, strict=True) if h == host)
                   for host in range(host_count))
               for assign in itertools.product(range(host_count), repeat=len(durations)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.1, 100), min_size=1, max_size=40), st.integers(1, 6))
def test_lpt_makespan_is_near_the_lower_bound(ne_facts: Facts, durations: list[float],
                                              host_count: int) -> None:
    cases = [make_case(i, seconds=d, spread="any") for i, d in enumerate(durations)]
    hosts = [Candidate(Host(f"h{i}", "x"), ne_facts) for i in range(host_count)]
    result = plan("t", cases, hosts, seed=0)
    longest, average = max(durations), sum(durations) / host_count
    assert max(longest, average) - 1e-9 <= result.estimate_seconds
    assert result.estimate_seconds <= average + longest * (1 - 1 / host_count) + 1e-9
    assert math.isclose(result.work_seconds, sum(durations))
    if len(durations) <= 7 and host_count <= 3:  # LPT is within 4/3 of the optimum
        assert result.estimate_seconds <= optimal_makespan(durations, host_count) * 4 / 3 + 1e-9


def test_lpt_is_exact_for_equal_jobs(flat_facts: Facts) -> None:
    cases = [make_case(i, seconds=10, spread="any") for i in range(10)]
    result = plan("t", cases, flat_hosts(flat_facts, 3), seed=0)
    assert [len(q.entries) for q in result.queues] == [4, 3, 3]
    assert result.estimate_seconds == 40


# ---- queue order: variant groups, rounds, interleaving ---------------------------------------


def test_variants_are_grouped_in_case_order(flat_facts: Facts) -> None:
    cases = [make_case(i, reps=2, variant=(("kernel", k),)) for i, k in
             enumerate(["b", "a", "b", "a", "c"])]
    (queue,) = plan("t", cases, flat_hosts(flat_facts, 1), seed=5).queues
    assert [g.variant for g in queue.groups] == [(("kernel", "b"),), (("kernel", "a"),),
                                                 (("kernel", "c"),)]
    assert [sorted(e.case_id for e in g.entries) for g in queue.groups] == [
        ["c00000", "c00000", "c00002", "c00002"], ["c00001", "c00001", "c00003", "c00003"],
        ["c00004", "c00004"]]


def test_two_cases_alternate_a_b_a_b(flat_facts: Facts) -> None:
    cases = [make_case(0, reps=5), make_case(1, reps=5)]
    for seed in range(10):
        (queue,) = plan("t", cases, flat_hosts(flat_facts, 1), seed=seed).queues
        order = [e.case_id for e in queue.entries]
        assert order in (["c00000", "c00001"] * 5, ["c00001", "c00000"] * 5)
        assert [e.repetition for e in queue.entries] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 7), st.integers(1, 5), st.integers(0, 2**32), st.integers(1, 3))
def test_queue_is_an_interleaved_permutation(ne_facts: Facts, n_cases: int, reps: int,
                                             seed: int, n_hosts: int) -> None:
    cases = [make_case(i, reps=reps) for i in range(n_cases)]
    hosts = [Candidate(Host(f"h{i}", "x"), ne_facts) for i in range(n_hosts)]
    result = plan("t", cases, hosts, seed=seed)
    for queue in result.queues:
        entries = [(e.case_id, e.repetition) for e in queue.entries]
        assert sorted(entries) == sorted((c.case_id, r) for c in cases
                                         for r in range(1, reps + 1))
        seen: Counter[str] = Counter()
        for case, rep in entries:
            seen[case] += 1
            assert seen[case] == rep  # repetitions in order
            assert max(seen.values()) - min(seen[c.case_id] for c in cases) <= 1
        if n_cases > 1:
            assert all(a[0] != b[0] for a, b in itertools.pairwise(entries))


# ---- plan_api --------------------------------------------------------------------------------


def plan_file(path: Path, facts: list[Facts], hosts: list[Host], **options: Any) -> Plan:
    """plan_suite of the suite file at ``path`` (read and parsed once, as fleet run does)."""
    return plan_suite(load_suite(path), facts, hosts, where=str(path), **options)


def test_plan_suite_and_summary_for_quickstart(ne_facts: Facts) -> None:
    local = Host("localhost", "localhost", connection="local")
    result = plan_file(QUICKSTART, [replace(ne_facts, host="localhost")],
                        [local, Host("gone", "10.9.9.9")], seed=42)
    summary = plan_summary(result)
    assert summary["totals"] == {
        "cases": 4, "planned_cases": 4, "skipped_cases": 0, "runs": 8, "hosts": 1,
        "hosts_without_facts": 1, "estimate_seconds": 8.0, "work_seconds": 8.0}
    assert summary["hosts_without_facts"] == ["gone"]
    (host,) = summary["hosts"]
    assert host["host"] == "localhost" and host["runs"] == 8
    (group,) = host["groups"]
    assert group["variant"] == {}
    assert sorted(group["queue"]) == sorted([cid, r] for cid in summary["cases"] for r in (1, 2))
    assert summary["cases"]["f0e18657ca4611bb"]["params"] == {"block_size": "64K",
                                                               "volume": "256M"}
    assert summary["seed"] == 42 and summary["suite"] == "quickstart"
    assert group["queue"] == [[e.case_id, e.repetition] for e in result.queues[0].entries]
    assert json.loads(json.dumps(summary)) == summary


def test_plan_suite_with_no_runnable_case_is_one_config_error(fleet: list[Candidate]) -> None:
    small = fleet[2:]  # k8s (no KVM) and ne (no KVM)
    with pytest.raises(ConfigError) as info:
        plan_file(KVM_EXAMPLE, [c.facts for c in small], [c.host for c in small], seed=1)
    line = str(info.value)
    assert line.startswith(f"{KVM_EXAMPLE}: no case of suite kvm-dirty-log-perf can run on "
                           "the 2 host(s) given: needs KVM (/dev/kvm) (0 of 2 hosts); "
                           "eligible hosts: none of 2 [8 cases]; ")
    assert "[2 cases]" in line and "[1 case]" in line and "\n" not in line


def test_plan_suite_without_any_facts_says_to_gather_them() -> None:
    """`fleet plan` on a fresh machine (no stored facts) is told how to get them, not to relax
    the suite's requires."""
    with pytest.raises(ConfigError) as info:
        plan_file(QUICKSTART, [], [Host("localhost", "localhost", connection="local")], seed=1)
    line = str(info.value)
    assert "can run on the 0 host(s) given: no host has facts to plan on" in line
    assert line.endswith("(gather the hosts' facts first (fleet facts, or fleet plan --gather); "
                         "a host that cannot be reached has none)")


def test_plan_suite_refuses_facts_of_unknown_hosts(ne_facts: Facts) -> None:
    with pytest.raises(ConfigError, match="facts for hosts not in the inventory: ne"):
        plan_file(QUICKSTART, [ne_facts], [Host("localhost", "localhost")], seed=1)


def test_plan_suite_refuses_more_jobs_than_max_jobs(ne_facts: Facts) -> None:
    hosts = [Host(f"h{i}", f"10.0.0.{i}") for i in range(3)]
    facts = [replace(ne_facts, host=h.name) for h in hosts]
    # quickstart: 4 cases x 2 repetitions on every host: 8 jobs per host, 24 in all
    assert plan_file(QUICKSTART, facts, hosts, seed=1, max_jobs=24).entry_count == 24
    with pytest.raises(ConfigError) as info:
        plan_file(QUICKSTART, facts, hosts, seed=1, max_jobs=23)
    assert str(info.value) == (
        f"{QUICKSTART}: the plan has 24 jobs (cases x repetitions x hosts), more than 23 "
        "(narrow the suite, plan on fewer hosts (--limit), or allow more with --max-jobs N)")
    with pytest.raises(ConfigError, match="suite quickstart has more than 7 jobs"):
        plan_file(QUICKSTART, facts[:1], hosts[:1], seed=1, max_jobs=7)
