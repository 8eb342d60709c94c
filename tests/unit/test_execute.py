"""Pure decisions of the executor: retries, hand-over, knob values, variants, verdicts, events."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleet.agent.protocol import RunOutcome
from fleet.codec import plan_from_data
from fleet.config.suite import parse_suite
from fleet.execute.events import (
    AttemptFinished,
    AttemptStarted,
    HostQuarantined,
    RunStarted,
    event_json,
    final_status,
    summarize,
)
from fleet.execute.plan import host_queues, next_attempt_numbers, plan_jobs
from fleet.execute.policy import (
    RetryPolicy,
    current_value,
    hand_over,
    judge,
    new_run_id,
)
from fleet.facts.build import build_facts
from fleet.facts.tree import tree_from_root
from fleet.model import Case, Facts, KvmInfo, KvmModule, Measurement
from fleet.plan.matrix import expand
from fleet.plan.provisioning import provisioning
from fleet.runs import Attempt, JobKey, RunDetail, RunInfo, StoredAttempt
from fleet.workloads.base import Workload

# Captured on this project's Debian 12 build machine (cat of the sysfs/procfs files).
THP_ENABLED = "always [madvise] never\n"
THP_DEFRAG = "always defer defer+madvise [madvise] never\n"
SWAPPINESS = "60\n"

SUITE = """\
schema_version: 1
name: unit
workloads:
  - name: js
    type: command
    argv: [sh, -c, "echo {x}"]
    timeout_seconds: 5
    axes: {x: [1, 2]}
    parse:
      format: json
      metrics:
        ops: {unit: ops, path: result.ops}
