"""`fleet run` against what stops or duplicates controllers, on the real netns lab: SIGTERM
and SIGHUP, a closed output pipe, a second controller on one run, a rekeyed host.

Assertions read the store (as `fleet show` does) and, for knobs, this machine's /proc (the
lab hosts share it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from test_run import (
    completed_once,
    fleet,
    no_leftovers,
    only_run,
    sleepers,
    spawn,
    suite_file,
    wait_for_attempts,
)

from fleet.lab import LabState
from fleet.runs import RunDetail

pytestmark = pytest.mark.integration
ZONE_RECLAIM = Path("/proc/sys/vm/zone_reclaim_mode")


def run_id_of(store: Path) -> str:
    with sqlite3.connect(store) as conn:
        (row,) = conn.execute("SELECT run_id FROM runs").fetchall()
    return str(row[0])


def wait_for_claims(store: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no job was claimed"
        if store.exists():
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(store) as conn:
                if conn.execute("SELECT COUNT(*) FROM job_claims").fetchone()[0]:
                    return
        time.sleep(0.01)


def assert_no_overlap_and_once(detail: RunDetail) -> None:
    """Per job: attempts one after the other, and exactly one completed."""
    assert set(completed_once(detail).values()) == {1}
    by_job = defaultdict(list)
    for stored in detail.attempts:
        a = stored.attempt
        by_job[a.job].append((a.started_at_unix_seconds, a.ended_at_unix_seconds))
    for job, spans in by_job.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, (job.text, spans)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_sigterm_and_sighup_stop_like_ctrl_c_and_restore_the_knob(
        lab: LabState, tmp_path: Path, signum: signal.Signals) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    original = ZONE_RECLAIM.read_text().strip()
    wanted = "3" if original != "3" else "5"
    body = f"""\
workloads:
  - name: knobbed
    type: command
    repetitions: 4
    timeout_seconds: 20
    knobs: {{zone_reclaim_mode: {wanted}}}
    argv: [sh, -c, 'sleep 0.8; cat /proc/sys/vm/zone_reclaim_mode', {marker}]
    parse:
      patterns: ['^(?P<zr>\\d+)$']
      metrics:
        zr: {{unit: value}}
