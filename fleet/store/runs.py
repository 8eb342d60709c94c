"""Runs, jobs, attempts and results in the SQLite store.

Every attempt is written in its own transaction together with its results and sampled series
the moment it ends, so killing the controller (even SIGKILL) loses nothing that had completed.
``load_run`` leaves the series out (they can be large): ``load_samples`` reads one attempt's,
``sample_counts`` summarises a run's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from fleet.codec import plan_from_json
from fleet.errors import StoreError
from fleet.model import Measurement
from fleet.runs import (
    Attempt,
    CompletedAttempt,
    JobKey,
    KnobState,
    RunDetail,
    RunInfo,
    RunStatus,
    SeriesPoint,
    StoredAttempt,
    StoredPlan,
)
from fleet.store.db import Store
from fleet.store.owner import Owner, claims, insert_owner, unclaim
from fleet.variant import identity_from_json

_RUN_COLUMNS = ("run_id, suite, suite_path, suite_sha256, seed, inventory_json, limit_pattern,"
                " fleet_version, created_at_unix_seconds, finished_at_unix_seconds, status")


def create_run(store: Store, info: RunInfo, *, suite_text: str, plan_json: str,
               cases: Sequence[tuple[str, str, str]], jobs: Sequence[JobKey],
               skipped: Sequence[tuple[str, str]], owner: Owner | None = None,
               unreachable: Sequence[tuple[str, str]] = (),
               tags: Mapping[str, str] | None = None) -> None:
    """Record a new run with its cases (id, workload, params JSON), jobs, skips, the hosts it
    could not use (host, reason), its owner (fleet.store.owner) and its tags, atomically."""
    try:
        with store.transaction() as conn:
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, suite_text, plan_json)"  # noqa: S608 (constant)
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (info.run_id, info.suite, info.suite_path, info.suite_sha256, info.seed,
                 json.dumps(list(info.inventory)), info.limit_pattern, info.fleet_version,
                 info.created_at_unix_seconds, info.finished_at_unix_seconds, info.status,
                 suite_text, plan_json))
            conn.executemany("INSERT INTO run_cases VALUES (?, ?, ?, ?)",
                             [(info.run_id, *c) for c in cases])
            conn.executemany("INSERT INTO run_jobs VALUES (?, ?, ?)",
                             [(info.run_id, j.text, i) for i, j in enumerate(jobs)])
            conn.executemany("INSERT INTO run_skips VALUES (?, ?, ?)",
                             [(info.run_id, *s) for s in skipped])
            _add_unreachable(conn, info.run_id, unreachable, info.created_at_unix_seconds)
            if owner is not None:
                insert_owner(conn, info.run_id, owner)
            _insert_tags(conn, info.run_id, tags or {})
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"run {info.run_id} cannot be recorded: {exc}", where=str(store.path),
                         hint="run ids are unique; nothing was written") from exc


def record_attempt(store: Store, attempt: Attempt) -> int:
    """Write one attempt and its measurements, and drop its job's claim, in one transaction;
    returns its id."""
    with store.transaction() as conn:
        unclaim(conn, attempt.run_id, attempt.job, attempt.attempt_no)
        cur = conn.execute(
            "INSERT INTO attempts (run_id, job_key, host, attempt_no, status,"
            " started_at_unix_seconds, ended_at_unix_seconds, exit_code, signal, stdout, stderr,"
            " stdout_truncated, stderr_truncated, fingerprint, knobs_json, error, notes,"
            " variant_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (attempt.run_id, attempt.job.text, attempt.host, attempt.attempt_no, attempt.status,
             attempt.started_at_unix_seconds, attempt.ended_at_unix_seconds, attempt.exit_code,
             attempt.signal, attempt.stdout, attempt.stderr, int(attempt.stdout_truncated),
             int(attempt.stderr_truncated), attempt.fingerprint,
             json.dumps([asdict(k) for k in attempt.knobs]), attempt.error, attempt.notes,
             attempt.variant.to_json() if attempt.variant is not None else None))
        attempt_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?)",
            [(attempt_id, m.metric, m.value, m.unit, json.dumps(dict(m.labels), sort_keys=True))
             for m in attempt.measurements])
        labels: dict[tuple[tuple[str, str], ...], str] = {}
        conn.executemany(
            "INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?)",
            [(attempt_id, p.series,
              labels.setdefault(p.labels, json.dumps(dict(p.labels), sort_keys=True)),
              p.monotonic_seconds, p.wall_unix_seconds, p.value)
             for p in attempt.samples])
    return attempt_id


def load_samples(store: Store, attempt_id: int) -> tuple[SeriesPoint, ...]:
    """One attempt's sampled series, by series, labels and time."""
    rows = store._connection.execute(
        "SELECT series, labels_json, monotonic_seconds, wall_unix_seconds, value FROM samples"
        " WHERE attempt_id = ? ORDER BY series, labels_json, monotonic_seconds", (attempt_id,))
    return tuple(SeriesPoint(str(r[0]), tuple(sorted(json.loads(r[1]).items())), float(r[2]),
                             float(r[3]), None if r[4] is None else float(r[4])) for r in rows)


