"""What a run reports while it goes (events) and when it ends (a summary from the store alone).

Pure: events are frozen records; ``event_json`` turns the four public ones into JSON-able
dicts (one line each under `fleet run --json`); ``summarize`` (fleet.runs, re-exported here)
reads only a RunDetail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleet.execute.variants import Switched
from fleet.runs import (  # the summary records live with the run records
    ATTEMPT_STATUSES,
    Attempt,
    HostTally,
    JobFailure,
    JobKey,
    RunStatus,
    RunSummary,
    summarize,
)

__all__ = ["ATTEMPT_STATUSES", "AttemptFinished", "AttemptStarted", "HostNotice",
           "HostProvisioned", "HostQuarantined", "HostTally", "JobFailure", "RunEvent",
           "RunFinished", "RunStarted", "RunSummary", "attempt_json", "event_json",
           "final_status", "summarize", "summary_json"]


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    suite: str
    seed: int
    host_jobs: tuple[tuple[str, int], ...]  # (host, jobs queued for it at the start)
    jobs_total: int
    jobs_pending: int
    resumed: bool
    store_path: str


@dataclass(frozen=True)
class AttemptStarted:
    """A host began a job (progress only; not in the JSON stream)."""

    run_id: str
    job: JobKey
    host: str
    attempt_no: int


@dataclass(frozen=True)
class AttemptFinished:
    """An attempt ended and is in the store. ``workload_seconds``: the child's own wall time
    as the agent measured it (None when no child ran)."""

    attempt: Attempt
    workload_seconds: float | None


@dataclass(frozen=True)
class HostQuarantined:
    run_id: str
    host: str
    reason: str
    moved: tuple[tuple[str, str], ...]  # (job, new host)
    failed: tuple[str, ...]  # jobs failed because no host is left for them


@dataclass(frozen=True)
class HostNotice:
    """Something the user should see about a host (a warning line; not in the JSON stream):
    ``lock_wait``: its lock is held by another controller, we wait (repeated every ~5 s);
    ``knobs_recovered``: knobs a dead agent left changed were written back before any case."""

    run_id: str
    host: str
    kind: str  # "lock_wait" | "knobs_recovered" | "provisioning"
    message: str


@dataclass(frozen=True)
class HostProvisioned:
    """A host was brought onto a kernel variant between variant groups and verified; its
    facts were gathered again (the store keeps them as the host's newest snapshot)."""

    run_id: str
    host: str
    switched: Switched


@dataclass(frozen=True)
class RunFinished:
    summary: RunSummary
    interrupted: bool


RunEvent = (RunStarted | AttemptStarted | AttemptFinished | HostQuarantined | HostNotice
            | HostProvisioned | RunFinished)


def final_status(completed: int, total: int, *, interrupted: bool) -> RunStatus:
    if interrupted:
        return "interrupted"
    if completed == total:
        return "completed"
    return "failed" if completed == 0 else "incomplete"


# ---- JSON ----------------------------------------------------------------------------------


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "run_id": attempt.run_id, "job": attempt.job.text, "case_id": attempt.job.case_id,
        "repetition": attempt.job.repetition, "host": attempt.host,
        "attempt_no": attempt.attempt_no, "status": attempt.status,
        "started_at_unix_seconds": attempt.started_at_unix_seconds,
        "ended_at_unix_seconds": attempt.ended_at_unix_seconds,
        "duration_seconds": attempt.duration_seconds, "exit_code": attempt.exit_code,
        "signal": attempt.signal, "error": attempt.error, "notes": attempt.notes,
        "fingerprint": attempt.fingerprint,
        "variant": None if attempt.variant is None else json.loads(attempt.variant.to_json()),
        "knobs": [{"name": k.name, "before": k.before, "requested": k.requested,
                   "after": k.after, "restored": k.restored} for k in attempt.knobs],
        "measurements": [{"metric": m.metric, "value": m.value, "unit": m.unit,
                          "labels": dict(m.labels)} for m in attempt.measurements],
    }


def summary_json(summary: RunSummary) -> dict[str, Any]:
    return {
        "run_id": summary.run_id, "suite": summary.suite, "status": summary.status,
        "jobs": {"total": summary.jobs_total, "completed": summary.jobs_completed,
                 "failed": summary.jobs_failed, "not_run": summary.jobs_not_run},
        "hosts": [{"host": t.host, "attempts": dict(t.attempts)} for t in summary.hosts],
        "skipped": [{"case_id": c, "reason": r} for c, r in summary.skipped],
        "failures": [{"job": f.job, "host": f.host, "status": f.status, "reason": f.reason}
                     for f in summary.failures],
        "unreachable": [{"host": h, "reason": r} for h, r in summary.unreachable],
    }


def event_json(event: RunEvent) -> dict[str, Any] | None:
    """One JSON line of `fleet run --json`; None for progress-only events."""
    if isinstance(event, RunStarted):
        return {"event": "run_started", "run_id": event.run_id, "suite": event.suite,
                "seed": event.seed, "hosts": dict(event.host_jobs), "jobs_total": event.jobs_total,
                "jobs_pending": event.jobs_pending, "resumed": event.resumed,
                "store": event.store_path}
    if isinstance(event, AttemptFinished):
        return {"event": "attempt_finished", **attempt_json(event.attempt),
                "workload_seconds": event.workload_seconds}
    if isinstance(event, HostQuarantined):
        return {"event": "host_quarantined", "run_id": event.run_id, "host": event.host,
                "reason": event.reason,
                "moved": [{"job": j, "to": h} for j, h in event.moved],
                "failed": list(event.failed)}
    if isinstance(event, HostProvisioned):
        return {"event": "host_provisioned", "run_id": event.run_id, "host": event.host,
                "variant": event.switched.variant, "seconds": event.switched.seconds,
                "identity": json.loads(event.switched.identity.to_json())}
    if isinstance(event, RunFinished):
        return {"event": "run_finished", "interrupted": event.interrupted,
                **summary_json(event.summary)}
    return None
