"""Runs, attempts and results in the store: atomic, resumable, missing values stay missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import StoreError
from fleet.model import Measurement
from fleet.runs import Attempt, JobKey, KnobState, RunInfo
from fleet.store import Store
from fleet.store.runs import (
    create_run,
    list_runs,
    load_run,
    record_attempt,
    run_suite_text,
    set_run_status,
)


def info(run_id: str = "r1") -> RunInfo:
    return RunInfo(run_id, "quickstart", "benchmarks/quickstart.yml", "abc", 7, ("inv.yml",),
                   None, "0.1.0", 100.0, None, "running")


def attempt(job: JobKey, status: str = "completed", n: int = 1) -> Attempt:
    return Attempt(
        run_id="r1", job=job, host=job.host or "h2", attempt_no=n, status=status,  # type: ignore[arg-type]
        started_at_unix_seconds=1.0, ended_at_unix_seconds=3.5, exit_code=0, signal=None,
        stdout="out", stderr="err", stdout_truncated=False, stderr_truncated=True,
        fingerprint="fp", knobs=(KnobState("numa_balancing", "/proc/sys/kernel/numa_balancing",
                                           "1", "0", "0", True),),
        measurements=(Measurement("elapsed", 1.25, "seconds", (("phase", "a"),)),
                      Measurement("missing", None, "bytes")))


JOBS = (JobKey("c1", 1, "h1"), JobKey("c1", 2, "h1"), JobKey("c2", 1, None))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "s.sqlite")
    create_run(s, info(), suite_text="schema_version: 1\n", plan_json="{}",
               cases=[("c1", "w", '{"a": 1}'), ("c2", "w", '{"a": 2}')], jobs=JOBS,
               skipped=[("c3", "needs >= 2 NUMA nodes")])
    return s


def test_job_key_text_round_trip() -> None:
    for job in JOBS:
        assert JobKey.parse(job.text) == job


def test_pending_jobs_are_those_without_a_completed_attempt(store: Store) -> None:
    record_attempt(store, attempt(JOBS[0]))
    record_attempt(store, attempt(JOBS[2], status="failed"))
    detail = load_run(store, "r1")
    assert detail.pending_jobs() == (JOBS[1], JOBS[2])
    assert detail.skipped == (("c3", "needs >= 2 NUMA nodes"),)


def test_attempt_round_trips_with_missing_measurement(store: Store) -> None:
    original = attempt(JOBS[0])
    record_attempt(store, original)
    (stored,) = load_run(store, "r1").attempts
    assert stored.attempt == original
    assert stored.attempt.measurements[1].value is None
    assert stored.attempt.duration_seconds == 2.5


def test_run_status_and_listing(store: Store) -> None:
    set_run_status(store, "r1", "completed", 200.0)
    (run,) = list_runs(store)
    assert (run.status, run.finished_at_unix_seconds, run.inventory) == \
        ("completed", 200.0, ("inv.yml",))
    assert run_suite_text(store, "r1") == ("schema_version: 1\n", "{}")


def test_duplicate_run_id_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot be recorded"):
        create_run(store, info(), suite_text="", plan_json="{}", cases=[("zz", "w", "{}")],
                   jobs=(), skipped=())
    assert [c[0] for c in load_run(store, "r1").cases] == ["c1", "c2"]


def test_unknown_run_is_one_clear_error(store: Store) -> None:
    with pytest.raises(StoreError, match=r"no run 'nope'.*fleet runs"):
        load_run(store, "nope")


def test_attempt_is_atomic_with_its_results(store: Store) -> None:
    bad = attempt(JOBS[0])
    unserialisable = (Measurement("x", 1.0, "u", (("k", object()),)),)  # type: ignore[arg-type]
    bad = Attempt(**{**bad.__dict__, "measurements": unserialisable})
    with pytest.raises(TypeError):
        record_attempt(store, bad)
    assert load_run(store, "r1").attempts == ()
