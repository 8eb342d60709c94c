"""Pure: the suite's ``compare`` section and the Policy each compared metric gets.

    compare:                     # suite level; a workload entry may have its own
      min_repetitions: 5         # values per side below this: "insufficient data" (default 3)
      alpha: 0.05                # Mann-Whitney p must be below this (default 0.05)
      threshold: 5%              # smallest relative change that counts (0.05 or "5%"; default 0)
      history: 20                # gate: the newest N earlier runs as history (0: off; default 20)
      metrics:                   # per metric (a workload's name or a sampler metric's)
        elapsed_seconds: {direction: lower_is_better, threshold: 10%}
        sampler_agent_cpu_ratio: {gate: false}

A workload entry's ``compare`` overrides the suite's key by key; its ``metrics`` entries
replace the suite's entry of the same name. Directions: lower_is_better, higher_is_better,
neutral. Sampler metrics take their direction from the metric catalogue unless the suite
names them; a workload metric without a direction is neutral (shown, never better/worse).
``gate: false`` keeps a metric out of `fleet gate`'s decision (it is still shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from fleet.catalogue import DIRECTIONS, Direction, lookup
from fleet.yamlnode import Node

DEFAULT_MIN_REPETITIONS = 3
DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Policy:
    """How one metric is judged: its direction, threshold and the test's parameters."""

    direction: Direction = "neutral"
    threshold_ratio: float = 0.0  # |relative change| below this never counts (0.05 = 5 %)
    min_repetitions: int = DEFAULT_MIN_REPETITIONS  # per side
    alpha: float = DEFAULT_ALPHA
    confidence: float = 0.95  # of the bootstrap interval
    resamples: int = 2000
    seed: int = 0

DEFAULT_HISTORY_RUNS = 20
COMPARE_KEYS = ("min_repetitions", "alpha", "threshold", "history", "metrics")
METRIC_KEYS = ("direction", "threshold", "gate")
_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*")


@dataclass(frozen=True)
class MetricRule:
    direction: Direction | None = None
    threshold_ratio: float | None = None
    gate: bool = True


@dataclass(frozen=True)
class CompareConfig:
    min_repetitions: int = DEFAULT_MIN_REPETITIONS
    alpha: float = DEFAULT_ALPHA
    threshold_ratio: float = 0.0
    metrics: tuple[tuple[str, MetricRule], ...] = field(default=())
    history_runs: int = DEFAULT_HISTORY_RUNS  # the gate's history (fleet.compare.history_check)

    def rule(self, metric: str) -> MetricRule | None:
        return dict(self.metrics).get(metric)


DEFAULT_COMPARE = CompareConfig()
HISTORY_MAX_RUNS = 1000


def parse_compare(node: Node | None, default: CompareConfig) -> CompareConfig:
    """``compare:`` at ``node`` (None: not given -> ``default``); ConfigError (file:line)."""
    if node is None:
        return default
    items = node.fields("compare", optional=COMPARE_KEYS)
    config = default
    if "min_repetitions" in items:
        config = replace(config, min_repetitions=items["min_repetitions"].integer(
            "compare.min_repetitions", minimum=2))
    if "alpha" in items:
        alpha = items["alpha"].number("compare.alpha", minimum=0)
        if not 0 < alpha < 1:
            raise items["alpha"].error(f"compare.alpha must be between 0 and 1, not {alpha:g}",
                                       hint="e.g. 0.05")
        config = replace(config, alpha=alpha)
    if "threshold" in items:
        config = replace(config, threshold_ratio=_threshold(items["threshold"]))
    if "history" in items:
        runs = items["history"].integer("compare.history", minimum=0)
        if runs > HISTORY_MAX_RUNS:
            raise items["history"].error(f"compare.history must be <= {HISTORY_MAX_RUNS}, not "
                                         f"{runs}", hint="e.g. 20 (0 turns the history off)")
        config = replace(config, history_runs=runs)
    if "metrics" in items:
        merged = dict(config.metrics)
        for name, rule in items["metrics"].mapping("compare.metrics").items():
            merged[name] = _rule(rule, name)
        config = replace(config, metrics=tuple(sorted(merged.items())))
    return config


def _threshold(node: Node) -> float:
    """``0.05`` or ``"5%"`` -> 0.05; between 0 and 10 (1000 %)."""
    value = node.scalar("threshold")
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value)):
        ratio = float(match.group(1)) / 100.0
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
    else:
        raise node.error(f"threshold must be a ratio or a percentage, not {value!r}",
                         hint="e.g. 0.05 or 5%")
    if not 0 <= ratio <= 10:
        raise node.error(f"threshold must be between 0 and 1000%, not {value!r}",
                         hint="e.g. 0.05 or 5%")
    return ratio


def _rule(node: Node, name: str) -> MetricRule:
    items = node.fields(f"compare.metrics.{name}", optional=METRIC_KEYS)
    direction: Direction | None = None
    if "direction" in items:
        text = items["direction"].string("direction")
        if text not in DIRECTIONS:
            raise items["direction"].error(f"direction of {name} must be one of "
                                           f"{', '.join(DIRECTIONS)}, not {text!r}",
                                           hint="e.g. lower_is_better for times")
        direction = next(d for d in DIRECTIONS if d == text)
    return MetricRule(direction=direction,
                      threshold_ratio=_threshold(items["threshold"])
                      if "threshold" in items else None,
                      gate=items["gate"].boolean("gate") if "gate" in items else True)


def policy_for(config: CompareConfig, metric: str, unit: str,
               labels: tuple[tuple[str, str], ...], *, seed: int = 0) -> tuple[Policy, bool]:
    """(the Policy, whether it counts for the gate) of one stored result series."""
    rule = config.rule(metric) or MetricRule()
    # the catalogue's direction for sampler metrics; workload metrics: neutral
    direction: Direction = rule.direction or lookup(metric, unit, labels).direction
    threshold = rule.threshold_ratio if rule.threshold_ratio is not None \
        else config.threshold_ratio
    policy = Policy(direction=direction, threshold_ratio=threshold,
                    min_repetitions=config.min_repetitions, alpha=config.alpha, seed=seed)
    return policy, rule.gate and direction != "neutral"
