"""What `fleet history` reads: one metric's results across every stored run, and each run's
case settings (fleet.codec.case_settings: the plan's, else the case's recorded params)."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from fleet.codec import case_settings
from fleet.model import ParamValue
from fleet.store.db import Store
from fleet.store.runs import run_plan


class MetricRow(NamedTuple):
    """One stored result of the latest completed attempt of a job."""

    run_id: str
    created_at_unix_seconds: float
    job_key: str
    host: str
    value: float | None
    unit: str
    labels_json: str


_QUERY = (
    "SELECT a.run_id, r.created_at_unix_seconds, a.job_key, a.host, res.value, res.unit,"
    " res.labels_json FROM results res JOIN attempts a ON a.attempt_id = res.attempt_id"
    " JOIN runs r ON r.run_id = a.run_id WHERE res.metric = ? AND a.status = 'completed'"
    # one completed attempt per job (the latest) counts
    " AND a.attempt_id = (SELECT MAX(b.attempt_id) FROM attempts b WHERE b.run_id = a.run_id"
    " AND b.job_key = a.job_key AND b.status = 'completed')")


def metric_rows(store: Store, metric: str, host: str | None = None) -> list[MetricRow]:
    """Every stored value of ``metric`` (of ``host`` only, if given), by run creation time,
    run id and attempt."""
    sql, args = _QUERY, [metric]
    if host is not None:
        sql, args = sql + " AND a.host = ?", [*args, host]
    rows = store._connection.execute(
        sql + " ORDER BY r.created_at_unix_seconds, r.run_id, a.attempt_id", args).fetchall()
    return [MetricRow(*r) for r in rows]


def runs_case_settings(store: Store, run_ids: Collection[str]
                       ) -> dict[tuple[str, str], dict[str, ParamValue]]:
    """(run id, case id) -> every setting of the case (params, knobs, variant)."""
    out: dict[tuple[str, str], dict[str, ParamValue]] = {}
    for run_id in sorted(run_ids):
        _, plan = run_plan(store, run_id)
        for case_id, params_json in store._connection.execute(
                "SELECT case_id, params_json FROM run_cases WHERE run_id = ?", (run_id,)):
            out[(run_id, case_id)] = case_settings(plan, case_id, params_json)
    return out
