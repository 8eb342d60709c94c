"""Read-only bulk reads of the store for exporting (fleet.export): no stdout/stderr, one query
per table.

``data_version`` tells whether anyone committed since the last read on this connection, so a
caller can keep a snapshot until the store changes; ``Store.read_snapshot`` gives several reads
one consistent view.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from fleet.runs import (
    Attempt,
    Increment,
    JobKey,
    ResultRow,
    RunStatic,
    StoredAttempt,
    StoredSeries,
)
from fleet.store.db import Store
from fleet.store.runs import run_plan_rows


def data_version(store: Store) -> int:
    """Changes whenever another connection commits to the store."""
    return int(store._connection.execute("PRAGMA data_version").fetchone()[0])


def runs_by_status(store: Store) -> tuple[tuple[str, int], ...]:
    rows = store._connection.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
    return tuple(sorted((str(st), int(n)) for st, n in rows))


def read_static(store: Store, run_id: str) -> RunStatic:
    """What the run fixed when it was created: jobs, skips, cases."""
    return RunStatic(*run_plan_rows(store._connection, run_id))


def read_increment(store: Store, run_ids: Sequence[str], after_attempt_id: int) -> Increment:
    """Attempts of these runs with an id above the watermark, and their results (completed
    attempts only). Attempts are written with their results in one transaction and never
    change, so a watermark on attempt_id sees each exactly once."""
    conn = store._connection
    marks = ",".join("?" * len(run_ids))
    if not run_ids:
        return Increment((), (), after_attempt_id)
    attempts = tuple(_attempts(conn, marks, (*run_ids, after_attempt_id)))
    results = _results(conn, marks, (*run_ids, after_attempt_id), attempts)
    last = max((a.attempt_id for _, a in attempts), default=after_attempt_id)
    return Increment(attempts, results, last)


def _attempts(conn: sqlite3.Connection, marks: str,
              params: tuple[object, ...]) -> list[tuple[str, StoredAttempt]]:
    """Attempts without their outputs, knobs or measurements (summaries need none of them)."""
    out = []
    for r in conn.execute(
            "SELECT attempt_id, run_id, job_key, host, attempt_no, status,"  # noqa: S608
            " started_at_unix_seconds, ended_at_unix_seconds, exit_code, signal, fingerprint,"
            f" error FROM attempts WHERE run_id IN ({marks}) AND attempt_id > ?"
            " ORDER BY attempt_id", params):
        attempt = Attempt(
            run_id=r[1], job=JobKey.parse(r[2]), host=r[3], attempt_no=r[4], status=r[5],
            started_at_unix_seconds=r[6], ended_at_unix_seconds=r[7], exit_code=r[8],
            signal=r[9], stdout="", stderr="", stdout_truncated=False, stderr_truncated=False,
            fingerprint=r[10], error=r[11])
        out.append((str(r[1]), StoredAttempt(int(r[0]), attempt)))
    return out


def _results(conn: sqlite3.Connection, marks: str, params: tuple[object, ...],
             attempts: Sequence[tuple[str, StoredAttempt]]) -> tuple[tuple[str, ResultRow], ...]:
    """Results of completed attempts (of ``attempts``), in the order they were stored."""
    owners = {a.attempt_id: (run_id, a.attempt.job.case_id, a.attempt.job.repetition,
                             a.attempt.host)
              for run_id, a in attempts if a.attempt.status == "completed"}
    rows = []
    labels_cache: dict[str, tuple[tuple[str, str], ...]] = {}
    for attempt_id, metric, value, unit, labels_json in conn.execute(
            "SELECT r.attempt_id, r.metric, r.value, r.unit, r.labels_json"  # noqa: S608
            " FROM results r JOIN attempts a ON a.attempt_id = r.attempt_id"
            f" WHERE a.run_id IN ({marks}) AND a.attempt_id > ? AND a.status = 'completed'"
            " ORDER BY r.rowid", params):
        labels = _labels(labels_json, labels_cache)
        owner = owners.get(attempt_id)
        if owner is None:  # committed after the attempts were read: the next increment's
            continue
        run_id, case_id, repetition, host = owner
        rows.append((run_id, ResultRow(case_id, repetition, host, str(metric),
                                       None if value is None else float(value), str(unit),
                                       labels)))
    return tuple(rows)


def iter_job_samples(store: Store, run_id: str,
                     series: str | None = None) -> Iterator[tuple[StoredSeries, ...]]:
    """The run's stored sample series (only ``series`` if given), one job at a time: all
    attempts of a job together, jobs in job-key order. Streams: one job in memory at once."""
    where = "" if series is None else " AND s.series = ?"
    rows = store._connection.execute(
        "SELECT a.job_key, s.attempt_id, a.host, s.series, s.labels_json,"  # noqa: S608
        " s.wall_unix_seconds, s.value FROM samples s JOIN attempts a"
        f" ON a.attempt_id = s.attempt_id WHERE a.run_id = ?{where}"
        " ORDER BY a.job_key, s.attempt_id, s.rowid",
        (run_id,) if series is None else (run_id, series))
    job: object = None
    groups: dict[tuple[int, str, str, str], list[tuple[float, float | None]]] = {}
    labels_cache: dict[str, tuple[tuple[str, str], ...]] = {}
    for job_key, attempt_id, host, name, labels_json, wall, value in rows:
        if job_key != job:
            if groups:
                yield _job_series(str(job), groups, labels_cache)
            job, groups = job_key, {}
        key = (attempt_id, host, name, labels_json)
        points = groups.get(key)
        if points is None:
            points = groups[key] = []
        points.append((wall, value))
    if groups:
        yield _job_series(str(job), groups, labels_cache)


def _job_series(job_key: str,
                groups: dict[tuple[int, str, str, str], list[tuple[float, float | None]]],
                labels_cache: dict[str, tuple[tuple[str, str], ...]]
                ) -> tuple[StoredSeries, ...]:
    job = JobKey.parse(job_key)
    return tuple(StoredSeries(job.case_id, job.repetition, str(host), str(name),
                              _labels(labels_json, labels_cache), tuple(points))
                 for (_, host, name, labels_json), points in groups.items())


def _labels(labels_json: str, cache: dict[str, tuple[tuple[str, str], ...]]
            ) -> tuple[tuple[str, str], ...]:
    """A stored labels object as sorted (name, value) pairs, parsed once per distinct text."""
    labels = cache.get(labels_json)
    if labels is None:
        labels = cache[labels_json] = tuple(sorted(
            (str(k), str(v)) for k, v in json.loads(labels_json).items()))
    return labels


def stored_series_names(store: Store, run_id: str) -> tuple[str, ...]:
    """The names of the sample series stored for the run's attempts (none: not sampled)."""
    return tuple(str(r[0]) for r in store._connection.execute(
        "SELECT DISTINCT s.series FROM samples s JOIN attempts a"
        " ON a.attempt_id = s.attempt_id WHERE a.run_id = ? ORDER BY s.series", (run_id,)))
