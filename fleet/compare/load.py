"""Read what comparisons need from the store: runs with their cases, results and the facts
behind each attempt's fingerprint; run tags and baseline references."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from fleet.compare.history_check import HistoryKey, history_medians
from fleet.compare.select import LoadedRun
from fleet.model import Facts
from fleet.runs import RunInfo
from fleet.store import Store
from fleet.store.report_reads import earlier_completed_runs, facts_with_fingerprint
from fleet.store.runs import (
    load_completed,
    resolve_ref,
    run_plan,
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
        loaded = []
        for rid in earlier_completed_runs(store, run_id, runs):
            _, attempts = load_completed(store, rid)
            loaded.append((attempts, run_plan(store, rid)[1].cases))
    return history_medians(loaded, hosts)


def _load(store: Store, run_id: str) -> LoadedRun:
    info, attempts = load_completed(store, run_id)
    suite_text, plan = run_plan(store, run_id)
    wanted = {(a.host, a.fingerprint) for a in attempts if a.fingerprint is not None}
    return LoadedRun(info, attempts, plan.cases, suite_text,
                     run_tags(store, [run_id]).get(run_id, {}), facts_by_fingerprint(store, wanted))


def facts_by_fingerprint(store: Store, wanted: set[tuple[str, str]]
                         ) -> dict[tuple[str, str], Facts]:
    """The newest stored snapshot of each (host, fingerprint); missing ones are left out."""
    found: dict[tuple[str, str], Facts] = {}
    for host, fingerprint in sorted(wanted):
        facts = facts_with_fingerprint(store, host, (fingerprint,))
        if facts is not None:
            found[(host, fingerprint)] = facts
    return found
