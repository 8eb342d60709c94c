"""Pure decisions of the executor: retries, quarantine hand-over, knob values, verdicts.

Nothing here touches a host, a thread or the clock: each function takes what it decides on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.agent.protocol import RunOutcome
from fleet.errors import ParseError
from fleet.model import Case, Measurement, ParamValue
from fleet.runs import AttemptStatus, JobKey
from fleet.workloads.base import Workload, format_param_value

_STDERR_REASON_CHARS = 200


@dataclass(frozen=True)
class RetryPolicy:
    """Transport failures of one host: back off exponentially, quarantine after N in a row."""

    max_consecutive_failures: int = 3
    base_delay_seconds: float = 0.5
    factor: float = 2.0
    max_delay_seconds: float = 30.0

    def delay_after(self, consecutive_failures: int) -> float | None:
        """Seconds to wait before reconnecting, or None: quarantine the host now."""
        if consecutive_failures >= self.max_consecutive_failures:
            return None
        exponent = max(consecutive_failures - 1, 0)
        return min(self.base_delay_seconds * self.factor ** exponent, self.max_delay_seconds)


# ---- quarantine: where a quarantined host's jobs go --------------------------------------------


@dataclass(frozen=True)
class Handover:
    """A quarantined host's jobs: ``moves`` (job, new host) and ``orphans`` (job, reason)."""

    moves: tuple[tuple[JobKey, str], ...]
    orphans: tuple[tuple[JobKey, str], ...]


def hand_over(jobs: Sequence[JobKey], *, eligible: Mapping[str, frozenset[str]],
              active: frozenset[str], loads_seconds: Mapping[str, float],
              estimates_seconds: Mapping[str, float], reason: str) -> Handover:
    """Spread-``any`` jobs go, longest first, to the least-loaded active eligible host; jobs
    bound to the host (spread ``every``) and ``any`` jobs no active host can run are orphans."""
    loads = {h: loads_seconds.get(h, 0.0) for h in active}
    moves: list[tuple[JobKey, str]] = []
    orphans: list[tuple[JobKey, str]] = []
    ordered = sorted(jobs, key=lambda j: (-estimates_seconds.get(j.case_id, 0.0), j.text))
    for job in ordered:
        if job.host is not None:
            orphans.append((job, f"host quarantined: {reason}"))
            continue
        hosts = sorted(eligible.get(job.case_id, frozenset()) & active)
        if not hosts:
            orphans.append((job, f"host quarantined: {reason}; no other eligible host is left"))
            continue
        target = min(hosts, key=lambda h: (loads[h], h))
        loads[target] += estimates_seconds.get(job.case_id, 0.0)
        moves.append((job, target))
    order = {job: i for i, job in enumerate(jobs)}
    return Handover(tuple(sorted(moves, key=lambda m: order[m[0]])),
                    tuple(sorted(orphans, key=lambda o: order[o[0]])))


# ---- knobs -------------------------------------------------------------------------------


def knob_text(value: ParamValue) -> str:
    """How a knob value is written to its file."""
    return format_param_value(value)


def current_value(text: str) -> str:
    """A knob file's current value: the bracketed choice ("always [madvise] never" ->
    "madvise"), else the stripped text ("60\\n" -> "60")."""
    stripped = text.strip()
    start = stripped.find("[")
    end = stripped.find("]", start + 1)
    if start >= 0 and end > start:
        return stripped[start + 1:end]
    return stripped


# ---- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    status: AttemptStatus
    error: str | None
    measurements: tuple[Measurement, ...] = ()


def judge(case: Case, workload: Workload, outcome: RunOutcome) -> Verdict:
    """What one run of the workload amounts to; measurements only from a clean exit."""
    failure = _failure(case, outcome)
    if failure is not None:
        return failure
    try:
        measurements = workload.parse(outcome.stdout, outcome.stderr, 0)
    except (ParseError, ValueError) as exc:
        line = exc.line() if isinstance(exc, ParseError) else str(exc)
        return Verdict("failed", f"cannot parse the output: {line}")
    return Verdict("completed", None, measurements)


def _failure(case: Case, outcome: RunOutcome) -> Verdict | None:
    if outcome.cancelled:
        return Verdict("interrupted",
                       "interrupted: the run was cancelled (Ctrl-C, SIGTERM or SIGHUP)")
    if outcome.spawn_error is not None:
        return Verdict("failed", f"cannot start the workload: {outcome.spawn_error}")
    if outcome.timed_out:
        return Verdict("timeout", f"timed out after {case.timeout_seconds:g}s; the workload's "
                                  "process group was killed")
    if outcome.exit_code is None:
        return Verdict("failed", f"killed by signal {_signal_name(outcome.signal)}")
    if outcome.exit_code != 0:
        return Verdict("failed", f"exit {outcome.exit_code}{_stderr_hint(outcome.stderr)}")
    return None


def _signal_name(number: int | None) -> str:
    if number is None:
        return "unknown"
    try:
        return f"{number} ({signal.Signals(number).name})"
    except ValueError:
        return str(number)


def _stderr_hint(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return f": {last if len(last) <= _STDERR_REASON_CHARS else last[:_STDERR_REASON_CHARS] + '...'}"


def new_run_id(unix_seconds: float, suffix_hex: str) -> str:
    """``r20261125-083000-3f2a``: UTC time of creation and a random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(unix_seconds))
    return f"r{stamp}-{suffix_hex}"
