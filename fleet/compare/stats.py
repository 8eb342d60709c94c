"""Pure two-sample statistics for benchmark results, with a verdict by the metric's direction.

For a baseline and a candidate sample of one metric (one value per completed attempt):

- each side's n, median, quartiles, IQR and CV (stdev / |mean|);
- the relative change of the median, ``(median_c - median_b) / |median_b|`` (None when the
  baseline median is 0), with a seeded percentile-bootstrap confidence interval (both sides
  resampled independently, the same statistic on every resample);
- the two-sided Mann-Whitney U p-value (scipy.stats.mannwhitneyu; exact for small samples
  without ties), robust to outliers and to non-normal timing distributions;
- two effect sizes: Cliff's delta, P(c > b) - P(c < b) in [-1, 1], and the Hodges-Lehmann
  shift, the median of all pairwise differences c - b (in the metric's unit).

A change is *significant* when both sides have at least ``min_repetitions`` values, p < alpha,
the bootstrap interval excludes 0, and the relative change is at least ``threshold_ratio``
(a per-metric threshold, so a statistically real 0.3 % drift does not fail a gate).
Verdicts: ``better`` / ``worse`` (by direction), ``changed`` (significant, metric without a
direction), ``no significant change``, ``insufficient data`` (too few values on a side).
Deterministic: the bootstrap's generator is seeded (Policy.seed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from scipy import stats as sps

from fleet.catalogue import Direction
from fleet.config.compare import Policy
from fleet.model import p_value_text, percent_text

Verdict = Literal["better", "worse", "changed", "no significant change", "insufficient data"]
VERDICTS: tuple[Verdict, ...] = ("better", "worse", "changed", "no significant change",
                                 "insufficient data")
_FloatArray = np.ndarray[tuple[int, ...], np.dtype[np.float64]]


@dataclass(frozen=True)
class Summary:
    """One sample. Every statistic is None when it is undefined (n = 0, or n < 2 for spread)."""

    n: int
    median: float | None
    q1: float | None
    q3: float | None
    iqr: float | None
    mean: float | None
    stdev: float | None  # sample standard deviation (ddof 1)
    cv: float | None  # stdev / |mean|; None when n < 2 or the mean is 0
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class Comparison:
    baseline: Summary
    candidate: Summary
    relative_change: float | None  # (median_c - median_b) / |median_b|
    ci_low: float | None  # bootstrap interval of relative_change, at policy.confidence
    ci_high: float | None
    p_value: float | None  # two-sided Mann-Whitney U
    cliffs_delta: float | None
    hodges_lehmann: float | None  # median of pairwise c - b, in the metric's unit
    significant: bool
    verdict: Verdict
    reason: str  # why, with the numbers: "p=0.0079 < 0.05, +20.1% [+18.0%, +22.3%] ..."


def summarize(values: Sequence[float]) -> Summary:
    """n, median, quartiles (linear interpolation), IQR, mean, stdev, CV, min and max."""
    return summarize_many([values])[0]


def summarize_many(samples: Sequence[Sequence[float]]) -> list[Summary]:
    """summarize() of each sample; samples of equal size are done together."""
    out: list[Summary | None] = [None] * len(samples)
    by_size: dict[int, list[int]] = {}
    for i, values in enumerate(samples):
        by_size.setdefault(len(values), []).append(i)
    for n, indices in by_size.items():
        if n == 0:
            for i in indices:
                out[i] = Summary(0, None, None, None, None, None, None, None, None, None)
            continue
        a = np.sort(np.asarray([samples[i] for i in indices], dtype=np.float64), axis=1)
        q1, median, q3 = np.quantile(a, (0.25, 0.5, 0.75), axis=1).tolist()
        means = a.mean(axis=1).tolist()
        stdevs = a.std(axis=1, ddof=1).tolist() if n >= 2 else [None] * len(indices)
        lows, highs = cast(list[float], a[:, 0].tolist()), cast(list[float], a[:, -1].tolist())
        for k, i in enumerate(indices):
            mean, stdev = means[k], stdevs[k]
            cv = stdev / abs(mean) if stdev is not None and mean != 0 else None
            out[i] = Summary(n, median[k], q1[k], q3[k], q3[k] - q1[k], mean, stdev, cv,
                             lows[k], highs[k])
    return [s for s in out if s is not None]


def relative_change(baseline_median: float | None, candidate_median: float | None
                    ) -> float | None:
    if baseline_median is None or candidate_median is None or baseline_median == 0:
        return None
    return (candidate_median - baseline_median) / abs(baseline_median)


def mann_whitney_p(baseline: Sequence[float], candidate: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value is the same; None if a side is
    empty."""
    if not baseline or not candidate:
        return None
    if min(*baseline, *candidate) == max(*baseline, *candidate):
        return 1.0
    result = sps.mannwhitneyu(candidate, baseline, alternative="two-sided")
    p = float(result.pvalue)
    return None if math.isnan(p) else p


