"""How long does one Prometheus scrape of `fleet export serve` take on a big run?

Writes a synthetic store with the store's own functions (fleet.store.runs.create_run and
record_attempt): one run of N cases (default 10,000) x R repetitions on H hosts, each
completed attempt with 3 workload results (bytes, seconds, ms) and the sampler's metrics for
a 2-node host (10 scalar + 2 per node and total). Then measures, as medians:
  cold             the first scrape: read the run, build and render every series
  cached           a scrape with no write in between (data_version unchanged)
  one new attempt  a scrape after `fleet run` stored one more attempt (the live case)
  prometheus_client render   the same series through generate_latest (reference)
  http             a scrape over HTTP on loopback, as Prometheus does it
and then `fleet export serve` as it runs (background rendering, fleet/export/prometheus.py):
  serve: startup render      the render made before it listens (= cold)
  serve: first scrape        the first HTTP scrape after it listens
  serve: scrapes while a new run is written   HTTP scrapes every 0.1 s while another process
                   writes a second run of N cases (the exporter re-renders in the background:
                   a new run starts over); median and max
  serve: caught up after     from the last write to a scrape that holds the whole new run
goal: <= 200 ms per scrape.

    .venv/bin/python benchmarks/perf/exporter_scrape.py --cases 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from fleet.catalogue import SAMPLER
from fleet.export.prometheus import Selection, StoreCollector, scrape_once, start_server
from fleet.export.store_reader import open_read_only
from fleet.model import Measurement
from fleet.runs import Attempt, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt, set_run_status

WORKLOAD_METRICS = (("copied_bytes", "bytes"), ("elapsed_seconds", "seconds"),
                    ("latency", "ms"))


def case_ids(cases: int) -> list[str]:
    return [f"{i:016x}" for i in range(cases)]


def measurements(case_index: int, repetition: int, host_index: int,
                 nodes: int) -> tuple[Measurement, ...]:
    """Deterministic values; every stored (metric, unit) of the sampler catalogue."""
    seed = case_index * 7 + repetition * 3 + host_index
    workload = [Measurement(name, float(seed + i + 0.5), unit)
                for i, (name, unit) in enumerate(WORKLOAD_METRICS)]
    return (*workload, *sampler_measurements(seed, nodes))


def sampler_measurements(seed: int, nodes: int) -> list[Measurement]:
    """Every stored (metric, unit) of the sampler catalogue, per node where it has nodes."""
    out = []
    for j, entry in enumerate(SAMPLER):
        assert entry.stored is not None
        metric, unit = entry.stored
        out.append(Measurement(metric, seed / 8 + j, unit, (("source", "sampler"),)))
        if "node" in entry.optional_labels:
            out.extend(Measurement(metric, seed / 16 + j + n, unit,
                                   (("node", str(n)), ("source", "sampler")))
                       for n in range(nodes))
    return out


def write_synthetic_run(store: Store, run_id: str, *, cases: int, repetitions: int = 1,
                        hosts: int = 1, nodes: int = 2,
                        started_unix_seconds: float = 1.7e9) -> None:
    """A completed run of ``cases`` cases x ``repetitions`` on ``hosts`` hosts (spread every)."""
    host_names = [f"host{h + 1}" for h in range(hosts)]
    ids = case_ids(cases)
    info = RunInfo(run_id, "synthetic", "synthetic.yml", "0" * 64, 42, ("synthetic.yml",),
                   None, "0.1.0", started_unix_seconds, None, "running")
    params = [json.dumps({"block_size": f"{4 << (i % 8)}K", "threads": i % 16}, sort_keys=True)
              for i in range(cases)]
    jobs = [JobKey(c, r, h) for c in ids for r in range(1, repetitions + 1) for h in host_names]
    create_run(store, info, suite_text="", plan_json="{}",
               cases=[(c, "stream", p) for c, p in zip(ids, params, strict=True)],
               jobs=jobs, skipped=[])
    index = {c: i for i, c in enumerate(ids)}
    for job in jobs:
        assert job.host is not None
        h = host_names.index(job.host)
        record_attempt(store, Attempt(
            run_id=run_id, job=job, host=job.host, attempt_no=1, status="completed",
            started_at_unix_seconds=started_unix_seconds, ended_at_unix_seconds=started_unix_seconds
            + 1.0, exit_code=0, signal=None, stdout="", stderr="", stdout_truncated=False,
            stderr_truncated=False, fingerprint="f" * 16,
            measurements=measurements(index[job.case_id], job.repetition, h, nodes)))
    set_run_status(store, run_id, "completed", started_unix_seconds + 2.0)


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:.1f} ms"


def _add_attempt(path: Path, run_id: str, n: int) -> None:
    """One more attempt of the run's first job, from another connection (as `fleet run`)."""
    with Store.open(path) as store:
        job = JobKey(case_ids(1)[0], 1, "host1")
        record_attempt(store, Attempt(
            run_id=run_id, job=job, host="host1", attempt_no=n + 1, status="failed",
            started_at_unix_seconds=1.8e9, ended_at_unix_seconds=1.8e9 + 1, exit_code=1,
            signal=None, stdout="", stderr="", stdout_truncated=False, stderr_truncated=False,
            fingerprint=None, error="synthetic failure"))


