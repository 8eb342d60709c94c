"""Derived metrics over samples taken while a case runs. Pure; missing inputs give None, never 0.

A series is a sequence of ``(monotonic_seconds, value)`` points in time order, optionally
with one boot id per point (``/proc/sys/kernel/random/boot_id``; None: unknown).

Counters (vmstat, /proc/interrupts, KVM stats) only grow, except across a reset:

- **increase** over a series = the sum over consecutive points of ``v1 - v0`` when
  ``v1 >= v0`` and the boot id did not change; otherwise the counter was reset (reboot,
  module reload, VM re-created, CPU counter wrapped) and the interval contributes ``v1``
  (counted from 0), and ``resets`` counts it. A reset that leaves the value higher than
  before is only seen through a boot id change.
- **rate** = increase / (last time - first time); None with fewer than two points or no
  elapsed time.

Gauges (SecPageTables per node) are compared end to end: **growth** = last - first, None if
either end is unknown or the boot id changed in between.

Definitions over a case's window (all per NUMA node n):

- ``G_n = max(0, growth of SecPageTables on node n)`` — new secondary (KVM/IOMMU) page-table
  memory; shrinkage is not counted. ``G = sum_n G_n``.
- ``M_n`` = bytes of the workload's resident memory on node n (numa_maps ``N<n>=`` pages x
  page size, :meth:`fleet.collectors.numa_maps.NumaMaps.node_bytes`); ``M = sum_n M_n``,
  ``w_n = M_n / M``.
- **page-table locality** = ``sum_n min(G_n, w_n * G) / G``: the share of new
  secondary page-table memory that sits on the nodes holding the workload's memory, each
  node counted at most in proportion to the memory it holds. 1.0: page tables grew on the
  memory's nodes in the memory's proportions (all of it local); 0.0: all of it grew on nodes
  holding none of the memory. None if ``G == 0`` (nothing grew), ``M == 0``, or any
  ``G_n``/``M_n`` is unknown. :func:`page_tables_on_memory_nodes` is the unweighted
  variant ``sum_{n: M_n > 0} G_n / G`` (1.0 as soon as no page table grew off those nodes).
- **memory overhead** = SecPageTables bytes per GiB of workload (guest) memory:
  ``bytes / (memory_bytes / 2**30)``; pass the growth over the case for the case's own cost.
- **placement** = ``sum_{n in intended} M_n / M``: the fraction of the workload's resident
  memory on the intended nodes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from fleet.collectors.interrupts import Interrupts, IpiKind, sum_per_node

Point = tuple[float, float]
K = TypeVar("K", bound=Hashable)
GIB = 1 << 30


@dataclass(frozen=True)
class CounterIncrease:
    increase: float
    seconds: float
    resets: int

    @property
    def per_second(self) -> float | None:
        return self.increase / self.seconds if self.seconds > 0 else None


def _check(times: Sequence[float], boot_ids: Sequence[str | None] | None) -> None:
    if boot_ids is not None and len(boot_ids) != len(times):
        raise ValueError(f"{len(boot_ids)} boot ids for {len(times)} points")
    if any(b < a for a, b in pairwise(times)):
        raise ValueError("series times go backwards: sort the points by monotonic time")


def _rebooted(boot_ids: Sequence[str | None] | None, i: int) -> bool:
    """True if the boot id changed between point i-1 and point i (both known)."""
    if boot_ids is None:
        return False
    before, after = boot_ids[i - 1], boot_ids[i]
    return before is not None and after is not None and before != after


def counter_increase(series: Sequence[Point], *,
                     boot_ids: Sequence[str | None] | None = None) -> CounterIncrease | None:
    """Increase of a counter over the series, resets handled (see the module docstring)."""
    if len(series) < 2:
        return None
    _check([t for t, _ in series], boot_ids)
    increase, resets = 0.0, 0
    for i in range(1, len(series)):
        before, after = series[i - 1][1], series[i][1]
        if after < before or _rebooted(boot_ids, i):
            increase += after
            resets += 1
        else:
            increase += after - before
    return CounterIncrease(increase, series[-1][0] - series[0][0], resets)


def counter_rate(series: Sequence[Point], *,
                 boot_ids: Sequence[str | None] | None = None) -> float | None:
    """Mean events per second over the series; None with < 2 points or no elapsed time."""
    found = counter_increase(series, boot_ids=boot_ids)
    return None if found is None else found.per_second


def interval_rates(series: Sequence[Point], *,
                   boot_ids: Sequence[str | None] | None = None) -> tuple[Point, ...]:
    """``(end time, events per second)`` of each interval with elapsed time."""
    rates = []
    for i in range(1, len(series)):
        pair = series[i - 1:i + 1]
        ids = None if boot_ids is None else boot_ids[i - 1:i + 1]
        rate = counter_rate(pair, boot_ids=ids)
        if rate is not None:
            rates.append((series[i][0], rate))
    return tuple(rates)


def gauge_growth(series: Sequence[tuple[float, float | None]], *,
                 boot_ids: Sequence[str | None] | None = None) -> float | None:
    """Last - first value of a gauge; None if an end is unknown or the host rebooted."""
    if len(series) < 2:
        return None
    _check([t for t, _ in series], boot_ids)
    first, last = series[0][1], series[-1][1]
    if first is None or last is None:
        return None
    if any(_rebooted(boot_ids, i) for i in range(1, len(series))):
        return None
    return last - first


def keyed_increase(snapshots: Sequence[tuple[float, Mapping[K, int]]], *,
                   boot_ids: Sequence[str | None] | None = None) -> dict[K, float]:
    """Per key (a CPU, a node...), the counter increase over consecutive snapshots.

    A key contributes only over intervals where both snapshots have it (hot-unplugged CPUs
    leave the interrupts header and come back with their old counts).
    """
    _check([t for t, _ in snapshots], boot_ids)
    totals: dict[K, float] = {}
    for i in range(1, len(snapshots)):
        before, after = snapshots[i - 1][1], snapshots[i][1]
        pair_ids = None if boot_ids is None else boot_ids[i - 1:i + 1]
        for key in after.keys() & before.keys():
            points = ((snapshots[i - 1][0], float(before[key])),
                      (snapshots[i][0], float(after[key])))
            found = counter_increase(points, boot_ids=pair_ids)
            assert found is not None  # two points
            totals[key] = totals.get(key, 0.0) + found.increase
    return totals


@dataclass(frozen=True)
class IpiRates:
    """IPIs received per second over a window: all CPUs, and per NUMA node of the receiver."""

    kind: str
    seconds: float
    total_per_second: float | None
    per_node_per_second: Mapping[int, float] | None  # None without a cpu -> node map


def ipi_rates(snapshots: Sequence[tuple[float, Interrupts]], *, kind: IpiKind = "TLB",
              cpu_nodes: Mapping[int, int] | None = None,
              boot_ids: Sequence[str | None] | None = None) -> IpiRates | None:
    """Rates of the TLB (or CAL/RES) IPI row; None if a snapshot lacks it or < 2 snapshots."""
    per_cpu = []
    for when, interrupts in snapshots:
        counts = interrupts.ipi_per_cpu(kind)
        if counts is None:
            return None
        per_cpu.append((when, counts))
    if len(per_cpu) < 2:
        return None
    increases = keyed_increase(per_cpu, boot_ids=boot_ids)
    seconds = per_cpu[-1][0] - per_cpu[0][0]
    if seconds <= 0:
        return IpiRates(kind, seconds, None, None)
    per_node = None
    if cpu_nodes is not None:
        sums = sum_per_node({cpu: round(v) for cpu, v in increases.items()}, cpu_nodes)
        per_node = {node: v / seconds for node, v in sums.items()}
    return IpiRates(kind, seconds, sum(increases.values()) / seconds, per_node)


def tlb_shootdown_rates(snapshots: Sequence[tuple[float, Interrupts]], *,
                        cpu_nodes: Mapping[int, int] | None = None,
                        boot_ids: Sequence[str | None] | None = None) -> IpiRates | None:
    """TLB shootdown IPIs per second, total and per node (None where the arch has no row)."""
    return ipi_rates(snapshots, kind="TLB", cpu_nodes=cpu_nodes, boot_ids=boot_ids)


def kvm_remote_flush_rate(series: Sequence[Point], *,
                          boot_ids: Sequence[str | None] | None = None) -> float | None:
    """KVM ``remote_tlb_flush`` per second (a VM's or the global sum); resets handled."""
    return counter_rate(series, boot_ids=boot_ids)


def growth_by_node(snapshots: Sequence[tuple[float, Mapping[int, int | None]]], *,
                   boot_ids: Sequence[str | None] | None = None) -> dict[int, float | None]:
    """Per node gauge growth (SecPageTables bytes), first to last snapshot."""
    nodes = sorted({n for _, values in snapshots for n in values})
    return {n: gauge_growth([(t, values.get(n)) for t, values in snapshots], boot_ids=boot_ids)
            for n in nodes}


def _known(values: Mapping[int, float | None]) -> dict[int, float] | None:
    if any(v is None for v in values.values()):
        return None
    return {n: float(v) for n, v in values.items() if v is not None}


def page_table_locality(growth: Mapping[int, float | None],
                        memory_bytes: Mapping[int, int | None]) -> float | None:
    """``sum_n min(G_n, w_n G) / G`` (module docstring); None when undefined."""
    grown, memory = _known(growth), _known(memory_bytes)
    if grown is None or memory is None:
        return None
    positive = {n: max(0.0, g) for n, g in grown.items()}
    total_growth, total_memory = sum(positive.values()), sum(memory.values())
    if total_growth <= 0 or total_memory <= 0:
        return None
    local = sum(min(g, memory.get(n, 0.0) / total_memory * total_growth)
                for n, g in positive.items())
    return local / total_growth


def page_tables_on_memory_nodes(growth: Mapping[int, float | None],
                                memory_bytes: Mapping[int, int | None]) -> float | None:
    """``sum_{n: M_n > 0} G_n / G``: page-table growth on any node holding workload memory."""
    grown, memory = _known(growth), _known(memory_bytes)
    if grown is None or memory is None or sum(memory.values()) <= 0:
        return None
    positive = {n: max(0.0, g) for n, g in grown.items()}
    total = sum(positive.values())
    if total <= 0:
        return None
    return sum(g for n, g in positive.items() if memory.get(n, 0.0) > 0) / total


def sec_page_tables_per_gib(sec_page_tables_bytes: float | None,
                            memory_bytes: float | None) -> float | None:
    """Memory overhead: SecPageTables bytes per GiB of workload/guest memory."""
    if sec_page_tables_bytes is None or memory_bytes is None or memory_bytes <= 0:
        return None
    return sec_page_tables_bytes / (memory_bytes / GIB)


def placement(memory_bytes: Mapping[int, int | None],
              intended_nodes: Iterable[int]) -> float | None:
    """Fraction of the workload's resident memory on ``intended_nodes``; None if undefined."""
    memory, intended = _known(memory_bytes), set(intended_nodes)
    if memory is None or not intended:
        return None
    total = sum(memory.values())
    if total <= 0:
        return None
    return sum(v for n, v in memory.items() if n in intended) / total
