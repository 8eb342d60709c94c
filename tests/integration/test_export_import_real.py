"""`fleet export import`: a sampled case on a lab host, imported into a real Prometheus.

The case is the TLB-shootdown workload of test_sampling_lab (bound to node 0, sampled every
0.2 s). Its host series go in by remote write (receiver on, out-of-order window set) and by
OpenMetrics + `promtool tsdb create-blocks-from openmetrics`; PromQL ``rate()`` over exactly
the sampled range must equal the rate fleet derived itself (stored result, within 1 %).
Bad input: unknown run, unreachable Prometheus, no receiver (404), samples older than the
head block without an out-of-order window (400): one line, exit 2, the store unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prom_fixtures import (
    ROOT,
    Prometheus,
    backfilled_prometheus,
    fleet,
    free_port,
    poll,
    query_at,
    receiving_prometheus,
)
from test_sampling_lab import suite_text

from fleet.export.store_reader import open_read_only
from fleet.lab import LabState
from fleet.store import Store
from fleet.store.runs import list_runs, load_run, load_samples

pytestmark = pytest.mark.integration


class SampledRun:
    def __init__(self, store: Path, run_id: str, derived: dict[tuple[str, str | None], float],
                 times: dict[str, tuple[int, int]], last: dict[tuple[str, str], float]) -> None:
        self.store, self.run_id, self.derived, self.times, self.last = (
            store, run_id, derived, times, last)


@pytest.fixture(scope="module")
def sampled(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> SampledRun:
    """One sampled shootdown case on lab1: the store, fleet's derived rates, per stored series
    its first and last sample time (unix ms), and the last value of the page-table gauges."""
    home = tmp_path_factory.mktemp("import")
    suite, store = home / "suite.yml", home / "fleet.sqlite"
    suite.write_text(suite_text(3.0, 64))
    proc = subprocess.run([sys.executable, "-m", "fleet", "run", str(suite), "-i",
                           str(lab.inventory_path), "--limit", "lab1", "--store", str(store)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_read_only(store) as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        (stored,) = load_run(s, run_id).attempts
        points = load_samples(s, stored.attempt_id)
    derived = {(m.metric, dict(m.labels).get("node")): m.value
               for m in stored.attempt.measurements if m.value is not None}
    times: dict[str, tuple[int, int]] = {}
    last: dict[tuple[str, str], float] = {}
    for p in points:
        key = p.series + "".join(f"/{v}" for _, v in p.labels)
        ms = round(p.wall_unix_seconds * 1000)
        first = times.get(key, (ms, ms))[0]
        times[key] = (min(first, ms), max(times.get(key, (ms, ms))[1], ms))
        if p.series.endswith("page_tables_bytes") and p.value is not None:
            last[(p.series, dict(p.labels)["node"])] = p.value
    return SampledRun(store, run_id, derived, times, last)


def digest(path: Path) -> str:
    return "".join(hashlib.sha256(p.read_bytes()).hexdigest()
                   for p in sorted(path.parent.glob(path.name + "*")))


def rate_over_samples(prometheus: Prometheus, run: SampledRun, name: str, key: str,
                      selector: str) -> float | None:
    """PromQL rate() over exactly the series' sampled range, evaluated at its last sample."""
    first_ms, last_ms = run.times[key]
    result = query_at(prometheus, f'rate({name}{{run_id="{run.run_id}",{selector}}}'
                                  f"[{last_ms - first_ms + 1}ms])", last_ms / 1000)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


def check_rates(prometheus: Prometheus, run: SampledRun) -> int:
    """Every rate fleet derived from a counter it imports equals PromQL's (1 %)."""
    pairs: list[tuple[str, str | None, str, str, str]] = [
             ("tlb_shootdowns_per_second", None, "fleet_host_tlb_shootdowns_total",
              "tlb_shootdowns", 'node=""'),
             ("sampler_agent_cpu_ratio", None, "fleet_host_agent_cpu_seconds_total",
              "agent_cpu_seconds", 'node=""'),
             ("numa_hint_faults_per_second", None, "fleet_host_numa_hint_faults_total",
              "numa_hint_faults", 'node=""'),
             ("numa_pages_migrated_per_second", None, "fleet_host_numa_pages_migrated_total",
              "numa_pages_migrated", 'node=""')]
    pairs += [("tlb_shootdowns_per_second", node, "fleet_host_tlb_shootdowns_total",
               f"tlb_shootdowns/{node}", f'node="{node}"')
              for metric, node in run.derived if metric == "tlb_shootdowns_per_second" and node]
    compared = 0
    for metric, node, name, key, selector in pairs:
        want = run.derived.get((metric, node))
        if want is None or key not in run.times:
            continue
        got = rate_over_samples(prometheus, run, name, key, selector)
        assert got == pytest.approx(want, rel=0.01, abs=1e-9), (metric, node, got, want)
        compared += 1
    assert run.derived[("tlb_shootdowns_per_second", None)] > 0
    assert compared >= 4  # total and node 0 shootdowns, agent CPU, hint faults
    for (series, node), value in run.last.items():
        name = {"sec_page_tables_bytes": "fleet_host_secondary_page_tables_bytes",
                "page_tables_bytes": "fleet_host_page_tables_bytes"}[series]
        at = run.times[f"{series}/{node}"][1] / 1000
        result = query_at(prometheus, f'{name}{{run_id="{run.run_id}",node="{node}"}}', at)
        assert [float(r["value"][1]) for r in result] == [value]
    return compared


