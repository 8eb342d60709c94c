"""Frozen records of runs and attempts, as the executor produces them and the store keeps them:
the records module, so that what reads runs (compare, report, export) needs no store import.

Run info, attempts and their parts; the lighter views the store's readers return
(``CompletedAttempt`` for comparisons, ``ResultRow``/``RunStatic``/``Increment``/``StoredSeries``
for the exporter); a run's summary (``summarize``); the stored plan (``StoredPlan``, versioned,
encoded and decoded by fleet.codec).

Stdlib only. A job is one planned execution: (case, repetition, host) for spread ``every``, or
(case, repetition) on any eligible host for spread ``any`` (then ``host`` is None).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

from fleet.model import Measurement, ParamValue
from fleet.variant import VariantIdentity

RunStatus = Literal["running", "completed", "incomplete", "interrupted", "failed", "crashed"]
# "crashed" is never stored: it is how a "running" run whose controller is gone is shown
AttemptStatus = Literal["completed", "failed", "timeout", "error", "interrupted"]
ANY_HOST = "*"
ATTEMPT_STATUSES = ("completed", "failed", "timeout", "error", "interrupted")
PLAN_FORMAT_VERSION = 1  # stored plans without a format_version have this shape too
Settings = tuple[tuple[str, ParamValue], ...]  # (name, value) in the recorded order


@dataclass(frozen=True)
class JobKey:
    case_id: str
    repetition: int
    host: str | None  # None: any eligible host (spread "any")

    @property
    def text(self) -> str:
        return f"{self.case_id}/{self.repetition}/{self.host or ANY_HOST}"

    @classmethod
    def parse(cls, text: str) -> JobKey:
        case_id, repetition, host = text.split("/", 2)
        return cls(case_id, int(repetition), None if host == ANY_HOST else host)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    suite: str
    suite_path: str
    suite_sha256: str
    seed: int
    inventory: tuple[str, ...]
    limit_pattern: str | None
    fleet_version: str
    created_at_unix_seconds: float
    finished_at_unix_seconds: float | None
    status: RunStatus


@dataclass(frozen=True)
class KnobState:
    """A runtime knob around one attempt: what it was, what was set, what was read back."""

    name: str
    path: str
    before: str | None
    requested: str
    after: str | None  # read back after setting; must equal requested
    restored: bool


@dataclass(frozen=True)
class SeriesPoint:
    """One sampled value of one series while an attempt ran (host clocks; None: unknown)."""

    series: str
    labels: tuple[tuple[str, str], ...]
    monotonic_seconds: float
    wall_unix_seconds: float
    value: float | None


@dataclass(frozen=True)
class Attempt:
    """One try of one job on one host. Failures are data: ``error`` says why."""

    run_id: str
    job: JobKey
    host: str
    attempt_no: int
    status: AttemptStatus
    started_at_unix_seconds: float
    ended_at_unix_seconds: float
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    fingerprint: str | None
    knobs: tuple[KnobState, ...] = ()
    error: str | None = None
    measurements: tuple[Measurement, ...] = ()
    notes: str | None = None  # e.g. the sampler's: kernel log problems, unreadable files
    samples: tuple[SeriesPoint, ...] = ()  # written with the attempt; load_run leaves them out
    variant: VariantIdentity | None = None  # the host's verified kernel variant, if provisioned

    @property
    def duration_seconds(self) -> float:
        return self.ended_at_unix_seconds - self.started_at_unix_seconds


@dataclass(frozen=True)
class StoredAttempt:
    attempt_id: int
    attempt: Attempt


@dataclass(frozen=True)
class Claim:
    """A job a controller started and has recorded no attempt for yet (fleet.store.owner)."""

    job: JobKey
    host: str
    attempt_no: int
    started_at_unix_seconds: float


@dataclass(frozen=True)
class RunDetail:
    info: RunInfo
    jobs: tuple[JobKey, ...]
    attempts: tuple[StoredAttempt, ...]
    skipped: tuple[tuple[str, str], ...]  # (case_id, reason)
    cases: tuple[tuple[str, str, str], ...]  # (case_id, workload, params as JSON)
    unreachable: tuple[tuple[str, str], ...] = ()  # (host, reason): hosts the run could not use
    in_flight: tuple[Claim, ...] = ()  # claimed jobs without an attempt (running, or crashed)

    def completed_jobs(self) -> frozenset[JobKey]:
        return frozenset(a.attempt.job for a in self.attempts if a.attempt.status == "completed")

    def pending_jobs(self) -> tuple[JobKey, ...]:
        done = self.completed_jobs()
        return tuple(j for j in self.jobs if j not in done)

    def one_completed_per_job(self) -> RunDetail:
        """Without the older completed attempts of a job that has several (two controllers
        on one run before run ownership existed): results count once per job."""
        latest: dict[JobKey, int] = {}
        for s in self.attempts:
            if s.attempt.status == "completed":
                latest[s.attempt.job] = max(latest.get(s.attempt.job, 0), s.attempt_id)
        kept = tuple(s for s in self.attempts if s.attempt.status != "completed"
                     or latest[s.attempt.job] == s.attempt_id)
        return self if len(kept) == len(self.attempts) else replace(self, attempts=kept)


# ---- what the store's readers return (fleet.store.runs, fleet.store.export_reads) -------------


class CompletedAttempt(NamedTuple):
    """A completed attempt as comparisons read it (fleet.compare): light, no output."""

    attempt_id: int
    case_id: str
    repetition: int
    host: str
    fingerprint: str | None
    knobs: tuple[KnobState, ...]
    results: tuple[tuple[str, float | None, str, tuple[tuple[str, str], ...]], ...]
    # (metric, value, unit, sorted labels); value None: missing
    variant: VariantIdentity | None = None  # the host's verified kernel variant, if any


@dataclass(frozen=True)
class ResultRow:
    """One stored result of a completed attempt."""

    case_id: str
    repetition: int
    host: str
    metric: str
    value: float | None
    unit: str
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunStatic:
    """What a run fixes when it is created: its jobs, skips and cases."""

    jobs: tuple[JobKey, ...]
    skipped: tuple[tuple[str, str], ...]  # (case_id, reason)
    cases: tuple[tuple[str, str, str], ...]  # (case_id, workload, params as JSON)


@dataclass(frozen=True)
class Increment:
    """Attempts (without outputs) and results of completed attempts stored after a watermark."""

    attempts: tuple[tuple[str, StoredAttempt], ...]  # (run_id, attempt)
    results: tuple[tuple[str, ResultRow], ...]  # (run_id, result)
    last_attempt_id: int  # the new watermark


@dataclass(frozen=True)
class StoredSeries:
    """One stored sample series of one attempt: (wall unix seconds, value) points in the
    order they were stored (time order); value None: the sample had none."""

    case_id: str
    repetition: int
    host: str
    series: str
    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[float, float | None], ...]


# ---- a run's summary (the store's view) ------------------------------------------------------


@dataclass(frozen=True)
class HostTally:
    host: str
    attempts: Mapping[str, int]  # status -> count


@dataclass(frozen=True)
class JobFailure:
    job: str
    host: str
    status: str
    reason: str


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    suite: str
    status: RunStatus
    jobs_total: int
    jobs_completed: int
    jobs_failed: int  # tried, never completed (interruptions aside)
    jobs_not_run: int  # never tried, or only interrupted
    hosts: tuple[HostTally, ...]
    skipped: tuple[tuple[str, str], ...]  # (case_id, reason)
    failures: tuple[JobFailure, ...]  # last attempt of each job that never completed
    unreachable: tuple[tuple[str, str], ...] = ()  # (host, reason): hosts the run could not use

    @property
    def all_completed(self) -> bool:
        return self.jobs_completed == self.jobs_total


def summarize(detail: RunDetail) -> RunSummary:
    """Per-host attempt counts, job totals, skip and failure reasons: the store's view."""
    done = detail.completed_jobs()
    last: dict[JobKey, Attempt] = {}
    tallies: dict[str, Counter[str]] = {}
    for stored in detail.attempts:
        a = stored.attempt
        last[a.job] = a
        tallies.setdefault(a.host, Counter())[a.status] += 1
    failures = tuple(JobFailure(j.text, last[j].host, last[j].status, last[j].error or "")
                     for j in detail.jobs
                     if j not in done and j in last and last[j].status != "interrupted")
    jobs_done = sum(1 for j in detail.jobs if j in done)
    return RunSummary(
        run_id=detail.info.run_id, suite=detail.info.suite, status=detail.info.status,
        jobs_total=len(detail.jobs), jobs_completed=jobs_done, jobs_failed=len(failures),
        jobs_not_run=len(detail.jobs) - jobs_done - len(failures),
        hosts=tuple(HostTally(h, {s: c[s] for s in ATTEMPT_STATUSES if c[s]})
                    for h, c in sorted(tallies.items())),
        skipped=detail.skipped, failures=failures, unreachable=detail.unreachable)


