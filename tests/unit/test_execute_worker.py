"""The executor's threads, board and knob handling, with scripted host sessions.

A scripted session is the honest unit here: these tests are about what the executor decides
when a connection fails, a knob refuses a value or Ctrl-C arrives, not about the agent (its
own tests and the lab integration tests cover it).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from fleet.agent.protocol import (
    FileContent,
    KnobRecovery,
    KnobWrite,
    LockWait,
    RunOutcome,
    SampleSpec,
    WriteOutcome,
)
from fleet.config.suite import parse_suite
from fleet.errors import HostBusyError, TransportError
from fleet.execute.board import JobBoard
from fleet.execute.events import HostNotice, HostQuarantined, RunEvent
from fleet.execute.executor import ExecuteOptions, Execution, execute
from fleet.execute.knobs import apply_knobs, restore_knobs
from fleet.execute.policy import RetryPolicy
from fleet.execute.worker import CaseRuntime
from fleet.plan.matrix import expand
from fleet.runs import Attempt, JobKey

THP = "/sys/kernel/mm/transparent_hugepage/enabled"
SWAPPINESS = "/proc/sys/vm/swappiness"
HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
FAST = ExecuteOptions(policy=RetryPolicy(base_delay_seconds=0.001), steal=False)


def outcome(duration: float = 0.01, *, cancelled: bool = False) -> RunOutcome:
    return RunOutcome(0 if not cancelled else None, 15 if cancelled else None, False, cancelled,
                      None, 0.0, duration, 0.0, duration, duration, "", False, 0, "", False, 0,
                      None, None, None)


class Host:
    """One host's files (knobs as the kernel shows them) and a script of failures."""

    def __init__(self, name: str, *, connect_failures: int = 0, run_failures: int = 0,
                 stubborn: Sequence[str] = ()) -> None:
        self.name = name
        self.files = {THP: "always [madvise] never\n", SWAPPINESS: "60\n", HUGEPAGES: "0\n"}
        self.connect_failures = connect_failures
        self.run_failures = run_failures
        self.stubborn = set(stubborn)  # writes accepted, value unchanged (like nr_hugepages)
        self.runs: list[tuple[str, ...]] = []
        self.sessions = 0
        self.block: threading.Event | None = None  # runs wait for close() when set
        self.hold: threading.Event | None = None  # runs wait for this when set
        self.ran = threading.Event()
        self.lock = threading.Lock()
        self.locks: list[tuple[str, str, float]] = []  # (controller, run id, wait) per lock
        self.lock_script: list[Callable[[], tuple[KnobRecovery, ...]]] = []  # next locks do
        self.knob_writes: list[tuple[str, KnobWrite | None]] = []

    def open(self) -> Session:
        with self.lock:
            if self.connect_failures:
                self.connect_failures -= 1
                raise TransportError("connection refused", where=self.name, hint="check sshd")
            self.sessions += 1
        return Session(self)


class Session:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.closed = threading.Event()

    def run(self, argv: Sequence[str], *, timeout_seconds: float, stdout_cap_bytes: int,
            stderr_cap_bytes: int) -> RunOutcome:
        self._alive()
        self.host.runs.append(tuple(argv))
        self.host.ran.set()
        if self.host.hold is not None:
            assert self.host.hold.wait(10)
        if self.host.block is not None:
            self.host.block.set()
            self.closed.wait(10)
            return outcome(cancelled=True)
        if self.host.run_failures:
            self.host.run_failures -= 1
            raise TransportError("the agent ended (exit None)", where=self.host.name,
                                 hint="check the host")
        return outcome()

    def run_sampled(self, argv: Sequence[str], *, timeout_seconds: float,
                    stdout_cap_bytes: int, stderr_cap_bytes: int, sample: SampleSpec,
                    on_sample: Callable[[Mapping[str, Any]], None]) -> RunOutcome:
        """These hosts take no samples: a sampled case runs like any other."""
        return self.run(argv, timeout_seconds=timeout_seconds, stdout_cap_bytes=stdout_cap_bytes,
                        stderr_cap_bytes=stderr_cap_bytes)

    def read(self, paths: Sequence[str]) -> tuple[FileContent, ...]:
        self._alive()
        return tuple(FileContent(p, self.host.files[p], False, None, None) for p in paths)

    def lock(self, *, controller: str, controller_pid: int, run_id: str, wait_seconds: float,
             on_wait: Callable[[LockWait], None] | None = None) -> tuple[KnobRecovery, ...]:
        self._alive()
        self.host.locks.append((controller, run_id, wait_seconds))
        return self.host.lock_script.pop(0)() if self.host.lock_script else ()

    def write(self, path: str, value: str, *, knob: KnobWrite | None = None) -> WriteOutcome:
        self._alive()
        self.host.knob_writes.append((path, knob))
        if path == THP:
            self.host.files[path] = " ".join(f"[{c}]" if c == value else c
                                             for c in ("always", "madvise", "never")) + "\n"
        elif path not in self.host.stubborn:
            self.host.files[path] = value + "\n"
        return WriteOutcome(path, None, None)

    def close(self) -> None:
        self.closed.set()

    def _alive(self) -> None:
        if self.closed.is_set():
            raise TransportError("the agent session is closed", where=self.host.name,
                                 hint="start a new one")


