"""`fleet gate` and `fleet compare` on the real netns lab: a planted regression fails the gate
(exit 1, named in JUnit and Markdown), the same suite passes (0), a dead host or too few
repetitions cannot be decided (2); bad input is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_run import kill_host

from fleet.lab import LabState, lab_down, lab_up

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def fleet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, check=False)


def napper(tmp_path: Path, name: str, sleep: str, *, reps: int = 5,
           axis: str | None = None, told: bool = False) -> Path:
    """A suite whose one metric is the measured time of ``sleep`` (lower is better). ``told``:
    the command does not sleep but says it took ``sleep`` seconds (+0..6 %, by its pid), so
    load on the machine cannot move its values."""
    seconds = "{s}" if axis else sleep
    axes = f"    axes:\n      s: [{axis}]\n" if axis else ""
    timed = ('a=$(date +%s%N); sleep ' + seconds + '; b=$(date +%s%N); echo "ns=$((b-a))"')
    if told:
        ns = int(float(sleep) * 1e9)
        timed = f'echo "ns=$(({ns} + $$ % 7 * {ns // 100}))"'
    path = tmp_path / name
    path.write_text(f"""\
schema_version: 1
name: gate-itest
repetitions: {reps}
sampling: {{enabled: false}}
compare:
  min_repetitions: 5
  threshold: 10%
  metrics:
    elapsed: {{direction: lower_is_better}}
workloads:
  - name: nap
    type: command
    timeout_seconds: 10
    argv: [sh, -c, '{timed}']
{axes}    parse:
      patterns: ['ns=(?P<elapsed>\\d+)']
      metrics:
        elapsed: {{unit: ns}}
