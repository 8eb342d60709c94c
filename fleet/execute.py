"""Run a set of jobs on hosts: a thread per host, one case at a time per host, hosts in parallel.

The host threads (fleet.execute_worker) never touch the store: they put events on one queue,
and the calling thread records each attempt (its own transaction) the moment it arrives, then
passes the event on. Ctrl-C (SIGINT in the main thread) stops the board, cancels
every running case (closing its agent session kills the workload's process group), lets the
workers restore their knobs and record the interrupted attempts, and returns ``interrupted``.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType

from fleet.execute_board import JobBoard
from fleet.execute_events import AttemptFinished, RunEvent
from fleet.execute_policy import RetryPolicy
from fleet.execute_worker import (
    DEFAULT_OUTPUT_CAP_BYTES,
    CaseRuntime,
    HostWorker,
    SessionOpener,
    WorkerContext,
)
from fleet.model import Facts
from fleet.runs import Attempt, JobKey

_CANCEL_JOIN_SECONDS = 20.0
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ExecuteOptions:
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    steal: bool = True  # an idle host takes queued `any` jobs it is eligible for
    output_cap_bytes: int = DEFAULT_OUTPUT_CAP_BYTES


@dataclass(frozen=True)
class Execution:
    """What to run: per host, its jobs in order; what each case is; who may run what."""

    run_id: str
    cases: Mapping[str, CaseRuntime]
    queues: Mapping[str, tuple[JobKey, ...]]
    facts: Mapping[str, Facts]
    eligible: Mapping[str, frozenset[str]]  # case id -> hosts that meet its requirements
    next_attempt_no: Mapping[JobKey, int] = field(default_factory=dict)

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


def execute(execution: Execution, openers: Mapping[str, SessionOpener], *,
            record: Callable[[Attempt], None], on_event: Callable[[RunEvent], None],
            options: ExecuteOptions | None = None) -> ExecutionResult:
    """Run every queued job; ``record`` and ``on_event`` are called in this thread only."""
    opts = options or ExecuteOptions()
    events: queue.Queue[RunEvent | _WorkerDone] = queue.Queue()
    stop = threading.Event()
    board = JobBoard(execution.queues, eligible=execution.eligible,
                     estimates_seconds=execution.estimates_seconds(),
                     next_attempt_no=execution.next_attempt_no, steal=opts.steal)
    workers = [HostWorker(host, WorkerContext(execution.run_id, execution.cases,
                                              execution.facts.get(host), opts.policy,
                                              opts.output_cap_bytes),
                          board=board, emit=events.put, opener=openers[host], stop=stop)
               for host in execution.queues]
    pump = _Pump(events, len(workers), record, on_event)
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


@contextlib.contextmanager
def _ctrl_c() -> Iterator[Callable[[], bool]]:
    """While executing, the first SIGINT only raises a flag (so it never lands inside a store
    transaction); a second one raises KeyboardInterrupt. Off the main thread: no handler."""
    count = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        count[0] += 1
        if count[0] > 1:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: count[0] > 0
    finally:
        signal.signal(signal.SIGINT, previous)


def _serve(worker: HostWorker, events: queue.Queue[RunEvent | _WorkerDone]) -> None:
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


class _Pump:
    """Drains the event queue until every worker is done; records attempts first."""

    def __init__(self, events: queue.Queue[RunEvent | _WorkerDone], workers: int,
                 record: Callable[[Attempt], None],
                 on_event: Callable[[RunEvent], None]) -> None:
        self._events = events
        self._alive = workers
        self._record = record
        self._on_event = on_event
        self.recorded = 0

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Until every worker is done (or ``until()`` turns true)."""
        while self._alive > 0 and not until():
            try:
                event = self._events.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(event, _WorkerDone):
                self._alive -= 1
                if event.bug is not None:
                    raise event.bug
                continue
            if isinstance(event, AttemptFinished):
                self._record(event.attempt)
                self.recorded += 1
            self._on_event(event)
