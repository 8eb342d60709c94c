"""The run request carries what is run and how it is recorded: the suite is read once (the
plan and the recorded suite text come from that one reading, whatever happens to the file
while facts are gathered), and the run's tags are written with the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet.api.compare import GateRequest, run_gate
from fleet.api.run import ResumeRequest, RunRequest, resume_run, start_run
from fleet.config.inventory import load_inventory
from fleet.errors import ConfigError
from fleet.facts.gather import gather_facts
from fleet.store import Store
from fleet.store.runs import list_runs, run_suite_text, run_tags

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "inventories" / "local.yml"
SUITE = """\
schema_version: 1
name: once
repetitions: 1
workloads:
  - name: nap
    type: sleep
    axes: {seconds: [0.01, 0.02]}
"""
EDITED = SUITE.replace("0.01", "0.03").replace("name: once", "name: edited")


def planned_seconds(plan_json: str) -> list[float]:
    return sorted(c["params"]["seconds"] for c in json.loads(plan_json)["cases"].values())


def stored(store_path: Path, run_id: str) -> tuple[str, str, dict[str, str]]:
    with Store.open_read(store_path) as store:
        text, plan_json = run_suite_text(store, run_id)
        return text, plan_json, run_tags(store).get(run_id, {})


def test_an_edit_while_facts_are_gathered_changes_neither_plan_nor_recorded_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text(SUITE)

    def gather_then_edit(*args: Any, **kwargs: Any) -> Any:
        suite.write_text(EDITED)  # someone saves the file while the hosts are probed
        return gather_facts(*args, **kwargs)

    monkeypatch.setattr("fleet.api.run.gather_facts", gather_then_edit)
    report = start_run(RunRequest(suite, (LOCAL,), None, 7, tmp_path / "fleet.sqlite",
                                  tags={"branch": "main"}),
                       on_event=lambda e: None, on_warning=lambda w: None)
    assert report.summary.all_completed
    text, plan_json, tags = stored(tmp_path / "fleet.sqlite", report.run_id)
    assert text == SUITE
    assert planned_seconds(plan_json) == [0.01, 0.02]
    assert json.loads(plan_json)["suite"] == "once"
    assert tags["branch"] == "main" and {"date", "fleet_version"} <= set(tags)


def test_the_gate_runs_the_text_it_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text(SUITE)

    def load_then_edit(*args: Any, **kwargs: Any) -> Any:
        suite.write_text(EDITED)  # after the gate checked the suite, before the run
        return load_inventory(*args, **kwargs)

    monkeypatch.setattr("fleet.api.compare.load_inventory", load_then_edit)
    result = run_gate(GateRequest(suite, (LOCAL,), None, tmp_path / "fleet.sqlite",
                                  baseline_axis=("seconds", "0.01"), tags={"pr": "42"}),
                      on_event=lambda e: None, on_warning=lambda w: None)
    assert result.run_id is not None
    text, plan_json, tags = stored(tmp_path / "fleet.sqlite", result.run_id)
    assert text == SUITE
    assert planned_seconds(plan_json) == [0.01, 0.02]
    assert tags["pr"] == "42" and "date" in tags


def test_a_run_that_cannot_be_planned_records_nothing_and_no_tags(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text(SUITE.replace("repetitions: 1",
                                  "repetitions: 1\nrequires: {min_cpus: 100000}"))
    with pytest.raises(ConfigError, match="no case of suite once can run"):
        start_run(RunRequest(suite, (LOCAL,), None, 7, tmp_path / "fleet.sqlite",
                             tags={"branch": "main"}),
                  on_event=lambda e: None, on_warning=lambda w: None)
    with Store.open_read(tmp_path / "fleet.sqlite") as store:
        assert list_runs(store) == () and run_tags(store) == {}


def test_a_resume_adds_the_tags_it_is_given_and_no_defaults(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text(SUITE)
    store_path = tmp_path / "fleet.sqlite"
    report = start_run(RunRequest(suite, (LOCAL,), None, 7, store_path, tags={"date": "then"}),
                       on_event=lambda e: None, on_warning=lambda w: None)
    resume_run(ResumeRequest(report.run_id, store_path, None, None, tags={"retry": "1"}),
               on_event=lambda e: None, on_warning=lambda w: None)
    tags = stored(store_path, report.run_id)[2]
    assert tags["date"] == "then" and tags["retry"] == "1" and "fleet_version" in tags
