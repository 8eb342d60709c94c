"""Change points in a metric's history, and what a gate asks of it. Pure.

Detection is Apache Otava's (formerly Hunter, ``otava.analysis.compute_change_points``):
E-divisive means split into windows, candidate points tested with Student's t-test and merged
bottom-up (Fleming et al., "Hunter: Using Change Point Detection to Hunt for Performance
Regressions", ICPE 2023). It is made for CI performance series: few points, one value per
run, noisy. The only module that imports otava, and only inside ``change_points``: a module
that imports this one (every compare/ module) does not load otava until a series is checked.

Indices are positions in the series given (0 = oldest); a change point at index i means the
values from i on differ from those before i.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fleet.compare.stats import summarize

DEFAULT_MAX_PVALUE = 0.001
DEFAULT_WINDOW = 50
MIN_POINTS = 3


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first point of the new regime
    mean_before: float
    mean_after: float
    relative_change: float | None  # (after - before) / |before|; None when before is 0
    p_value: float


def change_points(values: Sequence[float], *, max_pvalue: float = DEFAULT_MAX_PVALUE,
                  min_magnitude: float = 0.0, window: int = DEFAULT_WINDOW
                  ) -> tuple[ChangePoint, ...]:
    """Every change point of the series (none below MIN_POINTS values). ``min_magnitude``: a
    relative change smaller than this is not kept unless its p-value passes on its own."""
    clean = [float(v) for v in values]
    if len(clean) < MIN_POINTS or any(not math.isfinite(v) for v in clean):
        return ()
    from otava.analysis import compute_change_points  # loaded on first use (see above)

    found, _ = compute_change_points(clean, window_len=window, max_pvalue=max_pvalue,
                                     min_magnitude=min_magnitude)
    out = []
    for cp in found:
        before, after = float(cp.stats.mean_1), float(cp.stats.mean_2)
        change = (after - before) / abs(before) if before != 0 else None
        out.append(ChangePoint(int(cp.index), before, after, change, float(cp.stats.pvalue)))
    return tuple(sorted(out, key=lambda c: c.index))


@dataclass(frozen=True)
class NewestPoint:
    """The gate's question: is the newest value a change against the last ``window`` runs?"""

    is_change_point: bool
    change: ChangePoint | None  # the change point at the newest index, if any
    history_points: int  # how many earlier points were used
    noise_cv: float | None  # CV of those earlier points (None: fewer than 2)
    min_relative_change: float  # the size a change had to have to count (2 x noise CV)


def newest_is_change_point(values: Sequence[float], *, last: int = 20,
                           max_pvalue: float = DEFAULT_MAX_PVALUE,
                           noise_factor: float = 2.0) -> NewestPoint:
    """``values`` oldest first, newest last. The newest point counts as a change only when
    Otava finds a change point at its index among the last ``last`` + 1 points AND the
    relative change is at least ``noise_factor`` x the CV of the earlier points since their
    own last change point (the host's noise in its current regime), so a noisy host needs a
    larger change before it counts."""
    window = [float(v) for v in values][-(last + 1):]
    earlier = window[:-1]
    regimes = change_points(earlier, max_pvalue=max_pvalue)
    cv = noise_cv(earlier[regimes[-1].index:] if regimes else earlier)
    floor = noise_factor * cv if cv is not None else 0.0
    if len(window) < MIN_POINTS:
        return NewestPoint(False, None, len(earlier), cv, floor)
    found = [c for c in change_points(window, max_pvalue=max_pvalue)
             if c.index == len(window) - 1]
    change = found[0] if found else None
    big = change is not None and (change.relative_change is None
                                  or abs(change.relative_change) >= floor)
    return NewestPoint(big, change, len(earlier), cv, floor)


def noise_cv(values: Sequence[float]) -> float | None:
    """Coefficient of variation (stdev / |mean|) of a host's history; None below 2 points."""
    return summarize([float(v) for v in values]).cv if len(values) >= 2 else None
