"""Pure: what `fleet gate` asks of a gated row's history (issue 8, item 4).

A row's history is one value per earlier completed run of the same suite (the median of that
run's values for the same metric, labels, workload, case and host; oldest first, the newest
``compare.history`` runs, default 20). The candidate is the gate's own values for the row.

1. **Noise.** The host's noise is the CV of its history in the current regime (the points
   since the history's own last change point, fleet.compare.changes). The row's effective
   threshold is ``max(suite threshold, NOISE_FACTOR x noise CV)``: a host whose run-to-run
   medians wander by 10 % needs a 20 % change before it counts. It is used by the two-sample
   test (instead of the suite's) and by the change-point check below.
2. **Change point.** The candidate's median is appended to the history; when Otava finds a
   change point at that newest point (p < MAX_PVALUE) whose relative change (mean after vs
   mean before) is at least the effective threshold, its direction decides: worse (by the
   metric's direction) fails the gate like a two-sample regression, better is reported.

How they combine (fleet.compare.decide): a row is a regression when the two-sample test says
worse (at the effective threshold) OR the history says worse. With fewer than
MIN_HISTORY_POINTS earlier runs (or ``history: 0``) neither applies: the suite threshold
alone, no change-point check, the gate behaves as without history. With fewer candidate
values than the suite's ``min_repetitions`` the change point is not checked either: a median
of too few repetitions is not a measurement the suite accepts, so the row stays "insufficient
data" (exit 2, fail closed) rather than being failed or passed on history alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fleet.compare.changes import DEFAULT_MAX_PVALUE, ChangePoint, newest_is_change_point
from fleet.compare.select import CaseKey, Group, Labels, case_coords
from fleet.config.compare import Policy
from fleet.model import p_value_text, percent_text
from fleet.runs import CompletedAttempt, PlannedCase

MIN_HISTORY_POINTS = 5  # earlier runs needed before the history counts
NOISE_FACTOR = 2.0  # effective threshold >= this x the host's CV
MAX_PVALUE = DEFAULT_MAX_PVALUE  # Otava's significance for the newest change point
HistoryKey = tuple[str, str, Labels, str, CaseKey, str]  # metric unit labels workload case host
HistoryVerdict = Literal["worse", "better", "changed", "no change", "too short", "not checked"]


@dataclass(frozen=True)
class HistoryCheck:
    points: int  # earlier runs used
    noise_cv: float | None  # the host's CV in its current regime (None: not known)
    suite_threshold_ratio: float
    threshold_ratio: float  # effective: max(suite, NOISE_FACTOR x noise_cv)
    threshold_source: str  # "suite", "host noise (2 x CV 10.0%)", "suite; history 3 of 5 runs"
    change: ChangePoint | None  # the change point at the newest run, if any
    verdict: HistoryVerdict
    reason: str  # with the numbers


def history_key(group: Group) -> HistoryKey:
    """The row's series: its candidate's full case (with the axis value of an axis gate)."""
    return (group.metric, group.unit, group.labels, group.workload,
            group.candidate_case or group.case, group.host)


def history_medians(runs: Sequence[tuple[Sequence[CompletedAttempt],
                                          Mapping[str, PlannedCase]]],
                    hosts: Collection[str] | None = None) -> dict[HistoryKey, tuple[float, ...]]:
    """Earlier runs (oldest first; each its completed attempts and its plan's cases) -> one
    point per run and key: the median of that run's values (None values left out)."""
    out: dict[HistoryKey, list[float]] = {}
    for attempts, cases in runs:
        coords = {cid: (c.workload, case_coords(c)) for cid, c in cases.items()}
        values: dict[HistoryKey, list[float]] = {}
        for a in attempts:
            known = coords.get(a.case_id)
            if known is None or (hosts is not None and a.host not in hosts):
                continue
            for metric, value, unit, labels in a.results:
                if value is not None:
                    values.setdefault((metric, unit, labels, *known, a.host), []).append(value)
        for key, found in values.items():
            out.setdefault(key, []).append(statistics.median(found))
    return {key: tuple(v) for key, v in out.items()}


def check_history(history: Sequence[float], candidate: Sequence[float], policy: Policy, *,
                  runs: int) -> HistoryCheck:
    """``history`` oldest first (the newest ``runs`` are used); ``policy``: the row's policy
    with the suite's threshold."""
    earlier = [float(v) for v in history][-runs:] if runs > 0 else []
    suite = policy.threshold_ratio
    if len(earlier) < MIN_HISTORY_POINTS:
        return HistoryCheck(len(earlier), None, suite, suite,
                            f"suite; history {len(earlier)} of {MIN_HISTORY_POINTS} runs",
                            None, "too short", f"{len(earlier)} earlier run(s); at least "
                            f"{MIN_HISTORY_POINTS} needed")
    values = [float(v) for v in candidate]
    median = statistics.median(values) if values else None
    newest = newest_is_change_point([*earlier, median if median is not None else 0.0],
                                    last=len(earlier), max_pvalue=MAX_PVALUE,
                                    noise_factor=NOISE_FACTOR)
    cv = newest.noise_cv
    noise = None if cv is None else NOISE_FACTOR * cv
    if noise is not None and noise > suite:
        threshold, source = noise, f"host noise ({NOISE_FACTOR:g} x CV {cv:.1%})"
    else:
        threshold = suite
        source = "suite" if cv is not None else "suite; host noise unknown"
    def done(change: ChangePoint | None, verdict: HistoryVerdict, reason: str
             ) -> HistoryCheck:
        return HistoryCheck(len(earlier), cv, suite, threshold, source, change, verdict, reason)

    if median is None or len(values) < max(policy.min_repetitions, 1):
        return done(None, "not checked", f"n={len(values)} candidate values; at least "
                                         f"{policy.min_repetitions} needed")
    change = newest.change
    against = f"against {len(earlier)} earlier runs"
    if change is None:
        return done(None, "no change", f"the newest run is no change point {against} "
                                       f"(p >= {MAX_PVALUE:g})")
    moved = _moved(change)
    if change.relative_change is not None and abs(change.relative_change) < threshold:
        return done(change, "no change", f"{moved} within threshold {threshold:.1%}")
    up = change.mean_after > change.mean_before
    verdict: HistoryVerdict = "changed" if policy.direction == "neutral" else \
        "worse" if up == (policy.direction == "lower_is_better") else "better"
    return done(change, verdict, f"{moved}, threshold {threshold:.1%} ({source}), {against}")


def _moved(change: ChangePoint) -> str:
    return (f"change point at the newest run: mean {change.mean_before:.4g} before, "
            f"{change.mean_after:.4g} after ({percent_text(change.relative_change)}), "
            f"p={p_value_text(change.p_value)}")