""")
    return path


def gate(suite: Path, lab: LabState, store: Path, tmp_path: Path,
         *baseline: str) -> tuple[subprocess.CompletedProcess[str], ET.Element, str]:
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    junit.unlink(missing_ok=True)
    md.unlink(missing_ok=True)
    result = fleet("gate", str(suite), "-i", str(lab.inventory_path), "--limit", "all",
                   "--store", str(store), *baseline, "--junit", str(junit),
                   "--markdown", str(md))
    return result, ET.parse(junit).getroot(), md.read_text()


def test_planted_regression_fails_the_gate_and_the_same_suite_passes(
        lab: LabState, tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    base = fleet("run", str(napper(tmp_path, "base.yml", "0.2")), "-i",
                 str(lab.inventory_path), "--store", str(store), "--tag", "branch=main")
    assert base.returncode == 0, base.stderr
    listed = json.loads(fleet("runs", "--tag", "branch=main", "--json", "--store",
                              str(store)).stdout)["runs"]
    assert len(listed) == 1 and listed[0]["tags"]["branch"] == "main"
    assert {"date", "fleet_version"} <= set(listed[0]["tags"])

    slow, junit, md = gate(napper(tmp_path, "slow.yml", "0.24"), lab, store, tmp_path,
                           "--baseline", "main")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    failures = [c for c in junit.iter("testcase") if c.find("failure") is not None]
    assert {c.get("name") for c in failures} == {f"elapsed [-] on lab{i}" for i in (1, 2, 3)}
    text = failures[0].find("failure").text or ""  # type: ignore[union-attr]
    assert "baseline median" in text and "candidate median" in text and "worse" in text
    assert "FAIL: 3 significant regression(s)" in md and "elapsed nap [-] on lab1" in md
    # one earlier run is too short a history: the suite's threshold, no change-point check
    assert "10.0% (suite; history 1 of 5 runs)" in md and "threshold 10.0% (suite;" in text

    same, junit, md = gate(napper(tmp_path, "base.yml", "0.2"), lab, store, tmp_path,
                           "--baseline", "main")
    assert same.returncode == 0, same.stdout + same.stderr
    assert junit.get("failures") == "0" and junit.get("tests") == "3"
    assert "PASS: 3 gated comparison(s)" in md

    for args, words in ((("r-nope", "main"), "no run with that id"),
                        (("main", "--axis", "s=1,2"), "axis 's' is not in run")):
        bad = fleet("compare", *args, "--store", str(store))
        assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert words in bad.stderr
    itself = fleet("compare", "main", listed[0]["run_id"], "--store", str(store))
    assert itself.returncode == 2 and len(itself.stderr.splitlines()) == 1, itself.stderr
    assert f"main and {listed[0]['run_id']} both name run" in itself.stderr
    runs = json.loads(fleet("runs", "--json", "--store", str(store)).stdout)["runs"]
    newest = max(runs, key=lambda r: r["created_at_unix_seconds"])["run_id"]  # the passing gate
    shown = fleet("compare", "main", newest, "--store", str(store), "--markdown")
    assert shown.returncode == 0 and "no significant change" in shown.stdout, shown.stdout


def test_interleaved_baseline_and_too_few_repetitions(lab: LabState, tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    slow, junit, md = gate(napper(tmp_path, "ab.yml", "", axis="0.2, 0.24"), lab, store,
                           tmp_path, "--baseline-axis", "s=0.2")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert len([c for c in junit.iter("failure")]) == 3 and "s=0.24 vs s=0.2" in md
    (run_id,) = [r["run_id"] for r in json.loads(
        fleet("runs", "--json", "--store", str(store)).stdout)["runs"]]
    bad = fleet("compare", run_id, "--axis", "s=0.2,0.3", "--store", str(store))
    assert bad.returncode == 2 and "no value '0.3'" in bad.stderr
    data = json.loads(fleet("compare", run_id, "--axis", "s=0.2,0.24", "--json", "--store",
                            str(store)).stdout)
    assert {r["verdict"] for r in data["rows"]} == {"worse"}
    assert len(data["cross_machine"][0]["hosts"]) == 3

    few, junit, md = gate(napper(tmp_path, "few.yml", "", axis="0.2, 0.24", reps=2), lab,
                          store, tmp_path, "--baseline-axis", "s=0.2")
    assert few.returncode == 2, few.stdout + few.stderr
    assert len(list(junit.iter("error"))) == 3 and "at least 5 per side" in md
    assert "UNDECIDED" in md


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[LabState]:
    state_dir = tmp_path / "lab"
    state = lab_up(2, state_dir)
    try:
        yield state
    finally:
        lab_down(state_dir)


def test_a_dead_host_makes_the_gate_undecided(two_hosts: LabState, tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    suite = napper(tmp_path, "base.yml", "0.2", reps=5)
    base = fleet("run", str(suite), "-i", str(two_hosts.inventory_path), "--store", str(store),
                 "--tag", "branch=main")
    assert base.returncode == 0, base.stderr
    kill_host(two_hosts, "lab2")
    down, junit, md = gate(suite, two_hosts, store, tmp_path, "--baseline", "main")
    assert down.returncode == 2, down.stdout + down.stderr
    assert "UNDECIDED" in md and "lab2" in md
    errors = [c for c in junit.iter("testcase") if c.find("error") is not None]
    assert any("lab2" in (c.get("name") or "") for c in errors)
    assert junit.get("failures") == "0"


def test_history_of_earlier_runs_names_the_step(lab: LabState, tmp_path: Path) -> None:
    """Five earlier runs of the suite are a history: the gate's run (2.5 times as slow) is a
    change point against them, found by history beside the two-sample test. The values are
    told, not timed: with five earlier runs one run slowed by load on a 2-core CI machine is
    enough to make the newest point no change point (p >= 0.001), a flake, not the check."""
    store = tmp_path / "fleet.sqlite"
    suite = napper(tmp_path, "base.yml", "0.1", told=True)
    for _ in range(5):
        base = fleet("run", str(suite), "-i", str(lab.inventory_path), "--limit", "lab1",
                     "--store", str(store), "--tag", "branch=main")
        assert base.returncode == 0, base.stderr
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    slow = fleet("gate", str(napper(tmp_path, "slow.yml", "0.25", told=True)), "-i",
                 str(lab.inventory_path), "--limit", "lab1", "--store", str(store),
                 "--baseline", "main", "--junit", str(junit), "--markdown", str(md), "--json")
    assert slow.returncode == 1, slow.stdout + slow.stderr
    (row,) = json.loads(slow.stdout)["rows"]
    assert row["history"]["points"] == 5 and row["history"]["verdict"] == "worse"
    assert row["threshold_source"] in ("suite", row["history"]["threshold_source"])
    text = md.read_text()
    assert "found by history" in text and "change point at the newest run" in text
    (failure,) = ET.parse(junit).getroot().iter("failure")
    assert "found by history" in (failure.get("message") or "")
    off = fleet("gate", str(napper(tmp_path, "slow.yml", "0.25", told=True)), "-i",
                str(lab.inventory_path), "--limit", "lab1", "--store", str(store),
                "--baseline", "main", "--history", "0", "--json")
    assert off.returncode == 1 and json.loads(off.stdout)["rows"][0]["history"] is None
