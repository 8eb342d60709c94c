"""`fleet report RUN --compare RUN_B` refuses hosts that are not like for like (the fields
listed, one line, exit 2) unless --allow-mismatch names them; then the report lists them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_report import facts, make_store

from fleet.cli import main
from fleet.compare.fingerprint import MismatchError
from fleet.hosts import Host
from fleet.model import CpuInfo
from fleet.report.build import ReportRequest, build_report
from fleet.runs import Attempt, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, load_run, record_attempt, run_suite_text


def second_run(path: Path, *, changed: bool) -> None:
    """r2: r1's cases again; with ``changed``, h1 has a new kernel and microcode."""
    with Store.open(path) as store:
        if changed:
            newer = dataclasses.replace(facts("h1"), kernel_release="6.9.0-test",
                                        cpu=CpuInfo("GenuineIntel", "Test CPU <b>&", "0x2", 4),
                                        fingerprint="fp-h1-new")
            store.save_snapshots([Host("h1", "127.0.0.1", "ssh", 22, None)], [newer])
        detail = load_run(store, "r1")
        _, plan = run_suite_text(store, "r1")
        create_run(store, RunInfo("r2", "eps", "eps.yml", "sha", 8, ("inv.yml",), None,
                                  "0.1.0", 300.0, 400.0, "completed"), suite_text="",
                   plan_json=plan, cases=detail.cases, jobs=detail.jobs, skipped=[])
        for a in detail.attempts:
            m = a.attempt.measurements[0]
            fp = "fp-h1-new" if changed and a.attempt.host == "h1" else a.attempt.fingerprint
            record_attempt(store, Attempt(
                "r2", a.attempt.job, a.attempt.host, 1, "completed", 310.0, 311.0, 0, None,
                "", "", False, False, fp, measurements=(m,)))


def test_mismatched_hosts_are_refused_unless_allowed(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.sqlite"
    make_store(path).close()
    second_run(path, changed=True)
    out = tmp_path / "rep"
    with pytest.raises(MismatchError) as caught:
        build_report(ReportRequest(path, "r1", out, compare_run_id="r2"))
    assert "h1 kernel_release: 6.8.0-test vs 6.9.0-test" in str(caught.value)
    assert "--allow-mismatch kernel_release microcode" in caught.value.line()
    assert not out.exists()
    argv = ["report", "r1", "--compare", "r2", "-o", str(out), "--store", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "microcode" in err and "Traceback" not in err
    assert main([*argv, "--allow-mismatch", "kernel_release"]) == 2
    assert "microcode" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--allow-mismatch", "cpu"]) == 2  # not a fingerprint field
    assert "not a fingerprint field" in capsys.readouterr().err
    assert main([*argv, "--allow-mismatch", "kernel_release", "microcode", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mismatches_allowed"] == ["h1 kernel_release: 6.8.0-test vs 6.9.0-test",
                                          "h1 microcode: 0x1 vs 0x2"]
    page = (out / "index.html").read_text()
    assert "Allowed fingerprint differences" in page and "h1 microcode: 0x1 vs 0x2" in page


def test_like_for_like_runs_need_no_allowance(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    make_store(path).close()
    second_run(path, changed=False)
    result = build_report(ReportRequest(path, "r1", tmp_path / "rep", compare_run_id="r2"))
    assert result.data.mismatches == ()
    assert "Allowed fingerprint differences" not in result.index_path.read_text()