SUITE = """\
schema_version: 1
name: unit
workloads:
  - name: nap
    type: sleep
    spread: any
    repetitions: 3
    knobs: {swappiness: 10, thp: never}
    params: {seconds: 0.01}
  - name: pinned
    type: sleep
    spread: every
    params: {seconds: 0.02}
"""


def setup(hosts: dict[str, Host], queues: dict[str, list[JobKey]], suite: str = SUITE
          ) -> tuple[Execution, dict[str, Callable[[], Session]]]:
    parsed = parse_suite(suite, source="unit.yml")
    cases = {c.workload: c for c in expand(parsed)}
    workloads = {e.name: e.workload for e in parsed.entries}
    runtimes = {c.case_id: CaseRuntime(c, workloads[c.workload]) for c in cases.values()}
    ids = {name: c.case_id for name, c in cases.items()}
    real = {h: tuple(replace(j, case_id=ids[j.case_id]) for j in q) for h, q in queues.items()}
    execution = Execution("r1", runtimes, real, {}, {cid: frozenset(hosts) for cid in runtimes})
    return execution, {name: host.open for name, host in hosts.items()}


def run(execution: Execution, openers: dict[str, Callable[[], Session]],
        options: ExecuteOptions = FAST,
        on_attempt: Callable[[Attempt], None] = lambda a: None) -> tuple[list[Attempt],
                                                                          list[RunEvent]]:
    attempts: list[Attempt] = []
    events: list[RunEvent] = []

    def record(a: Attempt) -> None:
        attempts.append(a)
        on_attempt(a)

    result = execute(execution, openers, record=record, on_event=events.append, options=options)
    assert result.attempts_recorded == len(attempts)
    return attempts, events


def any_jobs(n: int) -> list[JobKey]:
    return [JobKey("nap", r, None) for r in range(1, n + 1)]


# ---- knobs ----------------------------------------------------------------------------------


def test_knobs_are_set_verified_and_restored() -> None:
    host = Host("h1")
    session = host.open()
    applied = apply_knobs(session, (("swappiness", 10), ("thp", "never")))
    assert applied.error is None
    assert host.files == {THP: "always madvise [never]\n", SWAPPINESS: "10\n", HUGEPAGES: "0\n"}
    assert [(s.before, s.requested, s.after, s.restored) for s in applied.states] == [
        ("60", "10", "10", False), ("madvise", "never", "never", False)]
    restored = restore_knobs(session, applied.states)
    assert all(s.restored for s in restored)
    assert host.files[THP] == "always [madvise] never\n" and host.files[SWAPPINESS] == "60\n"


def test_a_knob_that_does_not_take_its_value_is_an_error_and_the_rest_is_restored() -> None:
    host = Host("h1", stubborn=[HUGEPAGES])
    applied = apply_knobs(host.open(), (("nr_hugepages_2m", 512), ("swappiness", 10)))
    assert applied.error == (f"knob nr_hugepages_2m: wrote '512' to {HUGEPAGES}, read back '0'")
    assert host.files[SWAPPINESS] == "60\n"
    assert all(s.restored for s in applied.states)


def test_knob_mismatch_fails_the_attempt_without_running_the_case() -> None:
    host = Host("h1", stubborn=[SWAPPINESS])
    execution, openers = setup({"h1": host}, {"h1": any_jobs(1)})
    attempts, _ = run(execution, openers)
    assert [(a.status, a.error) for a in attempts] == [
        ("error", f"knob swappiness: wrote '10' to {SWAPPINESS}, read back '60'")]
    assert host.runs == []
    assert host.files[THP] == "always [madvise] never\n"