"""
    store = tmp_path / "fleet.sqlite"
    proc = spawn("run", str(suite_file(tmp_path, body)), "-i", str(lab.inventory_path),
                 "--limit", "lab1", "--store", str(store))
    wait_for_attempts(store, 1, proc)
    deadline = time.monotonic() + 30
    while ZONE_RECLAIM.read_text().strip() != wanted:  # the next case has set the knob
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert ZONE_RECLAIM.read_text().strip() == original
    detail = only_run(store)
    assert detail.info.status == "interrupted" and detail.in_flight == ()
    interrupted = [a.attempt for a in detail.attempts if a.attempt.status == "interrupted"]
    assert interrupted and all(k.restored for a in interrupted for k in a.knobs)
    assert f"resume with: fleet run --resume {detail.info.run_id}" in stderr
    assert no_leftovers(marker)
    resumed = fleet("run", "--resume", detail.info.run_id, "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr
    assert ZONE_RECLAIM.read_text().strip() == original
    after = only_run(store)
    assert after.info.status == "completed"
    assert_no_overlap_and_once(after)


@pytest.mark.parametrize("extra", [["--json"], []], ids=["json", "plain"])
def test_a_closed_output_pipe_never_stops_the_run(lab: LabState, tmp_path: Path,
                                                  extra: list[str]) -> None:
    """`fleet run ... 2>&1 | head -1`: the run completes, is stored, and exits 0."""
    marker = f"m-{uuid.uuid4().hex}"
    store = tmp_path / "fleet.sqlite"
    argv = [sys.executable, "-m", "fleet", "run",
            str(suite_file(tmp_path, sleepers(marker, "0.2", 3))), "-i",
            str(lab.inventory_path), "--store", str(store), *extra]
    script = f"{shlex.join(argv)} 2>&1 | head -1; echo \"fleet exit ${{PIPESTATUS[0]}}\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                         check=False).stdout.splitlines()
    assert len(out) == 2 and out[-1] == "fleet exit 0", out
    detail = only_run(store)
    assert detail.info.status == "completed" and len(detail.jobs) == 6
    assert set(completed_once(detail).values()) == {1}
    assert no_leftovers(marker)


def test_a_resume_during_the_live_run_is_refused(lab: LabState, tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    store = tmp_path / "fleet.sqlite"
    proc = spawn("run", str(suite_file(tmp_path, sleepers(marker, "2", 3))), "-i",
                 str(lab.inventory_path), "--store", str(store))
    wait_for_claims(store, proc)  # jobs are running (each takes 2 s, two per host)
    run_id = run_id_of(store)
    second = fleet("run", "--resume", run_id, "--store", str(store))
    assert second.returncode == 2, second.stderr
    (line,) = second.stderr.splitlines()
    assert f"run {run_id} is being run by pid {proc.pid} on " in line
    listed = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    assert [r["status"] for r in listed] == ["running"]
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert_no_overlap_and_once(only_run(store))


def test_after_a_crash_two_resumes_run_each_job_once(lab: LabState, tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    store = tmp_path / "fleet.sqlite"
    proc = spawn("run", str(suite_file(tmp_path, sleepers(marker, "0.4, 0.5", 3))), "-i",
                 str(lab.inventory_path), "--store", str(store))
    wait_for_attempts(store, 2, proc)
    proc.kill()
    proc.communicate()
    assert no_leftovers(marker)
    crashed = only_run(store)
    assert crashed.in_flight, "the jobs running at the crash are visible"
    listed = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    assert [r["status"] for r in listed] == ["crashed"]
    run_id = crashed.info.run_id
    both = [spawn("run", "--resume", run_id, "--store", str(store)) for _ in range(2)]
    outcomes = sorted((p.wait(timeout=120), p.communicate()[1]) for p in both)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert "is being run by pid" in outcomes[1][1]
    after = only_run(store)
    assert after.info.status == "completed" and after.in_flight == ()
    died = [a.attempt for a in after.attempts if (a.attempt.error or "").startswith(
        "controller died")]
    assert {(a.job, a.attempt_no) for a in died} == \
        {(c.job, c.attempt_no) for c in crashed.in_flight}
    assert_no_overlap_and_once(after)
    assert no_leftovers(marker)


def test_a_rekeyed_host_is_recorded_and_fails_the_run(lab: LabState, tmp_path: Path) -> None:
    (lab2,) = [h for h in lab.hosts if h.name == "lab2"]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other_key = " ".join((tmp_path / "k.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text("".join(
        (f"{line.split()[0]} {other_key}\n" if line.split()[0] in
         (lab2.address, f"[{lab2.address}]:{lab2.port}") else f"{line}\n")
        for line in lab.known_hosts_path.read_text().splitlines()))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(lab.inventory_path.read_text().replace(str(lab.known_hosts_path),
                                                                str(known)))
    store = tmp_path / "fleet.sqlite"
    suite = suite_file(tmp_path, sleepers(f"m-{uuid.uuid4().hex}", "0.05", 1, "every"))
    result = fleet("run", str(suite), "-i", str(inventory), "--store", str(store), "--json")
    assert result.returncode == 1, result.stderr
    finished = json.loads(result.stdout.splitlines()[-1])
    assert finished["status"] == "completed" and finished["jobs"]["completed"] == 4
    (dropped,) = finished["unreachable"]
    assert dropped["host"] == "lab2" and "lab2" in dropped["reason"]
    run_id = finished["run_id"]
    shown = fleet("show", run_id, "--store", str(store))
    assert "1 host(s) unreachable" in shown.stdout and "unreachable host lab2" in shown.stdout
    resumed = fleet("run", "--resume", run_id, "--store", str(store))
    assert resumed.returncode == 1 and "1 host(s) unreachable" in resumed.stderr
    allowed = fleet("run", "--resume", run_id, "--store", str(store), "--allow-unreachable")
    assert allowed.returncode == 0, allowed.stderr
    fresh = fleet("run", str(suite), "-i", str(inventory), "--store", str(store),
                  "--allow-unreachable")
    assert fresh.returncode == 0, fresh.stderr
    assert "1 host(s) unreachable" in fresh.stdout
