"""Sampling wired through the suite, the store (migration 3) and `fleet run`/`fleet show`.

`fleet run` here uses the embedded local inventory (this machine, no SSH) and a real agent.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.config.sampling import SamplingConfig, sample_spec
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError
from fleet.model import Measurement
from fleet.runs import Attempt, JobKey, RunInfo, SeriesPoint
from fleet.store import MIGRATIONS, SCHEMA_VERSION, Store
from fleet.store.runs import create_run, load_run, load_samples, record_attempt, sample_counts

REPO = Path(__file__).resolve().parents[2]
HEAD = "schema_version: 1\nname: t\n"
ENTRY = "workloads:\n  - name: s\n    type: sleep\n    params: {seconds: 0.01}\n"


# ---- the suite option -----------------------------------------------------------------------


def test_sampling_defaults_suite_level_and_entry_override() -> None:
    (entry,) = parse_suite(HEAD + ENTRY, source="t.yml").entries
    assert entry.sampling == SamplingConfig(enabled=True, interval_seconds=1.0)
    text = HEAD + "sampling: {interval_seconds: 0.2}\n" + ENTRY + \
        "  - name: quiet\n    type: sleep\n    params: {seconds: 1}\n" \
        "    sampling: {enabled: false}\n"
    first, second = parse_suite(text, source="t.yml").entries
    assert first.sampling == SamplingConfig(True, 0.2)
    assert second.sampling == SamplingConfig(False, 0.2)  # the interval is inherited
    spec = sample_spec(first.sampling)
    assert spec is not None and spec.interval_seconds == 0.2
    assert sample_spec(second.sampling) is None and sample_spec(None) is None


@pytest.mark.parametrize(("text", "line", "message"), [
    (HEAD + "sampling: {interval: 1}\n" + ENTRY, 3, "unknown key 'interval' in sampling"),
    (HEAD + "sampling: {interval_seconds: 0.05}\n" + ENTRY, 3,
     "sampling.interval_seconds must be >= 0.1, not 0.05"),
    (HEAD + ENTRY + "    sampling:\n      enabled: 'yes'\n", 8,
     "sampling.enabled must be true or false"),
    (HEAD + ENTRY + "    sampling: [1]\n", 7, "sampling must be a mapping"),
])
def test_bad_sampling_is_one_line_at_file_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(text, source="t.yml")
    assert message in str(info.value) and info.value.where == f"t.yml:{line}"
    assert info.value.hint


# ---- the store ------------------------------------------------------------------------------


def run_info() -> RunInfo:
    return RunInfo("r1", "t", "t.yml", "abc", 7, (), None, "0.1.0", 1.0, None, "running")


def attempt(**changes: object) -> Attempt:
    base = dict(run_id="r1", job=JobKey("c1", 1, "h"), host="h", attempt_no=1,
                status="completed", started_at_unix_seconds=1.0, ended_at_unix_seconds=2.0,
                exit_code=0, signal=None, stdout="", stderr="", stdout_truncated=False,
                stderr_truncated=False, fingerprint=None)
    return Attempt(**{**base, **changes})  # type: ignore[arg-type]


def test_migrations_upgrade_a_version_2_store(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("INSERT INTO runs VALUES ('r1', 't', 't.yml', 'abc', '', 7, '[]', NULL,"
                 " '0.1.0', 1.0, NULL, 'completed', '{}')")
    conn.execute("INSERT INTO attempts (run_id, job_key, host, attempt_no, status,"
                 " started_at_unix_seconds, ended_at_unix_seconds, stdout, stderr,"
                 " stdout_truncated, stderr_truncated, knobs_json) VALUES"
                 " ('r1', 'c1/1/h', 'h', 1, 'completed', 1.0, 2.0, '', '', 0, 0, '[]')")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 3  # and every later migration
        (old,) = load_run(store, "r1").attempts
        assert old.attempt.notes is None and sample_counts(store, "r1") == {}


def test_samples_and_notes_round_trip(tmp_path: Path) -> None:
    points = (SeriesPoint("tlb_shootdowns", (("node", "0"),), 10.0, 1.7e9, 0.0),
              SeriesPoint("tlb_shootdowns", (("node", "0"),), 10.2, 1.7e9 + 0.2, 42.0),
              SeriesPoint("kvm_remote_tlb_flush", (), 10.0, 1.7e9, None))
    measured = Measurement("tlb_shootdowns_per_second", 210.0, "per_second",
                           (("node", "0"), ("source", "sampler")))
    with Store.open(tmp_path / "s.sqlite") as store:
        create_run(store, run_info(), suite_text="", plan_json="{}", cases=[],
                   jobs=[JobKey("c1", 1, "h")], skipped=[])
        attempt_id = record_attempt(store, attempt(samples=points, notes="kernel log warn: x",
                                                   measurements=(measured,)))
        (stored,) = load_run(store, "r1").attempts
        assert stored.attempt.notes == "kernel log warn: x"
        assert stored.attempt.measurements == (measured,)
        assert stored.attempt.samples == ()  # left out of load_run
        assert load_samples(store, attempt_id) == (points[2], points[0], points[1])
        assert sample_counts(store, "r1") == {attempt_id: {"kvm_remote_tlb_flush": 1,
                                                           "tlb_shootdowns": 2}}


# ---- fleet run and fleet show ---------------------------------------------------------------


SUITE = """\
schema_version: 1
name: sampled
sampling: {interval_seconds: 0.1}
workloads:
  - name: hold
    type: command
    timeout_seconds: 20
    argv: [python3, -c, 'import time; x = bytearray(32 << 20); time.sleep({seconds})', '{membind}']
    params: {seconds: 0.6, membind: '0'}
  - name: quiet
    type: sleep
    params: {seconds: 0.05}
    sampling: {enabled: false}
