"""One live controller per run: owners, liveness, claims, and `crashed` when the owner is gone.

Also: a job with two completed attempts (two controllers before ownership existed) counts
once in compare and report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.model import Measurement
from fleet.report.load import load_records
from fleet.runs import Attempt, Claim, JobKey, RunInfo
from fleet.store import Store
from fleet.store.owner import (
    STALE_AFTER_SECONDS,
    Owner,
    claim_job,
    owner_alive,
    process_start,
    run_owners,
    shown_status,
    take_run,
    this_controller,
)
from fleet.store.runs import create_run, load_completed, load_run, record_attempt

JOBS = (JobKey("c1", 1, "h1"), JobKey("c1", 2, "h1"))


def info(status: str = "running") -> RunInfo:
    return RunInfo("r1", "s", "s.yml", "abc", 7, (), None, "0", 100.0, None,
                   status)  # type: ignore[arg-type]


def attempt(job: JobKey, n: int, start: float, value: float) -> Attempt:
    return Attempt("r1", job, "h1", n, "completed", start, start + 1.0, 0, None, "", "", False,
                   False, "fp", measurements=(Measurement("elapsed", value, "seconds"),))


def dead_owner() -> Owner:
    """This host, a pid that existed and is gone."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    me = this_controller(1000.0)
    return Owner(int(proc.stdout), me.host_name, f"{me.process_start}-gone", 1000.0, 1005.0)


def make_run(path: Path, owner: Owner | None) -> Store:
    store = Store.open(path)
    create_run(store, info(), suite_text="", plan_json="{}", cases=[("c1", "w", "{}")],
               jobs=JOBS, skipped=[], owner=owner,
               unreachable=[("h9", "h9: host key changed")])
    return store


def test_process_start_tells_a_live_process_from_a_reused_or_missing_pid() -> None:
    mine = process_start(os.getpid())
    assert mine and mine == process_start(os.getpid())
    assert process_start(2**22 + 12345) is None
    me = this_controller(10.0)
    here = {"host_name": me.host_name, "now_unix_seconds": 10.0}
    assert owner_alive(me, start_of=process_start, **here)  # type: ignore[arg-type]
    reused = Owner(me.pid, me.host_name, "other-boot:1", 10.0, 10.0)
    assert not owner_alive(reused, start_of=process_start, **here)  # type: ignore[arg-type]
    far = Owner(1, "elsewhere", "b:1", 0.0, 100.0)
    for now, alive in ((100.0 + STALE_AFTER_SECONDS - 1, True),
                       (100.0 + STALE_AFTER_SECONDS + 1, False)):
        assert owner_alive(far, now_unix_seconds=now, host_name=me.host_name,
                           start_of=process_start) is alive


def test_a_live_owner_keeps_the_run_and_is_named(tmp_path: Path) -> None:
    me = this_controller(1000.0)
    with make_run(tmp_path / "s.sqlite", me) as store:
        other = Owner(me.pid + 1, "elsewhere", "", 2000.0, 2000.0)
        holder = take_run(store, "r1", other)
        assert holder == me
        assert f"pid {me.pid} on {me.host_name} since " in holder.line()
        assert run_owners(store) == {"r1": me}


def test_a_dead_owners_claims_become_interrupted_attempts(tmp_path: Path) -> None:
    gone = dead_owner()
    with make_run(tmp_path / "s.sqlite", gone) as store:
        record_attempt(store, attempt(JOBS[0], 1, 1001.0, 1.0))
        claim_job(store, "r1", Claim(JOBS[0], "h1", 2, 1002.0))  # in flight at the crash
        claim_job(store, "r1", Claim(JOBS[1], "h1", 1, 1003.0))
        record_attempt(store, attempt(JOBS[0], 2, 1002.0, 2.0))  # recorded: claim gone
        detail = load_run(store, "r1")
        assert [c.job for c in detail.in_flight] == [JOBS[1]]
        assert detail.unreachable == (("h9", "h9: host key changed"),)
        me = this_controller(2000.0)
        assert take_run(store, "r1", me) is None
        assert run_owners(store) == {"r1": me}
        after = load_run(store, "r1")
    assert after.in_flight == ()
    (reaped,) = [a.attempt for a in after.attempts if a.attempt.status == "interrupted"]
    assert (reaped.job, reaped.attempt_no, reaped.started_at_unix_seconds,
            reaped.ended_at_unix_seconds) == (JOBS[1], 1, 1003.0, 1005.0)
    assert (reaped.error or "").startswith(f"controller died: the controller (pid {gone.pid}")


def test_runs_and_show_call_a_running_run_without_a_live_owner_crashed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.sqlite"
    make_run(path, dead_owner()).close()
    assert main(["runs", "--json", "--store", str(path)]) == 0
    (row,) = json.loads(capsys.readouterr().out)["runs"]
    assert row["status"] == "crashed"
    assert main(["show", "r1", "--json", "--store", str(path)]) == 0
    run = json.loads(capsys.readouterr().out)["run"]
    assert run["status"] == "crashed"
    assert run["unreachable"] == [{"host": "h9", "reason": "h9: host key changed"}]
    assert shown_status("running", this_controller(1.0), lambda o: True) == "running"
    assert shown_status("completed", None, lambda o: False) == "completed"


def test_two_completed_attempts_of_one_job_count_once(tmp_path: Path) -> None:
    with make_run(tmp_path / "s.sqlite", None) as store:
        record_attempt(store, attempt(JOBS[0], 1, 1.0, 10.0))
        record_attempt(store, attempt(JOBS[0], 2, 1.5, 11.0))  # a second controller's copy
        record_attempt(store, attempt(JOBS[1], 1, 3.0, 12.0))
        _, completed = load_completed(store, "r1")
        values = sorted(r[1] or 0.0 for a in completed for r in a.results)
        assert values == [11.0, 12.0]
        records = load_records(store, "r1")
    kept = [a.attempt for a in records.detail.attempts]
    assert sorted((a.job.repetition, a.attempt_no) for a in kept) == [(1, 2), (2, 1)]
