"""The gate's history (fleet.compare.history_check): the host's own noise sets the threshold,
a change point at the newest run in the worse direction fails; a short history changes
nothing. Known answers on synthetic runs."""

from __future__ import annotations

import dataclasses
import json
import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest
from test_compare_engine import SUITE, normal, run
from test_history import make_history, planted

from fleet.api.compare import GateRequest, _gate_report
from fleet.cli import main
from fleet.compare.decide import decide
from fleet.compare.engine import Report, build_report
from fleet.compare.history_check import (
    MIN_HISTORY_POINTS,
    check_history,
    history_key,
    history_medians,
)
from fleet.compare.load import load_history
from fleet.compare.output import junit, markdown, report_json
from fleet.compare.select import Group, between_runs, within_run
from fleet.config.compare import Policy, parse_compare
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError
from fleet.model import Measurement
from fleet.runs import Attempt, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt


def groups(base: list[float], cand: list[float], threshold: float = 0.02) -> tuple[Group, ...]:
    """One gated row (elapsed, lower is better) on h1 with the suite threshold given."""
    found = between_runs(run("r1", {("A", "h1"): base}), run("r2", {("A", "h1"): cand}))
    return tuple(dataclasses.replace(g, config=dataclasses.replace(g.config,
                                                                   threshold_ratio=threshold))
                 for g in found)


def with_history(rows: Sequence[Group], points: Sequence[float],
                 history_runs: int | None = None) -> Report:
    return build_report(rows, baseline="r1", candidate="r2",
                        history={history_key(g): tuple(points) for g in rows},
                        history_runs=history_runs)


def steady(mean: float = 1.0, n: int = 20, seed: int = 11) -> list[float]:
    rng = random.Random(seed)
    return [mean * (1 + rng.gauss(0.0, 0.005)) for _ in range(n)]


NOISY = [1.0 * (1.1 if i % 2 else 0.9) for i in range(20)]  # a host with CV ~10 %


def test_a_noisy_host_needs_a_larger_change_than_the_suite_threshold() -> None:
    rows = groups(normal(1.0, 8, 1), normal(1.05, 8, 2))  # +5 %, suite threshold 2 %
    plain = build_report(rows, baseline="r1", candidate="r2")
    assert plain.rows[0].result.verdict == "worse" and decide(plain).exit_code == 1
    assert plain.rows[0].threshold_ratio == pytest.approx(0.02)
    (row,) = with_history(rows, NOISY).rows
    assert row.history is not None and row.history.noise_cv == pytest.approx(0.1026, abs=1e-3)
    assert row.threshold_ratio == pytest.approx(2 * (row.history.noise_cv or 0.0))
    assert row.threshold_source.startswith("host noise (2 x CV 10.3%")
    assert row.result.verdict == "no significant change"
    assert "within threshold 20.5%" in row.result.reason
    assert row.history.verdict == "no change"
    assert decide(with_history(rows, NOISY)).exit_code == 0
    # a quiet host keeps the suite's threshold
    (quiet,) = with_history(rows, steady()).rows
    assert quiet.threshold_source == "suite" and quiet.result.verdict == "worse"


def test_a_step_at_the_newest_run_fails_by_history_beside_the_two_sample_test() -> None:
    # the baseline already drifted (not in the history): two-sample +0.8 % is no change,
    # but against 20 runs around 1.0 the newest run (1.2) is a 20 % step up: worse
    rows = groups(normal(1.19, 8, 3), normal(1.2, 8, 4))
    report = with_history(rows, steady())
    (row,) = report.rows
    assert row.result.verdict == "no significant change"
    assert row.history is not None and row.history.verdict == "worse"
    assert row.history.change is not None and row.history.change.index == 20
    assert row.history.change.relative_change == pytest.approx(0.2, abs=0.02)
    decision = decide(report)
    assert decision.exit_code == 1 and decision.regressions == (row,)
    xml = ET.fromstring(junit(report, decision))
    (failure,) = xml.iter("failure")
    assert failure.get("type") == "regression found by history"
    message = failure.get("message") or ""
    assert "found by history" in message and "mean 1 before" in message and "p=" in message
    assert "threshold 2.0% (suite)" in (failure.text or "")
    text = markdown(report, decision, title="fleet gate")
    assert "FAIL: 1 significant regression" in text and "found by history" in text
    assert "| threshold | history |" in text and "**worse +" in text
    data = report_json(report, decision)
    assert data["rows"][0]["history"]["verdict"] == "worse"
    assert data["rows"][0]["history"]["change_point"]["index"] == 20
    assert "found by history" in data["gate"]["regression_reasons"][0]


def test_a_step_in_the_better_direction_is_reported_not_failing() -> None:
    rows = groups(normal(0.81, 8, 5), normal(0.8, 8, 6))
    report = with_history(rows, steady())
    (row,) = report.rows
    assert row.history is not None and row.history.verdict == "better"
    decision = decide(report)
    assert decision.exit_code == 0
    assert "found by history (better, not failing)" in markdown(report, decision)


def test_too_few_repetitions_stay_undecided_whatever_the_history_says() -> None:
    rows = groups([1.19, 1.2], [1.2, 1.21])  # 2 < min_repetitions 3
    (row,) = with_history(rows, steady()).rows
    assert row.result.verdict == "insufficient data"
    assert row.history is not None and row.history.verdict == "not checked"
    decision = decide(with_history(rows, steady()))
    assert decision.exit_code == 2 and "at least 3 per side" in decision.undecided[0]


