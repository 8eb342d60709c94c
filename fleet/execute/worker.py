"""One host's thread: one session (one connection, one agent), one case at a time.

Per job: bring the host onto the case's declared kernel variant when it is not on it yet
(fleet.execute.variants: once per variant group, the attempts stamped with the verified
identity); check the rest of the variant (fleet.plan.provisioning: a module parameter the host
can take at runtime is set like a knob; anything else fails the attempt, saying how the host
would get it),
build the argv, apply the knobs, run (sampled, when the case's
sampling is on: fleet.sampling.collect), restore the knobs,
judge; the sampler's derived metrics join
the workload's measurements and its series go with the attempt into the store.
A TransportError ends the session; the job is retried after a backoff on a new one, and N
failures in a row quarantine the host (its jobs are handed over or failed with the reason).
Knobs whose restore could not be confirmed are restored first thing on the next session.
Each new session first takes the host lock (one controller's cases per host at a time: the
agent waits up to ``host_lock_wait_seconds``, naming the holder, then the host is quarantined);
taking it writes back knobs a dead agent left changed, which the user is told about.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleet.agent.protocol import KnobRecovery, LockWait, RunOutcome
from fleet.agent.session import describe_holder
from fleet.config.sampling import SamplingConfig, sample_spec
from fleet.errors import HostBusyError, TransportError
from fleet.execute.board import JobBoard
from fleet.execute.events import (
    AttemptFinished,
    AttemptStarted,
    HostNotice,
    HostProvisioned,
    HostQuarantined,
    RunEvent,
)
from fleet.execute.knobs import HostSession, apply_knobs, restore_knobs
from fleet.execute.policy import RetryPolicy, Verdict, judge
from fleet.execute.variants import HostVariants, Switched, VariantKeeper, split_variant
from fleet.hosts import BootMethod
from fleet.model import Case, Facts, Measurement
from fleet.plan.provisioning import ModuleKnob, provisioning
from fleet.runs import Attempt, AttemptStatus, JobKey, KnobState, SeriesPoint
from fleet.sampling.collect import Collected, SampleCollector, series_points
from fleet.sampling.derive import derive_metrics, intended_nodes
from fleet.variant import VariantIdentity
from fleet.workloads.base import Workload

SessionOpener = Callable[[], HostSession]
DEFAULT_OUTPUT_CAP_BYTES = 256 * 1024  # per stream and attempt, kept in the store
DEFAULT_HOST_LOCK_WAIT_SECONDS = 600.0  # then the host is busy: quarantined


@dataclass(frozen=True)
class CaseRuntime:
    case: Case
    workload: Workload
    sampling: SamplingConfig | None = None  # None or disabled: the case is not sampled


@dataclass(frozen=True)
class WorkerContext:
    run_id: str
    cases: Mapping[str, CaseRuntime]
    facts: Facts | None  # this host's, from the run's facts gathering
    policy: RetryPolicy
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES
    host_lock_wait_seconds: float = DEFAULT_HOST_LOCK_WAIT_SECONDS
    boot: BootMethod | None = None  # how this host boots another kernel (None: reboot)
    # its declared kernel variants -> the release each runs (fleet_variants; where known)
    kernel_releases: Mapping[str, str] = field(default_factory=dict)
    variants: HostVariants | None = None  # the declared variants a run provisions (None: none)


@dataclass(frozen=True)
class _Ran:
    outcome: RunOutcome | None
    knobs: tuple[KnobState, ...]
    verdict: Verdict | None  # set when the workload did not run to an outcome
    collected: Collected | None = None  # the samples taken while it ran


@dataclass(frozen=True)
class _Sampled:
    measurements: tuple[Measurement, ...] = ()
    points: tuple[SeriesPoint, ...] = ()
    notes: str | None = None


@dataclass(frozen=True)
class _Step:
    finished: AttemptFinished | None
    transport_error: TransportError | None = None


class HostWorker:
    def __init__(self, host: str, context: WorkerContext, *, board: JobBoard,
                 emit: Callable[[RunEvent], None], opener: SessionOpener,
                 stop: threading.Event) -> None:
        self.host = host
        self._ctx = context
        self._board = board
        self._emit = emit
        self._opener = opener
        self._stop = stop
        self._lock = threading.Lock()
        self._session: HostSession | None = None
        self._running = False  # a case (or the host lock's wait) that cancel() must end
        self._dirty: tuple[KnobState, ...] = ()
        self._failures = 0
        self._quarantined = False
        self._facts = context.facts  # gathered again after each variant switch
        self._variants = VariantKeeper(context.variants)

    def serve(self) -> None:
        """Take jobs until the board has none for this host; always close the session."""
        try:
            while (job := self._board.take(self.host)) is not None:
                self._job(job)
        finally:
            self._shutdown()

    def cancel(self) -> None:
        """Ctrl-C (another thread): end the running case; the agent kills its process group."""
        with self._lock:
            session = self._session if self._running else None
        if session is not None:
            session.close()

    # ---- one job, with retries -----------------------------------------------------------

    def _job(self, job: JobKey) -> None:
        try:
            while not self._stop.is_set():
                self._reach_variant(job)
                if self._stop.is_set():  # stopped while switching: the job stays pending
                    return
                try:
                    step = self._attempt(self._ensure_session(), job)
                except HostBusyError as exc:  # another controller has it: no use retrying
                    self._drop_session()
                    if not self._stop.is_set():
                        self._quarantine(exc.line())
                    return
                except TransportError as exc:  # connecting: no attempt was made
                    step = _Step(None, exc)
                if step.finished is not None:
                    self._emit(step.finished)
                if step.transport_error is None:
                    self._failures = 0
                    return
                self._drop_session()
                self._variants.forget()  # the host may have rebooted: verify it again
                if self._stop.is_set() or not self._retry_after(step.transport_error):
                    return
        finally:
            self._board.finish(self.host)

    def _retry_after(self, exc: TransportError) -> bool:
        """Count a transport failure; True: retry after the backoff, False: the job is gone."""
        self._failures += 1
        delay = self._ctx.policy.delay_after(self._failures)
        if delay is None:
            self._quarantine(f"{self._failures} transport failures in a row, last: {exc.line()}")
            return False
        return not self._stop.wait(delay)

    def _quarantine(self, reason: str) -> None:
        self._quarantined = True
        handover = self._board.quarantine(self.host, reason)
        for job, why in handover.orphans:
            attempt = self._record(job, self._board.attempt_no(job), time.time(), "failed", why)
            self._emit(AttemptFinished(attempt, None))
        self._emit(HostQuarantined(self._ctx.run_id, self.host, reason,
                                   tuple((j.text, h) for j, h in handover.moves),
                                   tuple(j.text for j, _ in handover.orphans)))

    # ---- the variant -----------------------------------------------------------------------

    def _reach_variant(self, job: JobKey) -> None:
        """Provision the host onto the job's declared kernel variant when it is not on it."""
        name, _ = split_variant(self._ctx.cases[job.case_id].case.variant, self._variants.names)
        if name is None or not self._variants.needs(name) or self._stop.is_set():
            return
        self._drop_session()  # its kernel or its modules change under it
        prefix = f"{self.host}: "
        self._notice("provisioning", f"provisioning variant {name}")
        done = self._variants.provision(
            name, lambda line: self._notice("provisioning", line.removeprefix(prefix)))
        if isinstance(done, Switched):
            if done.facts is not None:
                self._facts = done.facts
            self._emit(HostProvisioned(self._ctx.run_id, self.host, done))

    # ---- one attempt ---------------------------------------------------------------------

    def _attempt(self, session: HostSession, job: JobKey) -> _Step:
        runtime = self._ctx.cases[job.case_id]
        number = self._board.attempt_no(job)
        started = time.time()
        self._emit(AttemptStarted(self._ctx.run_id, job, self.host, number))
        name, rest = split_variant(runtime.case.variant, self._variants.names)
        identity = None if name is None else self._variants.identity
        reach = provisioning(rest, self._facts, boot=self._ctx.boot,
                             releases=self._ctx.kernel_releases)
        reason = None if name is None else self._variants.failure(name) or (
            None if identity is not None else f"variant {name} was not provisioned")
        reason = reason or reach.failure()
        if reason is None:
            try:
                argv = runtime.workload.build(dict(runtime.case.params), self._facts)
            except (KeyError, ValueError) as exc:
                reason = f"cannot build the command: {exc}"
        if reason is not None:
            return _Step(AttemptFinished(self._record(job, number, started, "failed", reason,
                                                      variant=identity), None))
        try:
            ran = self._run_with_knobs(session, runtime, argv, reach.knobs)
        except TransportError as exc:
            status: AttemptStatus = "interrupted" if self._stop.is_set() else "error"
            attempt = self._record(job, number, started, status, f"transport: {exc.line()}",
                                   knobs=self._dirty, variant=identity)
            return _Step(AttemptFinished(attempt, None), exc)
        verdict = ran.verdict
        if verdict is None:
            assert ran.outcome is not None
            verdict = judge(runtime.case, runtime.workload, ran.outcome)
        sampled = _sampled(runtime.case, ran.collected)
        attempt = self._record(job, number, started, verdict.status, verdict.error,
                               knobs=ran.knobs, outcome=ran.outcome,
                               measurements=verdict.measurements + sampled.measurements,
                               sampled=sampled, variant=identity)
        seconds = None if ran.outcome is None else ran.outcome.duration_seconds
        return _Step(AttemptFinished(attempt, seconds))

    def _run_with_knobs(self, session: HostSession, runtime: CaseRuntime,
                        argv: tuple[str, ...], module_params: tuple[ModuleKnob, ...]) -> _Ran:
        case = runtime.case
        applied = apply_knobs(session, case.knobs, module_params)
        if applied.error is not None:
            return _Ran(None, applied.states, Verdict("error", applied.error))
        self._dirty = applied.states
        with self._lock:
            self._running = go = not self._stop.is_set()
        outcome: RunOutcome | None = None
        spec = sample_spec(runtime.sampling)
        collector = None if spec is None else SampleCollector()
        caps = {"stdout_cap_bytes": self._ctx.output_cap_bytes,
                "stderr_cap_bytes": self._ctx.output_cap_bytes}
        try:
            if go and spec is not None and collector is not None:
                outcome = session.run_sampled(argv, timeout_seconds=case.timeout_seconds,
                                              sample=spec, on_sample=collector, **caps)
            elif go:
                outcome = session.run(argv, timeout_seconds=case.timeout_seconds, **caps)
        except TransportError:
            if not self._stop.is_set():
                raise  # the knobs stay in self._dirty: the next session restores them
        finally:
            with self._lock:
                self._running = False
        knobs = self._restore(session)
        if outcome is not None:
            return _Ran(outcome, knobs, None, None if collector is None else collector.result())
        why = ("the run was cancelled (Ctrl-C, SIGTERM or SIGHUP)" if go
               else "stopped before the workload started")
        return _Ran(None, knobs, Verdict("interrupted", f"interrupted: {why}"))

    def _restore(self, session: HostSession) -> tuple[KnobState, ...]:
        """Restore the applied knobs; after Ctrl-C on a fresh session (cancel closed ours)."""
        states = self._dirty
        if all(s.restored for s in states):
            self._dirty = ()
            return states
        if self._stop.is_set():
            self._drop_session()
            session = self._opener()
            with self._lock:
                self._session = session
        result = restore_knobs(session, states)
        self._dirty = tuple(s for s in result if not s.restored)
        return result

    # ---- the session ---------------------------------------------------------------------

    def _ensure_session(self) -> HostSession:
        if self._session is None:
            session = self._opener()
            with self._lock:
                self._session = session
                self._running = True  # cancel() closes it while the lock is awaited
            try:
                self._take_host_lock(session)
            finally:
                with self._lock:
                    self._running = False
        if self._dirty:
            result = restore_knobs(self._session, self._dirty)
            self._dirty = tuple(s for s in result if not s.restored)
        return self._session

    def _take_host_lock(self, session: HostSession) -> None:
        """Wait for the host lock (saying who holds it); tell what a dead agent left behind."""
        def waiting(wait: LockWait) -> None:
            self._notice("lock_wait", f"waiting {wait.waited_seconds:.0f} s of "
                         f"{self._ctx.host_lock_wait_seconds:g} s for the host lock, held by "
                         f"{describe_holder(wait.holder)}")

        recovered = session.lock(controller=_controller(), controller_pid=os.getpid(),
                                 run_id=self._ctx.run_id,
                                 wait_seconds=self._ctx.host_lock_wait_seconds, on_wait=waiting)
        if recovered:
            self._notice("knobs_recovered", _recovered_text(recovered))

    def _notice(self, kind: str, message: str) -> None:
        self._emit(HostNotice(self._ctx.run_id, self.host, kind, message))

    def _drop_session(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def _shutdown(self) -> None:
        if self._dirty and not self._quarantined:
            with contextlib.suppress(TransportError):  # the attempt says restored=False
                self._ensure_session()
        self._drop_session()

    def _record(self, job: JobKey, number: int, started: float, status: AttemptStatus,
                error: str | None, *, knobs: tuple[KnobState, ...] = (),
                outcome: RunOutcome | None = None,
                measurements: tuple[Measurement, ...] = (),
                sampled: _Sampled | None = None,
                variant: VariantIdentity | None = None) -> Attempt:
        return Attempt(
            run_id=self._ctx.run_id, job=job, host=self.host, attempt_no=number, status=status,
            started_at_unix_seconds=started, ended_at_unix_seconds=time.time(),
            exit_code=None if outcome is None else outcome.exit_code,
            signal=None if outcome is None else outcome.signal,
            stdout="" if outcome is None else outcome.stdout,
            stderr="" if outcome is None else outcome.stderr,
            stdout_truncated=outcome is not None and outcome.stdout_truncated,
            stderr_truncated=outcome is not None and outcome.stderr_truncated,
            fingerprint=None if self._facts is None else self._facts.fingerprint,
            knobs=knobs, error=error, measurements=measurements,
            notes=None if sampled is None else sampled.notes,
            samples=() if sampled is None else sampled.points, variant=variant)


@functools.cache
def _controller() -> str:
    """user@host of this controller, for the host lock's holder record."""
    return f"{pwd.getpwuid(os.geteuid()).pw_name}@{os.uname().nodename}"


def _recovered_text(recovered: tuple[KnobRecovery, ...]) -> str:
    parts = [f"{r.path} = {r.value!r}" + ("" if r.error is None else f" FAILED: {r.error}")
             for r in recovered]
    return "knobs a dead agent left changed were written back: " + "; ".join(parts)


def _sampled(case: Case, collected: Collected | None) -> _Sampled:
    """The sampler's measurements, stored series and notes (nothing when nothing was sampled,
    e.g. the command could not start)."""
    if collected is None or not collected.times:
        return _Sampled()
    nodes = intended_nodes({**dict(case.knobs), **dict(case.params)})
    derived = derive_metrics(collected, intended_nodes=nodes)
    return _Sampled(derived.measurements, series_points(collected), derived.notes)