def _scrapes(path: Path, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"cold": [], "cached": [], "one new attempt": [],
                                     "prometheus_client render": []}
    with open_read_only(path) as store:
        for i in range(repeat):
            collector = StoreCollector(store, Selection())
            for name in ("cold", "cached"):
                t0 = time.perf_counter()
                collector.exposition()
                times[name].append(time.perf_counter() - t0)
            _add_attempt(path, "r-synthetic", i)
            t0 = time.perf_counter()
            collector.exposition()
            times["one new attempt"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scrape_once(collector)
        times["prometheus_client render"].append(time.perf_counter() - t0)
    return times


def _http(path: Path, repeat: int) -> tuple[list[float], bytes]:
    times = []
    with open_read_only(path) as store:
        server = start_server(StoreCollector(store, Selection()), "127.0.0.1", 0)
        try:
            for _ in range(repeat + 1):
                t0 = time.perf_counter()
                with urllib.request.urlopen(server.url) as response:
                    body: bytes = response.read()
                times.append(time.perf_counter() - t0)
        finally:
            server.close()
    return times[1:], body


def _write_second_run(path: Path, cases: int) -> None:
    with Store.open(path) as store:
        write_synthetic_run(store, "r-second", cases=cases, started_unix_seconds=1.75e9)


def _get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        body: bytes = response.read()
    return time.perf_counter() - t0, body


def _serve(path: Path, cases: int) -> dict[str, list[float]]:
    """`fleet export serve`: background rendering, scraped over HTTP while a run is written."""
    times: dict[str, list[float]] = {"serve: startup render": [], "serve: first scrape": [],
                                     "serve: scrapes while a new run is written": [],
                                     "serve: caught up after": []}
    with open_read_only(path) as store:
        collector = StoreCollector(store, Selection())
        t0 = time.perf_counter()
        collector.start_background(1.0)
        times["serve: startup render"].append(time.perf_counter() - t0)
        server = start_server(collector, "127.0.0.1", 0)
        try:
            times["serve: first scrape"].append(_get(server.url)[0])
            writer = multiprocessing.get_context("fork").Process(
                target=_write_second_run, args=(path, cases))
            writer.start()
            while writer.is_alive():
                times["serve: scrapes while a new run is written"].append(_get(server.url)[0])
                time.sleep(0.1)
            done = time.perf_counter()
            last = f'case_id="{case_ids(cases)[-1]}",host="host1",repetition="1",run_id="r-second"'
            while last.encode() not in _get(server.url)[1]:
                time.sleep(0.1)
            times["serve: caught up after"].append(time.perf_counter() - done)
        finally:
            server.close()
            collector.stop_background()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fleet.sqlite"
        started = time.perf_counter()
        with Store.open(path) as store:
            write_synthetic_run(store, "r-synthetic", cases=args.cases, hosts=args.hosts,
                                repetitions=args.repetitions)
        print(f"store: {args.cases} cases, written in {time.perf_counter() - started:.1f} s,"
              f" {path.stat().st_size / 2**20:.1f} MiB")
        times = _scrapes(path, args.repeat)
        http, body = _http(path, args.repeat)
        serve = _serve(path, args.cases)
    series = sum(1 for line in body.decode().splitlines() if not line.startswith("#"))
    print(f"{series} series, {len(body) / 2**20:.1f} MiB of text")
    for name, samples in (*times.items(), ("http (unchanged store)", http), *serve.items()):
        worst = f" (max {max(samples) * 1e3:.1f} ms, n={len(samples)})" if len(samples) > 1 \
            else ""
        print(f"  {name:28s} {_median_ms(samples)}{worst}")


if __name__ == "__main__":
    main()