def sample_counts(store: Store, run_id: str) -> dict[int, dict[str, int]]:
    """attempt id -> {series: stored points} for every attempt of the run that has samples."""
    counts: dict[int, dict[str, int]] = {}
    for r in store._connection.execute(
            "SELECT s.attempt_id, s.series, COUNT(*) FROM samples s JOIN attempts a"
            " ON a.attempt_id = s.attempt_id WHERE a.run_id = ?"
            " GROUP BY s.attempt_id, s.series ORDER BY s.attempt_id, s.series", (run_id,)):
        counts.setdefault(int(r[0]), {})[str(r[1])] = int(r[2])
    return counts


def set_run_status(store: Store, run_id: str, status: RunStatus,
                   finished_at_unix_seconds: float | None) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE runs SET status = ?, finished_at_unix_seconds = ? WHERE run_id = ?",
                     (status, finished_at_unix_seconds, run_id))


def list_runs(store: Store) -> tuple[RunInfo, ...]:
    rows = store._connection.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608 (constant columns)
        " ORDER BY created_at_unix_seconds, run_id").fetchall()
    return tuple(_run_info(r) for r in rows)


def run_suite_text(store: Store, run_id: str) -> tuple[str, str]:
    """(suite_text, plan_json) of a run as stored (run_plan decodes the plan)."""
    row = store._connection.execute(
        "SELECT suite_text, plan_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        raise _unknown_run(store, run_id)
    return str(row[0]), str(row[1])


def run_plan(store: Store, run_id: str) -> tuple[str, StoredPlan]:
    """(suite text, plan) recorded with the run; StoreError for an unknown run or a plan
    this fleet cannot read."""
    suite_text, plan_json = run_suite_text(store, run_id)
    return suite_text, plan_from_json(plan_json, where=f"{store.path}: run {run_id}")


def load_run(store: Store, run_id: str) -> RunDetail:
    conn = store._connection
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?",  # noqa: S608
                       (run_id,)).fetchone()
    if row is None:
        raise _unknown_run(store, run_id)
    jobs, skipped, cases = run_plan_rows(conn, run_id)
    return RunDetail(_run_info(row), jobs, _attempts(conn, run_id), skipped, cases,
                     run_unreachable(conn, run_id), claims(conn, run_id))


def run_unreachable(conn: sqlite3.Connection, run_id: str) -> tuple[tuple[str, str], ...]:
    """(host, reason) of each host the run could not use, by host."""
    return tuple((str(r[0]), str(r[1])) for r in conn.execute(
        "SELECT host, reason FROM run_unreachable WHERE run_id = ? ORDER BY host", (run_id,)))


def set_unreachable(store: Store, run_id: str, *, reachable: Sequence[str],
                    unreachable: Sequence[tuple[str, str]], now_unix_seconds: float) -> None:
    """A resume's view of its hosts: the reachable ones are no longer recorded unreachable,
    the unreachable ones are (with this reason)."""
    with store.transaction() as conn:
        conn.executemany("DELETE FROM run_unreachable WHERE run_id = ? AND host = ?",
                         [(run_id, h) for h in reachable])
        _add_unreachable(conn, run_id, unreachable, now_unix_seconds)


def _add_unreachable(conn: sqlite3.Connection, run_id: str,
                     unreachable: Sequence[tuple[str, str]], now_unix_seconds: float) -> None:
    conn.executemany("INSERT OR REPLACE INTO run_unreachable VALUES (?, ?, ?, ?)",
                     [(run_id, h, why, now_unix_seconds) for h, why in unreachable])


