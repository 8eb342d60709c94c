"""Derived metrics of one sampled attempt, as Measurements labelled {"source": "sampler"}. Pure.

Every metric below comes from the series of fleet.sampling.collect over the attempt's samples (first
to last, the final one at the workload's exit included). A metric whose input the host did not
have (no TLB row, no SecPageTables, no KVM debugfs, an unreadable /dev/kmsg) has value None;
per-node variants are left out then. ``placement_ratio`` is given only when the case names its
intended nodes (``membind``/``nodes``). Formulas are those of fleet.sampling.formulas.

=================================  ==========  ============================================
metric                             unit        what
=================================  ==========  ============================================
tlb_shootdowns_per_second          per_second  TLB shootdown IPIs received; total, per node
kvm_remote_tlb_flushes_per_second  per_second  KVM remote_tlb_flush (all VMs)
numa_hint_faults_per_second        per_second  /proc/vmstat numa_hint_faults
numa_pages_migrated_per_second     per_second  /proc/vmstat numa_pages_migrated
sec_page_tables_growth_bytes       bytes       SecPageTables peak - first; total, per node
page_table_locality                ratio       derive.page_table_locality(growth, memory)
sec_page_tables_bytes_per_gib      ratio       growth per GiB of the workload's memory
placement_ratio                    ratio       workload memory on the intended nodes
sampler_samples                    count       samples taken
sampler_interval_seconds           seconds     median time between periodic samples
sampler_max_gap_seconds            seconds     longest time between two samples
sampler_agent_cpu_ratio            ratio       the agent's CPU time / wall time (overhead)
kernel_log_problems                count       warn/bug/oops/panic/kvm kernel log records
=================================  ==========  ============================================

"Peak" is the sample where the nodes' SecPageTables total was largest: a VM frees its page
tables when it exits, and the final sample is taken after the workload's exit.
"The workload's memory" is its resident bytes per node (numa_maps of its process tree) in the
sample where their total was largest: a process frees its memory at teardown (Python unmaps
its buffers while it finalizes), so its last samples show mostly its shared libraries.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from fleet.collectors.kmsg import problems
from fleet.errors import ParseError
from fleet.facts.parsers import parse_cpulist
from fleet.model import Measurement
from fleet.sampling.collect import Collected, Labels, node_labels
from fleet.sampling.formulas import (
    counter_rate,
    page_table_locality,
    placement,
    sec_page_tables_per_gib,
)

SOURCE: Labels = (("source", "sampler"),)
KERNEL_LOG_LINES_KEPT = 5


@dataclass(frozen=True)
class Derived:
    measurements: tuple[Measurement, ...]
    notes: str | None  # kernel log problems (first lines) and why inputs were missing


def _m(metric: str, value: float | None, unit: str, node: int | None = None) -> Measurement:
    labels = SOURCE if node is None else tuple(sorted(SOURCE + node_labels(node)))
    return Measurement(metric, value, unit, labels)


def _series(c: Collected, name: str, labels: Labels = ()) -> list[tuple[float, float]]:
    return [(mono, value) for mono, _, value in c.points.get((name, labels), ())]


def _per_node(c: Collected, name: str) -> dict[int, list[tuple[float, float]]]:
    return {int(dict(labels)["node"]): _series(c, name, labels)
            for series, labels in c.points if series == name and labels}


def derive_metrics(c: Collected, *, intended_nodes: Sequence[int] | None) -> Derived:
    measurements = [*_sampler(c), *_rates(c), *_page_tables(c, intended_nodes)]
    count, lines = _kernel_log(c)
    measurements.append(_m("kernel_log_problems", count, "count"))
    notes = [*lines, *c.notes]
    return Derived(tuple(measurements), "\n".join(notes) if notes else None)


def _sampler(c: Collected) -> list[Measurement]:
    times = [t for t, _, _ in c.times]
    periodic = [t for t, _, final in c.times if not final]
    steps = [b - a for a, b in pairwise(periodic)]
    gaps = [b - a for a, b in pairwise(times)]
    cpu = _series(c, "agent_cpu_seconds")
    ratio = counter_rate(cpu) if len(cpu) >= 2 else None
    return [_m("sampler_samples", len(times), "count"),
            _m("sampler_interval_seconds", statistics.median(steps) if steps else None,
               "seconds"),
            _m("sampler_max_gap_seconds", max(gaps) if gaps else None, "seconds"),
            _m("sampler_agent_cpu_ratio", ratio, "ratio")]


def _rate(points: list[tuple[float, float]]) -> float | None:
    return counter_rate(points) if points else None


def _rates(c: Collected) -> list[Measurement]:
    out = [_m("tlb_shootdowns_per_second", _rate(_series(c, "tlb_shootdowns")), "per_second")]
    out += [_m("tlb_shootdowns_per_second", _rate(points), "per_second", node)
            for node, points in sorted(_per_node(c, "tlb_shootdowns").items())]
    out.append(_m("kvm_remote_tlb_flushes_per_second",
                  _rate(_series(c, "kvm_remote_tlb_flush")), "per_second"))
    for name in ("numa_hint_faults", "numa_pages_migrated"):
        out.append(_m(f"{name}_per_second", _rate(_series(c, name)), "per_second"))
    return out


def _by_sample(per_node: dict[int, list[tuple[float, float]]]) -> dict[float, dict[int, float]]:
    """Per sample time, the value of each node sampled then."""
    by_time: dict[float, dict[int, float]] = {}
    for node, points in per_node.items():
        for mono, value in points:
            by_time.setdefault(mono, {})[node] = value
    return by_time


def _peak_memory(c: Collected) -> dict[int, int | None]:
    """Per node, the workload's resident bytes in the sample where their total was largest
    (its memory at its peak: before teardown, which frees it well before the process ends)."""
    per_node = _per_node(c, "workload_resident_bytes")
    by_time = _by_sample(per_node)
    if not by_time:
        return {}
    peak = max(by_time.values(), key=lambda m: sum(m.values()))
    return {node: None if node not in peak else int(peak[node]) for node in per_node}


def _page_table_growth(c: Collected) -> dict[int, float | None]:
    """Per node, SecPageTables in the peak sample minus the first (module docstring)."""
    per_node = _per_node(c, "sec_page_tables_bytes")
    whole = [v for _, v in sorted(_by_sample(per_node).items()) if len(v) == len(per_node)]
    if len(whole) < 2:
        return dict.fromkeys(per_node)
    first, peak = whole[0], max(whole, key=lambda v: sum(v.values()))
    return {node: peak[node] - first[node] for node in per_node}


def _page_tables(c: Collected, intended: Sequence[int] | None) -> list[Measurement]:
    growth = _page_table_growth(c)
    known = [g for g in growth.values() if g is not None]
    total = sum(known) if growth and len(known) == len(growth) else None
    memory = _peak_memory(c)
    memory_total = sum(v for v in memory.values() if v is not None) if memory else None
    out = [_m("sec_page_tables_growth_bytes", total, "bytes")]
    out += [_m("sec_page_tables_growth_bytes", g, "bytes", node)
            for node, g in sorted(growth.items())]
    positive = None if total is None else sum(max(0.0, g) for g in known)
    out.append(_m("page_table_locality",
                  page_table_locality(growth, memory) if growth and memory else None, "ratio"))
    out.append(_m("sec_page_tables_bytes_per_gib",
                  sec_page_tables_per_gib(positive, memory_total), "ratio"))
    if intended:
        out.append(_m("placement_ratio", placement(memory, intended) if memory else None,
                      "ratio"))
    return out


def _kernel_log(c: Collected) -> tuple[int | None, list[str]]:
    if not c.kmsg_readable:
        return None, []
    found = problems(c.kmsg)
    lines = [f"kernel log {kind}: {record.message}"
             for kind, record in found[:KERNEL_LOG_LINES_KEPT]]
    if len(found) > KERNEL_LOG_LINES_KEPT:
        lines.append(f"... and {len(found) - KERNEL_LOG_LINES_KEPT} more kernel log problems")
    return len(found), lines


def intended_nodes(values: Mapping[str, object]) -> tuple[int, ...] | None:
    """The case's intended NUMA nodes from a ``membind`` or ``nodes`` parameter/knob value
    (an int, or a node list like ``"0"``, ``"0,2"``, ``"0-1"``); None if neither is given
    or the value is not a node list."""
    for name in ("membind", "nodes"):
        value = values.get(name)
        if isinstance(value, bool) or value is None:
            continue
        try:
            nodes = parse_cpulist(str(value), where=name)
        except ParseError:
            return None
        return nodes or None
    return None
