"""`fleet run` on the real netns lab: parallel hosts, faults, resume, Ctrl-C, knobs, timeouts.

Lab hosts share this machine's /proc, so leftover workload processes are looked up here by a
marker each test puts into its workloads' argv. Assertions read the store, as `fleet show`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.api.run import RunRequest, start_run
from fleet.execute.events import AttemptStarted, HostQuarantined, RunEvent
from fleet.execute.executor import ExecuteOptions
from fleet.execute.policy import RetryPolicy
from fleet.lab import LabState, lab_down, lab_up
from fleet.lab.netns import pids_in_namespace
from fleet.model import Measurement
from fleet.runs import Attempt, RunDetail
from fleet.store import Store
from fleet.store.runs import list_runs, load_run

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def fleet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, check=False)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fleet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)


def marker_pids(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def no_leftovers(marker: str, within_seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + within_seconds
    while marker_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not marker_pids(marker)


def attempts_in(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def wait_for_attempts(store: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while attempts_in(store) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no attempts recorded"
        time.sleep(0.01)


def only_run(store: Path) -> RunDetail:
    with Store.open(store) as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        return load_run(s, str(run_id))


def completed_once(detail: RunDetail) -> Counter[str]:
    """Per job, the number of completed attempts (each must be exactly 1)."""
    counts = Counter(a.attempt.job.text for a in detail.attempts
                     if a.attempt.status == "completed")
    return Counter({j.text: counts[j.text] for j in detail.jobs})


def workload_measurements(attempt: Attempt) -> list[Measurement]:
    """What the workload reported: without the sampler's metrics (labelled source=sampler)."""
    return [m for m in attempt.measurements if ("source", "sampler") not in m.labels]


def suite_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yml"
    path.write_text("schema_version: 1\nname: itest\n" + body)
    return path


def sleepers(marker: str, seconds: str, reps: int, spread: str = "any") -> str:
    return f"""\
workloads:
  - name: work
    type: command
    repetitions: {reps}
    spread: {spread}
    timeout_seconds: 20
    argv: [sh, -c, 'sleep {{s}}; echo n={{n}}', {marker}]
    axes:
      s: [{seconds}]
      n: [1, 2]
    parse:
      patterns: ['n=(?P<n>\\d+)']
      metrics:
        n: {{unit: count}}
"""


# ---- (a) parallel hosts -------------------------------------------------------------------