def run_plan_rows(conn: sqlite3.Connection, run_id: str) -> tuple[
        tuple[JobKey, ...], tuple[tuple[str, str], ...], tuple[tuple[str, str, str], ...]]:
    """What a run fixed when it was created: its jobs in order, its skips (case_id, reason)
    and its cases (case_id, workload, params as JSON)."""
    jobs = tuple(JobKey.parse(r[0]) for r in conn.execute(
        "SELECT job_key FROM run_jobs WHERE run_id = ? ORDER BY position", (run_id,)))
    skipped = tuple((str(r[0]), str(r[1])) for r in conn.execute(
        "SELECT case_id, reason FROM run_skips WHERE run_id = ? ORDER BY rowid", (run_id,)))
    cases = tuple((str(r[0]), str(r[1]), str(r[2])) for r in conn.execute(
        "SELECT case_id, workload, params_json FROM run_cases WHERE run_id = ? ORDER BY rowid",
        (run_id,)))
    return jobs, skipped, cases


def _attempts(conn: sqlite3.Connection, run_id: str) -> tuple[StoredAttempt, ...]:
    results: dict[int, list[Measurement]] = {}
    for r in conn.execute(
            "SELECT r.attempt_id, r.metric, r.value, r.unit, r.labels_json FROM results r"
            " JOIN attempts a ON a.attempt_id = r.attempt_id WHERE a.run_id = ?"
            " ORDER BY r.rowid", (run_id,)):
        labels = tuple(sorted(json.loads(r[4]).items()))
        results.setdefault(int(r[0]), []).append(
            Measurement(str(r[1]), None if r[2] is None else float(r[2]), str(r[3]), labels))
    out = []
    for r in conn.execute(
            "SELECT attempt_id, job_key, host, attempt_no, status, started_at_unix_seconds,"
            " ended_at_unix_seconds, exit_code, signal, stdout, stderr, stdout_truncated,"
            " stderr_truncated, fingerprint, knobs_json, error, notes, variant_json FROM attempts"
            " WHERE run_id = ?"
            " ORDER BY attempt_id", (run_id,)):
        knobs = tuple(KnobState(**k) for k in json.loads(r[14]))
        attempt = Attempt(
            run_id=run_id, job=JobKey.parse(r[1]), host=r[2], attempt_no=r[3], status=r[4],
            started_at_unix_seconds=r[5], ended_at_unix_seconds=r[6], exit_code=r[7],
            signal=r[8], stdout=r[9], stderr=r[10], stdout_truncated=bool(r[11]),
            stderr_truncated=bool(r[12]), fingerprint=r[13], knobs=knobs, error=r[15],
            measurements=tuple(results.get(int(r[0]), ())), notes=r[16],
            variant=identity_from_json(r[17]) if r[17] is not None else None)
        out.append(StoredAttempt(int(r[0]), attempt))
    return tuple(out)


# one completed attempt per job, the latest: a job completed twice (two controllers on one
# run before run ownership existed) counts once
_LATEST_COMPLETED = ("SELECT MAX(attempt_id) FROM attempts WHERE run_id = ?"
                     " AND status = 'completed' GROUP BY job_key")


def load_completed(store: Store, run_id: str) -> tuple[RunInfo, tuple[CompletedAttempt, ...]]:
    """A run's completed attempts (the latest of each job) with their results and knobs
    (quicker than load_run: no output, no frozen records per row). StoreError when the run
    is unknown."""
    conn = store._connection
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?",  # noqa: S608
                       (run_id,)).fetchone()
    if row is None:
        raise _unknown_run(store, run_id)
    labels: dict[str, tuple[tuple[str, str], ...]] = {}
    results: dict[int, list[tuple[str, float | None, str, tuple[tuple[str, str], ...]]]] = {}
    for r in conn.execute(
            "SELECT r.attempt_id, r.metric, r.value, r.unit, r.labels_json FROM results r"  # noqa: S608
            f" WHERE r.attempt_id IN ({_LATEST_COMPLETED}) ORDER BY r.rowid",
            (run_id,)):
        if r[4] not in labels:
            labels[r[4]] = tuple(sorted(json.loads(r[4]).items()))
        results.setdefault(r[0], []).append((r[1], r[2], r[3], labels[r[4]]))
    knobs: dict[str, tuple[KnobState, ...]] = {}
    attempts = []
    for r in conn.execute(
            "SELECT attempt_id, job_key, host, fingerprint, knobs_json, variant_json"  # noqa: S608
            " FROM attempts"
            f" WHERE attempt_id IN ({_LATEST_COMPLETED}) ORDER BY attempt_id",
            (run_id,)):
        if r[4] not in knobs:
            knobs[r[4]] = tuple(KnobState(**k) for k in json.loads(r[4]))
        key = JobKey.parse(str(r[1]))
        attempts.append(CompletedAttempt(r[0], key.case_id, key.repetition, r[2], r[3],
                                         knobs[r[4]], tuple(results.get(r[0], ())),
                                         identity_from_json(r[5]) if r[5] is not None else None))
    return _run_info(row), tuple(attempts)


