"""How long does `fleet export import` take to remote-write 1,000,000 samples into Prometheus?

Writes a synthetic store with the store's own functions: one run whose attempts each stored
the sampler's 12 series of a 2-node host (tlb_shootdowns total + 2 nodes, numa_hint_faults,
numa_pages_migrated, agent_cpu_seconds, SecPageTables / PageTables / workload resident bytes
per node), 600 points each at 10 ms (7,200 samples per attempt), the last attempt ending
now. Starts the Debian `prometheus` on loopback (remote-write receiver on, its own data dir),
then measures:
  import      import_run(): read the store, build the series, encode, snappy, POST in
              batches of 10,000 samples (end to end, what `fleet export import` does)
  encode only the same without HTTP (read + build + encode + compress)
  peak memory  the importer streams the run job by job (max RSS of this process is printed)
  naive       one POST per sample (one series, one sample per WriteRequest), timed over
              --naive-samples samples and extrapolated to the full count
and checks through PromQL that Prometheus holds every sample.
goal: import <= 10 s.

    .venv/bin/python benchmarks/perf/import_samples.py --samples 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from fleet.catalogue import HOST_SAMPLES
from fleet.export.host_series import host_series
from fleet.export.importer import import_run, load_host_series
from fleet.export.remote_write import RetryPolicy, compress, post
from fleet.export.remote_write_codec import encode_labels, encode_timeseries, write_requests
from fleet.export.store_reader import open_read_only
from fleet.runs import Attempt, JobKey, RunInfo, SeriesPoint
from fleet.store import Store
from fleet.store.export_reads import iter_job_samples
from fleet.store.runs import create_run, record_attempt, set_run_status

POINTS = 600
NODES = 2
SERIES = (("tlb_shootdowns", None), ("tlb_shootdowns", 0), ("tlb_shootdowns", 1),
          ("numa_hint_faults", None), ("numa_pages_migrated", None),
          ("agent_cpu_seconds", None), *((name, n) for name in (
              "sec_page_tables_bytes", "page_tables_bytes", "workload_resident_bytes")
              for n in range(NODES)))


def attempt_samples(index: int, start_unix_seconds: float,
                    interval_seconds: float) -> tuple[SeriesPoint, ...]:
    out = []
    for series, node in SERIES:
        labels = () if node is None else (("node", str(node)),)
        for j in range(POINTS):
            t = j * interval_seconds
            value = float(j * (3 + index % 5) + (node or 0)) if "bytes" not in series \
                else float((1 << 20) * (index % 7 + 1) + 4096 * j)
            out.append(SeriesPoint(series, labels, 1000.0 + t, start_unix_seconds + t, value))
    return tuple(out)


def write_sampled_run(store: Store, run_id: str, *, samples: int, end_unix_seconds: float,
                      interval_seconds: float = 0.01) -> int:
    """One run of ceil(samples / 7,200) attempts on host1, one after another, ending at
    ``end_unix_seconds``; returns the number of samples stored."""
    per_attempt = POINTS * len(SERIES)
    attempts = -(-samples // per_attempt)
    span = POINTS * interval_seconds
    first = end_unix_seconds - attempts * span
    ids = [f"{i:016x}" for i in range(attempts)]
    jobs = [JobKey(c, 1, "host1") for c in ids]
    info = RunInfo(run_id, "imports", "imports.yml", "0" * 64, 1, ("synthetic.yml",), None,
                   "0.1.0", first - 1.0, None, "running")
    create_run(store, info, suite_text="synthetic", plan_json="{}",
               cases=[(c, "stream", json.dumps({"i": i})) for i, c in enumerate(ids)],
               jobs=jobs, skipped=[])
    for i, job in enumerate(jobs):
        start = first + i * span
        record_attempt(store, Attempt(
            run_id=run_id, job=job, host="host1", attempt_no=1, status="completed",
            started_at_unix_seconds=start, ended_at_unix_seconds=start + span, exit_code=0,
            signal=None, stdout="", stderr="", stdout_truncated=False, stderr_truncated=False,
            fingerprint="f" * 16, samples=attempt_samples(i, start, interval_seconds)))
    set_run_status(store, run_id, "completed", end_unix_seconds)
    return attempts * per_attempt


def start_prometheus(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The Debian prometheus with the remote-write receiver, on a free loopback port."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: run scripts/bootstrap"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    (home / "prometheus.yml").write_text(
        "storage: {tsdb: {out_of_order_time_window: 30d}}\nscrape_configs: []\n")
    log = (home / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [prometheus, f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--web.enable-remote-write-receiver", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("prometheus did not get ready") from None
            time.sleep(0.1)


def query(url: str, promql: str, at: float) -> float:
    q = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=60) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def naive(store_path: Path, run_id: str, url: str, count: int) -> float:
    """Seconds per sample when each sample is its own remote-write request."""
    found = load_host_series(store_path, run_id)
    labels = {(s.entry.name, s.labels): encode_labels(s.entry.name, s.labels)
              for s in found.series}
    done, started = 0, time.perf_counter()
    for item in found.series:  # the first series' points, as a naive loop would send them
        for point in item.points:
            post(f"{url}/api/v1/write", compress(encode_timeseries(
                labels[(item.entry.name, item.labels)], (point,))), RetryPolicy())
            done += 1
            if done == count:
                return (time.perf_counter() - started) / count
    return (time.perf_counter() - started) / max(done, 1)


def encode_only(store_path: Path, run_id: str) -> float:
    started = time.perf_counter()
    with open_read_only(store_path) as store:
        series = (s for stored in iter_job_samples(store, run_id)
                  for s in host_series(run_id, "imports", stored).series)
        for body, _ in write_requests(series):
            compress(body)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--naive-samples", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        path = home / "fleet.sqlite"
        started = time.perf_counter()
        end = time.time() - 60.0
        with Store.open(path) as store:
            stored = write_sampled_run(store, "r-import", samples=args.samples,
                                       end_unix_seconds=end)
        print(f"store: {stored} samples, written in {time.perf_counter() - started:.1f} s, "
              f"{path.stat().st_size / 2**20:.1f} MiB")
        print(f"  encode only (read + build + encode + snappy)  "
              f"{encode_only(path, 'r-import'):.2f} s")
        process, url = start_prometheus(home)
        try:
            report = import_run(path, "r-import", remote_write_url=f"{url}/api/v1/write")
            print(f"  import (remote write, {report.requests} requests)  {report.seconds:.2f} s"
                  f" = {report.samples / report.seconds:,.0f} samples/s")
            held = sum(query(url, f"sum(count_over_time({e.name}[1d]))", end)
                       for e in HOST_SAMPLES)
            print(f"  prometheus holds {held:.0f} of {report.samples} samples")
            again = import_run(path, "r-import", remote_write_url=f"{url}/api/v1/write")
            print(f"  re-import (identical samples, out-of-order window)  {again.seconds:.2f} s")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  peak memory of this process so far  {peak:.0f} MiB")
            per_sample = naive(path, "r-import", url, args.naive_samples)
            print(f"  naive single-sample pushes  {per_sample * 1e3:.2f} ms per sample -> "
                  f"{per_sample * report.samples:.0f} s for {report.samples} "
                  f"({per_sample * report.samples / report.seconds:.0f} x)")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
