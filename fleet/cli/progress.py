"""`fleet run`'s output: progress lines or a live display on stderr, JSON events on stdout,
the end-of-run summary, and warnings.

A closed output pipe (`fleet run ... | head -1`) never stops a run: ``write`` sends that
stream to /dev/null from then on and the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from fleet.execute.events import (
    ATTEMPT_STATUSES,
    AttemptFinished,
    AttemptStarted,
    HostNotice,
    HostProvisioned,
    HostQuarantined,
    RunEvent,
    RunFinished,
    RunStarted,
    RunSummary,
    event_json,
)

if TYPE_CHECKING:  # rich.progress: imported when a live display starts
    from rich.progress import TaskID


def write(stream: TextIO, text: str) -> bool:
    """Write and flush; False (and the stream sent to /dev/null) when its reader is gone."""
    with quiet_pipe(stream) as ok:
        stream.write(text)
        stream.flush()
    return bool(ok)


@contextlib.contextmanager
def quiet_pipe(stream: TextIO) -> Iterator[list[bool]]:
    """Swallow a broken pipe on ``stream``: from then on it writes to /dev/null (so nothing,
    not even the flush at exit, fails on it again). Yields [True], or [] after a break."""
    ok = [True]
    try:
        yield ok
    except BrokenPipeError:
        ok.clear()
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)


def warn(text: str) -> None:
    write(sys.stderr, f"fleet: warning: {text}\n")


class RunView:
    """Events -> JSON lines on stdout (--json) and progress on stderr."""

    def __init__(self, *, as_json: bool) -> None:
        self._json = as_json
        self._progress: _LiveProgress | None = _LiveProgress() if sys.stderr.isatty() else None
        self._plain = True  # False once stderr's reader is gone

    def event(self, event: RunEvent) -> None:
        if self._json:
            data = event_json(event)
            if data is not None:
                self._json = write(sys.stdout, json.dumps(data, sort_keys=True) + "\n")
        if self._progress is not None:
            self._progress.event(event)
        elif self._plain:
            line = plain_line(event)
            if line is not None:
                self._plain = write(sys.stderr, f"fleet: {line}\n")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def plain_line(event: RunEvent) -> str | None:
    """One log line per event (None: not worth a line)."""
    if isinstance(event, RunStarted):
        verb = "resuming" if event.resumed else "run"
        return (f"{verb} {event.run_id} of {event.suite}: {event.jobs_pending} of "
                f"{event.jobs_total} jobs on {len(event.host_jobs)} host(s), seed {event.seed}")
    if isinstance(event, AttemptFinished):
        a = event.attempt
        text = (f"{a.host} {a.job.text} #{a.attempt_no}: {a.status} "
                f"in {a.duration_seconds:.2f}s")
        return f"{text}: {a.error}" if a.error else text
    if isinstance(event, HostNotice | HostProvisioned):
        return _host_line(event)
    if isinstance(event, HostQuarantined):
        return (f"{event.host} quarantined: {event.reason}; {len(event.moved)} job(s) moved, "
                f"{len(event.failed)} failed")
    if isinstance(event, RunFinished):
        s = event.summary
        return (f"run {s.run_id} {s.status}: {s.jobs_completed}/{s.jobs_total} jobs completed,"
                f" {s.jobs_failed} failed, {len(s.skipped)} case(s) skipped"
                f"{_unreachable_text(s)}")
    return None


def _host_line(event: HostNotice | HostProvisioned) -> str:
    if isinstance(event, HostNotice):
        return f"{event.host}: {event.message}"
    ident = event.switched.identity
    return (f"{event.host}: on variant {event.switched.variant} ({ident.kind}, "
            f"{ident.kernel_release}), verified in {event.switched.seconds:.0f}s")


class _LiveProgress:
    """A rich progress display on stderr: the run overall and one line per host."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                  console=Console(stderr=True), transient=False)
        self._overall: TaskID | None = None
        self._hosts: dict[str, TaskID] = {}
        self._progress.start()

    def event(self, event: RunEvent) -> None:
        p = self._progress
        if isinstance(event, RunStarted):
            self._overall = p.add_task(f"{event.run_id}", total=event.jobs_pending, note="")
            for host, jobs in event.host_jobs:
                self._hosts[host] = p.add_task(f"  {host}", total=jobs, note="")
        elif isinstance(event, AttemptStarted) and event.host in self._hosts:
            p.update(self._hosts[event.host], note=f"{event.job.text} #{event.attempt_no}")
        elif isinstance(event, AttemptFinished):
            self._finished(event)
        elif isinstance(event, HostQuarantined) and event.host in self._hosts:
            p.update(self._hosts[event.host], note=f"[red]quarantined: {event.reason}")
            p.console.print(f"[red]{plain_line(event)}")
        elif isinstance(event, HostNotice):
            p.console.print(Text(f"{plain_line(event)}", style="yellow"))
        elif isinstance(event, HostProvisioned):
            p.console.print(Text(f"{plain_line(event)}", style="green"))

    def _finished(self, event: AttemptFinished) -> None:
        a = event.attempt
        task = self._hosts.get(a.host)
        if task is not None:
            total = self._progress.tasks[task].total or 0
            done = self._progress.tasks[task].completed + 1
            self._progress.update(task, completed=done, total=max(total, done), note="")
        if self._overall is not None and a.status != "interrupted":
            self._progress.advance(self._overall)
        if a.status != "completed":
            self._progress.console.print(f"[yellow]{plain_line(event)}")

    def stop(self) -> None:
        self._progress.stop()


def summary_view(summary: RunSummary) -> Group:
    """Per host: attempts by status; then jobs, failures and skips with their reasons."""
    head = (f"run {summary.run_id} ({summary.suite}): {summary.status}, "
            f"{summary.jobs_completed}/{summary.jobs_total} jobs completed, "
            f"{summary.jobs_failed} failed, {len(summary.skipped)} case(s) skipped"
            f"{_unreachable_text(summary)}")
    table = Table(title_justify="left")
    table.add_column("host")
    for status in ATTEMPT_STATUSES:
        table.add_column(status, justify="right")
    for tally in summary.hosts:
        table.add_row(tally.host, *(str(tally.attempts.get(s, 0)) for s in ATTEMPT_STATUSES))
    return Group(Text(head), table, Text(_caption(summary)))


def _unreachable_text(summary: RunSummary) -> str:
    n = len(summary.unreachable)
    return f", {n} host(s) unreachable and left out" if n else ""


def _caption(summary: RunSummary) -> str:
    lines = [f"unreachable host {h}, left out: {r}" for h, r in summary.unreachable]
    lines += [f"failed {f.job} on {f.host} ({f.status}): {f.reason}" for f in summary.failures]
    lines += [f"skipped case {c}: {r}" for c, r in summary.skipped]
    if summary.jobs_not_run:
        lines.append(f"{summary.jobs_not_run} job(s) not run yet: fleet run --resume "
                     f"{summary.run_id}")
    return "\n".join(lines)
