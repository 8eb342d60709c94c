"""The job board: each host's queue of jobs, shared by the host threads (one lock).

A host takes its jobs in plan order. With ``steal`` on, each time a host takes a job, spread-
``any`` jobs it is eligible for move from the host projected to finish last to the end of its
queue, while that lowers the later of the two projected finishes (projection: the running
job's estimate from when it started, plus the queued estimates). This absorbs what the plan
cannot know: hosts that start late (connection, agent start) and estimates that are off.
A quarantined host's jobs are handed over (``hand_over``). A host with nothing to do waits
while another host might still hand it work.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from fleet.execute.policy import Handover, hand_over
from fleet.runs import JobKey


class JobBoard:
    def __init__(self, queues: Mapping[str, Sequence[JobKey]], *,
                 eligible: Mapping[str, frozenset[str]], estimates_seconds: Mapping[str, float],
                 next_attempt_no: Mapping[JobKey, int], steal: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._queues = {h: deque(q) for h, q in queues.items()}
        self._eligible = eligible
        self._estimates = estimates_seconds
        self._queued_seconds = {h: sum(self._est(j) for j in q) for h, q in queues.items()}
        self._next_no = dict(next_attempt_no)
        self._steal = steal
        self._clock = clock
        self._running: dict[str, tuple[JobKey, float]] = {}  # host -> (job, taken at)
        self._quarantined: dict[str, str] = {}
        self._stopped = False

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def take(self, host: str) -> JobKey | None:
        """The host's next job; None when the run is over for it (or stopped, or quarantined)."""
        with self._cond:
            while True:
                if self._stopped or host in self._quarantined:
                    return None
                if self._steal:
                    self._rebalance(host)
                if self._queues[host]:
                    job = self._pop(host, 0)
                    self._running[host] = (job, self._clock())
                    return job
                if not self._others_busy(host):
                    self._cond.notify_all()
                    return None
                self._cond.wait()

    def finish(self, host: str) -> None:
        """The host is done with its current job (whatever became of it)."""
        with self._cond:
            self._running.pop(host, None)
            self._cond.notify_all()

    def attempt_no(self, job: JobKey) -> int:
        with self._cond:
            number = self._next_no.get(job, 1)
            self._next_no[job] = number + 1
            return number

    def quarantine(self, host: str, reason: str) -> Handover:
        """Take the host out of the run: its current and queued jobs are handed over."""
        with self._cond:
            self._quarantined[host] = reason
            current = self._running.pop(host, None)
            jobs = ([current[0]] if current is not None else []) + list(self._queues[host])
            self._queues[host].clear()
            self._queued_seconds[host] = 0.0
            active = frozenset(h for h in self._queues if h not in self._quarantined)
            now = self._clock()
            handover = hand_over(jobs, eligible=self._eligible, active=active,
                                 loads_seconds={h: self._projected(h, now) - now
                                                for h in active},
                                 estimates_seconds=self._estimates, reason=reason)
            for job, target in handover.moves:
                self._push(target, job)
            self._cond.notify_all()
            return handover

    def stop(self) -> None:
        """No host takes another job (Ctrl-C)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def queued(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    # ---- internals (under the lock) --------------------------------------------------------

    def _est(self, job: JobKey) -> float:
        return self._estimates.get(job.case_id, 0.0)

    def _push(self, host: str, job: JobKey) -> None:
        self._queues[host].append(job)
        self._queued_seconds[host] += self._est(job)

    def _pop(self, host: str, index: int) -> JobKey:
        queue = self._queues[host]
        job = queue[index]
        del queue[index]
        self._queued_seconds[host] -= self._est(job)
        return job

    def _projected(self, host: str, now: float) -> float:
        running = self._running.get(host)
        free = now if running is None else max(now, running[1] + self._est(running[0]))
        return free + self._queued_seconds[host]

    def _others_busy(self, host: str) -> bool:
        return any(h != host and h not in self._quarantined and (q or h in self._running)
                   for h, q in self._queues.items())

    def _rebalance(self, thief: str) -> None:
        now = self._clock()
        for _ in range(sum(len(q) for q in self._queues.values())):  # each move helps; bounded
            mine = self._projected(thief, now)
            best: tuple[float, float, int, str] | None = None
            for host, queue in self._queues.items():
                if host == thief or host in self._quarantined:
                    continue
                theirs = self._projected(host, now)
                for index, job in enumerate(queue):
                    seconds = self._est(job)
                    if job.host is None and seconds > 0 and mine + seconds < theirs \
                            and thief in self._eligible.get(job.case_id, frozenset()):
                        key = (theirs, seconds, index, host)
                        if best is None or key[:3] > best[:3]:
                            best = key
            if best is None:
                return
            self._push(thief, self._pop(best[3], best[2]))
