"""Derived metrics: counter increases/rates with resets, IPI rates per node, locality, overhead."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.collectors.interrupts import parse_interrupts
from fleet.collectors.numa_maps import parse_numa_maps
from fleet.sampling.formulas import (
    counter_increase,
    counter_rate,
    gauge_growth,
    growth_by_node,
    interval_rates,
    ipi_rates,
    keyed_increase,
    kvm_remote_flush_rate,
    page_table_locality,
    page_tables_on_memory_nodes,
    placement,
    sec_page_tables_per_gib,
    tlb_shootdown_rates,
)

GIB = 1 << 30


def test_plain_counter() -> None:
    found = counter_increase([(0.0, 100), (1.0, 150), (3.0, 250)])
    assert found is not None
    assert (found.increase, found.seconds, found.resets, found.per_second) == (150, 3.0, 0, 50.0)
    assert counter_rate([(0.0, 5)]) is None and counter_rate([]) is None
    assert counter_rate([(2.0, 5), (2.0, 9)]) is None  # no elapsed time: no rate, not 0


def test_value_drop_is_a_reset_counted_from_zero() -> None:
    found = counter_increase([(0.0, 1000), (1.0, 1100), (2.0, 30), (3.0, 80)])
    assert found is not None and (found.increase, found.resets) == (100 + 30 + 50, 1)


def test_boot_id_change_is_a_reset_even_when_the_value_grew() -> None:
    series = [(0.0, 10.0), (1.0, 20.0), (2.0, 500.0)]
    found = counter_increase(series, boot_ids=["a", "a", "b"])
    assert found is not None and (found.increase, found.resets) == (10 + 500, 1)
    unknown = counter_increase(series, boot_ids=["a", None, "b"])
    assert unknown is not None and (unknown.increase, unknown.resets) == (490, 0)


def test_bad_series() -> None:
    with pytest.raises(ValueError, match="backwards"):
        counter_increase([(2.0, 1), (1.0, 2)])
    with pytest.raises(ValueError, match="boot ids"):
        counter_increase([(0.0, 1), (1.0, 2)], boot_ids=["a"])


def test_interval_rates() -> None:
    assert interval_rates([(0.0, 0), (2.0, 10), (2.0, 10), (4.0, 4)]) == ((2.0, 5.0), (4.0, 2.0))


@st.composite
def counter_history(draw: st.DrawFn) -> tuple[list[tuple[float, float]], list[str], float, int]:
    """A counter sampled over time: (series, boot ids, true increase, reset count)."""
    steps = draw(st.lists(st.tuples(st.integers(0, 10**6), st.booleans(),
                                    st.floats(0.001, 100)), min_size=1, max_size=30))
    value, boot, when = draw(st.integers(0, 10**9)), 0, 0.0
    series, boots, true_increase, resets = [(when, float(value))], ["b0"], 0, 0
    for increment, reset, dt in steps:
        when += dt
        if reset:
            boot, value, resets = boot + 1, 0, resets + 1
        value += increment
        true_increase += increment
        series.append((when, float(value)))
        boots.append(f"b{boot}")
    return series, boots, true_increase, resets


@given(counter_history())
def test_resets_with_boot_ids_are_exact(history: tuple[list[tuple[float, float]], list[str],
                                                       float, int]) -> None:
    series, boots, true_increase, resets = history
    found = counter_increase(series, boot_ids=boots)
    assert found is not None
    assert (found.increase, found.resets) == (true_increase, resets)


@given(counter_history())
def test_without_boot_ids_never_negative_and_never_over(
        history: tuple[list[tuple[float, float]], list[str], float, int]) -> None:
    """Resets that leave the value higher are invisible without boot ids: the increase is
    then under-counted (by the value before the reset), never over-counted or negative."""
    series, _, true_increase, resets = history
    found = counter_increase(series)
    assert found is not None
    assert 0 <= found.increase <= true_increase and found.resets <= resets
    if found.resets == resets:  # every reset dropped the value: exact
        assert found.increase == true_increase


# --- IPIs from real /proc/interrupts captures --------------------------------------------------

def test_tlb_rates_between_the_corpus_and_a_later_capture(corpus: Path) -> None:
    """node_exporter's 4-CPU capture, then the same host 10 s later with known increments."""
    text = (corpus / "node_exporter/fixtures/proc/interrupts").read_text()
    before = parse_interrupts(text)
    later = text.replace("TLB:   10460334    9918429   10494258   10345022",
                         "TLB:   10460434    9918429   10494758   10345122")
    after = parse_interrupts(later)
    assert after.per_cpu("TLB") == {0: 10460434, 1: 9918429, 2: 10494758, 3: 10345122}
    rates = tlb_shootdown_rates([(100.0, before), (110.0, after)], cpu_nodes={0: 0, 1: 0,
                                                                              2: 1, 3: 1})
    assert rates is not None and rates.seconds == 10.0
    assert rates.total_per_second == 70.0  # (100 + 0 + 500 + 100) / 10
    assert rates.per_node_per_second == {0: 10.0, 1: 60.0}
    cal = ipi_rates([(100.0, before), (110.0, after)], kind="CAL")
    assert cal is not None and cal.total_per_second == 0.0 and cal.per_node_per_second is None