"""


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO, check=False)


def test_fleet_run_stores_series_and_show_reports_them(tmp_path: Path) -> None:
    suite, store = tmp_path / "suite.yml", tmp_path / "f.sqlite"
    suite.write_text(SUITE)
    ran = fleet("run", str(suite), "--store", str(store), "--json", "--tag", "branch=main")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout.splitlines()[0])["run_id"]
    shown = fleet("show", run_id, "--store", str(store), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["run"]["tags"]["branch"] == "main" and "date" in data["run"]["tags"]
    cases = {c["case_id"]: c["workload"] for c in data["cases"]}
    attempts = {cases[a["case_id"]]: a for a in data["attempts"]}
    hold, quiet = attempts["hold"], attempts["quiet"]
    metrics = {(m["metric"], m["labels"].get("node")): m for m in hold["measurements"]}
    assert all(m["labels"]["source"] == "sampler" for m in metrics.values())
    assert metrics[("sampler_samples", None)]["value"] >= 6
    assert metrics[("sampler_interval_seconds", None)]["value"] == pytest.approx(0.1, abs=0.01)
    assert metrics[("sampler_max_gap_seconds", None)]["value"] < 0.25
    assert metrics[("placement_ratio", None)]["unit"] == "ratio"
    assert 0 <= metrics[("placement_ratio", None)]["value"] <= 1
    assert metrics[("tlb_shootdowns_per_second", None)]["value"] is not None
    assert metrics[("sampler_agent_cpu_ratio", None)]["value"] < 0.2
    samples = hold["samples"]
    assert samples["points"] == sum(samples["series"].values()) > 0
    assert {"tlb_shootdowns", "workload_resident_bytes", "agent_cpu_seconds"} <= \
        set(samples["series"])
    assert quiet["measurements"] == [] and quiet["samples"] == {"points": 0, "series": {}}
    with Store.open(store) as s:
        resident = [p for p in load_samples(s, hold["attempt_id"])
                    if p.series == "workload_resident_bytes"]
    assert max(p.value or 0 for p in resident) >= 32 << 20  # the child's 32 MiB
    text = fleet("show", run_id, "--store", str(store))
    assert "sampled while running" in text.stdout and "tlb_shootdowns_per_second" in text.stdout
    assert "tags: branch=main, date=" in text.stdout
