"""The generated Grafana dashboards: committed files equal a fresh build, every panel has a unit
and targets, every metric name comes from the catalogue or its recording rules."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet import catalogue as cat
from fleet.cli import main
from fleet.export.grafana.build import (
    DATASOURCE_VARIABLE,
    PROVISIONED_DATASOURCE_UID,
    dashboard_models,
    generated_files,
    with_datasource,
)
from fleet.export.grafana.panels import all_dashboards
from fleet.export.grafana.spec import VARIANT_LABEL
from fleet.export.rules import recording_rules

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
NAME = re.compile(r"\b(?:[a-z_]+:)?fleet_[a-z0-9_]+(?::[a-z]+)?\b")
STANDARD = {"datasource", "suite", "run", "host", "kernel_variant"}


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def test_the_committed_files_equal_a_fresh_build() -> None:
    """Regenerate with `fleet dashboards build` when this fails, and commit the result."""
    for rel, text in generated_files().items():
        path = DASHBOARDS / rel
        assert path.is_file(), f"{rel} missing: run `fleet dashboards build`"
        assert path.read_text() == text, f"{rel} is stale: run `fleet dashboards build`"
    committed = {p.name for p in DASHBOARDS.glob("*.json")}
    assert committed == {rel for rel in generated_files() if rel.endswith(".json")}


def test_a_build_is_stable_and_sorted() -> None:
    first, second = generated_files(), generated_files()
    assert first == second
    for rel, text in first.items():
        if rel.endswith(".json"):
            model = json.loads(text)
            assert text == json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_the_five_dashboards_and_their_variables() -> None:
    models = {m["uid"]: m for m in dashboard_models()}
    assert set(models) == {"fleet-overview", "fleet-numa-locality", "fleet-memory-overhead",
                           "fleet-tlb-shootdowns", "fleet-ab-compare"}
    for uid, model in models.items():
        names = {v["name"] for v in model["templating"]["list"]}
        if uid == "fleet-ab-compare":
            assert names == {"datasource", "suite", "host", "run_a", "variant_a", "run_b",
                             "variant_b"}
        else:
            assert names == STANDARD
        for v in model["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"]["uid"] == f"${{{DATASOURCE_VARIABLE}}}"
                assert v["query"].startswith("label_values(")


@pytest.mark.parametrize("model", dashboard_models(), ids=lambda m: m["uid"])
def test_every_panel_has_a_unit_targets_and_the_datasource(model: dict[str, Any]) -> None:
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels(model):
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(refs)
        for t in p["targets"]:
            assert t["expr"] and t["instant"] != t["range"]


def test_every_metric_name_comes_from_the_catalogue_or_its_rules() -> None:
    known = {e.name for e in cat.EVERY} | {r.record for r in recording_rules()}
    used = set()
    for model in dashboard_models():
        texts = [t["expr"] for p in panels(model) for t in p["targets"]]
        texts += [v["query"] for v in model["templating"]["list"] if v["type"] == "query"]
        for text in texts:
            used.update(NAME.findall(text))
    assert used <= known, used - known
    # the families the dashboards are about are all shown
    assert {"fleet_tlb_shootdowns_per_second", "fleet_kvm_remote_tlb_flushes_per_second",
            "fleet_secondary_page_tables_bytes_per_gib", "fleet_page_table_locality_ratio",
            "fleet_placement_ratio", "fleet_numa_hint_faults_per_second",
            "fleet_numa_pages_migrated_per_second", "fleet_host_tlb_shootdowns_total",
            "fleet_host_secondary_page_tables_bytes", "fleet_host_page_tables_bytes",
            "fleet_jobs_completed_total", "fleet_jobs_failed_total",
            "fleet_host_quarantines_total"} <= used


def test_per_case_panels_join_the_kernel_variant() -> None:
    joined = [t.expr for spec in all_dashboards() for p in spec.panels()
              for t in p.queries if "fleet_case_info" in t.expr]
    assert joined
    for expr in joined:
        assert f"group_left ({VARIANT_LABEL})" in expr


def test_provisioning_files() -> None:
    files = generated_files()
    provider = yaml.safe_load(files["provisioning/dashboards/fleet.yml"])
    assert provider["providers"][0]["type"] == "file"
    source = yaml.safe_load(files["provisioning/datasources/fleet.yml"])
    assert source["datasources"][0]["uid"] == PROVISIONED_DATASOURCE_UID
    assert source["datasources"][0]["type"] == "prometheus"


def test_with_datasource_sets_the_variable_only() -> None:
    model = dashboard_models()[0]
    changed = with_datasource(model, "my-prom")
    (variable,) = [v for v in changed["templating"]["list"] if v["name"] == "datasource"]
    assert variable["current"] == {"selected": True, "text": "my-prom", "value": "my-prom"}
    assert changed["panels"] == model["panels"]
    assert "current" not in next(v for v in model["templating"]["list"]
                             if v["name"] == "datasource")


def test_cli_build_writes_then_changes_nothing(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["dashboards", "build", "-o", str(out)]) == 0
    assert capsys.readouterr().out.endswith(f"7 file(s) in {out}: 7 changed, 0 unchanged\n")
    assert main(["dashboards", "build", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"7 file(s) in {out}: 0 changed, 7 unchanged\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted(generated_files())


def test_cli_build_into_an_unwritable_place(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["dashboards", "build", "-o", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fleet: error: "), err
