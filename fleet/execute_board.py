"""The job board: each host's queue of jobs, shared by the host threads (one lock).

A host takes its jobs in plan order. With ``steal`` on, a host whose queue is empty takes a
spread-``any`` job it is eligible for from the tail of the busiest other queue (the plan's
estimates are only estimates). A quarantined host's jobs are handed over (``hand_over``).
A host with nothing to do waits while another host might still hand it work.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence

from fleet.execute_policy import Handover, hand_over
from fleet.runs import JobKey


class JobBoard:
    def __init__(self, queues: Mapping[str, Sequence[JobKey]], *,
                 eligible: Mapping[str, frozenset[str]], estimates_seconds: Mapping[str, float],
                 next_attempt_no: Mapping[JobKey, int], steal: bool) -> None:
        self._cond = threading.Condition()
        self._queues = {h: deque(q) for h, q in queues.items()}
        self._eligible = eligible
        self._estimates = estimates_seconds
        self._next_no = dict(next_attempt_no)
        self._steal = steal
        self._running: dict[str, JobKey] = {}
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
                queue = self._queues[host]
                job = queue.popleft() if queue else self._stolen(host) if self._steal else None
                if job is not None:
                    self._running[host] = job
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
            jobs = ([current] if current is not None else []) + list(self._queues[host])
            self._queues[host].clear()
            active = frozenset(h for h in self._queues if h not in self._quarantined)
            handover = hand_over(jobs, eligible=self._eligible, active=active,
                                 loads_seconds={h: self._load(h) for h in active},
                                 estimates_seconds=self._estimates, reason=reason)
            for job, target in handover.moves:
                self._queues[target].append(job)
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

    def _load(self, host: str) -> float:
        running = self._running.get(host)
        jobs = [*self._queues[host], *([running] if running is not None else [])]
        return sum(self._estimates.get(j.case_id, 0.0) for j in jobs)

    def _others_busy(self, host: str) -> bool:
        return any(h != host and h not in self._quarantined and (q or h in self._running)
                   for h, q in self._queues.items())

    def _stolen(self, thief: str) -> JobKey | None:
        """The last eligible ``any`` job of the other queue with the most queued work."""
        best: tuple[float, str, int] | None = None
        for host, queue in self._queues.items():
            if host == thief or host in self._quarantined:
                continue
            index = next((i for i in range(len(queue) - 1, -1, -1)
                          if queue[i].host is None
                          and thief in self._eligible.get(queue[i].case_id, frozenset())), None)
            if index is None:
                continue
            load = sum(self._estimates.get(j.case_id, 0.0) for j in queue)
            if best is None or load > best[0]:
                best = (load, host, index)
        if best is None:
            return None
        queue = self._queues[best[1]]
        job = queue[best[2]]
        del queue[best[2]]
        return job