# ---- the stored plan (fleet.codec encodes and decodes it) -------------------------------------


@dataclass(frozen=True)
class PlannedCase:
    """One case as a run's plan recorded it. Defaults: the plan did not record it."""

    workload: str = ""
    kind: str = ""
    params: Settings = ()
    knobs: Settings = ()
    variant: Settings = ()
    repetitions: int | None = None
    timeout_seconds: float | None = None
    estimate_seconds: float | None = None
    spread: str | None = None

    def settings(self) -> dict[str, ParamValue]:
        """Every setting of the case: its params, then knobs, then variant (a later section
        wins a shared name)."""
        return {**dict(self.params), **dict(self.knobs), **dict(self.variant)}


@dataclass(frozen=True)
class PlannedGroup:
    variant: Settings
    queue: tuple[tuple[str, int], ...]  # (case_id, repetition) in the recorded order


@dataclass(frozen=True)
class PlannedHost:
    host: str
    runs: int | None
    estimate_seconds: float | None
    groups: tuple[PlannedGroup, ...]


@dataclass(frozen=True)
class StoredPlan:
    """What a run planned, as recorded with it: the executor runs its queues (a resume the
    same queues), and report, history and compare read its cases' settings."""

    suite: str | None = None
    seed: int | None = None
    totals: tuple[tuple[str, float], ...] = ()  # (name, number) as recorded
    cases: Mapping[str, PlannedCase] = field(default_factory=dict)  # by case id
    hosts: tuple[PlannedHost, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (case_id, reason)
    hosts_without_facts: tuple[str, ...] = ()
    format_version: int = PLAN_FORMAT_VERSION

    def queues(self) -> dict[str, list[tuple[str, int]]]:
        """host -> [(case_id, repetition), ...] in the recorded order."""
        return {h.host: [entry for g in h.groups for entry in g.queue] for h in self.hosts}