def _run_info(r: Sequence[object]) -> RunInfo:
    return RunInfo(
        run_id=str(r[0]), suite=str(r[1]), suite_path=str(r[2]), suite_sha256=str(r[3]),
        seed=int(str(r[4])), inventory=tuple(json.loads(str(r[5]))),
        limit_pattern=None if r[6] is None else str(r[6]), fleet_version=str(r[7]),
        created_at_unix_seconds=float(str(r[8])),
        finished_at_unix_seconds=None if r[9] is None else float(str(r[9])),
        status=str(r[10]))  # type: ignore[arg-type]


def _unknown_run(store: Store, run_id: str) -> StoreError:
    known = [r.run_id for r in list_runs(store)][-5:]
    return StoreError(f"no run {run_id!r} in the store", where=str(store.path),
                      hint=f"`fleet runs` lists runs; latest: {', '.join(known) or 'none'}")


def run_job_counts(store: Store) -> dict[str, tuple[int, int]]:
    """run id -> (jobs with a completed attempt, jobs in total), for every run."""
    rows = store._connection.execute(
        "SELECT j.run_id, COUNT(*), SUM(EXISTS (SELECT 1 FROM attempts a WHERE"
        " a.run_id = j.run_id AND a.job_key = j.job_key AND a.status = 'completed'))"
        " FROM run_jobs j GROUP BY j.run_id").fetchall()
    return {str(r[0]): (int(r[2] or 0), int(r[1])) for r in rows}


# ---- run tags (schema 4) ----------------------------------------------------------------------

BRANCH_TAG, PLAIN_TAG = "branch", "tag"


def set_run_tags(store: Store, run_id: str, tags: Mapping[str, str]) -> None:
    """Add or replace tags of a run (one value per key), in one transaction."""
    if store._connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() \
            is None:
        raise _unknown_run(store, run_id)
    with store.transaction() as conn:
        _insert_tags(conn, run_id, tags)


def _insert_tags(conn: sqlite3.Connection, run_id: str, tags: Mapping[str, str]) -> None:
    conn.executemany("INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?, ?, ?)",
                     [(run_id, k, v) for k, v in sorted(tags.items())])


def run_tags(store: Store, run_ids: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """run id -> {key: value} for the given runs (None: every run); untagged runs are absent."""
    tags: dict[str, dict[str, str]] = {}
    wanted = None if run_ids is None else set(run_ids)
    for r in store._connection.execute("SELECT run_id, key, value FROM run_tags ORDER BY key"):
        if wanted is None or r[0] in wanted:
            tags.setdefault(str(r[0]), {})[str(r[1])] = str(r[2])
    return tags


def runs_tagged(store: Store, tags: Sequence[tuple[str, str]], *,
                status: RunStatus | None = None, suite: str | None = None
                ) -> tuple[RunInfo, ...]:
    """Runs carrying every (key, value) in ``tags``, oldest first; optionally of one status
    and one suite name."""
    have = run_tags(store)
    return tuple(info for info in list_runs(store)
                 if all(have.get(info.run_id, {}).get(k) == v for k, v in tags)
                 and (status is None or info.status == status)
                 and (suite is None or info.suite == suite))


def resolve_ref(store: Store, ref: str, *, suite: str | None = None) -> RunInfo:
    """A baseline reference -> one run. In this order:

    1. a run id in the store (any status);
    2. ``KEY=VALUE``: the newest completed run tagged KEY=VALUE;
    3. ``NAME``: the newest completed run tagged branch=NAME or tag=NAME.

    ``suite`` limits 2 and 3 to runs of that suite name. "Newest": latest creation time.
    StoreError when nothing matches.
    """
    known = {info.run_id: info for info in list_runs(store)}
    if ref in known:
        return known[ref]
    if "=" in ref:
        key, value = ref.split("=", 1)
        choices = [(key, value)]
    else:
        choices = [(BRANCH_TAG, ref), (PLAIN_TAG, ref)]
    found = [info for k, v in choices
             for info in runs_tagged(store, [(k, v)], status="completed", suite=suite)]
    if found:
        return max(found, key=lambda i: (i.created_at_unix_seconds, i.run_id))
    wanted = " or ".join(f"{k}={v}" for k, v in choices)
    of_suite = f" of suite {suite}" if suite else ""
    raise StoreError(f"baseline {ref!r}: no run with that id and no completed run{of_suite} "
                     f"tagged {wanted}", where=str(store.path),
                     hint="`fleet runs --tag KEY=VALUE` lists tagged runs; tag a run with "
                          "`fleet run ... --tag branch=main`")
