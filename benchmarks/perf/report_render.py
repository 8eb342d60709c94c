"""How long does `fleet report` take on a 1,000-case run?

Writes a synthetic store with the store's own functions (fleet.store.runs.create_run and
record_attempt): one run of 1,000 cases (vcpus x backing x kvm.eager_page_split = 50 x 10 x 2)
x R repetitions (default 3) on H hosts (default 2) with 2 NUMA nodes, each completed attempt
with 3 workload results, every sampler metric of the catalogue (total and per node) and the
sampled series tlb_shootdowns and sec_page_tables_bytes per node (P points each, default 30).
Then times, as medians of --repeat, the whole `fleet report` (read the store, assemble the
tables with bootstrap CIs and the change verdicts, plot, render, write atomically):
  hosts   columns = the hosts (one table per metric)
  axis    --axis kvm.eager_page_split=N,Y (one table per metric and host, change column)
goal: <= 10 s for the report of a 1,000-case run.

    .venv/bin/python benchmarks/perf/report_render.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from exporter_scrape import sampler_measurements  # this directory: run as a script

from fleet.model import Measurement
from fleet.report.build import ReportRequest, build_report
from fleet.runs import Attempt, JobKey, RunInfo, SeriesPoint
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt

EPS = "kvm.eager_page_split"
WORKLOAD_METRICS = (("populate_seconds", "seconds"), ("dirty_memory_seconds", "seconds"),
                    ("get_dirty_log_seconds", "seconds"))


def cases() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for vcpus in range(1, 51):
        for backing in range(10):
            for eps in ("N", "Y"):
                out[f"c{vcpus:02d}{backing}{eps}"] = {"vcpus": vcpus, "backing": f"b{backing}",
                                                      EPS: eps}
    return out


def measurements(seed: int, nodes: int) -> tuple[Measurement, ...]:
    workload = [Measurement(name, 1.0 + seed % 97 / 100 + i, unit)
                for i, (name, unit) in enumerate(WORKLOAD_METRICS)]
    return (*workload, *sampler_measurements(seed, nodes))


def samples(seed: int, nodes: int, points: int) -> tuple[SeriesPoint, ...]:
    return tuple(SeriesPoint(series, (("node", str(n)),), 100.0 + t * 0.1, 1.7e9 + t * 0.1,
                             float(seed % 7 + t * (n + 1)))
                 for series in ("tlb_shootdowns", "sec_page_tables_bytes")
                 for n in range(nodes) for t in range(points))


def write_run(path: Path, *, repetitions: int, hosts: int, points: int) -> int:
    settings = cases()
    host_names = [f"host{h + 1}" for h in range(hosts)]
    jobs = [JobKey(c, r, h) for c in settings for r in range(1, repetitions + 1)
            for h in host_names]
    plan = {"cases": {c: {"params": {"vcpus": s["vcpus"], "backing": s["backing"]}, "knobs": {},
                          "variant": {EPS: s[EPS]}} for c, s in settings.items()}}
    with Store.open(path) as store:
        create_run(store, RunInfo("r-bench", "bench", "bench.yml", "0" * 64, 1, (), None, "0.1",
                                  1.7e9, 1.7e9 + 10, "completed"),
                   suite_text="", plan_json=json.dumps(plan),
                   cases=[(c, "dirty_log", json.dumps({"vcpus": s["vcpus"]}))
                          for c, s in settings.items()], jobs=jobs, skipped=[])
        for i, job in enumerate(jobs):
            assert job.host is not None
            record_attempt(store, Attempt(
                "r-bench", job, job.host, 1, "completed", 1.7e9, 1.7e9 + 1, 0, None, "", "",
                False, False, "f" * 16, measurements=measurements(i, 2),
                samples=samples(i, 2, points)))
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--points", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-report-bench-") as tmp:
        store = Path(tmp) / "fleet.sqlite"
        t0 = time.perf_counter()
        jobs = write_run(store, repetitions=args.repetitions, hosts=args.hosts,
                         points=args.points)
        print(f"store: 1000 cases, {jobs} attempts, written in {time.perf_counter() - t0:.1f} s")
        for name, axis in (("hosts", None), ("axis", EPS)):
            times = []
            for i in range(args.repeat):
                request = ReportRequest(store, "r-bench", Path(tmp) / f"{name}-{i}", axis=axis,
                                        axis_values=("N", "Y") if axis else ())
                t0 = time.perf_counter()
                result = build_report(request)
                times.append(time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in result.out_dir.iterdir())
            print(f"{name:6s} median {statistics.median(times):.2f} s (runs: "
                  f"{', '.join(f'{t:.2f}' for t in times)}); {len(result.data.tables)} tables, "
                  f"{len(result.images)} plots, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
