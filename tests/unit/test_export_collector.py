"""The store as Prometheus metrics: values, counts, the cache, and the text format (promtool)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.errors import StoreError
from fleet.execute.events import summarize
from fleet.export.prometheus import Selection, StoreCollector, exposition_text, scrape_once
from fleet.export.store_reader import open_read_only
from fleet.model import Measurement
from fleet.runs import Attempt, AttemptStatus, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, load_run, record_attempt, set_run_status

RUN = "r20261125-091855-e7b6"
# the quickstart's 4 cases and what dd reported on this machine (a real `fleet run`)
CASES = {"f0e18657ca4611bb": ("64K", "256M"), "8540497bcf3b069e": ("64K", "1G"),
         "bcb300fbcc5adf9c": ("4M", "256M"), "739291c1a470c02a": ("4M", "1G")}
DD = {"f0e18657ca4611bb": (4096.0, 268435456.0, 0.00617623),
      "8540497bcf3b069e": (16384.0, 1073741824.0, 0.0251747),
      "bcb300fbcc5adf9c": (64.0, 268435456.0, 0.00744564),
      "739291c1a470c02a": (256.0, 1073741824.0, 0.0216094)}
SAMPLER = (("source", "sampler"),)
Sample = tuple[str, tuple[tuple[str, str], ...], float]


def _attempt(job: JobKey, host: str, status: AttemptStatus, measurements: tuple[Measurement, ...],
             *, attempt_no: int = 1, error: str | None = None) -> Attempt:
    return Attempt(run_id=RUN, job=job, host=host, attempt_no=attempt_no, status=status,
                   started_at_unix_seconds=1764062335.0, ended_at_unix_seconds=1764062335.5,
                   exit_code=0 if status == "completed" else 1, signal=None, stdout="",
                   stderr="64+0 records in\n", stdout_truncated=False, stderr_truncated=False,
                   fingerprint="3f2a", error=error, measurements=measurements)


def _dd(case_id: str, scale: float = 1.0) -> tuple[Measurement, ...]:
    records, copied, seconds = DD[case_id]
    return (Measurement("records_in", records, "records"),
            Measurement("copied_bytes", copied, "bytes"),
            Measurement("elapsed_seconds", seconds * scale, "seconds"))


def write_run(path: Path) -> None:
    """The quickstart on two hosts, with sampler results, a missing value, a duplicate, a
    failed and a retried attempt, a skipped case and a quarantined host."""
    info = RunInfo(RUN, "quickstart", "benchmarks/quickstart.yml", "a" * 64, 7,
                   ("inventories/local.yml",), None, "0.1.0", 1764062335.0, None, "running")
    jobs = [JobKey(c, r, h) for c in CASES for r in (1, 2) for h in ("localhost", "lab1")]
    with Store.open(path) as store:
        create_run(store, info, suite_text="", plan_json="{}", jobs=jobs,
                   cases=[(c, "dd_zero_copy", json.dumps({"block_size": b, "volume": v}))
                          for c, (b, v) in CASES.items()],
                   skipped=[("0123456789abcdef", "no host has 1 GiB pages")])
        for job in jobs:
            assert job.host is not None
            if job.host == "lab1" and job.repetition == 2:
                record_attempt(store, _attempt(job, "lab1", "failed", (), error=(
                    "host quarantined: 3 transport failures in a row")))
                continue
            extra: tuple[Measurement, ...] = ()
            if job.host == "localhost":
                extra = (Measurement("tlb_shootdowns_per_second", 1234.5, "per_second", SAMPLER),
                         Measurement("tlb_shootdowns_per_second", 1000.25, "per_second",
                                     (("node", "0"), *SAMPLER)),
                         Measurement("tlb_shootdowns_per_second", 234.25, "per_second",
                                     (("node", "1"), *SAMPLER)),
                         Measurement("page_table_locality", 0.875, "ratio", SAMPLER),
                         Measurement("placement_ratio", None, "ratio", SAMPLER))
            if job.host == "lab1":  # a timeout first (its results are not exported), then ok
                record_attempt(store, _attempt(job, "lab1", "timeout", _dd(job.case_id, 9.0)))
            record_attempt(store, _attempt(job, job.host, "completed", (*_dd(job.case_id),
                                           *extra, Measurement("records_in", 1.0, "records")),
                                           attempt_no=2 if job.host == "lab1" else 1))
        set_run_status(store, RUN, "incomplete", 1764062340.0)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.sqlite"
    write_run(path)
    return path


def samples(text: str) -> set[Sample]:
    return {(s.name, tuple(sorted(s.labels.items())), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name != "fleet_exporter_scrape_duration_seconds"}


def exported(path: Path, selection: Selection | None = None) -> tuple[str, StoreCollector]:
    with open_read_only(path) as store:
        collector = StoreCollector(store, selection or Selection())
        return collector.exposition().decode(), collector


def test_results_equal_the_store_exactly_per_case_host_and_repetition(store_path: Path) -> None:
    text, _ = exported(store_path)
    got = {(dict(labels)["case_id"], dict(labels)["host"], dict(labels)["repetition"],
            dict(labels)["metric"]): value
           for name, labels, value in samples(text) if name == "fleet_workload_result"}
    with Store.open(store_path) as store:
        detail = load_run(store, RUN)
    want: dict[tuple[str, str, str, str], float | None] = {}
    for stored in detail.attempts:
        a = stored.attempt
        if a.status == "completed":
            for m in a.measurements:
                if not m.labels:  # the first of the duplicated records_in is kept
                    want.setdefault((a.job.case_id, a.host, str(a.job.repetition), m.metric),
                                    m.value)
    assert got == want
    assert len(got) == 4 * 3 * 3  # 4 cases x 3 metrics x (2 reps localhost + 1 rep lab1)
    assert got[("8540497bcf3b069e", "localhost", "1", "copied_bytes")] == 1073741824.0
    assert got[("f0e18657ca4611bb", "lab1", "1", "elapsed_seconds")] == 0.00617623


def test_sampler_metrics_have_their_own_families_with_node_labels(store_path: Path) -> None:
    found = {(n, dict(lb).get("node"), v) for n, lb, v in samples(exported(store_path)[0])
             if dict(lb).get("case_id") == "739291c1a470c02a"
             and dict(lb).get("repetition") == "1" and n.startswith("fleet_")
             and n != "fleet_workload_result"}
    assert found == {("fleet_tlb_shootdowns_per_second", None, 1234.5),
                     ("fleet_tlb_shootdowns_per_second", "0", 1000.25),
                     ("fleet_tlb_shootdowns_per_second", "1", 234.25),
                     ("fleet_page_table_locality_ratio", None, 0.875)}


def test_counts_equal_the_run_summary(store_path: Path) -> None:
    with Store.open(store_path) as store:
        summary = summarize(load_run(store, RUN))
        version = store.schema_version()
    got = {(n, dict(lb).get("host"), dict(lb).get("status")): v
           for n, lb, v in samples(exported(store_path)[0]) if dict(lb).get("run_id", RUN) == RUN
           and n not in ("fleet_workload_result", "fleet_case_info")
           and not n.startswith(("fleet_tlb", "fleet_page_table"))}
    attempts: dict[tuple[str, str | None, str | None], float] = {
        ("fleet_attempts_total", t.host, s): float(c)
        for t in summary.hosts for s, c in t.attempts.items()}
    want: dict[tuple[str, str | None, str | None], float] = {
        ("fleet_run_info", None, "incomplete"): 1.0, ("fleet_jobs", None, None): 16.0,
        ("fleet_jobs_completed_total", None, None): float(summary.jobs_completed),
        ("fleet_jobs_failed_total", None, None): float(summary.jobs_failed),
        ("fleet_jobs_not_run", None, None): float(summary.jobs_not_run),
        ("fleet_cases_skipped_total", None, None): 1.0,
        ("fleet_host_quarantines_total", None, None): 1.0,
        ("fleet_results_missing", None, None): 8.0,  # placement_ratio: None, never 0
        **attempts,
        **{("fleet_runs", None, s): float(s == "incomplete") for s in
           ("running", "completed", "incomplete", "interrupted", "failed")},
        ("fleet_store_schema_version", None, None): float(version),
    }
    assert got == want
    assert (summary.jobs_completed, summary.jobs_failed) == (12, 4)
    assert attempts == {("fleet_attempts_total", "lab1", "completed"): 4.0,
                        ("fleet_attempts_total", "lab1", "failed"): 4.0,
                        ("fleet_attempts_total", "lab1", "timeout"): 4.0,
                        ("fleet_attempts_total", "localhost", "completed"): 8.0}


def test_fast_exposition_and_prometheus_client_give_the_same_samples(store_path: Path) -> None:
    text, _ = exported(store_path, Selection(axis_labels=("block_size",)))
    with open_read_only(store_path) as store:
        reference = scrape_once(StoreCollector(store, Selection(axis_labels=("block_size",))))
        again = exposition_text(store, Selection(axis_labels=("block_size",))).encode()
    assert _strip(again) == _strip(reference)  # `fleet export text` is that rendering
    assert samples(text) == samples(reference.decode())
    # results, sampler (8 attempts x 4), case infos, run counts, attempts by status, runs, schema
    assert len(samples(text)) == 36 + 8 * 4 + 4 + 8 + 4 + 5 + 1
    assert 'axis_block_size="4M"' in text


def test_promtool_accepts_both_renderings(store_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/bootstrap (Debian package prometheus)"
    text, _ = exported(store_path)
    with open_read_only(store_path) as store:
        reference = exposition_text(store, Selection())
    for body in (text, reference):
        done = subprocess.run([promtool, "check", "metrics"], input=body, text=True,
                              capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_unchanged_store_is_not_read_again_and_new_attempts_are_read_alone(
        store_path: Path) -> None:
    with open_read_only(store_path) as store:
        collector = StoreCollector(store, Selection())
        first = collector.exposition()
        second = collector.exposition()
        assert collector.reads == 1
        assert _strip(first) == _strip(second)
        with Store.open(store_path) as writer:  # another connection, as `fleet run`
            job = JobKey("739291c1a470c02a", 2, "lab1")
            record_attempt(writer, _attempt(job, "lab1", "completed", _dd(job.case_id, 2.0),
                                            attempt_no=2))
        third = collector.exposition().decode()
        assert collector.reads == 2
    assert ('fleet_workload_result{case_id="739291c1a470c02a",host="lab1",metric='
            '"elapsed_seconds",repetition="2",run_id="r20261125-091855-e7b6",suite="quickstart",'
            'unit="seconds",workload="dd_zero_copy"} 0.0432188') in third
    assert f'fleet_jobs_completed_total{{run_id="{RUN}",suite="quickstart"}} 13.0' in third
    fresh, _ = exported(store_path)
    assert samples(fresh) == samples(third)


def _strip(body: bytes) -> bytes:
    return body[:body.index(b"# HELP fleet_exporter_scrape_duration_seconds")]


def test_selection_last_and_unknown_runs(store_path: Path, tmp_path: Path) -> None:
    with open_read_only(store_path) as store:
        with pytest.raises(StoreError, match="no run 'r-nope' in the store") as caught:
            StoreCollector(store, Selection(run_ids=("r-nope",))).refresh()
        assert "\n" not in str(caught.value) and RUN in str(caught.value)
        empty = StoreCollector(store, Selection(last=None, run_ids=())).exposition().decode()
    assert "fleet_case_info" in empty


def test_missing_or_foreign_store_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no fleet store at") as caught:
        open_read_only(tmp_path / "nope.sqlite")
    assert "\n" not in str(caught.value)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not sqlite at all\n" * 100)
    with pytest.raises(StoreError, match="not a readable fleet store"):
        open_read_only(junk)
    assert not (tmp_path / "nope.sqlite").exists()  # reading never creates a store
    empty = tmp_path / "empty.sqlite"
    Store.open(empty).close()
    with open_read_only(empty) as store:
        got = samples(StoreCollector(store, Selection()).exposition().decode())
    assert ("fleet_runs", (("status", "completed"),), 0.0) in got
    assert {n for n, _, _ in got} == {"fleet_runs", "fleet_store_schema_version"}