def cliffs_delta(baseline: Sequence[float], candidate: Sequence[float]) -> float | None:
    """P(c > b) - P(c < b) over all pairs: +1 every candidate value is larger."""
    if not baseline or not candidate:
        return None
    signs = np.sign(np.subtract.outer(np.asarray(candidate, dtype=np.float64),
                                      np.asarray(baseline, dtype=np.float64)))
    return float(signs.mean())


def hodges_lehmann(baseline: Sequence[float], candidate: Sequence[float]) -> float | None:
    """The median of all pairwise differences c - b (a robust location shift)."""
    if not baseline or not candidate:
        return None
    diffs = np.subtract.outer(np.asarray(candidate, dtype=np.float64),
                              np.asarray(baseline, dtype=np.float64))
    return float(np.median(diffs))


def bootstrap_interval(baseline: Sequence[float], candidate: Sequence[float], *,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0
                       ) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the relative change of the median (None: a side is
    empty, or the baseline's resampled medians are all 0)."""
    if not baseline or not candidate:
        return None
    low, high = _batch_interval(np.sort(np.asarray([baseline], dtype=np.float64), axis=1),
                                np.sort(np.asarray([candidate], dtype=np.float64), axis=1),
                                confidence, resamples, seed)
    return None if math.isnan(low[0]) else (float(low[0]), float(high[0]))


def median_intervals(samples: Sequence[Sequence[float]], *, policy: Policy | None = None
                     ) -> list[tuple[float, float] | None]:
    """For each sample, the ``policy.confidence`` bootstrap interval of its median (None
    below ``policy.min_repetitions`` values, at least 2). The same draws as
    bootstrap_interval: equal to ``bootstrap_interval([1.0], values)`` shifted by 1."""
    p = policy or Policy()
    out: list[tuple[float, float] | None] = [None] * len(samples)
    by_size: dict[int, list[int]] = {}
    for i, values in enumerate(samples):
        if len(values) >= max(p.min_repetitions, 2):
            by_size.setdefault(len(values), []).append(i)
    tail = (1.0 - p.confidence) / 2.0
    for n, indices in by_size.items():
        positions = _median_positions(n, p.resamples, np.random.default_rng(p.seed))
        for start in range(0, len(indices), _CHUNK):
            chunk = indices[start:start + _CHUNK]
            rows = np.sort(np.asarray([samples[i] for i in chunk], dtype=np.float64), axis=1)
            lows, highs = np.quantile(_resampled_medians(rows, positions), (tail, 1.0 - tail),
                                      axis=1)
            for i, low, high in zip(chunk, lows.tolist(), highs.tolist(), strict=True):
                out[i] = (low, high)
    return out


def compare_samples(baseline: Sequence[float], candidate: Sequence[float],
                    policy: Policy | None = None) -> Comparison:
    """Everything about baseline vs candidate, and the verdict under ``policy``."""
    return compare_many([(baseline, candidate, policy or Policy())])[0]


def compare_many(items: Sequence[tuple[Sequence[float], Sequence[float], Policy]]
                 ) -> list[Comparison]:
    """compare_samples for many pairs at once, with the same results: pairs of equal sizes
    and policy share vectorised bootstrap, Mann-Whitney and effect-size computations."""
    batches: dict[tuple[int, int, int, float, int], list[int]] = {}
    summaries = list(zip(summarize_many([b for b, _, _ in items]),
                         summarize_many([c for _, c, _ in items]), strict=True))
    out: list[Comparison | None] = [None] * len(items)
    for i, (b, c, p) in enumerate(items):
        base, cand = summaries[i]
        if min(base.n, cand.n) < max(p.min_repetitions, 1):
            out[i] = Comparison(base, cand, relative_change(base.median, cand.median), None,
                                None, None, None, None, False, "insufficient data",
                                f"n={base.n} baseline, {cand.n} candidate; at least "
                                f"{p.min_repetitions} per side needed")
        else:
            batches.setdefault((len(b), len(c), p.resamples, p.confidence, p.seed),
                               []).append(i)
    for (_, _, resamples, confidence, seed), indices in batches.items():
        for start in range(0, len(indices), _CHUNK):
            chunk = indices[start:start + _CHUNK]
            bs = np.sort(np.asarray([items[i][0] for i in chunk], dtype=np.float64), axis=1)
            cs = np.sort(np.asarray([items[i][1] for i in chunk], dtype=np.float64), axis=1)
            low, high = _batch_interval(bs, cs, confidence, resamples, seed)
            p_values = _batch_p(bs, cs)
            diffs = cs[:, :, None] - bs[:, None, :]
            deltas = np.sign(diffs).mean(axis=(1, 2))
            shifts = np.median(diffs.reshape(len(chunk), -1), axis=1)
            for k, i in enumerate(chunk):
                out[i] = _judged(items[i][2], summaries[i], (_opt(low[k]), _opt(high[k])),
                                 _opt(p_values[k]), (float(deltas[k]), float(shifts[k])))
    return [o for o in out if o is not None]


_CHUNK = 256  # pairs per vectorised step (bounds memory: chunk x resamples x n floats)


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _batch_interval(b: _FloatArray, c: _FloatArray, confidence: float, resamples: int,
                    seed: int) -> tuple[_FloatArray, _FloatArray]:
    """Per row of SORTED samples: the bootstrap interval of the median's relative change
    (NaN: undefined). One set of resampling draws serves every row of the same sizes."""
    rng = np.random.default_rng(seed)
    mb = _resampled_medians(b, _median_positions(b.shape[1], resamples, rng))
    mc = _resampled_medians(c, _median_positions(c.shape[1], resamples, rng))
    tail = (1.0 - confidence) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        changes = (mc - mb) / np.abs(mb)
    changes[mb == 0] = np.nan
    if np.isnan(changes).any():
        with warnings.catch_warnings():  # a row of NaN (every resampled median 0): NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(changes, (tail, 1.0 - tail), axis=1)
    else:
        low, high = np.quantile(changes, (tail, 1.0 - tail), axis=1)
    return low, high


_IntArray = np.ndarray[tuple[int, ...], np.dtype[np.int64]]


def _median_positions(n: int, resamples: int, rng: np.random.Generator
                      ) -> tuple[_IntArray, _IntArray]:
    """A resample draws n positions of the sorted sample with replacement; sorted, its
    middle draws are the positions of its median (equal for odd n, adjacent for even n).
    n = 1 draws nothing (every resample is the sample)."""
    if n == 1:
        zeros = np.zeros(resamples, dtype=np.int64)
        return zeros, zeros
    picks = np.sort(rng.integers(0, n, size=(resamples, n)), axis=1)
    return picks[:, (n - 1) // 2], picks[:, n // 2]


def _resampled_medians(sorted_rows: _FloatArray, positions: tuple[_IntArray, _IntArray]
                       ) -> _FloatArray:
    low, high = positions
    return np.asarray((sorted_rows[:, low] + sorted_rows[:, high]) / 2.0, dtype=np.float64)


def _batch_p(b: _FloatArray, c: _FloatArray) -> _FloatArray:
    """Two-sided Mann-Whitney p per row (1.0 for rows whose values are all equal); rows with
    and without ties go to scipy separately, so each gets the method it would get alone."""
    both = np.sort(np.concatenate((b, c), axis=1), axis=1)
    constant = both[:, 0] == both[:, -1]
    ties = (np.diff(both, axis=1) == 0).any(axis=1)
    p = np.ones(len(b))
    for rows in (ties & ~constant, ~ties):
        if rows.any():
            p[rows] = sps.mannwhitneyu(c[rows], b[rows], alternative="two-sided",
                                       axis=1).pvalue
    return p


def _judged(p: Policy, sides: tuple[Summary, Summary],
            ci: tuple[float | None, float | None], p_value: float | None,
            effects: tuple[float, float]) -> Comparison:
    (base, cand), (ci_low, ci_high), (delta, shift) = sides, ci, effects
    change = relative_change(base.median, cand.median)
    interval = None if ci_low is None or ci_high is None else (ci_low, ci_high)
    significant, reason = _significance(p, change, interval, p_value, shift)
    return Comparison(base, cand, change, ci_low, ci_high, p_value, delta, shift, significant,
                      _verdict(p.direction, significant, change, shift), reason)


def _significance(p: Policy, change: float | None, interval: tuple[float, float] | None,
                  p_value: float | None, shift: float | None) -> tuple[bool, str]:
    ci = "" if interval is None else \
        f" [{percent_text(interval[0])}, {percent_text(interval[1])}]"
    moved = f"{percent_text(change)}{ci}" if change is not None else f"shift {shift:+.4g}"
    pv = p_value_text(p_value)
    if p_value is None or p_value >= p.alpha:
        return False, f"p={pv} >= {p.alpha:g}, {moved}"
    if interval is not None and interval[0] <= 0.0 <= interval[1]:
        return False, f"p={pv}, {moved}: the interval includes 0"
    if change is not None and abs(change) < p.threshold_ratio:
        return False, f"p={pv}, {moved} within threshold {p.threshold_ratio:.1%}"
    if change is None and not shift:
        return False, f"p={pv}, no shift"
    return True, f"p={pv} < {p.alpha:g}, {moved}, threshold {p.threshold_ratio:.1%}"


def _verdict(direction: Direction, significant: bool, change: float | None,
             shift: float | None) -> Verdict:
    if not significant:
        return "no significant change"
    up = (change if change is not None else shift or 0.0) > 0
    if direction == "neutral":
        return "changed"
    return "worse" if up == (direction == "lower_is_better") else "better"
