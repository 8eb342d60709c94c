"""The exporter's view of the store: opened read-only (``mode=ro``), exporting never creates,
migrates or writes a store. The reads themselves (SQL) are fleet.store.export_reads, which
the exporter and importer call directly; the records they return are in fleet.runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleet.errors import StoreError
from fleet.runs import RunInfo
from fleet.store import Store
from fleet.store.runs import list_runs

FIRST_RUNS_SCHEMA = 2  # migration 2 created runs, attempts and results


def open_read_only(path: Path) -> Store:
    """A read-only Store whose connection may be used from any thread (one at a time)."""
    return Store.open_read(path, oldest=FIRST_RUNS_SCHEMA, any_thread=True)


def select_runs(store: Store, run_ids: Sequence[str], last: int | None) -> tuple[RunInfo, ...]:
    """The runs named (unknown ids are errors), else the ``last`` newest (None: all)."""
    runs = list_runs(store)
    if run_ids:
        by_id = {r.run_id: r for r in runs}
        for run_id in run_ids:
            if run_id not in by_id:
                known = ", ".join(r.run_id for r in runs[-5:]) or "none"
                raise StoreError(f"no run {run_id!r} in the store", where=str(store.path),
                                 hint=f"`fleet runs` lists runs; latest: {known}")
        return tuple(by_id[r] for r in dict.fromkeys(run_ids))
    return runs if last is None else runs[-last:] if last > 0 else ()