def test_remote_write_import_gives_fleets_own_rates_and_is_idempotent(
        sampled: SampledRun, tmp_path: Path) -> None:
    before = digest(sampled.store)
    with receiving_prometheus(tmp_path / "prom") as prometheus:
        url = f"{prometheus.url}/api/v1/write"
        for _ in range(2):  # a re-import is accepted and changes nothing
            done = fleet("export", "import", sampled.run_id, "--store", str(sampled.store),
                         "--remote-write", url)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("imported "), done.stdout
            assert f"of run {sampled.run_id} in 1 remote-write requests to {url}" in done.stdout
            compared = check_rates(prometheus, sampled)
        print(done.stdout, f"{compared} rates compared")
        series = query_at(prometheus, f'count({{run_id="{sampled.run_id}"}})',
                          sampled.times["tlb_shootdowns"][1] / 1000)
        assert float(series[0]["value"][1]) == len(sampled.times)
    assert digest(sampled.store) == before


def test_openmetrics_backfill_through_promtool_gives_the_same_rates(
        sampled: SampledRun, tmp_path: Path) -> None:
    out = tmp_path / "run.om"
    done = fleet("export", "import", sampled.run_id, "--store", str(sampled.store),
                 "--openmetrics", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text().endswith("# EOF\n")
    assert not list(tmp_path.glob(".run.om.*"))  # no temporary file left
    with backfilled_prometheus(tmp_path / "prom", out) as prometheus:
        check_rates(prometheus, sampled)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fleet: error: "), done.stderr
    return lines[0]


def test_bad_input_gives_one_line_exit_2_and_leaves_the_store_alone(
        sampled: SampledRun, tmp_path: Path) -> None:
    store = str(sampled.store)
    before = digest(sampled.store)
    line = one_error_line(fleet("export", "import", "r-no-such-run", "--store", store,
                                "--openmetrics", str(tmp_path / "x.om")))
    assert "no run 'r-no-such-run'" in line and not (tmp_path / "x.om").exists()
    dead = f"http://127.0.0.1:{free_port()}/api/v1/write"
    line = one_error_line(fleet("export", "import", sampled.run_id, "--store", store,
                                "--remote-write", dead))
    assert "cannot remote-write to prometheus" in line and "Connection refused" in line
    with receiving_prometheus(tmp_path / "plain", receiver=False) as prometheus:
        line = one_error_line(fleet("export", "import", sampled.run_id, "--store", store,
                                    "--remote-write", f"{prometheus.url}/api/v1/write"))
        assert "HTTP 404" in line and "--web.enable-remote-write-receiver" in line
    old = old_run_store(tmp_path / "old.sqlite")
    with receiving_prometheus(tmp_path / "strict", out_of_order_window=None) as prometheus:
        poll("a self-scrape (head block at now)",
             lambda: prometheus.query('up{job="prometheus"}') or None)
        line = one_error_line(fleet("export", "import", "r-import", "--store", str(old),
                                    "--remote-write", f"{prometheus.url}/api/v1/write"))
        assert "HTTP 400: out of bounds" in line and "out_of_order_time_window" in line
        assert "0 samples in 0 requests were written before" in line
    assert digest(sampled.store) == before


def old_run_store(path: Path) -> Path:
    """A synthetic run sampled 3 h ago (benchmarks/perf/import_samples.py writes it)."""
    spec = importlib.util.spec_from_file_location(
        "import_samples", ROOT / "benchmarks" / "perf" / "import_samples.py")
    assert spec is not None and spec.loader is not None
    bench: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with Store.open(path) as store:
        bench.write_sampled_run(store, "r-import", samples=100,
                                end_unix_seconds=time.time() - 3 * 3600)
    return path
