"""The suite's compare: section (fleet.config.compare via fleet.config.suite): values, merging,
file:line errors, and the Policy each metric gets."""

from __future__ import annotations

import pytest

from fleet.config.compare import DEFAULT_COMPARE, policy_for
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError

HEAD = "schema_version: 1\nname: t\n"
ENTRY = "workloads:\n  - name: w\n    type: sleep\n    params: {seconds: 0.1}\n"


def test_defaults_and_values_with_entry_overrides() -> None:
    plain = parse_suite(HEAD + ENTRY, source="s.yml")
    assert plain.compare == DEFAULT_COMPARE and plain.entries[0].compare == DEFAULT_COMPARE
    suite = parse_suite(HEAD + """\
compare:
  min_repetitions: 5
  alpha: 0.01
  threshold: 5%
  metrics:
    elapsed: {direction: lower_is_better}
    ops: {direction: higher_is_better, threshold: 0.02}
workloads:
  - name: w
    type: sleep
    params: {seconds: 0.1}
    compare:
      threshold: 10%
      metrics:
        ops: {gate: false, direction: higher_is_better}
""", source="s.yml")
    top, entry = suite.compare, suite.entries[0].compare
    assert (top.min_repetitions, top.alpha, top.threshold_ratio) == (5, 0.01, 0.05)
    assert (entry.min_repetitions, entry.alpha, entry.threshold_ratio) == (5, 0.01, 0.10)
    policy, gated = policy_for(entry, "elapsed", "s", ())
    assert (policy.direction, policy.threshold_ratio, policy.min_repetitions, gated) == \
        ("lower_is_better", 0.10, 5, True)
    policy, gated = policy_for(entry, "ops", "count", ())
    assert policy.direction == "higher_is_better" and policy.threshold_ratio == 0.10
    assert not gated  # the entry's rule replaced the suite's, gate: false
    assert policy_for(top, "ops", "count", ())[0].threshold_ratio == 0.02


def test_sampler_metrics_take_the_catalogue_direction() -> None:
    sampler = (("source", "sampler"),)
    policy, gated = policy_for(DEFAULT_COMPARE, "tlb_shootdowns_per_second", "per_second",
                               sampler)
    assert policy.direction == "lower_is_better" and gated
    policy, gated = policy_for(DEFAULT_COMPARE, "sampler_samples", "count", sampler)
    assert policy.direction == "neutral" and not gated
    assert policy_for(DEFAULT_COMPARE, "whatever", "s", ())[0].direction == "neutral"


@pytest.mark.parametrize(("body", "line", "words"), [
    ("compare:\n  min_repetitions: 1\n", 4, "must be >= 2"),
    ("compare:\n  alpha: 2\n", 4, "between 0 and 1"),
    ("compare:\n  threshold: lots\n", 4, "ratio or a percentage"),
    ("compare:\n  threshold: -5%\n", 4, "ratio or a percentage"),
    ("compare:\n  nope: 1\n", 4, "nope"),
    ("compare:\n  metrics:\n    x: {direction: down}\n", 5, "lower_is_better"),
    ("compare:\n  metrics:\n    x: {gate: 3}\n", 5, "true or false"),
])
def test_bad_values_name_file_and_line(body: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_suite(HEAD + body + ENTRY, source="s.yml")
    assert caught.value.where is not None and caught.value.where.startswith(f"s.yml:{line}")
    assert words in str(caught.value)
