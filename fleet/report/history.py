"""`fleet history`: every stored run as one point per metric x case x host, with change points.

A point is the median of one run's completed attempts' values for that case on that host
(None values are missing, never 0). Runs are ordered by creation time (then run id) and
carry their tags (git_sha, date, kernel... see ``fleet run --tag``). A case is the same case
across runs when its id is (ids hash the workload and every setting).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.compare.changes import ChangePoint, change_points
from fleet.compare.engine import metric_text
from fleet.errors import ConfigError
from fleet.runs import JobKey
from fleet.store import Store
from fleet.store.history_reads import MetricRow, metric_rows, runs_case_settings
from fleet.store.runs import run_tags, runs_tagged
from fleet.workloads.base import format_param_value


@dataclass(frozen=True)
class HistoryQuery:
    store_path: Path
    metric: str
    case_id: str | None = None
    settings: tuple[tuple[str, str], ...] = ()  # the case's settings must include these
    host: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # runs must carry every one
    last: int | None = None  # keep the newest N points of each series


@dataclass(frozen=True)
class HistoryPoint:
    run_id: str
    created_at_unix_seconds: float
    tags: tuple[tuple[str, str], ...]
    value: float
    n: int


@dataclass(frozen=True)
class HistorySeries:
    metric: str  # with its labels, e.g. dirty_memory_seconds{iteration=1}
    unit: str
    case_id: str
    case: str  # the case's settings, k=v, ...
    host: str
    points: tuple[HistoryPoint, ...]
    change_points: tuple[ChangePoint, ...]

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(p.value for p in self.points)


def load_history(query: HistoryQuery) -> tuple[HistorySeries, ...]:
    """ConfigError (one line) when nothing matches: an empty history is not an answer."""
    if not query.store_path.exists():
        raise ConfigError(f"no store at {query.store_path}", where="--store",
                          hint="pass the store the runs were recorded in")
    with Store.open_read(query.store_path) as store:
        rows = _rows(store, query)
        settings = _settings(store, {r[0] for r in rows})
        tags = run_tags(store, sorted({r[0] for r in rows}))
    grouped: dict[tuple[str, str, str, str], dict[str, list[Any]]] = {}
    for run_id, created, job_key, host, value, unit, labels_json in rows:
        case_id = JobKey.parse(job_key).case_id
        labels = json.loads(labels_json)
        if "node" in labels or (query.case_id and case_id != query.case_id):
            continue
        if query.settings and not _matches(settings.get((run_id, case_id), {}), query.settings):
            continue
        key = (metric_text(query.metric, tuple(sorted(labels.items()))), unit, case_id, host)
        grouped.setdefault(key, {}).setdefault(run_id, [created, []])[1].append(value)
    series = [_series(key, runs, tags, settings, query.last) for key, runs in grouped.items()]
    series = [s for s in series if s.points]
    if not series:
        raise ConfigError(f"no history for metric {query.metric!r}{_filters(query)}",
                          where=str(query.store_path),
                          hint="`fleet runs` lists runs; `fleet show RUN_ID` their metrics")
    return tuple(sorted(series, key=lambda s: (s.metric, s.case, s.case_id, s.host)))


def _rows(store: Store, query: HistoryQuery) -> list[MetricRow]:
    rows = metric_rows(store, query.metric, query.host)
    if query.tags:
        allowed = {i.run_id for i in runs_tagged(store, list(query.tags))}
        rows = [r for r in rows if r.run_id in allowed]
    return rows


def _settings(store: Store, run_ids: set[str]) -> dict[tuple[str, str], dict[str, str]]:
    """(run id, case id) -> every setting (params, knobs, variant) as text."""
    return {key: {k: format_param_value(v) for k, v in merged.items()}
            for key, merged in runs_case_settings(store, run_ids).items()}


def _matches(settings: Mapping[str, str], wanted: Sequence[tuple[str, str]]) -> bool:
    return all(settings.get(k) == v for k, v in wanted)


def _series(key: tuple[str, str, str, str], runs: Mapping[str, list[Any]],
            tags: Mapping[str, Mapping[str, str]],
            settings: Mapping[tuple[str, str], Mapping[str, str]],
            last: int | None) -> HistorySeries:
    metric, unit, case_id, host = key
    points = []
    for run_id, (created, values) in runs.items():
        present = [float(v) for v in values if v is not None]
        if present:
            points.append(HistoryPoint(run_id, float(created),
                                       tuple(sorted(tags.get(run_id, {}).items())),
                                       statistics.median(present), len(present)))
    points.sort(key=lambda p: (p.created_at_unix_seconds, p.run_id))
    if last is not None:
        points = points[-last:] if last > 0 else []
    case = ""
    if points:
        known = settings.get((points[-1].run_id, case_id), {})
        case = ", ".join(f"{k}={v}" for k, v in sorted(known.items()))
    return HistorySeries(metric, unit, case_id, case, host, tuple(points),
                         change_points([p.value for p in points]))


def _filters(query: HistoryQuery) -> str:
    parts = [f"case {query.case_id}" if query.case_id else "",
             ", ".join(f"{k}={v}" for k, v in query.settings),
             f"host {query.host}" if query.host else "",
             ", ".join(f"tag {k}={v}" for k, v in query.tags)]
    text = "; ".join(p for p in parts if p)
    return f" ({text})" if text else ""