# ---- retries and quarantine -----------------------------------------------------------------


def test_connect_failures_back_off_and_then_the_job_runs() -> None:
    host = Host("h1", connect_failures=2)
    execution, openers = setup({"h1": host}, {"h1": any_jobs(2)})
    attempts, events = run(execution, openers)
    assert [(a.job.repetition, a.attempt_no, a.status) for a in attempts] == [
        (1, 1, "completed"), (2, 1, "completed")]
    assert host.sessions == 1 and not any(isinstance(e, HostQuarantined) for e in events)


def test_a_connection_lost_mid_case_is_an_error_attempt_then_a_retry_that_restores_knobs(
        ) -> None:
    host = Host("h1", run_failures=1)
    execution, openers = setup({"h1": host}, {"h1": any_jobs(1)})
    attempts, _ = run(execution, openers)
    assert [(a.attempt_no, a.status) for a in attempts] == [(1, "error"), (2, "completed")]
    assert attempts[0].error is not None and attempts[0].error.startswith("transport: h1: ")
    assert [k.restored for k in attempts[0].knobs] == [False, False]
    assert [k.restored for k in attempts[1].knobs] == [True, True]
    assert host.sessions == 2
    assert host.files[SWAPPINESS] == "60\n" and host.files[THP] == "always [madvise] never\n"


def test_a_host_failing_three_times_is_quarantined_and_its_jobs_go_elsewhere_or_fail() -> None:
    hosts = {"h1": Host("h1"), "h2": Host("h2", connect_failures=99)}
    execution, openers = setup(hosts, {"h1": [*any_jobs(1), JobKey("pinned", 1, "h1")],
                                       "h2": [JobKey("nap", 2, None), JobKey("nap", 3, None),
                                              JobKey("pinned", 1, "h2")]})
    attempts, events = run(execution, openers)
    by_job = {(a.job.repetition, a.job.host, a.host, a.status) for a in attempts}
    assert {(2, None, "h1", "completed"), (3, None, "h1", "completed"),
            (1, "h2", "h2", "failed")} <= by_job
    assert len(attempts) == 5
    (q,) = [e for e in events if isinstance(e, HostQuarantined)]
    assert q.host == "h2" and q.reason.startswith("3 transport failures in a row, last: h2: ")
    failed = [a for a in attempts if a.status == "failed"]
    assert failed[0].error == f"host quarantined: {q.reason}"
    assert hosts["h2"].sessions == 0


def test_an_idle_host_steals_queued_any_jobs() -> None:
    hosts = {"h1": Host("h1"), "h2": Host("h2")}
    hosts["h1"].hold = hosts["h2"].ran  # h1's first case lasts until h2 ran one
    execution, openers = setup(hosts, {"h1": any_jobs(3), "h2": []})
    attempts, _ = run(execution, openers, ExecuteOptions(steal=True))
    assert sorted(a.job.repetition for a in attempts) == [1, 2, 3]
    stolen = [a.job.repetition for a in attempts if a.host == "h2"]
    assert stolen and 3 in stolen  # from the tail of h1's queue


def test_board_hands_out_in_order_and_numbers_attempts() -> None:
    jobs = any_jobs(2)
    board = JobBoard({"h1": jobs}, eligible={}, estimates_seconds={},
                     next_attempt_no={jobs[1]: 4}, steal=False)
    assert board.take("h1") == jobs[0]
    board.finish("h1")
    assert board.take("h1") == jobs[1]
    assert (board.attempt_no(jobs[1]), board.attempt_no(jobs[1])) == (4, 5)
    board.finish("h1")
    assert board.take("h1") is None


# ---- Ctrl-C -------------------------------------------------------------------------------


def test_ctrl_c_cancels_the_running_case_restores_knobs_and_stops() -> None:
    host = Host("h1")
    host.block = threading.Event()
    execution, openers = setup({"h1": host}, {"h1": any_jobs(3)})

    def interrupt() -> None:
        assert host.block is not None and host.block.wait(10)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    attempts, _ = run(execution, openers)
    assert [(a.job.repetition, a.status) for a in attempts] == [(1, "interrupted")]
    assert attempts[0].error == ("interrupted: the run was cancelled "
                                 "(Ctrl-C, SIGTERM or SIGHUP)")
    assert [k.restored for k in attempts[0].knobs] == [True, True]
    assert host.files[SWAPPINESS] == "60\n" and host.sessions == 2  # restored on a fresh one


