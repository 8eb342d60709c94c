"""Shared by the dashboard proofs: a real suite's results in one real Prometheus by every path
(`fleet export serve` scraped, the recording rules of `fleet export rules` loaded, the host
samples written by the importer through remote write), then every target of every committed
dashboards/*.json run through the HTTP API with its template variables substituted.

tests/integration/test_dashboards_real.py proves them on the netns lab (this machine's kernel:
no KVM guest there), tests/integration/test_kvm_guest_metrics.py on a QEMU lab guest running
a real KVM VM; the families in ``GUEST_ONLY`` are the ones only the second can give.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prom_fixtures import ROOT, Prometheus, fleet, poll, receiving_prometheus, serving

from fleet import catalogue as cat
from fleet.export.grafana.panels import KVM_FLUSHES, LOCALITY, TLB
from fleet.export.grafana.series import KVM_FLUSHES as HOST_KVM_FLUSHES
from fleet.export.grafana.spec import record
from fleet.export.importer import import_run

DASHBOARDS = ROOT / "dashboards"
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
NAME = re.compile(r"\b(?:[a-z_]+:)?(fleet_[a-z0-9_]+)(?::[a-z]+)?\b")
# what only a case running a real KVM VM gives: its remote TLB flushes (derived per case and
# the imported host series) and the locality of its secondary page tables
GUEST_ONLY = frozenset({KVM_FLUSHES.name, HOST_KVM_FLUSHES.name, LOCALITY.name})


@dataclass(frozen=True)
class Proven:
    prom: Prometheus
    shown: dict[str, Any]  # `fleet show RUN --json`
    first_unix_seconds: float  # of the imported samples
    values: dict[str, str]  # template variable -> value


@dataclass(frozen=True)
class Target:
    where: str  # "dashboard uid / panel id. title / refId" (titles repeat in a dashboard)
    expr: str  # as in the JSON, variables not substituted
    instant: bool
    families: frozenset[str]  # fleet metric families it reads (fleet_case_info left out)


def suite_yaml(name: str, argv: list[str], pattern: str, metrics: tuple[str, ...]) -> str:
    """A one-workload `command` suite on every host, axis kernel_variant: [a, b], sampled
    every 0.2 s, memory bound to node 0 (``{membind}``); ``pattern`` parses stdout."""
    units = ", ".join(f"{m}: {{unit: count}}" for m in metrics)
    return (f"schema_version: 1\nname: {name}\nsampling: {{interval_seconds: 0.2}}\n"
            f"spread: every\nworkloads:\n  - name: {name}\n    type: command\n"
            f"    timeout_seconds: 120\n    argv: {json.dumps(argv)}\n"
            "    params: {membind: '0'}\n    axes:\n      kernel_variant: [a, b]\n"
            f"    parse:\n      stream: stdout\n      patterns: [{json.dumps(pattern)}]\n"
            f"      metrics: {{{units}}}\n")


@contextmanager
def proven_run(home: Path, suite_text: str, inventory: Path, hosts: tuple[str, ...],
               *, recorded: tuple[tuple[cat.CatalogueEntry, str], ...] = ((TLB, "max"),)
               ) -> Iterator[Proven]:
    """Run the suite on ``hosts``, export it by every path into one Prometheus and wait until
    the run-level recording rule of each (entry, op) in ``recorded`` has a value."""
    suite, store, rule_file = home / "suite.yml", home / "fleet.sqlite", home / "rules.yml"
    suite.write_text(suite_text)
    done = fleet("run", str(suite), "-i", str(inventory), "--limit", ":".join(hosts),
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
        for entry, op in recorded:
            wait_for(prom, f'{record(entry, "run_host", op)}{{run_id="{run_id}"}}')
        time.sleep(2.0)  # a range query's 1 s grid must reach past the first scrape
        values = {"suite": shown["run"]["suite"], "run": run_id, "host": hosts[0],
                  "kernel_variant": "a", "run_a": run_id, "variant_a": "a",
                  "run_b": run_id, "variant_b": "b", "__rate_interval": "1m"}
        yield Proven(prom, shown, report.first_unix_seconds, values)


def wait_for(prom: Prometheus, promql: str) -> None:
    poll(f"a scrape and the recording rules: {promql}", lambda: prom.query(promql) or None)


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"no value for ${name} in {text}"
        return values[name]
    return VARIABLE.sub(one, text)


def stored_values(shown: dict[str, Any], entry: cat.CatalogueEntry) -> list[float | None]:
    """The sampler's values of ``entry`` in every attempt of the shown run."""
    assert entry.stored is not None
    return [m["value"] for a in shown["attempts"] for m in a["measurements"]
            if m["metric"] == entry.stored[0] and m["labels"].get("source") == "sampler"]


def dashboards() -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))]
    assert len(found) == 5
    return found


def targets() -> list[Target]:
    """Every target of every committed dashboard."""
    return [Target(f"{model['uid']} / {panel['id']}. {panel['title']} / {target['refId']}",
                   target["expr"],
                   bool(target["instant"]),
                   frozenset(NAME.findall(target["expr"])) - {cat.CASE_INFO.name})
            for model in dashboards() for panel in model["panels"]
            for target in panel.get("targets", [])]


def guest_only_targets() -> set[str]:
    """The targets reading nothing but ``GUEST_ONLY`` families."""
    return {t.where for t in targets() if t.families and t.families <= GUEST_ONLY}


def run_target(p: Proven, target: Target) -> list[dict[str, Any]]:
    """Its result (a PromQL error fails in api()): instant at now, or over the run's range."""
    expr = substitute(target.expr, p.values)
    if target.instant:
        result: list[dict[str, Any]] = p.prom.api("query", query=expr,
                                                  time=f"{time.time():.3f}")["result"]
        return result
    end = time.time()
    step = max(1.0, (end - p.first_unix_seconds + 120) / 1000)
    ranged: list[dict[str, Any]] = p.prom.api(
        "query_range", query=expr, start=f"{p.first_unix_seconds - 60:.3f}",
        end=f"{end:.3f}", step=f"{step:.3f}")["result"]
    return [r for r in ranged if r["values"]]


def empty_targets(p: Proven) -> tuple[int, list[Target]]:
    """(how many targets returned data, the targets that returned nothing)."""
    found = targets()
    empty = [t for t in found if not run_target(p, t)]
    return len(found) - len(empty), empty


def check_variables(p: Proven) -> None:
    """Every query variable of every dashboard has values."""
    for model in dashboards():
        for v in model["templating"]["list"]:
            if v["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.*), (\w+)\)", v["query"])
            assert match, v["query"]
            selector, label = match.groups()
            got = p.prom.api(f"label/{label}/values",
                             **{"match[]": substitute(selector, p.values)})
            assert got, f"{model['uid']}: variable {v['name']} has no values"