"""


def outcome(**changes: object) -> RunOutcome:
    base = RunOutcome(exit_code=0, signal=None, timed_out=False, cancelled=False,
                      spawn_error=None, started_monotonic_seconds=1.0,
                      ended_monotonic_seconds=1.5, started_wall_seconds=100.0,
                      ended_wall_seconds=100.5, duration_seconds=0.5, stdout="", stderr="",
                      stdout_truncated=False, stdout_total_bytes=0, stderr_truncated=False,
                      stderr_total_bytes=0, child_max_rss_bytes=None,
                      child_user_cpu_seconds=None, child_system_cpu_seconds=None)
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def json_case() -> tuple[Case, Workload]:
    suite = parse_suite(SUITE, source="unit.yml")
    return expand(suite)[0], suite.entries[0].workload


@pytest.fixture(scope="module")
def ne_facts(node_exporter_sys_root: Path) -> Facts:
    return build_facts("ne", tree_from_root(node_exporter_sys_root), collected_at_unix_seconds=0)


# ---- retries --------------------------------------------------------------------------------


def test_backoff_doubles_then_quarantines_at_the_third_failure() -> None:
    policy = RetryPolicy()
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, None, None]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_consecutive_failures=10, base_delay_seconds=1, max_delay_seconds=5)
    assert [policy.delay_after(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


# ---- hand-over of a quarantined host's jobs ---------------------------------------------


def test_hand_over_moves_any_jobs_longest_first_to_least_loaded_eligible_host() -> None:
    jobs = [JobKey("short", 1, None), JobKey("long", 1, None), JobKey("long", 2, None),
            JobKey("pinned", 1, "h1")]
    handover = hand_over(
        jobs, eligible={"short": frozenset({"h1", "h2", "h3"}),
                        "long": frozenset({"h1", "h2", "h3"}), "pinned": frozenset({"h1"})},
        active=frozenset({"h2", "h3"}), loads_seconds={"h2": 5.0, "h3": 0.0},
        estimates_seconds={"short": 1.0, "long": 4.0, "pinned": 1.0}, reason="ssh down")
    # long/1 -> h3 (0 -> 4), long/2 -> h3 (4 < 5 -> 8), short -> h2 (5 < 8)
    assert handover.moves == ((JobKey("short", 1, None), "h2"), (JobKey("long", 1, None), "h3"),
                              (JobKey("long", 2, None), "h3"))
    assert handover.orphans == ((JobKey("pinned", 1, "h1"), "host quarantined: ssh down"),)


def test_hand_over_fails_any_jobs_no_active_host_may_run() -> None:
    handover = hand_over([JobKey("kvm", 1, None)], eligible={"kvm": frozenset({"h1", "h2"})},
                         active=frozenset({"h3"}), loads_seconds={}, estimates_seconds={},
                         reason="gone")
    assert handover.moves == ()
    assert handover.orphans == ((JobKey("kvm", 1, None),
                                 "host quarantined: gone; no other eligible host is left"),)


# ---- knob values and variants -------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [(THP_ENABLED, "madvise"), (THP_DEFRAG, "madvise"),
                                             (SWAPPINESS, "60"), ("0", "0")])
def test_current_value_reads_the_bracketed_choice_or_the_number(text: str, value: str) -> None:
    assert current_value(text) == value


def test_variant_runs_when_the_host_already_is_it(ne_facts: Facts) -> None:
    facts = replace(ne_facts, kernel_release="6.1.0-27-amd64",
                    kvm=KvmInfo(True, (KvmModule("kvm", (("tdp_mmu", "Y"),)),)))
    assert provisioning((), facts).failure() is None
    same = provisioning((("kernel", "6.1.0-27-amd64"), ("kvm.tdp_mmu", "Y")), facts)
    assert same.failure() is None and same.steps == ()
    reason = provisioning((("kernel", "6.12.0"), ("kvm.tdp_mmu", "Y")), facts).failure()
    assert reason == ("variant kernel=6.12.0 needs a reboot (another kernel); "
                      "run `fleet provision` first")
    assert provisioning((("kvm.tdp_mmu", "N"),), None).failure() == \
        "variant kvm.tdp_mmu=N cannot be planned (the host has no facts)"


# ---- verdicts -------------------------------------------------------------------------------


def test_clean_exit_is_parsed_and_missing_metrics_stay_missing(
        json_case: tuple[Case, Workload]) -> None:
    case, workload = json_case
    good = judge(case, workload, outcome(stdout='{"result": {"ops": 12.5}}'))
    assert (good.status, good.error) == ("completed", None)
    assert good.measurements == (Measurement("ops", 12.5, "ops"),)
    empty = judge(case, workload, outcome(stdout='{"result": {}}'))
    assert empty.status == "completed"
    assert empty.measurements == (Measurement("ops", None, "ops"),)


def test_failures_say_why(json_case: tuple[Case, Workload]) -> None:
    case, workload = json_case
    cases = {
        "nonzero": (outcome(exit_code=3, stderr="warming up\nno such device\n"),
                    "failed", "exit 3: no such device"),
        "parse": (outcome(stdout="oops"), "failed",
                  "cannot parse the output: stdout: output is not JSON"),
        "timeout": (outcome(exit_code=None, signal=9, timed_out=True), "timeout",
                    "timed out after 5s; the workload's process group was killed"),
        "signal": (outcome(exit_code=None, signal=11), "failed", "killed by signal 11 (SIGSEGV)"),
        "spawn": (outcome(exit_code=None, spawn_error="[Errno 2] No such file"), "failed",
                  "cannot start the workload: [Errno 2] No such file"),
        "cancel": (outcome(exit_code=None, signal=15, cancelled=True), "interrupted",
                   "interrupted: the run was cancelled (Ctrl-C, SIGTERM or SIGHUP)"),
    }
    for name, (given, status, reason) in cases.items():
        verdict = judge(case, workload, given)
        assert verdict.status == status, name
        assert verdict.error is not None and verdict.error.startswith(reason), name
        assert verdict.measurements == (), name


def test_run_id_names_the_utc_time() -> None:
    assert new_run_id(1795596343.7, "3f2a") == "r20261125-084543-3f2a"


# ---- plan glue, summary and events --------------------------------------------------------


PLAN = plan_from_data(
    {"hosts": [{"host": "h1", "groups": [{"variant": {}, "queue": [["a", 1], ["b", 1]]}]},
               {"host": "h2", "groups": [{"variant": {}, "queue": [["a", 1], ["b", 2]]}]}]})


def spread_cases(json_case: tuple[Case, Workload]) -> dict[str, Case]:
    case = json_case[0]
    return {"a": replace(case, case_id="a", spread="every"),
            "b": replace(case, case_id="b", spread="any")}


def test_jobs_and_queues_come_from_the_recorded_plan(json_case: tuple[Case, Workload]) -> None:
    cases = spread_cases(json_case)
    jobs = plan_jobs(PLAN, cases)
    assert [j.text for j in jobs] == ["a/1/h1", "b/1/*", "a/1/h2", "b/2/*"]
    pending = [JobKey("b", 1, None), JobKey("a", 1, "h2")]
    assert host_queues(PLAN, cases, pending) == {"h1": (JobKey("b", 1, None),),
                                                 "h2": (JobKey("a", 1, "h2"),)}


def attempt(job: JobKey, host: str, n: int, status: str, error: str | None = None) -> Attempt:
    return Attempt("r1", job, host, n, status, 10.0, 11.5, 0, None, "", "", False,  # type: ignore[arg-type]
                   False, "fp", error=error)


def test_summary_and_next_attempt_numbers_from_the_store_view() -> None:
    jobs = (JobKey("a", 1, "h1"), JobKey("a", 1, "h2"), JobKey("b", 1, None), JobKey("b", 2, None))
    attempts = (attempt(jobs[0], "h1", 1, "error", "transport: reset"),
                attempt(jobs[0], "h1", 2, "completed"),
                attempt(jobs[1], "h2", 1, "failed", "host quarantined: down"),
                attempt(jobs[2], "h1", 1, "interrupted", "interrupted: Ctrl-C"))
    info = RunInfo("r1", "unit", "u.yml", "sha", 1, (), None, "0", 0.0, None, "interrupted")
    detail = RunDetail(info, jobs, tuple(StoredAttempt(i, a) for i, a in enumerate(attempts)),
                       (("c", "needs >= 2 NUMA nodes"),), ())
    summary = summarize(detail)
    assert (summary.jobs_completed, summary.jobs_failed, summary.jobs_not_run) == (1, 1, 2)
    assert [(t.host, dict(t.attempts)) for t in summary.hosts] == [
        ("h1", {"completed": 1, "error": 1, "interrupted": 1}), ("h2", {"failed": 1})]
    assert [(f.job, f.reason) for f in summary.failures] == [("a/1/h2", "host quarantined: down")]
    assert next_attempt_numbers(detail) == {jobs[0]: 3, jobs[1]: 2, jobs[2]: 2}
    assert final_status(4, 4, interrupted=False) == "completed"
    assert final_status(1, 4, interrupted=False) == "incomplete"
    assert final_status(0, 4, interrupted=False) == "failed"
    assert final_status(4, 4, interrupted=True) == "interrupted"


def test_json_events_carry_what_ci_logs_need() -> None:
    job = JobKey("a", 2, None)
    finished = AttemptFinished(replace(attempt(job, "h1", 1, "completed"), measurements=(
        Measurement("ops", None, "ops"),)), 1.25)
    data = event_json(finished)
    assert data is not None
    assert (data["event"], data["job"], data["host"], data["status"]) == \
        ("attempt_finished", "a/2/*", "h1", "completed")
    assert data["measurements"] == [{"metric": "ops", "value": None, "unit": "ops", "labels": {}}]
    assert data["duration_seconds"] == 1.5 and data["workload_seconds"] == 1.25
    started = event_json(RunStarted("r1", "unit", 7, (("h1", 2),), 4, 3, True, "/s.sqlite"))
    assert started is not None and started["hosts"] == {"h1": 2} and started["resumed"] is True
    quarantined = event_json(HostQuarantined("r1", "h2", "down", (("b/1/*", "h1"),), ("a/1/h2",)))
    assert quarantined == {"event": "host_quarantined", "run_id": "r1", "host": "h2",
                           "reason": "down", "moved": [{"job": "b/1/*", "to": "h1"}],
                           "failed": ["a/1/h2"]}
    assert event_json(AttemptStarted("r1", job, "h1", 1)) is None
