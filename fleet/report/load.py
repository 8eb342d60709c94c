"""Reads what a report needs from the store: runs, case settings, host facts, series.

A host's facts are the snapshot whose fingerprint its attempts recorded (the newest such), else
its newest snapshot taken before the run ended, else none (the report says so).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.codec import case_settings
from fleet.config.compare import DEFAULT_COMPARE, CompareConfig
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError
from fleet.model import Facts
from fleet.report.assemble import RunRecords
from fleet.report.series import SeriesChoice
from fleet.runs import SeriesPoint
from fleet.store import Store
from fleet.store.report_reads import facts_before, facts_with_fingerprint
from fleet.store.runs import load_run, load_samples, run_plan, sample_counts


def load_records(store: Store, run_id: str) -> RunRecords:
    """StoreError (one line) for an unknown run id."""
    detail = load_run(store, run_id).one_completed_per_job()
    suite_text, plan = run_plan(store, run_id)
    settings = {case_id: case_settings(plan, case_id, params_json)
                for case_id, _, params_json in detail.cases}
    workloads = {case_id: workload for case_id, workload, _ in detail.cases}
    return RunRecords(detail, settings, workloads, *_compare(suite_text, detail.info.suite_path))


def _compare(suite_text: str, source: str) -> tuple[dict[str, CompareConfig], CompareConfig]:
    """Each workload entry's compare settings from the suite text recorded with the run
    (defaults when the text no longer parses, e.g. written by another fleet version)."""
    try:
        suite = parse_suite(suite_text, source=source)
    except ConfigError:
        return {}, DEFAULT_COMPARE
    return {e.name: e.compare for e in suite.entries}, suite.compare


def load_facts(store: Store, runs: Sequence[RunRecords]) -> dict[str, Facts | None]:
    wanted: dict[str, set[str]] = {}
    ended = 0.0
    for run in runs:
        info = run.detail.info
        ended = max(ended, info.finished_at_unix_seconds or info.created_at_unix_seconds)
        for stored in run.detail.attempts:
            prints = wanted.setdefault(stored.attempt.host, set())
            if stored.attempt.fingerprint:
                prints.add(stored.attempt.fingerprint)
            ended = max(ended, stored.attempt.ended_at_unix_seconds)
    return {host: _host_facts(store, host, prints, ended) for host, prints in wanted.items()}


def _host_facts(store: Store, host: str, prints: set[str], ended: float) -> Facts | None:
    found = facts_with_fingerprint(store, host, prints)
    return found if found is not None else facts_before(store, host, ended)


def load_counts(store: Store, runs: Sequence[RunRecords]) -> list[dict[int, dict[str, int]]]:
    return [sample_counts(store, run.detail.info.run_id) for run in runs]


def load_chosen_samples(store: Store, choices: Sequence[SeriesChoice]
                        ) -> list[tuple[SeriesChoice, tuple[SeriesPoint, ...]]]:
    return [(c, load_samples(store, c.attempt_id)) for c in choices]