# ---- the host lock (issue 12) ---------------------------------------------------------------


def test_each_new_session_takes_the_host_lock_before_its_first_case() -> None:
    host = Host("h1", run_failures=1)
    execution, openers = setup({"h1": host}, {"h1": any_jobs(2)})
    opts = replace(FAST, policy=RetryPolicy(base_delay_seconds=0.001))
    attempts, _ = run(execution, openers, opts)
    assert [a.status for a in attempts] == ["error", "completed", "completed"]
    assert [(run_id, wait) for _, run_id, wait in host.locks] == [("r1", 600.0), ("r1", 600.0)]
    assert {knob for _, knob in host.knob_writes} == {"set", "restore"}


def test_a_busy_host_is_quarantined_at_once_and_its_jobs_move() -> None:
    busy, free = Host("h1"), Host("h2")

    def held() -> tuple[KnobRecovery, ...]:
        raise HostBusyError("host busy: held by x@y (controller pid 1, run r0, agent pid 2) "
                            "since 2024-01-01 00:00:00 UTC; gave up after 600 s", where="h1")

    busy.lock_script = [held]
    execution, openers = setup({"h1": busy, "h2": free}, {"h1": any_jobs(2), "h2": []})
    attempts, events = run(execution, openers)
    assert busy.runs == [] and len(busy.locks) == 1  # no retry: waiting again would not help
    assert [a.host for a in attempts] == ["h2", "h2"]
    (quarantined,) = [e for e in events if isinstance(e, HostQuarantined)]
    assert quarantined.reason.startswith("h1: host busy: held by x@y")


def test_knobs_a_dead_agent_left_are_reported_once_the_lock_is_taken() -> None:
    host = Host("h1")
    host.lock_script = [lambda: (KnobRecovery(SWAPPINESS, "60", None),)]
    execution, openers = setup({"h1": host}, {"h1": any_jobs(1)})
    _, events = run(execution, openers)
    (notice,) = [e for e in events if isinstance(e, HostNotice)]
    assert (notice.host, notice.kind) == ("h1", "knobs_recovered")
    assert notice.message == ("knobs a dead agent left changed were written back: "
                              "/proc/sys/vm/swappiness = '60'")


# ---- KVM module parameters: a writable one is a knob, a read-only one is not ------------------

EPS = "/sys/module/kvm/parameters/eager_page_split"
MODULE_SUITE = """\
schema_version: 1
name: unit
workloads:
  - name: split
    type: sleep
    params: {seconds: 0.01}
    variant: {kvm.eager_page_split: N}
  - name: pmu
    type: sleep
    params: {seconds: 0.01}
    variant: {kvm.enable_pmu: Y}
"""


def test_a_writable_module_parameter_is_set_verified_restored_and_a_read_only_one_fails(
) -> None:
    from pathlib import Path

    from fleet.facts.build import build_facts
    from fleet.facts.tree import parse_dump

    dump = Path(__file__).parents[1] / "data" / "probes" / "vm-guest-debian-6.1.dump"
    facts = build_facts("h1", parse_dump(dump.read_text(encoding="utf-8")),
                        collected_at_unix_seconds=0.0)  # eps Y (0644), enable_pmu N (0444)
    host = Host("h1")
    host.files[EPS] = "Y\n"
    execution, openers = setup({"h1": host}, {"h1": [JobKey("split", 1, None),
                                                     JobKey("pmu", 1, None)]}, MODULE_SUITE)
    execution = replace(execution, facts={"h1": facts})
    attempts, _ = run(execution, openers)
    split_id = execution.queues["h1"][0].case_id
    (split,), (pmu,) = ([a for a in attempts if (a.job.case_id == split_id) == is_split]
                        for is_split in (True, False))
    assert (split.status, split.error) == ("completed", None)
    (knob,) = split.knobs
    assert (knob.name, knob.path, knob.before, knob.requested, knob.after, knob.restored) == \
        ("kvm.eager_page_split", EPS, "Y", "N", "N", True)
    assert host.files[EPS] == "Y\n"  # restored
    assert (EPS, "set") in host.knob_writes and (EPS, "restore") in host.knob_writes
    assert pmu.status == "failed" and (pmu.error or "").startswith(
        "variant kvm.enable_pmu=Y needs a module reload (read-only parameter); run `fleet "
        "provision` first, or declare a kernel variant with cmdline: kvm.enable_pmu=Y")
    assert len(host.runs) == 1  # only the knob-reachable case ran