def test_no_tlb_row_on_arm64_is_unknown(corpus: Path) -> None:
    it = parse_interrupts((corpus / "node_exporter/fixtures/proc/interrupts_aarch64").read_text())
    assert tlb_shootdown_rates([(0.0, it), (1.0, it)]) is None
    res = ipi_rates([(0.0, it), (1.0, it)], kind="RES")
    assert res is not None and res.total_per_second == 0.0


def test_hotplugged_cpu_counts_only_while_present() -> None:
    header = {3: "      CPU0  CPU1  CPU2\n", 2: "      CPU0  CPU2\n"}
    snaps = [(0.0, parse_interrupts(header[3] + "TLB: 10 20 30 TLB shootdowns\n")),
             (1.0, parse_interrupts(header[2] + "TLB: 15 36 TLB shootdowns\n")),
             (2.0, parse_interrupts(header[3] + "TLB: 16 25 37 TLB shootdowns\n"))]
    rates = tlb_shootdown_rates(snaps)
    assert rates is not None and rates.total_per_second == (6 + 7) / 2  # CPU1 never paired
    per_cpu = keyed_increase([(t, s.per_cpu("TLB") or {}) for t, s in snaps])
    assert per_cpu == {0: 6.0, 2: 7.0}


def test_kvm_remote_flush_rate_with_vm_recreated() -> None:
    assert kvm_remote_flush_rate([(0.0, 38863), (10.0, 39863), (20.0, 200)]) == 1200 / 20


# --- SecPageTables growth, locality, overhead, placement ---------------------------------------

def test_growth_by_node_and_reboots() -> None:
    snaps: list[tuple[float, dict[int, int | None]]] = [
        (0.0, {0: 4096, 1: 8192}), (5.0, {0: 8192, 1: None}), (9.0, {0: 20480, 1: 8192})]
    assert growth_by_node(snaps) == {0: 16384, 1: 0}
    assert growth_by_node(snaps, boot_ids=["a", "a", "b"]) == {0: None, 1: None}
    assert gauge_growth([(0.0, None), (1.0, 5.0)]) is None


def test_locality_definitions() -> None:
    memory = {0: 3 * GIB, 1: 1 * GIB}
    assert page_table_locality({0: 3000, 1: 1000}, memory) == 1.0  # same proportions
    assert page_table_locality({0: 4000, 1: 0}, memory) == 0.75  # all on node 0: over its share
    assert page_tables_on_memory_nodes({0: 4000, 1: 0}, memory) == 1.0
    assert page_table_locality({0: 0, 1: 0, 2: 5000}, memory) == 0.0
    assert page_table_locality({0: 2000, 1: -500}, {0: GIB}) == 1.0  # shrinkage not counted
    assert page_table_locality({0: 0, 1: 0}, memory) is None  # nothing grew
    assert page_table_locality({0: 10, 1: None}, memory) is None  # unknown growth
    assert page_table_locality({0: 10}, {0: None}) is None
    assert page_table_locality({0: 10}, {}) is None


def test_overhead_and_placement_from_the_corpus_numa_maps(corpus: Path) -> None:
    lines = [line for line in (corpus / "numa_outputs/numa_maps_real_lines.txt")
             .read_text().splitlines() if line.startswith("7f5")]  # the SNP guest, nodes 2-3
    memory = parse_numa_maps("\n".join(lines)).node_bytes()
    assert memory == {2: 1126 * 4096, 3: 1785 * 4096}
    assert placement(memory, [2, 3]) == 1.0
    assert placement(memory, [3]) == pytest.approx(1785 / 2911)
    assert placement(memory, []) is None and placement({}, [0]) is None
    assert placement({0: None, 1: 5}, [1]) is None
    assert sec_page_tables_per_gib(2 * 1024 * 1024, 4 * GIB) == 512 * 1024
    assert sec_page_tables_per_gib(None, GIB) is None
    assert sec_page_tables_per_gib(4096, 0) is None and sec_page_tables_per_gib(1, None) is None
