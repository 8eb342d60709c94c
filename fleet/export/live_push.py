"""`fleet run --pushgateway URL`: each completed attempt's results pushed as it finishes.

A ``LivePusher`` wraps the run's event sink. Pushing never stops the run: the results are in
the store whatever happens to the gateway. The first failed push gives one warning (through
``on_warning``), later ones are only counted; ``summary()`` is the final one-line account.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleet.errors import FleetError
from fleet.execute_events import AttemptFinished, RunEvent, RunStarted
from fleet.export.prometheus import push_attempt
from fleet.export.store_reader import open_read_only, read_static


class LivePusher:
    """Pushes every completed attempt of the run to ``url``; not thread-safe (the run calls
    its event sink from one thread)."""

    def __init__(self, url: str, on_warning: Callable[[str], None]) -> None:
        self._url = url
        self._warn = on_warning
        self._run: tuple[str, str] | None = None  # (run_id, suite)
        self._workloads: dict[str, str] = {}  # case_id -> workload
        self.pushed = 0
        self.failed = 0
        self.series = 0

    def event(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._run = (event.run_id, event.suite)
            self._workloads = self._read_workloads(Path(event.store_path), event.run_id)
        elif isinstance(event, AttemptFinished) and self._run is not None:
            self._push(event)

    def _read_workloads(self, store_path: Path, run_id: str) -> dict[str, str]:
        try:
            with open_read_only(store_path) as store:
                cases = read_static(store, run_id).cases
        except FleetError as exc:
            self._warn(f"pushgateway: workload names unknown, pushed with workload=\"\": "
                       f"{exc.line()}")
            return {}
        return {case_id: workload for case_id, workload, _ in cases}

    def _push(self, event: AttemptFinished) -> None:
        assert self._run is not None
        run_id, suite = self._run
        attempt = event.attempt
        try:
            count = push_attempt(self._url, run_id, suite, attempt,
                                 self._workloads.get(attempt.job.case_id, ""))
        except FleetError as exc:
            if self.failed == 0:
                self._warn(f"{exc.line()}; the run goes on, later failures are only counted")
            self.failed += 1
            return
        if count:
            self.pushed += 1
            self.series += count

    def summary(self) -> str:
        return (f"pushgateway {self._url}: {self.pushed} attempt(s) pushed ({self.series} "
                f"series), {self.failed} push(es) failed")
