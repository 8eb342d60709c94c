"""Run a set of jobs on hosts: a thread per host, one case at a time per host, hosts in parallel.

The host threads (fleet.execute.worker) never touch the store: they put events on one queue,
and the calling thread records each attempt (its own transaction) the moment it arrives, then
passes the event on. A host thread waits, before it starts a job, until the calling thread
has claimed the job (``claim``: in the store, so a crash leaves it visible); the calling
thread also calls ``tick`` every poll (the run owner's heartbeat).
Ctrl-C, SIGTERM and SIGHUP alike (in the main thread) stop the board, cancel every running
case (closing its agent session kills the workload's process group), let the workers
restore their knobs and record the interrupted attempts, and return ``interrupted``.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType

from fleet.execute.board import JobBoard
from fleet.execute.events import AttemptFinished, AttemptStarted, RunEvent
from fleet.execute.policy import RetryPolicy
from fleet.execute.variants import HostVariants
from fleet.execute.worker import (
    DEFAULT_HOST_LOCK_WAIT_SECONDS,
    DEFAULT_OUTPUT_CAP_BYTES,
    CaseRuntime,
    HostWorker,
    SessionOpener,
    WorkerContext,
)
from fleet.hosts import BootMethod
from fleet.model import Facts
from fleet.runs import Attempt, JobKey

_CANCEL_JOIN_SECONDS = 20.0
_POLL_SECONDS = 0.05
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # all stop a run like Ctrl-C


@dataclass(frozen=True)
class ExecuteOptions:
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    steal: bool = True  # an idle host takes queued `any` jobs it is eligible for
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES
    host_lock_wait_seconds: float = DEFAULT_HOST_LOCK_WAIT_SECONDS  # then the host is busy


@dataclass(frozen=True)
class Execution:
    """What to run: per host, its jobs in order; what each case is; who may run what."""

    run_id: str
    cases: Mapping[str, CaseRuntime]
    queues: Mapping[str, tuple[JobKey, ...]]
    facts: Mapping[str, Facts]
    eligible: Mapping[str, frozenset[str]]  # case id -> hosts that meet its requirements
    next_attempt_no: Mapping[JobKey, int] = field(default_factory=dict)
    boot: Mapping[str, BootMethod] = field(default_factory=dict)  # host -> how it boots
    # host -> its declared kernel variants -> the release each runs (fleet_variants)
    kernel_releases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # host -> the declared variants the run provisions between groups (fleet.execute.variants)
    variants: Mapping[str, HostVariants] = field(default_factory=dict)

    def estimates_seconds(self) -> dict[str, float]:
        return {cid: rt.case.planned_seconds for cid, rt in self.cases.items()}


@dataclass(frozen=True)
class ExecutionResult:
    interrupted: bool
    attempts_recorded: int


@dataclass(frozen=True)
class _WorkerDone:
    host: str
    bug: BaseException | None


@dataclass(frozen=True)
class _Starting:
    """A host is about to start a job; it waits for ``claimed``."""

    event: AttemptStarted
    claimed: threading.Event


_Item = RunEvent | _WorkerDone | _Starting


def execute(execution: Execution, openers: Mapping[str, SessionOpener], *,
            record: Callable[[Attempt], None], on_event: Callable[[RunEvent], None],
            options: ExecuteOptions | None = None,
            claim: Callable[[AttemptStarted], None] = lambda e: None,
            tick: Callable[[], None] = lambda: None) -> ExecutionResult:
    """Run every queued job; ``record``, ``claim``, ``tick`` and ``on_event`` are called in
    this thread only."""
    opts = options or ExecuteOptions()
    events: queue.Queue[_Item] = queue.Queue()
    stop = threading.Event()
    board = JobBoard(execution.queues, eligible=execution.eligible,
                     estimates_seconds=execution.estimates_seconds(),
                     next_attempt_no=execution.next_attempt_no, steal=opts.steal)
    workers = [HostWorker(host, WorkerContext(execution.run_id, execution.cases,
                                              execution.facts.get(host), opts.policy,
                                              opts.output_cap_bytes,
                                              opts.host_lock_wait_seconds,
                                              execution.boot.get(host),
                                              execution.kernel_releases.get(host, {}),
                                              execution.variants.get(host)),
                          board=board, emit=_emitter(events, stop), opener=openers[host],
                          stop=stop)
               for host in execution.queues]
    pump = _Pump(events, len(workers), _Sinks(record, claim, tick, on_event))
    with _ctrl_c() as interrupted:
        for worker in workers:
            threading.Thread(target=_serve, args=(worker, events), name=f"fleet-{worker.host}",
                             daemon=True).start()
        try:
            pump.run(until=interrupted)
            if not interrupted():
                return ExecutionResult(False, pump.recorded)
            _stop(stop, board, workers)
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting
                pump.run()  # the workers restore knobs and report their interrupted attempts
        except BaseException:
            _stop(stop, board, workers)
            raise
    return ExecutionResult(True, pump.recorded)


def _emitter(events: queue.Queue[_Item], stop: threading.Event) -> Callable[[RunEvent], None]:
    """A host thread's emit: an AttemptStarted waits until the job is claimed (or the run
    stops, or the calling thread is gone)."""
    def emit(event: RunEvent) -> None:
        if not isinstance(event, AttemptStarted):
            events.put(event)
            return
        claimed = threading.Event()
        events.put(_Starting(event, claimed))
        while not claimed.wait(_POLL_SECONDS):
            if stop.is_set():
                return

    return emit


@contextlib.contextmanager
def _ctrl_c() -> Iterator[Callable[[], bool]]:
    """While executing, the first SIGINT, SIGTERM or SIGHUP only raises a flag (so it never
    lands inside a store transaction); a second one raises KeyboardInterrupt. Off the main
    thread: no handler."""
    count = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        count[0] += 1
        if count[0] > 1:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield lambda: count[0] > 0
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def _serve(worker: HostWorker, events: queue.Queue[_Item]) -> None:
    bug: BaseException | None = None
    try:
        worker.serve()
    except BaseException as exc:  # a bug in fleet: re-raised by the calling thread
        bug = exc
    events.put(_WorkerDone(worker.host, bug))


def _stop(stop: threading.Event, board: JobBoard, workers: list[HostWorker]) -> None:
    stop.set()
    board.stop()
    cancels = [threading.Thread(target=w.cancel, name=f"fleet-cancel-{w.host}", daemon=True)
               for w in workers]
    for thread in cancels:
        thread.start()
    for thread in cancels:
        thread.join(_CANCEL_JOIN_SECONDS)


@dataclass(frozen=True)
class _Sinks:
    record: Callable[[Attempt], None]
    claim: Callable[[AttemptStarted], None]
    tick: Callable[[], None]
    on_event: Callable[[RunEvent], None]


class _Pump:
    """Drains the event queue until every worker is done; claims jobs before they start and
    records attempts before passing their events on."""

    def __init__(self, events: queue.Queue[_Item], workers: int, sinks: _Sinks) -> None:
        self._events = events
        self._alive = workers
        self._sinks = sinks
        self.recorded = 0

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Until every worker is done (or ``until()`` turns true)."""
        while self._alive > 0 and not until():
            self._sinks.tick()
            try:
                item = self._events.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, _WorkerDone):
                self._alive -= 1
                if item.bug is not None:
                    raise item.bug
                continue
            event: RunEvent
            if isinstance(item, _Starting):
                self._sinks.claim(item.event)
                item.claimed.set()
                event = item.event
            else:
                event = item
            if isinstance(event, AttemptFinished):
                self._sinks.record(event.attempt)
                self.recorded += 1
            self._sinks.on_event(event)
