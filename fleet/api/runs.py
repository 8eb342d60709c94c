"""What `fleet runs` and `fleet show` call: runs read from the store alone (no host, no suite
file), so these commands start fast (nothing of the executor, the inventory or the statistics is
imported). A running run whose controller is gone is shown as ``crashed``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.runs import RunDetail, RunInfo
from fleet.store import Store
from fleet.store.owner import Owner, alive_here, run_owners, shown_status
from fleet.store.runs import list_runs, load_run, run_job_counts, run_tags, sample_counts

if TYPE_CHECKING:
    from fleet.execute.events import RunSummary


@dataclass(frozen=True)
class RunListing:
    info: RunInfo
    jobs_done: int
    jobs_total: int


def run_listing(store_path: Path) -> tuple[RunListing, ...]:
    """Every run; a running one whose controller is gone has status ``crashed``."""
    with Store.open_read(store_path) as store:
        counts = run_job_counts(store)
        owners = run_owners(store)
        return tuple(RunListing(_shown(info, owners), *counts.get(info.run_id, (0, 0)))
                     for info in list_runs(store))


def run_detail(store_path: Path, run_id: str) -> tuple[RunDetail, RunSummary]:
    """One run from the store alone (unknown id: StoreError)."""
    from fleet.execute.events import summarize

    with Store.open_read(store_path) as store:
        detail = load_run(store, run_id)
        detail = replace(detail, info=_shown(detail.info, run_owners(store)))
    return detail, summarize(detail)


def _shown(info: RunInfo, owners: Mapping[str, Owner]) -> RunInfo:
    status = shown_status(info.status, owners.get(info.run_id), alive_here)
    return info if status == info.status else replace(info, status="crashed")


def run_sample_counts(store_path: Path, run_id: str) -> dict[int, dict[str, int]]:
    """attempt id -> {series: points stored} (the sampled series, summarised)."""
    with Store.open_read(store_path) as store:
        return sample_counts(store, run_id)


def tags_by_run(store_path: Path) -> dict[str, dict[str, str]]:
    """run id -> its tags, for every tagged run."""
    with Store.open_read(store_path) as store:
        return run_tags(store)
