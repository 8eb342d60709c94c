"""fleet.compare.stats on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from fleet.compare.stats import (
    bootstrap_interval,
    cliffs_delta,
    compare_many,
    compare_samples,
    hodges_lehmann,
    mann_whitney_p,
    median_intervals,
    summarize,
)
from fleet.config.compare import Policy


def normal(mean: float, sigma: float, n: int, seed: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(mean, sigma, n)]


def test_summary_of_known_values() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.n, s.median, s.q1, s.q3, s.iqr, s.minimum, s.maximum) == (5, 3, 2, 4, 2, 1, 5)
    assert s.mean == 3.0 and s.stdev == pytest.approx(1.5811388) and s.cv == pytest.approx(
        1.5811388 / 3)
    empty = summarize([])
    assert empty.n == 0 and empty.median is None and empty.cv is None
    one = summarize([2.0])
    assert one.median == 2.0 and one.stdev is None and one.cv is None


def test_identical_samples_are_no_change() -> None:
    values = normal(10.0, 0.5, 10, 1)
    result = compare_samples(values, list(values), Policy("lower_is_better", 0.02))
    assert result.verdict == "no significant change" and not result.significant
    assert result.relative_change == 0.0 and result.p_value == pytest.approx(1.0)
    assert result.cliffs_delta == 0.0 and result.hodges_lehmann == 0.0
    constant = compare_samples([1.0] * 5, [1.0] * 5, Policy("higher_is_better"))
    assert constant.verdict == "no significant change" and constant.p_value == 1.0


@pytest.mark.parametrize(("direction", "sign", "verdict"), [
    ("lower_is_better", +1, "worse"), ("lower_is_better", -1, "better"),
    ("higher_is_better", +1, "better"), ("higher_is_better", -1, "worse"),
    ("neutral", +1, "changed")])
def test_a_five_sigma_shift_is_detected_by_direction(direction: str, sign: int,
                                                     verdict: str) -> None:
    base = normal(100.0, 1.0, 10, 2)
    cand = normal(100.0 + sign * 5.0, 1.0, 10, 3)
    result = compare_samples(base, cand, Policy(direction, 0.01))  # type: ignore[arg-type]
    assert result.significant and result.verdict == verdict
    assert result.p_value is not None and result.p_value < 0.001
    assert result.relative_change == pytest.approx(sign * 0.05, abs=0.01)
    assert result.ci_low is not None and result.ci_high is not None
    assert (result.ci_low > 0) if sign > 0 else (result.ci_high < 0)
    assert result.cliffs_delta == pytest.approx(sign * 1.0, abs=0.05)
    assert result.hodges_lehmann == pytest.approx(sign * 5.0, abs=1.0)


def test_a_shift_below_the_threshold_does_not_count() -> None:
    base = normal(100.0, 0.1, 10, 4)
    cand = normal(101.0, 0.1, 10, 5)  # +1 %, very significant
    result = compare_samples(base, cand, Policy("lower_is_better", 0.05))
    assert result.p_value is not None and result.p_value < 0.001
    assert result.verdict == "no significant change" and "within threshold" in result.reason


@pytest.mark.parametrize(("nb", "nc"), [(2, 10), (10, 2), (2, 2), (0, 5)])
def test_too_few_values_are_insufficient_data(nb: int, nc: int) -> None:
    result = compare_samples(normal(1.0, 0.1, nb, 6), normal(9.0, 0.1, nc, 7),
                             Policy("lower_is_better", min_repetitions=3))
    assert result.verdict == "insufficient data" and not result.significant
    assert result.p_value is None and "at least 3 per side" in result.reason


def test_the_bootstrap_is_seeded_and_brackets_the_change() -> None:
    base, cand = normal(10.0, 1.0, 8, 8), normal(12.0, 1.0, 8, 9)
    first = bootstrap_interval(base, cand, seed=3)
    assert first == bootstrap_interval(base, cand, seed=3)
    assert first is not None and first[0] < 0.2 < first[1]
    assert bootstrap_interval([0.0, 0.0], [1.0, 2.0]) is None


def test_effect_sizes_and_p_value_of_known_samples() -> None:
    assert cliffs_delta([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert cliffs_delta([1.0, 3.0], [2.0]) == 0.0
    assert hodges_lehmann([1.0, 2.0, 3.0], [11.0, 12.0, 13.0]) == 10.0
    # 5 vs 5 fully separated, no ties: exact two-sided p = 2 / C(10, 5)
    assert mann_whitney_p([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert mann_whitney_p([], [1.0]) is None


def test_zero_baseline_uses_the_shift() -> None:
    result = compare_samples([0.0] * 5, [1.0, 1.1, 0.9, 1.0, 1.2], Policy("lower_is_better"))
    assert result.relative_change is None and result.verdict == "worse"


def test_many_at_once_equals_one_at_a_time() -> None:
    pairs = [(normal(10.0, 1.0, 5, i), normal(10.0 + i % 3, 1.0, 5, 100 + i)) for i in range(9)]
    pairs += [([1.0, 1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 2.0, 3.0, 3.0]),  # ties
              ([4.0] * 5, [4.0] * 5), ([0.0] * 5, [0.0, 0.0, 0.0, 1.0, 0.0]),  # zero baseline
              (normal(1.0, 0.1, 2, 1), normal(1.0, 0.1, 7, 2)),  # insufficient
              (normal(1.0, 0.1, 6, 3), normal(1.2, 0.1, 7, 4))]  # other sizes
    policy = Policy("lower_is_better", 0.02)
    many = compare_many([(b, c, policy) for b, c in pairs])
    for (b, c), got in zip(pairs, many, strict=True):
        alone = compare_samples(b, c, policy)
        assert got.verdict == alone.verdict and got.reason == alone.reason
        for name in ("relative_change", "ci_low", "ci_high", "p_value", "cliffs_delta",
                     "hodges_lehmann"):
            assert getattr(got, name) == pytest.approx(getattr(alone, name)), name


def test_one_sample_median_intervals_match_the_two_sample_bootstrap() -> None:
    samples = [normal(5.0, 1.0, n, n) for n in (3, 5, 5, 8, 2, 1, 0)]
    got = median_intervals(samples)
    for values, interval in zip(samples, got, strict=True):
        if len(values) < 3:
            assert interval is None
            continue
        pair = bootstrap_interval([1.0], values)  # quantiles of (median - 1) / 1
        assert pair is not None and interval is not None
        assert interval == pytest.approx((pair[0] + 1.0, pair[1] + 1.0), abs=1e-12)
        assert interval[0] <= summarize(values).median <= interval[1]  # type: ignore[operator]
