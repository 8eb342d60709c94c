"""A real Prometheus scrapes `fleet export serve` over a store holding a real `fleet run`.

Values read back through Prometheus' HTTP API must equal the store's exactly (per case, host
and repetition), and the operational counters must equal `fleet show --json`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prom_fixtures import (
    PROMETHEUS,
    Prometheus,
    fleet,
    poll,
    ready,
    serving,
    start_prometheus,
    stop,
)

from fleet.catalogue import WORKLOAD_RESULT, lookup


@pytest.fixture
def real_run(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A store with one real quickstart run, and `fleet show --json` of it."""
    store = tmp_path / "fleet.sqlite"
    done = fleet("run", "benchmarks/quickstart.yml", "-i", "inventories/local.yml",
                 "--store", str(store))
    assert done.returncode == 0, done.stderr
    runs = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    shown = fleet("show", runs[0]["run_id"], "--json", "--store", str(store))
    assert shown.returncode == 0, shown.stderr
    return store, json.loads(shown.stdout)


@pytest.fixture
def exporter(real_run: tuple[Path, dict[str, Any]]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`fleet export serve` on a free loopback port; yields (host:port, process)."""
    store, _ = real_run
    with serving(store) as served:
        yield served


@pytest.fixture
def prometheus(tmp_path: Path, exporter: tuple[str, subprocess.Popen[str]]) -> Iterator[Prometheus]:
    """A real Prometheus scraping the exporter every second; always stopped."""
    assert shutil.which(PROMETHEUS), "prometheus missing: run scripts/bootstrap"
    home = tmp_path / "prometheus"
    home.mkdir()
    process, server = start_prometheus(home, exporter[0])
    try:
        poll("prometheus /-/ready", lambda: ready(server.url, process, "prometheus"))
        yield server
    finally:
        stop(process)


def stored_values(shown: dict[str, Any]) -> tuple[dict[tuple[str, tuple[str, ...]], float], int]:
    """(family, (case_id, host, repetition, metric label, node)) -> value of every result of a
    completed attempt, per the catalogue; and how many results had no value."""
    want: dict[tuple[str, tuple[str, ...]], float] = {}
    missing = 0
    for a in shown["attempts"]:
        if a["status"] != "completed":
            continue
        for m in a["measurements"]:
            if m["value"] is None:
                missing += 1
                continue
            entry = lookup(m["metric"], m["unit"], tuple(sorted(m["labels"].items())))
            metric = m["metric"] if entry is WORKLOAD_RESULT else ""
            key = (a["case_id"], a["host"], str(a["repetition"]), metric,
                   m["labels"].get("node", ""))
            want[(entry.name, key)] = m["value"]
    return want, missing


def _scraped(prometheus: Prometheus) -> list[dict[str, Any]] | None:
    got = prometheus.query('fleet_jobs{job="fleet"}')
    return got or None


@pytest.mark.integration
def test_prometheus_reads_back_exactly_what_the_store_holds(
        prometheus: Prometheus, real_run: tuple[Path, dict[str, Any]],
        exporter: tuple[str, subprocess.Popen[str]]) -> None:
    _, shown = real_run
    run_id = shown["run"]["run_id"]
    poll("a scrape of the exporter", lambda: _scraped(prometheus))
    assert [r["value"][1] for r in prometheus.query('up{job="fleet"}')] == ["1"]

    want, missing = stored_values(shown)
    got = {}
    for family in sorted({name for name, _ in want}):
        for r in prometheus.query(f'{family}{{run_id="{run_id}"}}'):
            labels = r["metric"]
            key = (labels["case_id"], labels["host"], labels["repetition"],
                   labels.get("metric", ""), labels.get("node", ""))
            got[(family, key)] = float(r["value"][1])
    # 4 cases x 2 repetitions x 3 dd metrics, and the sampler's metrics of the same attempts
    assert sum(1 for name, _ in want if name == "fleet_workload_result") == 24
    assert len(want) > 24 and missing > 0
    assert {"fleet_tlb_shootdowns_per_second", "fleet_secondary_page_tables_growth_bytes",
            "fleet_sampler_samples"} <= {name for name, _ in want}
    print(f"compared {len(want)} series through Prometheus; {missing} results without value")
    assert got == want  # exact: Prometheus keeps float64, the exporter prints repr()

    def one(promql: str) -> float:
        result = prometheus.query(promql)
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])

    jobs = shown["run"]["jobs"]
    assert one(f'fleet_jobs{{run_id="{run_id}"}}') == jobs["total"] == 8
    assert one(f'fleet_jobs_completed_total{{run_id="{run_id}"}}') == jobs["completed"]
    assert one(f'fleet_jobs_failed_total{{run_id="{run_id}"}}') == jobs["failed"]
    assert one(f'fleet_jobs_not_run{{run_id="{run_id}"}}') == jobs["not_run"]
    assert one(f'fleet_cases_skipped_total{{run_id="{run_id}"}}') == len(shown["run"]["skipped"])
    attempts = {(r["metric"]["host"], r["metric"]["status"]): float(r["value"][1])
                for r in prometheus.query(f'fleet_attempts_total{{run_id="{run_id}"}}')}
    assert attempts == {(h["host"], s): float(n) for h in shown["run"]["hosts"]
                        for s, n in h["attempts"].items()}
    assert one(f'fleet_run_info{{run_id="{run_id}",status="{shown["run"]["status"]}"}}') == 1
    assert one('fleet_runs{status="completed"}') == 1
    assert one("fleet_store_schema_version") >= 2
    assert len(prometheus.query(f'fleet_case_info{{run_id="{run_id}"}}')) == 4
    assert one(f'fleet_results_missing{{run_id="{run_id}"}}') == missing

    _, process = exporter  # Ctrl-C: a clean exit, one line
    assert stop(process, signal.SIGINT) == 0
    assert process.stderr is not None
    assert process.stderr.read() == "fleet: exporter stopped\n"
