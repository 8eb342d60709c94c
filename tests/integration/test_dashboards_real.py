"""Every query of every committed dashboard returns data from a real Prometheus.

One small real suite runs on two lab hosts (a TLB-shootdown workload bound to node 0, axis
``kernel_variant: [a, b]``). Its results reach one real Prometheus by every path: `fleet export
serve` scraped, the recording rules of `fleet export rules` loaded, and the host samples written
by the importer through remote write. Then each dashboards/*.json is walked: its variables are
asked for their values, its template variables are substituted with real ones, and each target
runs through the HTTP API (instant at now, or over the run's time range). A target that
returns nothing fails, unless the only families it reads are ones this machine cannot produce
(checked here, not assumed: no KVM debugfs; no page-table growth without a guest).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prom_fixtures import ROOT, Prometheus, fleet, poll, receiving_prometheus, serving
from test_sampling_lab import SHOOTDOWNS

from fleet.export import catalogue as cat
from fleet.export.dashboards import record
from fleet.export.dashboards_panels import KVM_FLUSHES, LOCALITY, TLB
from fleet.export.dashboards_series import KVM_FLUSHES as HOST_KVM_FLUSHES
from fleet.export.importer import import_run
from fleet.lab import LabState

pytestmark = pytest.mark.integration
DASHBOARDS = ROOT / "dashboards"
HOSTS = ("lab1", "lab2")
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
NAME = re.compile(r"\b(?:[a-z_]+:)?(fleet_[a-z0-9_]+)(?::[a-z]+)?\b")
KVM_DEBUGFS = Path("/sys/kernel/debug/kvm")


def suite_text() -> str:
    argv = ["env", "KERNEL_VARIANT={kernel_variant}", "numactl", "--membind={membind}",
            "--cpunodebind={membind}", "python3", "-c",
            SHOOTDOWNS.replace("{", "{{").replace("}", "}}"), "1.5", "32", "1"]
    return ("schema_version: 1\nname: dashboards\nsampling: {interval_seconds: 0.2}\n"
            "spread: every\nworkloads:\n  - name: tlb\n    type: command\n"
            f"    timeout_seconds: 120\n    argv: {json.dumps(argv)}\n"
            "    params: {membind: '0'}\n    axes:\n      kernel_variant: [a, b]\n"
            "    parse:\n      stream: stdout\n      patterns: ['^flips=(?P<flips>\\d+)$']\n"
            "      metrics: {flips: {unit: count}}\n")


@dataclass(frozen=True)
class Proven:
    prom: Prometheus
    shown: dict[str, Any]
    first_unix_seconds: float
    values: dict[str, str]


@pytest.fixture(scope="module")
def proven(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proven]:
    home = tmp_path_factory.mktemp("dashboards")
    suite, store, rule_file = home / "suite.yml", home / "fleet.sqlite", home / "rules.yml"
    suite.write_text(suite_text())
    done = fleet("run", str(suite), "-i", str(lab.inventory_path), "--limit", ":".join(HOSTS),
                 "--store", str(store))
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    shown = json.loads(fleet("show", run["run_id"], "--json", "--store", str(store)).stdout)
    assert fleet("export", "rules", "-o", str(rule_file)).returncode == 0
    run_id = shown["run"]["run_id"]
    with serving(store) as (target, _), \
            receiving_prometheus(home / "prometheus", target=target,
                                 rule_files=[rule_file]) as prom:
        report = import_run(store, run_id, remote_write_url=f"{prom.url}/api/v1/write")
        assert report.samples > 0 and report.first_unix_seconds is not None
        recorded = f'{record(TLB, "run_host", "max")}{{run_id="{run_id}"}}'
        poll("a scrape and the recording rules", lambda: prom.query(recorded) or None)
        time.sleep(2.0)  # a range query's 1 s grid must reach past the first scrape
        values = {"suite": shown["run"]["suite"], "run": run_id, "host": HOSTS[0],
                  "kernel_variant": "a", "run_a": run_id, "variant_a": "a",
                  "run_b": run_id, "variant_b": "b", "__rate_interval": "1m"}
        yield Proven(prom, shown, report.first_unix_seconds, values)


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no value for ${name} in {text}"
        return values[name]
    return VARIABLE.sub(one, text)


def stored_values(shown: dict[str, Any], entry: cat.CatalogueEntry) -> list[float | None]:
    assert entry.stored is not None
    return [m["value"] for a in shown["attempts"] for m in a["measurements"]
            if m["metric"] == entry.stored[0] and m["labels"].get("source") == "sampler"]


def not_on_this_machine(shown: dict[str, Any]) -> dict[str, str]:
    """Families this machine cannot produce, each checked against the machine and the store."""
    absent = {}
    if not KVM_DEBUGFS.exists() and not any(stored_values(shown, KVM_FLUSHES)):
        reason = f"no KVM debugfs ({KVM_DEBUGFS}) on this machine"
        absent.update({KVM_FLUSHES.name: reason, HOST_KVM_FLUSHES.name: reason})
    locality = stored_values(shown, LOCALITY)
    if locality and all(v is None for v in locality):
        absent[LOCALITY.name] = "no secondary page-table growth without a guest"
    return absent


def dashboards() -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]
    assert len(found) == 5
    return found


def run_target(p: Proven, target: dict[str, Any]) -> list[dict[str, Any]]:
    expr = substitute(target["expr"], p.values)
    if target["instant"]:
        result: list[dict[str, Any]] = p.prom.api("query", query=expr,
                                                  time=f"{time.time():.3f}")["result"]
        return result
    end = time.time()
    step = max(1.0, (end - p.first_unix_seconds + 120) / 1000)
    ranged: list[dict[str, Any]] = p.prom.api(
        "query_range", query=expr, start=f"{p.first_unix_seconds - 60:.3f}",
        end=f"{end:.3f}", step=f"{step:.3f}")["result"]
    return [r for r in ranged if r["values"]]


def test_every_variable_has_values(proven: Proven) -> None:
    for model in dashboards():
        for v in model["templating"]["list"]:
            if v["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"])
            assert match, v["query"]
            selector, label = match.groups()
            got = proven.prom.api(f"label/{label}/values",
                                  **{"match[]": substitute(selector, proven.values)})
            assert got, f"{model['uid']}: variable {v['name']} has no values"


def test_every_panel_query_returns_data(proven: Proven) -> None:
    absent = not_on_this_machine(proven.shown)
    proved, excused = 0, []
    for model in dashboards():
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                result = run_target(proven, target)  # a PromQL error fails in api()
                if result:
                    proved += 1
                    continue
                families = set(NAME.findall(target["expr"])) - {cat.CASE_INFO.name}
                where = f"{model['uid']} / {panel['title']} / {target['refId']}"
                assert families and families <= set(absent), \
                    f"{where} returned nothing: {substitute(target['expr'], proven.values)}"
                excused.append(f"{where}: {absent[sorted(families)[0]]}")
    print(f"{proved} targets returned data; {len(excused)} cannot here:", *excused, sep="\n  ")
    # today: kvm remote TLB flushes (per case, imported, A/B) and page-table locality (per
    # case, recorded, A/B); anything else returning nothing has failed above
    assert len(excused) <= 11
    assert proved >= 50
