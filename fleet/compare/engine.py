"""Pure: groups -> a comparison report. Like for like first (refused unless allowed), then the
statistics of every group under its metric's policy, then the cross-machine view."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fleet.compare.fingerprint import FieldDiff, check_allowed, differences, ignored_fields
from fleet.compare.history_check import HistoryCheck, HistoryKey, check_history, history_key
from fleet.compare.select import CaseKey, Group, Labels
from fleet.compare.stats import Comparison, compare_many
from fleet.config.compare import policy_for


@dataclass(frozen=True)
class Row:
    group: Group
    result: Comparison
    gate: bool  # judged by `fleet gate` (a direction, and not gate: false)
    threshold_ratio: float = 0.0  # the threshold the row was judged with
    threshold_source: str = "suite"  # where it came from (the suite, or the host's noise)
    history: HistoryCheck | None = None  # the gate's history check (None: not asked)


@dataclass(frozen=True)
class Report:
    baseline: str  # what the baseline is, e.g. "run r1" or "r1 kernel=A"
    candidate: str
    axis: str | None
    rows: tuple[Row, ...]
    mismatches: tuple[FieldDiff, ...]  # allowed differences, shown with the results


@dataclass(frozen=True)
class CrossRow:
    """One metric x case x contrast on every host, side by side."""

    metric: str
    unit: str
    labels: Labels
    workload: str
    case: CaseKey
    contrast: str
    cells: tuple[tuple[str, Row], ...]  # (host, row)


def build_report(groups: Sequence[Group], *, baseline: str, candidate: str,
                 axis: str | None = None, allow_mismatch: Collection[str] = (),
                 history: Mapping[HistoryKey, Sequence[float]] | None = None,
                 history_runs: int | None = None) -> Report:
    """MismatchError (fleet.compare.fingerprint) when hosts differ in a field not allowed.

    ``history`` (the gate's): per-run medians of earlier runs by history_key(group); each
    gated row then gets check_history (``history_runs``, else its ``compare.history``), and
    its two-sample test runs at the effective threshold."""
    mismatches = check_allowed(_mismatches(groups, axis), allow_mismatch)
    policies = [policy_for(g.config, g.metric, g.unit, g.labels) for g in groups]
    checks: list[HistoryCheck | None] = []
    for g, (policy, gated) in zip(groups, policies, strict=True):
        runs = g.config.history_runs if history_runs is None else history_runs
        checks.append(None if history is None or not gated or runs <= 0 else
                      check_history(history.get(history_key(g), ()), g.candidate, policy,
                                    runs=runs))
    policies = [(p if c is None else replace(p, threshold_ratio=c.threshold_ratio), gated)
                for (p, gated), c in zip(policies, checks, strict=True)]
    results = compare_many([(g.baseline, g.candidate, policy)
                            for g, (policy, _) in zip(groups, policies, strict=True)])
    rows = tuple(Row(g, result, gated, policy.threshold_ratio,
                     "suite" if check is None else check.threshold_source, check)
                 for g, result, (policy, gated), check
                 in zip(groups, results, policies, checks, strict=True))
    return Report(baseline, candidate, axis, rows, mismatches)


def _mismatches(groups: Sequence[Group], axis: str | None) -> list[FieldDiff]:
    ignore = ignored_fields(axis)
    seen: dict[tuple[object, ...], tuple[FieldDiff, ...]] = {}
    found: dict[tuple[str, str], FieldDiff] = {}
    for g in groups:
        key = (g.host, g.baseline_fields, g.candidate_fields)
        if key not in seen:
            seen[key] = differences(g.host, g.baseline_fields, g.candidate_fields,
                                    ignore=ignore)
        for d in seen[key]:
            found.setdefault((d.host, d.field), d)
    return [found[k] for k in sorted(found)]


def cross_machine(report: Report) -> tuple[CrossRow, ...]:
    rows: dict[tuple[Any, ...], list[tuple[str, Row]]] = {}
    for row in report.rows:
        g = row.group
        rows.setdefault((g.metric, g.unit, g.labels, g.workload, g.case, g.contrast),
                        []).append((g.host, row))
    return tuple(CrossRow(metric, unit, labels, workload, case, contrast,
                          tuple(sorted(cells, key=lambda c: c[0])))
                 for (metric, unit, labels, workload, case, contrast), cells in rows.items())


def case_text(case: CaseKey) -> str:
    return " ".join(f"{k}={v}" for k, v in case) or "-"


def metric_text(metric: str, labels: Labels) -> str:
    shown = [f"{k}={v}" for k, v in labels if k != "source"]
    return f"{metric}{{{','.join(shown)}}}" if shown else metric
