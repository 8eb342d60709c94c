"""Frozen records of runs and attempts, as the executor produces them and the store keeps them.

Stdlib only. A job is one planned execution: (case, repetition, host) for spread ``every``, or
(case, repetition) on any eligible host for spread ``any`` (then ``host`` is None).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from fleet.model import Measurement

RunStatus = Literal["running", "completed", "incomplete", "interrupted", "failed", "crashed"]
# "crashed" is never stored: it is how a "running" run whose controller is gone is shown
AttemptStatus = Literal["completed", "failed", "timeout", "error", "interrupted"]
ANY_HOST = "*"


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