def test_two_axes_three_repetitions_run_in_parallel_and_once_each(lab: LabState,
                                                                    tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    suite = suite_file(tmp_path, sleepers(marker, "0.1, 0.2", 3))
    store = tmp_path / "fleet.sqlite"
    result = fleet("run", str(suite), "-i", str(lab.inventory_path), "--store", str(store))
    assert result.returncode == 0, result.stderr
    detail = only_run(store)
    assert detail.info.status == "completed"
    assert len(detail.jobs) == 12 and set(completed_once(detail).values()) == {1}
    attempts = [a.attempt for a in detail.attempts]
    assert {a.host for a in attempts} == {"lab1", "lab2", "lab3"}
    overlaps = [(a.host, b.host) for a in attempts for b in attempts if a.host != b.host
                and a.started_at_unix_seconds < b.ended_at_unix_seconds
                and b.started_at_unix_seconds < a.ended_at_unix_seconds]
    assert overlaps
    params = {c: p for c, _, p in detail.cases}
    for a in attempts:  # each parsed value is the case's own parameter
        (m,) = workload_measurements(a)
        assert m.metric == "n" and f'"n": {int(m.value or 0)}' in params[a.job.case_id]
    assert no_leftovers(marker)


# ---- (b) a host dies mid-run ------------------------------------------------------------


@pytest.fixture
def own_lab(tmp_path: Path) -> Iterator[LabState]:
    """A lab of 3 hosts this test may break."""
    state_dir = tmp_path / "lab"
    state = lab_up(3, state_dir)
    try:
        yield state
    finally:
        lab_down(state_dir)


def kill_host(state: LabState, name: str) -> None:
    """Kill everything in the host's namespace: sshd, its sessions, the agent, the workload."""
    (host,) = [h for h in state.hosts if h.name == name]
    assert host.namespace is not None
    for pid in pids_in_namespace(host.namespace):
        with contextlib.suppress(ProcessLookupError):  # ended by itself meanwhile
            os.kill(pid, signal.SIGKILL)


def test_a_dead_host_is_quarantined_and_its_jobs_move_or_fail(own_lab: LabState,
                                                              tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    body = sleepers(marker, "0.2", 4) + """\
  - name: pinned
    type: sleep
    spread: every
    repetitions: 3
    params: {seconds: 0.5}
"""
    events: list[RunEvent] = []

    def on_event(event: RunEvent) -> None:  # lab2 dies while its first case runs
        events.append(event)
        if isinstance(event, AttemptStarted) and event.host == "lab2" \
                and not any(isinstance(e, AttemptStarted) and e.host == "lab2"
                            for e in events[:-1]):
            kill_host(own_lab, "lab2")

    store = tmp_path / "fleet.sqlite"
    report = start_run(RunRequest(suite_file(tmp_path, body), (own_lab.inventory_path,), None,
                                  7, store), on_event=on_event, on_warning=lambda w: None,
                       options=ExecuteOptions(policy=RetryPolicy(base_delay_seconds=0.05)))
    (quarantined,) = [e for e in events if isinstance(e, HostQuarantined)]
    assert quarantined.host == "lab2" and "transport failures in a row" in quarantined.reason
    detail = only_run(store)
    assert detail.info.status == "incomplete" and not report.summary.all_completed
    done = completed_once(detail)
    for job in detail.jobs:
        if job.host is None or job.host != "lab2":
            assert done[job.text] == 1, job.text  # `any` jobs: completed once, somewhere
    last = {a.attempt.job: a.attempt for a in detail.attempts}
    lost = [j for j in detail.jobs if j.host == "lab2" and done[j.text] == 0]
    assert lost, [(a.attempt.job.text, a.attempt.host, a.attempt.status, a.attempt.error)
                  for a in detail.attempts]
    assert all(last[j].status == "failed"
               and (last[j].error or "").startswith("host quarantined: ") for j in lost), \
        [(j.text, last.get(j)) for j in lost]
    moved = {j for j, _ in quarantined.moved}
    assert all(last[j].host != "lab2" for j in detail.jobs if j.text in moved)
    assert no_leftovers(marker)


# ---- (c) SIGKILL of the controller, then --resume ------------------------------------------


def test_sigkill_loses_nothing_and_resume_completes_each_job_once(lab: LabState,
                                                                  tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    suite = suite_file(tmp_path, sleepers(marker, "0.3, 0.4", 3))
    store = tmp_path / "fleet.sqlite"
    proc = spawn("run", str(suite), "-i", str(lab.inventory_path), "--store", str(store))
    wait_for_attempts(store, 3, proc)
    proc.kill()
    proc.communicate()
    assert no_leftovers(marker)  # the agents saw EOF and killed their workloads
    before = only_run(store)
    assert before.info.status == "running" and 3 <= len(before.attempts) < 12
    resumed = fleet("run", "--resume", before.info.run_id, "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr
    after = only_run(store)
    assert after.info.status == "completed"
    assert set(completed_once(after).values()) == {1}
    kept = {s.attempt_id for s in before.attempts}
    assert kept <= {s.attempt_id for s in after.attempts}
    assert no_leftovers(marker)


# ---- (d) a runtime knob, set and restored ------------------------------------------------


def test_knob_is_set_for_the_case_and_restored(lab: LabState, tmp_path: Path) -> None:
    path = Path("/proc/sys/vm/swappiness")
    original = path.read_text().strip()
    wanted = "17" if original != "17" else "23"
    body = f"""\
workloads:
  - name: look
    type: command
    repetitions: 2
    knobs: {{swappiness: {wanted}}}
    argv: [cat, /proc/sys/vm/swappiness]
    parse:
      patterns: ['^(?P<swappiness>\\d+)$']
      metrics:
        swappiness: {{unit: value}}
"""
    store = tmp_path / "fleet.sqlite"
    result = fleet("run", str(suite_file(tmp_path, body)), "-i", str(lab.inventory_path),
                   "--limit", "lab1", "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert path.read_text().strip() == original
    attempts = [s.attempt for s in only_run(store).attempts]
    assert len(attempts) == 2
    for a in attempts:
        assert [m.value for m in workload_measurements(a)] == [float(wanted)]  # what it saw
        (k,) = a.knobs
        assert (k.name, k.before, k.requested, k.after, k.restored) == \
            ("swappiness", original, wanted, wanted, True)


# ---- (e) Ctrl-C, then --resume --------------------------------------------------------------


def test_ctrl_c_interrupts_cleanly_and_resume_completes(lab: LabState, tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    suite = suite_file(tmp_path, sleepers(marker, "0.5, 0.6", 3))
    store = tmp_path / "fleet.sqlite"
    proc = spawn("run", str(suite), "-i", str(lab.inventory_path), "--store", str(store))
    wait_for_attempts(store, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    detail = only_run(store)
    assert detail.info.status == "interrupted"
    assert f"resume with: fleet run --resume {detail.info.run_id}" in stderr
    interrupted = [a.attempt for a in detail.attempts if a.attempt.status == "interrupted"]
    # a job that a host took as Ctrl-C came is stopped before its workload started
    assert interrupted and all("Ctrl-C" in (a.error or "") or "before the workload started"
                               in (a.error or "") for a in interrupted)
    assert any("Ctrl-C" in (a.error or "") for a in interrupted)
    assert no_leftovers(marker, within_seconds=1.0)
    resumed = fleet("run", "--resume", detail.info.run_id, "--store", str(store))
    assert resumed.returncode == 0, resumed.stderr
    after = only_run(store)
    assert after.info.status == "completed" and set(completed_once(after).values()) == {1}
    again = [a.attempt for a in after.attempts if a.attempt.job in {i.job for i in interrupted}
             and a.attempt.status == "completed"]
    assert all(a.attempt_no >= 2 for a in again)


# ---- (f) timeout, (g) runs / show, bad input ------------------------------------------------


def test_timeout_kills_the_tree_and_runs_show_report_it(lab: LabState, tmp_path: Path) -> None:
    marker = f"m-{uuid.uuid4().hex}"
    body = f"""\
workloads:
  - name: stuck
    type: command
    timeout_seconds: 0.5
    argv: [sh, -c, 'sleep 30 & sleep 30; wait', {marker}]
  - name: quick
    type: sleep
    params: {{seconds: 0.05}}
"""
    store = tmp_path / "fleet.sqlite"
    result = fleet("run", str(suite_file(tmp_path, body)), "-i", str(lab.inventory_path),
                   "--limit", "lab3", "--store", str(store), "--json")
    assert result.returncode == 1, result.stderr
    assert no_leftovers(marker, within_seconds=1.0)
    import json

    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["run_started", "attempt_finished",
                                            "attempt_finished", "run_finished"]
    statuses = sorted(e["status"] for e in events if e["event"] == "attempt_finished")
    assert statuses == ["completed", "timeout"]
    assert events[-1]["status"] == "incomplete" and events[-1]["jobs"]["completed"] == 1
    run_id = events[0]["run_id"]

    listed = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    assert [(r["run_id"], r["status"], r["jobs_done"], r["jobs_total"]) for r in listed] == \
        [(run_id, "incomplete", 1, 2)]
    table = fleet("runs", "--store", str(store))
    assert table.returncode == 0 and run_id in table.stdout and "1/2" in table.stdout
    shown = fleet("show", run_id, "--store", str(store))
    assert shown.returncode == 0 and "timed out after 0.5s" in shown.stdout
    data = json.loads(fleet("show", run_id, "--json", "--store", str(store)).stdout)
    (timeout,) = [a for a in data["attempts"] if a["status"] == "timeout"]
    assert timeout["host"] == "lab3" and timeout["exit_code"] is None
    assert data["run"]["failures"][0]["status"] == "timeout"
    missing = fleet("show", "r-nope", "--store", str(store))
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    assert "no run 'r-nope'" in missing.stderr


def test_bad_input_records_nothing(lab: LabState, tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    bad_suite = suite_file(tmp_path, "workloads: []\n")
    result = fleet("run", str(bad_suite), "-i", str(lab.inventory_path), "--store", str(store))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    good = tmp_path / "good.yml"
    good.write_text("schema_version: 1\nname: g\nworkloads:\n  - {name: n, type: sleep, "
                    "params: {seconds: 0.01}}\n")
    dead = tmp_path / "dead.yml"
    dead.write_text("all:\n  hosts:\n    ghost:\n      ansible_host: 127.0.0.1\n"
                    "      ansible_port: 1\n")
    result = fleet("run", str(good), "-i", str(dead), "--store", str(store))
    assert result.returncode == 2, result.stderr
    assert "no host is reachable" in result.stderr.splitlines()[-1]
    resumed = fleet("run", "--resume", "r-nope", "--store", str(store))
    assert resumed.returncode == 2 and "no fleet store at" in resumed.stderr  # none was made
    listed = fleet("runs", "--json", "--store", str(store))
    assert listed.returncode == 2 and listed.stdout.count("run_id") == 0
    assert not store.exists()
