"""Read what comparisons need from the store: runs with their cases, results and the facts
behind each attempt's fingerprint; run tags and baseline references."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path

from fleet.codec import facts_from_json_data
from fleet.compare.history_check import HistoryKey, history_medians
from fleet.compare.select import LoadedRun
from fleet.model import Facts
from fleet.runs import RunInfo
from fleet.store import Store
from fleet.store.runs import (
    load_completed,
    resolve_ref,
    run_suite_text,
    run_tags,
    runs_tagged,
)


def tags_by_run(store_path: Path) -> dict[str, dict[str, str]]:
    with Store.open_read(store_path) as store:
        return run_tags(store)


def tagged_runs(store_path: Path, tags: Sequence[tuple[str, str]]) -> tuple[RunInfo, ...]:
    with Store.open_read(store_path) as store:
        return runs_tagged(store, tags)


def resolve(store_path: Path, ref: str, *, suite: str | None = None) -> RunInfo:
    with Store.open_read(store_path) as store:
        return resolve_ref(store, ref, suite=suite)


def load_runs(store_path: Path, refs: Sequence[str]) -> tuple[LoadedRun, ...]:
    """Each REF (run id or tag, see fleet.store.runs.resolve_ref) loaded; StoreError if unknown."""
    with Store.open_read(store_path) as store:
        return tuple(_load(store, resolve_ref(store, ref).run_id) for ref in refs)


def load_history(store_path: Path, run_id: str, *, runs: int,
                 hosts: Collection[str] | None = None) -> dict[HistoryKey, tuple[float, ...]]:
    """The newest ``runs`` completed runs of ``run_id``'s suite created before it, as one
    point (median) per run and metric x labels x workload x case x host, oldest first."""
    if runs <= 0:
        return {}
    with Store.open_read(store_path) as store:
        conn = store.connection
        row = conn.execute("SELECT suite, created_at_unix_seconds FROM runs WHERE run_id = ?",
                           (run_id,)).fetchone()
        if row is None:
            return {}
        ids = [r[0] for r in conn.execute(
            "SELECT run_id FROM runs WHERE suite = ? AND status = 'completed' AND run_id != ?"
            " AND created_at_unix_seconds <= ? ORDER BY created_at_unix_seconds DESC,"
            " run_id DESC LIMIT ?", (row[0], run_id, row[1], runs))]
        loaded = []
        for rid in reversed(ids):
            _, attempts = load_completed(store, rid)
            _, plan_json = run_suite_text(store, rid)
            loaded.append((attempts, json.loads(plan_json).get("cases", {})))
    return history_medians(loaded, hosts)


def _load(store: Store, run_id: str) -> LoadedRun:
    info, attempts = load_completed(store, run_id)
    suite_text, plan_json = run_suite_text(store, run_id)
    plan = json.loads(plan_json)
    wanted = {(a.host, a.fingerprint) for a in attempts if a.fingerprint is not None}
    return LoadedRun(info, attempts, plan.get("cases", {}), suite_text,
                     run_tags(store, [run_id]).get(run_id, {}), facts_by_fingerprint(store, wanted))


def facts_by_fingerprint(store: Store, wanted: set[tuple[str, str]]
                         ) -> dict[tuple[str, str], Facts]:
    """The newest stored snapshot of each (host, fingerprint); missing ones are left out."""
    found: dict[tuple[str, str], Facts] = {}
    for host, fingerprint in sorted(wanted):
        row = store.connection.execute(
            "SELECT facts_json FROM facts_snapshots WHERE host = ? AND fingerprint = ?"
            " ORDER BY id DESC LIMIT 1", (host, fingerprint)).fetchone()
        if row is not None:
            found[(host, fingerprint)] = facts_from_json_data(json.loads(row[0]))
    return found
