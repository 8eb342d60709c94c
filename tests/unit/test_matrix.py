"""Matrix expansion: counts, include/exclude, stable and unique case ids."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config.suite import load_suite, parse_suite
from fleet.errors import ConfigError
from fleet.model import Requirements
from fleet.plan.matrix import case_id, combinations, expand

REPO = Path(__file__).resolve().parents[2]
GIB = 1 << 30

AXIS_NAMES = st.sampled_from(["vcpus", "backing", "size", "numa_balancing_x", "mode"])
AXES = st.dictionaries(AXIS_NAMES, st.lists(st.integers(0, 5), min_size=1, max_size=4,
                                            unique=True), min_size=1, max_size=4)


@st.composite
def matrices(draw: st.DrawFn) -> tuple[dict[str, list[int]], list[dict[str, int]],
                                       list[dict[str, int]]]:
    axes = draw(AXES)
    partial = st.fixed_dictionaries({}, optional={n: st.sampled_from(v) for n, v in axes.items()})
    excludes = draw(st.lists(partial.filter(bool), max_size=4))
    full = st.fixed_dictionaries({n: st.integers(0, 8) for n in axes})  # may leave the domain
    includes = draw(st.lists(full, max_size=4))
    return axes, excludes, includes


@given(matrices())
def test_combinations_are_product_minus_excludes_plus_includes(
        m: tuple[dict[str, list[int]], list[dict[str, int]], list[dict[str, int]]]) -> None:
    axes, excludes, includes = m
    result = combinations(list(axes.items()), exclude=excludes, include=includes)
    as_set = {tuple(sorted(c.items())) for c in result}
    assert len(as_set) == len(result)  # unique
    product = [dict(zip(axes, vals, strict=True)) for vals in itertools.product(*axes.values())]
    excluded = [c for c in product if any(all(c[k] == v for k, v in r.items()) for r in excludes)]
    kept = {tuple(sorted(c.items())) for c in product} - {tuple(sorted(c.items()))
                                                          for c in excluded}
    added = {tuple(sorted(c.items())) for c in includes} - kept
    assert as_set == kept | added
    assert len(result) == math.prod(map(len, axes.values())) - len(excluded) + len(added)


def test_combinations_keep_axis_order_then_includes() -> None:
    result = combinations([("a", [1, 2]), ("b", ["x", "y"])], exclude=[{"a": 2, "b": "x"}],
                          include=[{"a": 3, "b": "z"}, {"a": 1, "b": "x"}])
    assert result == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "y"},
                      {"a": 3, "b": "z"}]


def test_values_compare_by_type() -> None:
    result = combinations([("a", [1, "1", True, 1.0])], exclude=[{"a": True}])
    assert result == [{"a": 1}, {"a": "1"}, {"a": 1.0}]
    ids = {case_id("w", "command", {}, (("a", v),)) for v in (1, "1", True, 1.0)}
    assert len(ids) == 4


def sleep_suite(axes: Mapping[str, Sequence[object]], *, name: str = "s", extra: str = "") -> str:
    return yaml.safe_dump({"schema_version": 1, "name": "t", "workloads": [
        {"name": name, "type": "command", "argv": ["true", *(f"{{{a}}}" for a in axes)],
         "axes": axes}]}, sort_keys=False) + extra


@settings(max_examples=50)
@given(AXES, st.randoms(use_true_random=False))
def test_case_ids_do_not_depend_on_key_order(axes: dict[str, list[int]], rnd: object) -> None:
    import random
    assert isinstance(rnd, random.Random)
    names = list(axes)
    shuffled = dict(rnd.sample(list(axes.items()), len(axes)))
    first = expand(parse_suite(sleep_suite(dict(axes)), source="a.yml"))
    # same argv, axes listed in another order: same cases, same ids
    text = yaml.safe_dump({"workloads": [{"axes": shuffled, "type": "command",
                                          "argv": ["true", *(f"{{{a}}}" for a in names)],
                                          "name": "s"}], "name": "t", "schema_version": 1})
    second = expand(parse_suite(text, source="b.yml"))
    assert {c.case_id: c.params for c in first} == {c.case_id: c.params for c in second}
    assert len({c.case_id for c in first}) == len(first) == math.prod(map(len, axes.values()))


def test_case_id_ignores_repetitions_timeout_and_requirements() -> None:
    plain = expand(parse_suite(sleep_suite({"size": [1, 2]}), source="a.yml"))
    other = expand(parse_suite(sleep_suite({"size": [1, 2]}) + (
        "repetitions: 7\ntimeout_seconds: 3\nrequires: {kvm: true}\n"), source="b.yml"))
    assert [c.case_id for c in plain] == [c.case_id for c in other]
    assert [c.repetitions for c in other] == [7, 7]
    renamed = expand(parse_suite(sleep_suite({"size": [1, 2]}, name="other"), source="c.yml"))
    assert not {c.case_id for c in plain} & {c.case_id for c in renamed}


def test_case_id_is_pinned() -> None:
    # the canonical form: a change here breaks comparisons with every stored run
    argv = ["env", "LC_ALL=C", "dd", "if=/dev/zero", "of=/dev/null", "bs={block_size}",
            "count={volume}", "iflag=count_bytes"]
    canonical = json.dumps(["dd_zero_copy", "command", {"argv": argv},
                            [["block_size", "64K"], ["volume", "256M"]], [], []],
                           separators=(",", ":"))
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    quickstart = expand(load_suite(REPO / "benchmarks" / "quickstart.yml"))
    assert quickstart[0].case_id == expected == "f0e18657ca4611bb"
    assert [c.case_id for c in quickstart[1:]] == [
        "8540497bcf3b069e", "bcb300fbcc5adf9c", "739291c1a470c02a"]
    assert case_id("w", "k", {"b": 1, "a": 2}, (("x", 1),)) == \
        case_id("w", "k", {"a": 2, "b": 1}, (("x", 1),), knobs=(), variant=())


def test_kvm_example_expands_with_conditional_requirements() -> None:
    cases = expand(load_suite(REPO / "benchmarks" / "examples" / "kvm_dirty_log_perf.yml"))
    assert len(cases) == 2 * 3 * 2 - 2 + 1
    by_point = {(dict(c.params)["vcpus"], dict(c.params)["backing"],
                 dict(c.knobs)["numa_balancing"]): c for c in cases}
    base = Requirements(min_numa_nodes=2, kvm=True)
    assert by_point[(16, "anonymous", 1)].requirements == base
    assert by_point[(64, "anonymous_hugetlb_1gb", 0)].requirements == Requirements(
        min_numa_nodes=2, kvm=True, hugepages_1g=True, min_memory_bytes=128 * GIB)
    assert by_point[(96, "anonymous_hugetlb_1gb", 0)].requirements == Requirements(
        min_numa_nodes=2, kvm=True, hugepages_1g=True, min_memory_bytes=128 * GIB,
        min_cpus=96)
    assert (16, "anonymous_hugetlb_1gb", 1) not in by_point
    assert all(c.knobs[1] == ("thp", "madvise") and c.estimate_seconds == 120 for c in cases)
    assert all(c.source.endswith("kvm_dirty_log_perf.yml:18") for c in cases)


def test_knobs_variants_and_sleep_estimates() -> None:
    text = ("schema_version: 1\nname: t\nworkloads:\n  - name: s\n    type: sleep\n"
            "    axes:\n      seconds: [1, 2.5]\n      kernel: [a, b]\n"
            "      nr_hugepages_1g: [0, 4]\n")
    cases = expand(parse_suite(text, source="t.yml"))
    assert len(cases) == 8
    first = cases[0]
    assert (first.params, first.variant, first.knobs) == (
        (("seconds", 1.0),), (("kernel", "a"),), (("nr_hugepages_1g", 0),))
    assert first.estimate_seconds == 1.0 and first.planned_seconds == 1.0
    assert cases[1].requirements == Requirements(hugepages_1g=True)  # 4 x 1 GiB pages
    assert first.requirements == Requirements()


def test_expansion_that_yields_no_case_is_an_error_at_the_entry() -> None:
    text = ("schema_version: 1\nname: t\nworkloads:\n  - name: s\n    type: sleep\n"
            "    axes: {seconds: [1, 2]}\n    exclude: [{seconds: 1}, {seconds: 2}]\n")
    with pytest.raises(ConfigError, match="workload s expands to no case") as info:
        expand(parse_suite(text, source="t.yml"))
    assert info.value.where == "t.yml:4"


def test_rule_values_no_case_has_are_typos() -> None:
    head = ("schema_version: 1\nname: t\nworkloads:\n  - name: s\n    type: sleep\n"
            "    axes: {seconds: [1, 2]}\n")
    with pytest.raises(ConfigError, match=r"exclude names seconds=3\.0, which no case") as info:
        expand(parse_suite(head + "    exclude:\n      - {seconds: 3}\n", source="t.yml"))
    assert info.value.where == "t.yml:8"
    assert info.value.hint == "values of seconds: 1.0, 2.0"
    with pytest.raises(ConfigError, match=r"requires_when match names seconds=4\.0"):
        expand(parse_suite(head + "    requires_when:\n      - match: {seconds: 4}\n"
                                  "        requires: {kvm: true}\n", source="t.yml"))
    # a value brought in by an include is a value some case has
    cases = expand(parse_suite(head + "    include: [{seconds: 4}]\n    requires_when:\n"
                                      "      - match: {seconds: 4}\n"
                                      "        requires: {kvm: true}\n", source="t.yml"))
    assert [c.requirements.kvm for c in cases] == [False, False, True]
