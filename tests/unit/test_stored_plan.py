"""The stored plan: one typed record (fleet.runs.StoredPlan), one codec (fleet.codec), and
plans stored before it had a format version still load.

tests/data/stores/plan_unversioned.sqlite was written by `fleet run` before the plan had a
format version (suite: plan_unversioned.yml, on the local host, --seed 7).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleet.api.plan import plan_suite, plan_summary
from fleet.codec import case_settings, plan_from_data, plan_from_json, plan_to_json
from fleet.config.suite import load_suite
from fleet.errors import StoreError
from fleet.execute.plan import plan_jobs
from fleet.facts.build import build_facts
from fleet.facts.tree import tree_from_root
from fleet.hosts import Host
from fleet.model import Case
from fleet.plan.matrix import expand
from fleet.report.load import load_records
from fleet.runs import (
    PLAN_FORMAT_VERSION,
    JobKey,
    PlannedCase,
    PlannedGroup,
    PlannedHost,
    StoredPlan,
)
from fleet.store import Store
from fleet.store.runs import list_runs, load_run, run_plan, run_suite_text

DATA = Path(__file__).resolve().parents[1] / "data" / "stores"
REPO = Path(__file__).resolve().parents[2]
OLD_STORE = DATA / "plan_unversioned.sqlite"
OLD_RUN = "r20261203-131524-4860"
A, B = "e8d2daba17877d83", "97df1ee4a9847aee"  # seconds 0.01, 0.02


def nap(seconds: float) -> PlannedCase:
    return PlannedCase("nap", "sleep", params=(("seconds", seconds),), repetitions=2,
                       timeout_seconds=600.0, estimate_seconds=seconds, spread="every")


EXPECTED = StoredPlan(
    suite="tiny", seed=7,
    totals=(("cases", 2), ("estimate_seconds", 0.06), ("hosts", 1), ("hosts_without_facts", 0),
            ("planned_cases", 2), ("runs", 4), ("skipped_cases", 0), ("work_seconds", 0.06)),
    cases={B: nap(0.02), A: nap(0.01)},
    hosts=(PlannedHost("localhost", 4, 0.06,
                       (PlannedGroup((), ((B, 1), (A, 1), (B, 2), (A, 2))),)),))


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    path = tmp_path / "old.sqlite"
    shutil.copyfile(OLD_STORE, path)
    return path


def test_a_plan_stored_without_a_format_version_loads(old_store: Path) -> None:
    with Store.open(old_store) as store:  # migrates a copy, should the schema move on
        (info,) = list_runs(store)
        _, plan_json = run_suite_text(store, OLD_RUN)
        _, plan = run_plan(store, OLD_RUN)
        detail = load_run(store, OLD_RUN)
        records = load_records(store, OLD_RUN)
    assert info.run_id == OLD_RUN and "format_version" not in json.loads(plan_json)
    assert plan == EXPECTED and plan.format_version == PLAN_FORMAT_VERSION
    assert plan.queues() == {"localhost": [(B, 1), (A, 1), (B, 2), (A, 2)]}
    # the jobs the executor derives from the plan are the ones the store recorded
    cases = {c.case_id: c for c in _cases()}
    assert plan_jobs(plan, cases) == detail.jobs
    assert records.settings == {A: {"seconds": 0.01}, B: {"seconds": 0.02}}


def test_the_current_codec_writes_what_the_old_text_said_plus_its_version(
        old_store: Path) -> None:
    with Store.open(old_store) as store:
        _, plan_json = run_suite_text(store, OLD_RUN)
    plan = plan_from_json(plan_json)
    written = plan_to_json(plan)
    assert json.loads(written) == {**json.loads(plan_json), "format_version": 1}
    assert plan_from_json(written) == plan == EXPECTED


def test_a_fresh_plan_round_trips_through_the_codec(node_exporter_sys_root: Path) -> None:
    facts = build_facts("localhost", tree_from_root(node_exporter_sys_root),
                        collected_at_unix_seconds=0)
    suite_path = REPO / "benchmarks" / "quickstart.yml"
    result = plan_suite(load_suite(suite_path), [facts],
                        [Host("localhost", "localhost", connection="local")], seed=42,
                        where=str(suite_path))
    summary = plan_summary(result)
    plan = plan_from_data(summary)
    assert json.loads(plan_to_json(plan)) == {**summary, "format_version": 1}
    assert {cid: c.settings() for cid, c in plan.cases.items()} == {
        c.case_id: {**dict(c.params), **dict(c.knobs), **dict(c.variant)} for c in result.cases}
    assert plan_jobs(plan, {c.case_id: c for c in result.cases})[0] == JobKey(
        result.queues[0].entries[0].case_id, result.queues[0].entries[0].repetition,
        "localhost")


def test_case_settings_come_from_the_plan_else_the_recorded_params() -> None:
    case = PlannedCase("w", params=(("a", 1), ("b", "x")), knobs=(("thp", "never"),),
                       variant=(("b", "y"),))
    plan = StoredPlan(cases={"c1": case})
    assert case_settings(plan, "c1", '{"ignored": 1}') == {"a": 1, "b": "y", "thp": "never"}
    assert case_settings(plan, "c2", '{"vcpus": 4}') == {"vcpus": 4}
    assert case_settings(plan_from_json("{}"), "c1", "{}") == {}


@pytest.mark.parametrize(("text", "message"), [
    ('{"format_version": 2, "cases": {}}', "format_version 2, this fleet reads 1"),
    ("[1, 2]", "not a JSON object"),
    ("{", "not a JSON object"),
])
def test_an_unreadable_plan_is_one_line(text: str, message: str) -> None:
    with pytest.raises(StoreError) as caught:
        plan_from_json(text, where="s.sqlite: run r1")
    line = caught.value.line()
    assert message in line and "s.sqlite: run r1" in line and "\n" not in line


def _cases() -> list[Case]:
    return list(expand(load_suite(DATA / "plan_unversioned.yml")))
