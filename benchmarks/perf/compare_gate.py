"""How long do `fleet compare` and the gate's decision take on big runs?

Writes a synthetic store with the store's own functions (create_run, record_attempt,
save_snapshots): two runs of the same suite, each C cases x R repetitions on H hosts with one
workload metric per attempt (default 2,000 x 5 x 1 = 10,000 results per run), the candidate
5 % slower on every fifth case. Then measures, as medians:
  compare          fleet.api.compare.compare_stored(store, [A, B]): load both runs from the
                   store, match metric x case x host, statistics (bootstrap 2,000 resamples,
                   Mann-Whitney U, effect sizes) and verdicts; goal <= 1 s
  compare: stats   the statistics part alone (build_report on already selected groups)
  gate decision    what `fleet gate` does after its run: load baseline and candidate runs of
                   a 200-case suite (5 reps), compare, decide, render JUnit and Markdown;
                   goal <= 0.5 s

    .venv/bin/python benchmarks/perf/compare_gate.py --cases 2000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fleet.api.compare import GateRequest, _gate_report, compare_stored
from fleet.compare.decide import decide
from fleet.compare.engine import build_report
from fleet.compare.load import load_runs
from fleet.compare.output import junit, markdown
from fleet.compare.select import between_runs
from fleet.hosts import Host
from fleet.model import CpuInfo, Facts, IommuInfo, KvmInfo, Measurement, NumaNode, Topology
from fleet.runs import Attempt, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt

SUITE = """\
schema_version: 1
name: bench
compare:
  min_repetitions: 3
  threshold: 2%
  metrics:
    elapsed: {direction: lower_is_better}
workloads:
  - name: w
    type: command
    argv: [sh, -c, 'echo {n}']
    axes:
      n: [0]
"""


def facts(host: str) -> Facts:
    return Facts(host=host, collected_at_unix_seconds=1.0, hostname=host,
                 kernel_release="6.1.0", kernel_cmdline="quiet",
                 cpu=CpuInfo("GenuineIntel", "Xeon", "0x2b", 4),
                 topology=Topology((NumaNode(0, (0, 1, 2, 3), 8 << 30, None, (10,)),), (0,)),
                 mem_total_bytes=8 << 30, hugepages=(), thp_enabled="madvise",
                 thp_defrag="madvise", numa_balancing=1, kvm=KvmInfo(False, ()),
                 iommu=IommuInfo(False, ()), fingerprint=f"fp-{host}")


def write_run(store: Store, run_id: str, cases: int, reps: int, hosts: int, *,
              slower: float, seed: int) -> None:
    ids = [f"{i:016x}" for i in range(cases)]
    plan = {"cases": {cid: {"workload": "w", "params": {"n": i}, "knobs": {}, "variant": {}}
                      for i, cid in enumerate(ids)}}
    names = [f"h{h}" for h in range(hosts)]
    jobs = [JobKey(cid, r, h) for cid in ids for r in range(1, reps + 1) for h in names]
    info = RunInfo(run_id, "bench", "bench.yml", "0" * 64, 1, (), None, "0.1.0",
                   float(seed), None, "completed")
    create_run(store, info, suite_text=SUITE, plan_json=json.dumps(plan),
               cases=[(cid, "w", json.dumps({"n": i})) for i, cid in enumerate(ids)],
               jobs=jobs, skipped=[])
    rng = np.random.default_rng(seed)
    noise = rng.normal(1.0, 0.01, len(jobs))
    for k, job in enumerate(jobs):
        index = int(job.case_id, 16)
        value = (1.0 + index % 7) * noise[k] * (slower if index % 5 == 0 else 1.0)
        record_attempt(store, Attempt(run_id, job, str(job.host), 1, "completed", 0.0, 1.0, 0,
                                      None, "", "", False, False, f"fp-{job.host}",
                                      measurements=(Measurement("elapsed", value, "s"),)))


def make_store(path: Path, cases: int, reps: int, hosts: int) -> None:
    with Store.open(path) as store:
        names = [f"h{h}" for h in range(hosts)]
        store.save_snapshots([Host(n, "127.0.0.1") for n in names], [facts(n) for n in names])
        write_run(store, "rA", cases, reps, hosts, slower=1.0, seed=1)
        write_run(store, "rB", cases, reps, hosts, slower=1.05, seed=2)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gate_decision(path: Path) -> int:
    problems: list[str] = []
    report = _gate_report(GateRequest(Path("bench.yml"), (), None, path, baseline="rA"),
                          "rB", "rA", {"h0"}, problems)
    decision = decide(report, problems)
    junit(report, decision)
    markdown(report, decision)
    return decision.exit_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--gate-cases", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.sqlite", Path(tmp) / "small.sqlite"
        make_store(big, args.cases, args.reps, args.hosts)
        make_store(small, args.gate_cases, args.reps, 1)
        results = args.cases * args.reps * args.hosts
        report = compare_stored(big, ["rA", "rB"])
        worse = sum(r.result.verdict == "worse" for r in report.rows)
        print(f"compare: {len(report.rows)} groups, {worse} worse (planted: "
              f"{len([i for i in range(args.cases) if i % 5 == 0]) * args.hosts})")
        print(f"compare of two runs of {results} results: "
              f"{median_seconds(lambda: compare_stored(big, ['rA', 'rB']), args.repeat):.3f} s")
        runs = load_runs(big, ["rA", "rB"])
        groups = between_runs(*runs)
        stats = median_seconds(lambda: build_report(groups, baseline="a", candidate="b"),
                               args.repeat)
        print(f"compare: stats alone: {stats:.3f} s")
        print(f"gate decision exit code {gate_decision(small)}")
        print(f"gate decision, {args.gate_cases}-case suite x {args.reps} reps: "
              f"{median_seconds(lambda: gate_decision(small), args.repeat):.3f} s")


if __name__ == "__main__":
    main()
