"""A suite's variant_order: variant groups rotated across hosts and cycled in blocks (A B A B).

Hosts are a real captured lab guest's facts (tests/data/probes/vm-guest-debian-6.1.dump:
Debian 6.1.0-57-amd64, kvm.eager_page_split writable) under three names.
tests/data/plans/ab_seed7_before_variant_order.json is the stored plan of
tests/data/plans/ab.yml (seed 7, hosts h1..h3) computed before variant_order existed.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from fleet.api.plan import plan_suite, plan_summary, provisioning_needed
from fleet.cli.render import plan_view
from fleet.codec import plan_from_data, plan_to_json
from fleet.config.suite import load_suite, parse_suite
from fleet.errors import ConfigError
from fleet.facts.build import build_facts
from fleet.facts.tree import parse_dump
from fleet.hosts import Host
from fleet.model import Facts, Plan, VariantOrder
from fleet.plan.order import split_blocks

DATA = Path(__file__).parents[1] / "data"
AB = DATA / "plans" / "ab.yml"
RELEASES = {"stock-57": "6.1.0-57-amd64", "stock-56": "6.1.0-56-amd64",
            "stock-55": "6.1.0-55-amd64"}


@pytest.fixture(scope="module")
def guest() -> Facts:
    path = DATA / "probes" / "vm-guest-debian-6.1.dump"
    return build_facts("g", parse_dump(path.read_text(encoding="utf-8"), source=str(path)),
                       collected_at_unix_seconds=0.0)


def plan_on(guest: Facts, text: str, count: int = 3, seed: int = 7) -> Plan:
    names = [f"h{i + 1}" for i in range(count)]
    facts = [replace(guest, host=n) for n in names]
    hosts = [Host(n, f"192.0.2.{i + 1}") for i, n in enumerate(names)]
    return plan_suite(parse_suite(text, source="ab.yml"), facts, hosts, seed=seed,
                      where="ab.yml")


def kernels(plan: Plan) -> list[list[object]]:
    return [[dict(g.variant).get("kernel") for g in q.groups] for q in plan.queues]


def suite(order: str = "", reps: int = 4, kernels_: str = "[stock-57, stock-56]",
          extra: str = "") -> str:
    return (f"schema_version: 1\nname: ab\nrepetitions: {reps}\n{order}workloads:\n"
            f"  - name: nap\n    type: sleep\n"
            f"    axes:\n      kernel: {kernels_}\n      seconds: [0.01, 0.02]\n{extra}")


def stored(plan: Plan) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(plan_to_json(plan_from_data(plan_summary(plan))))
    return data


# ---- without variant_order: the plan as before -------------------------------------------------


def test_a_suite_without_the_field_plans_exactly_as_before(guest: Facts) -> None:
    before = json.loads((DATA / "plans" / "ab_seed7_before_variant_order.json").read_text())
    plan = plan_on(guest, AB.read_text())
    assert stored(plan) == before
    assert plan.notes == ()
    assert load_suite(AB).variant_order == VariantOrder()


def test_the_defaults_spelled_out_are_the_plan_as_before(guest: Facts) -> None:
    text = AB.read_text()
    spelled = text + "variant_order: {across_hosts: same, blocks: 1}\n"
    assert stored(plan_on(guest, spelled)) == stored(plan_on(guest, text))


def test_a_suite_without_variants_is_unaffected(guest: Facts) -> None:
    text = ("schema_version: 1\nname: plain\nrepetitions: 4\nworkloads:\n  - name: nap\n"
            "    type: sleep\n    axes:\n      seconds: [0.01, 0.02, 0.03]\n")
    ordered = text + "variant_order: {across_hosts: rotate, blocks: 3}\n"
    assert stored(plan_on(guest, ordered)) == stored(plan_on(guest, text))
    assert plan_on(guest, ordered).notes == ()


# ---- rotate ------------------------------------------------------------------------------------


def test_rotate_counterbalances_two_variants_over_two_and_three_hosts(guest: Facts) -> None:
    text = suite("variant_order: {across_hosts: rotate}\n")
    assert kernels(plan_on(guest, text, count=2)) == [["stock-57", "stock-56"],
                                                     ["stock-56", "stock-57"]]
    assert kernels(plan_on(guest, text, count=3)) == [["stock-57", "stock-56"],
                                                     ["stock-56", "stock-57"],
                                                     ["stock-57", "stock-56"]]
    assert kernels(plan_on(guest, suite(), count=2)) == [["stock-57", "stock-56"]] * 2


def test_rotate_three_variants_on_three_hosts_is_a_latin_square(guest: Facts) -> None:
    text = suite("variant_order: {across_hosts: rotate}\n",
                 kernels_="[stock-57, stock-56, stock-55]")
    assert kernels(plan_on(guest, text, count=3)) == [
        ["stock-57", "stock-56", "stock-55"], ["stock-56", "stock-55", "stock-57"],
        ["stock-55", "stock-57", "stock-56"]]


# ---- blocks ------------------------------------------------------------------------------------


def test_two_blocks_cycle_a_b_a_b_with_the_repetitions_split_evenly(guest: Facts) -> None:
    plan = plan_on(guest, suite("variant_order: {blocks: 2}\n"), count=2)
    assert kernels(plan) == [["stock-57", "stock-56", "stock-57", "stock-56"]] * 2
    for queue in plan.queues:
        for group in queue.groups:  # 2 cases (seconds: 0.01, 0.02) x 2 of their 4 repetitions
            assert sorted(Counter(e.case_id for e in group.entries).values()) == [2, 2]
        # every (case, repetition) once, as without blocks
        assert sorted((e.case_id, e.repetition) for e in queue.entries) == sorted(
            (e.case_id, e.repetition) for e in plan_on(guest, suite(), count=2).queues[0].entries)


def test_uneven_repetitions_split_one_more_into_the_earlier_blocks(guest: Facts) -> None:
    plan = plan_on(guest, suite("variant_order: {blocks: 2}\n", reps=5), count=1)
    sizes = [sorted(Counter(e.case_id for e in g.entries).values()) for g in plan.queues[0].groups]
    assert sizes == [[3, 3], [3, 3], [2, 2], [2, 2]]
    assert split_blocks([(0, 1), (0, 2), (0, 3), (1, 1)], 3) == [
        [(0, 1), (1, 1)], [(0, 2)], [(0, 3)]]
    assert split_blocks([(0, 1), (0, 2)], 5) == [[(0, 1)], [(0, 2)]]  # at most one per run


def test_rotate_and_blocks_together(guest: Facts) -> None:
    text = suite("variant_order: {across_hosts: rotate, blocks: 2}\n")
    assert kernels(plan_on(guest, text, count=2)) == [
        ["stock-57", "stock-56", "stock-57", "stock-56"],
        ["stock-56", "stock-57", "stock-56", "stock-57"]]


def test_a_variant_with_fewer_runs_than_blocks_gets_fewer_and_a_note(guest: Facts) -> None:
    extra = ("  - name: once\n    type: sleep\n    repetitions: 1\n"
             "    params: {seconds: 0.01}\n    variant: {kernel: stock-55}\n")
    plan = plan_on(guest, suite("variant_order: {blocks: 2}\n", extra=extra), count=1)
    assert kernels(plan) == [["stock-57", "stock-56", "stock-55", "stock-57", "stock-56"]]
    assert plan.notes == ("h1: variant kernel=stock-55 runs each case at most 1 time(s) here, "
                          "fewer than variant_order blocks 2: 1 block(s)",)


def test_blocks_of_one_variant_left_alone_are_one_group(guest: Facts) -> None:
    extra = ("  - name: once\n    type: sleep\n    repetitions: 1\n"
             "    params: {seconds: 0.01}\n    variant: {kernel: stock-55}\n")
    plan = plan_on(guest, suite("variant_order: {blocks: 3}\n", reps=6, kernels_="[stock-57]",
                                extra=extra), count=1)
    assert kernels(plan) == [["stock-57", "stock-55", "stock-57"]]
    assert [len(g.entries) for g in plan.queues[0].groups] == [4, 1, 8]
    last = [e.case_id for e in plan.queues[0].groups[2].entries]
    assert all(a != b for a, b in itertools.pairwise(last))  # rounds, no repeat


def test_the_order_is_deterministic_and_the_seed_only_shuffles_within_blocks(guest: Facts
                                                                            ) -> None:
    text = suite("variant_order: {across_hosts: rotate, blocks: 2}\n")
    assert stored(plan_on(guest, text)) == stored(plan_on(guest, text))
    other = plan_on(guest, text, seed=8)
    assert kernels(other) == kernels(plan_on(guest, text))
    assert [[e.case_id for e in q.entries] for q in other.queues] != \
        [[e.case_id for e in q.entries] for q in plan_on(guest, text).queues]


# ---- validation --------------------------------------------------------------------------------

BAD = [
    ("variant_order: {across_hosts: shuffle}\n", 4,
     "variant_order across_hosts must be same or rotate, not 'shuffle'"),
    ("variant_order: {blocks: 0}\n", 4, "variant_order blocks must be >= 1, not 0"),
    ("variant_order: {blocks: two}\n", 4, "variant_order blocks"),
    ("variant_order: {blocks: 5}\n", 4,
     "variant_order blocks 5 is more than the repetitions of any workload with a variant "
     "(at most 4)"),
    ("variant_order: {block: 2}\n", 4, "block"),
    ("variant_order: rotate\n", 4, "variant_order"),
]


@pytest.mark.parametrize(("order", "line", "message"), BAD, ids=[m[:30] for _, _, m in BAD])
def test_bad_variant_order_is_one_line_at_file_line(order: str, line: int, message: str
                                                    ) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(suite(order), source="t.yml")
    error = info.value
    assert message in str(error)
    assert error.where == f"t.yml:{line}"
    assert "\n" not in error.line()
    assert error.hint


# ---- fleet plan: the order per host, and a switch per group ----------------------------------


def test_fleet_plan_shows_the_order_and_each_switch(guest: Facts) -> None:
    """Each host runs stock-57 (its facts): host 1 A B A B: 3 switches (the second A is a
    switch back); host 2 B A B A: 4. After a group, the host is on its variant. The table
    and --json list every group needing one."""
    facts = [replace(guest, host=n) for n in ("h1", "h2")]
    hosts = [Host(n, f"192.0.2.{i + 1}", boot="kexec") for i, n in enumerate(("h1", "h2"))]
    plan = plan_suite(parse_suite(suite("variant_order: {across_hosts: rotate, blocks: 2}\n"),
                                  source="ab.yml"), facts, hosts, seed=7, where="ab.yml")
    releases = {h: dict(RELEASES) for h in ("h1", "h2")}
    declared = {h: {name: "package" for name in RELEASES} for h in ("h1", "h2")}
    needed = provisioning_needed(plan, facts, hosts, releases, declared)
    assert [(g.host, g.group, g.provisioning.steps[0].current, g.provisioning.steps[0].wanted)
            for g in needed] == [
        ("h1", 1, "stock-57", "stock-56"), ("h1", 2, "stock-56", "stock-57"),
        ("h1", 3, "stock-57", "stock-56"),
        ("h2", 0, "6.1.0-57-amd64", "stock-56"), ("h2", 1, "stock-56", "stock-57"),
        ("h2", 2, "stock-57", "stock-56"), ("h2", 3, "stock-56", "stock-57")]
    assert all(g.provisioning.how == "kexec" and g.provisioning.steps[0].by_run
               and len(g.case_ids) == 2 for g in needed)
    data = plan_summary(plan, needed)
    assert [h["order"] for h in data["hosts"]] == [
        ["kernel=stock-57", "kernel=stock-56"] * 2, ["kernel=stock-56", "kernel=stock-57"] * 2]
    assert [[g["how"] for g in h["groups"]] for h in data["hosts"]] == [
        [None, "kexec", "kexec", "kexec"], ["kexec"] * 4]
    assert [p["group"] for p in data["provisioning"]] == [1, 2, 3, 0, 1, 2, 3]
    assert data["notes"] == []
    console = Console(record=True, width=200)
    console.print(plan_view(plan, needed))
    text = console.export_text()
    assert "A B A B" in text and "B A B A" in text
    assert "variant groups: A = kernel=stock-57, B = kernel=stock-56" in text
    assert "kernel=stock-57 (host: stock-56): kexec" in text
    per_host = [line.split("│") for line in text.splitlines() if "│ h" in line and " s " in line]
    assert [(row[1].strip(), row[5].strip()) for row in per_host] == [("h1", "3"), ("h2", "4")]


def test_a_later_group_of_the_same_kernel_variant_is_no_switch(guest: Facts) -> None:
    """kernel stock-56 with two kvm.eager_page_split values: two groups, one switch."""
    text = ("schema_version: 1\nname: same\nworkloads:\n  - name: nap\n    type: sleep\n"
            "    params: {seconds: 0.01}\n"
            "    axes:\n      kernel: [stock-56]\n      kvm.eager_page_split: [Y, N]\n")
    facts = [replace(guest, host="h1")]
    hosts = [Host("h1", "192.0.2.1", boot="kexec")]
    plan = plan_suite(parse_suite(text, source="s.yml"), facts, hosts, seed=1, where="s.yml")
    needed = provisioning_needed(plan, facts, hosts, {"h1": dict(RELEASES)},
                                 {"h1": {n: "package" for n in RELEASES}})
    assert [(g.group, [s.name for s in g.provisioning.steps]) for g in needed] == [
        (0, ["kernel"]), (1, ["kvm.eager_page_split"])]  # the host has Y; N is a knob