def test_an_empty_or_short_history_changes_nothing() -> None:
    for base, cand in ((normal(1.0, 8, 7), normal(1.05, 8, 8)),
                       (normal(1.0, 8, 9), normal(1.0, 8, 10))):
        rows = groups(base, cand)
        plain = build_report(rows, baseline="r1", candidate="r2")
        for points in ([], NOISY[:MIN_HISTORY_POINTS - 1], [5.0] * 3):
            (row,) = with_history(rows, points).rows
            assert row.result == plain.rows[0].result
            assert row.threshold_ratio == plain.rows[0].threshold_ratio
            assert row.history is not None and row.history.verdict == "too short"
            assert decide(with_history(rows, points)).exit_code == decide(plain).exit_code
        off = with_history(rows, NOISY, history_runs=0)
        assert off.rows[0].history is None and off.rows[0].result == plain.rows[0].result


def test_only_the_newest_runs_count() -> None:
    policy = Policy(direction="lower_is_better", threshold_ratio=0.02, min_repetitions=3)
    old_noise = [*NOISY, *steady(n=10)]
    assert check_history(old_noise, [1.0] * 5, policy, runs=10).threshold_source == "suite"
    assert check_history(old_noise, [1.0] * 5, policy, runs=30).threshold_ratio > 0.02


def test_axis_gate_history_is_the_candidate_variants() -> None:
    one = run("r1", {("N", "h1"): normal(1.0, 6, 6), ("Y", "h1"): normal(0.8, 6, 7)},
              axis="eps")
    (g,) = within_run(one, "eps", "N", ("Y",))
    assert history_key(g)[4] == (("eps", "Y"), ("seconds", "0.1"))
    medians = history_medians([(one.attempts, one.cases)] * 2, {"h1"})
    assert medians[history_key(g)] == pytest.approx([0.8, 0.8], abs=0.02)
    assert history_medians([(one.attempts, one.cases)], {"h9"}) == {}


def test_history_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    values = planted()
    ids = make_history(path, values)
    found = load_history(path, ids[-1], runs=5)
    key = ("elapsed_seconds", "seconds", (), "", (("vcpus", "4"),), "h1")
    assert found[key] == pytest.approx([v * 1.0005 for v in values[-6:-1]])
    assert load_history(path, ids[-1], runs=0) == {}
    assert load_history(path, ids[-1], runs=50, hosts={"h2"}) == {}
    assert len(load_history(path, ids[-1], runs=50)[key]) == len(ids) - 1


def test_the_history_key_and_gate_option(capsys: pytest.CaptureFixture[str]) -> None:
    suite = parse_suite("schema_version: 1\nname: t\ncompare: {history: 5}\nworkloads:\n"
                        "  - name: w\n    type: sleep\n    params: {seconds: 0.1}\n",
                        source="s.yml")
    assert suite.compare.history_runs == 5 and suite.entries[0].compare.history_runs == 5
    for bad in ("-1", "1001", "x"):
        with pytest.raises(ConfigError, match=r"compare\.history"):
            parse_suite(f"schema_version: 1\nname: t\ncompare: {{history: {bad}}}\n"
                        "workloads:\n  - name: w\n    type: sleep\n    params: {seconds: 1}\n",
                        source="s.yml")
    assert parse_compare(None, suite.compare).history_runs == 5
    assert main(["gate", "s.yml", "--baseline", "main", "--history", "-3"]) == 2
    err = capsys.readouterr().err
    assert "--history -3" in err and len(err.strip().splitlines()) == 1


def gate_store(path: Path, means: Sequence[float]) -> list[str]:
    """Runs r000... of suite t (elapsed, lower is better), 4 values each around ``mean``."""
    ids = []
    plan = json.dumps({"cases": {"c1": {"workload": "w", "params": {"seconds": 0.1},
                                        "knobs": {}, "variant": {}}}})
    with Store.open(path) as store:
        for i, mean in enumerate(means):
            run_id = f"r{i:03d}"
            ids.append(run_id)
            jobs = [JobKey("c1", rep, "h1") for rep in range(1, 5)]
            create_run(store, RunInfo(run_id, "t", "t.yml", "x", i, (), None, "0", 1000.0 + i,
                                      1000.5 + i, "completed"), suite_text=SUITE,
                       plan_json=plan, cases=[("c1", "w", '{"seconds": 0.1}')], jobs=jobs,
                       skipped=[])
            for job, value in zip(jobs, normal(mean, 4, i), strict=True):
                record_attempt(store, Attempt(
                    run_id, job, "h1", 1, "completed", 1.0, 2.0, 0, None, "", "", False, False,
                    None, measurements=(Measurement("elapsed", value, "seconds"),)))
    return ids


def test_the_gate_reads_its_history_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    ids = gate_store(path, [1.0] * 8 + [1.3])
    for runs, points in ((None, 8), (3, 3), (0, None)):
        problems: list[str] = []
        request = GateRequest(Path("t.yml"), (), None, path, baseline=ids[-2],
                              history_runs=runs, allow_mismatch=frozenset({"facts"}))
        report = _gate_report(request, ids[-1], ids[-2], {"h1"}, problems)
        assert report is not None and problems == []
        (row,) = report.rows
        assert row.result.verdict == "worse"
        if points is None:
            assert row.history is None
            continue
        assert row.history is not None and row.history.points == points
        assert row.history.verdict == ("worse" if points >= MIN_HISTORY_POINTS else "too short")
