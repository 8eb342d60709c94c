"""fleet history: one point per run, change points by Otava, the gate's newest-point question."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.compare.changes import change_points, newest_is_change_point, noise_cv
from fleet.errors import ConfigError
from fleet.model import Measurement
from fleet.report.history import HistoryQuery, load_history
from fleet.runs import Attempt, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt, set_run_tags

STEP_AT = 12


def planted(n: int = 20, step_at: int = STEP_AT, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [(10.0 if i < step_at else 12.0) + rng.gauss(0.0, 0.05) for i in range(n)]


def test_one_planted_step_gives_exactly_one_change_point_at_its_index() -> None:
    (cp,) = change_points(planted())
    assert cp.index == STEP_AT
    assert cp.relative_change == pytest.approx(0.2, abs=0.01)
    assert cp.p_value < 0.001


def test_flat_noisy_and_short_series_have_no_change_point() -> None:
    rng = random.Random(5)
    assert change_points([10.0 + rng.gauss(0.0, 0.05) for _ in range(30)]) == ()
    assert change_points([10.0] * 25) == ()
    assert change_points([]) == () and change_points([1.0, 2.0]) == ()


def test_newest_point_against_the_last_runs() -> None:
    rng = random.Random(7)
    history = [10.0 + rng.gauss(0.0, 0.05) for _ in range(20)]
    jump = newest_is_change_point([*history, 12.0], last=20)
    assert jump.is_change_point and jump.change is not None and jump.change.index == 20
    assert jump.history_points == 20 and jump.noise_cv == pytest.approx(noise_cv(history))
    assert not newest_is_change_point([*history, 10.02], last=20).is_change_point
    # a host whose own noise is 10% needs more than a 5% step before it counts
    noisy = [10.0 * (1.1 if i % 2 else 0.9) for i in range(20)]
    small = newest_is_change_point([*noisy, 10.5], last=20)
    assert not small.is_change_point and small.min_relative_change > 0.15
    assert not newest_is_change_point([10.0], last=20).is_change_point


def make_history(path: Path, values: list[float], host: str = "h1") -> list[str]:
    ids = []
    with Store.open(path) as store:
        for i, value in enumerate(values):
            run_id = f"r{i:03d}"
            ids.append(run_id)
            jobs = [JobKey("c1", rep, host) for rep in (1, 2, 3)]  # one per repetition
            create_run(store, RunInfo(run_id, "s", "s.yml", "x", i, (), None, "0", 1000.0 + i,
                                      1000.5 + i, "completed"), suite_text="",
                       plan_json=json.dumps({"cases": {"c1": {"params": {"vcpus": 4},
                                                               "knobs": {}, "variant": {}}}}),
                       cases=[("c1", "w", '{"vcpus": 4}')], jobs=jobs, skipped=[])
            for job, v in zip(jobs, (value, value * 1.001, None), strict=True):
                record_attempt(store, Attempt(
                    run_id, job, host, 1, "completed", 1.0, 2.0, 0, None, "", "", False,
                    False, None, measurements=(Measurement("elapsed_seconds", v, "seconds"),)))
            set_run_tags(store, run_id, {"branch": "main" if i % 2 == 0 else "dev"})
    return ids


def test_history_from_the_store_finds_the_planted_step(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    values = planted()
    ids = make_history(path, values)
    (series,) = load_history(HistoryQuery(path, "elapsed_seconds", settings=(("vcpus", "4"),)))
    assert [p.run_id for p in series.points] == ids  # oldest first
    assert series.points[0].n == 2  # the None value is missing, not 0
    assert series.points[0].value == pytest.approx(values[0] * 1.0005)
    assert [c.index for c in series.change_points] == [STEP_AT]
    assert series.case == "vcpus=4"
    (last,) = load_history(HistoryQuery(path, "elapsed_seconds", last=5))
    assert [p.run_id for p in last.points] == ids[-5:] and last.change_points == ()
    (main_only,) = load_history(HistoryQuery(path, "elapsed_seconds", tags=(("branch", "main"),)))
    assert [p.run_id for p in main_only.points] == ids[::2]
    assert dict(main_only.points[0].tags) == {"branch": "main"}


def test_history_cli_json_and_empty_history(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.sqlite"
    make_history(path, planted())
    assert main(["history", "--metric", "elapsed_seconds", "--json", "--store", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["index"] for c in data["series"][0]["change_points"]] == [STEP_AT]
    assert main(["history", "--metric", "elapsed_seconds", "--store", str(path)]) == 0
    assert "change point" in capsys.readouterr().out
    for argv in (["--metric", "nope"], ["--metric", "elapsed_seconds", "--host", "h9"],
                 ["--metric", "elapsed_seconds", "--case", "vcpus=8"],
                 ["--metric", "elapsed_seconds", "--tag", "branch=none"],
                 ["--metric", "elapsed_seconds", "--last", "0"]):
        assert main(["history", *argv, "--store", str(path)]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    empty = tmp_path / "empty.sqlite"
    Store.open(empty).close()
    with pytest.raises(ConfigError, match="no history"):
        load_history(HistoryQuery(empty, "elapsed_seconds"))
    assert main(["history", "--metric", "x", "--store", str(tmp_path / "absent.sqlite")]) == 2
    assert not (tmp_path / "absent.sqlite").exists()
