"""What reports and comparisons read besides run records: the facts snapshots behind
attempts' fingerprints, earlier runs of a suite."""

from __future__ import annotations

import json
from collections.abc import Collection

from fleet.codec import facts_from_json_data
from fleet.model import Facts
from fleet.store.db import Store


def facts_with_fingerprint(store: Store, host: str, fingerprints: Collection[str]
                           ) -> Facts | None:
    """The newest snapshot of ``host`` with one of these fingerprints (None: no such)."""
    if not fingerprints:
        return None
    marks = ",".join("?" * len(fingerprints))
    row = store._connection.execute(
        "SELECT facts_json FROM facts_snapshots WHERE host = ?"  # noqa: S608 (? marks)
        f" AND fingerprint IN ({marks}) ORDER BY id DESC LIMIT 1",
        (host, *sorted(fingerprints))).fetchone()
    return None if row is None else facts_from_json_data(json.loads(row[0]))


def facts_before(store: Store, host: str, unix_seconds: float) -> Facts | None:
    """The newest snapshot of ``host`` collected at or before ``unix_seconds``."""
    row = store._connection.execute(
        "SELECT facts_json FROM facts_snapshots WHERE host = ?"
        " AND collected_at_unix_seconds <= ? ORDER BY id DESC LIMIT 1",
        (host, unix_seconds)).fetchone()
    return None if row is None else facts_from_json_data(json.loads(row[0]))


def earlier_completed_runs(store: Store, run_id: str, count: int) -> tuple[str, ...]:
    """The newest ``count`` completed runs of ``run_id``'s suite created before it (not
    itself), oldest first; none for an unknown run."""
    conn = store._connection
    row = conn.execute("SELECT suite, created_at_unix_seconds FROM runs WHERE run_id = ?",
                       (run_id,)).fetchone()
    if row is None:
        return ()
    ids = [str(r[0]) for r in conn.execute(
        "SELECT run_id FROM runs WHERE suite = ? AND status = 'completed' AND run_id != ?"
        " AND created_at_unix_seconds <= ? ORDER BY created_at_unix_seconds DESC,"
        " run_id DESC LIMIT ?", (row[0], run_id, row[1], count))]
    return tuple(reversed(ids))
