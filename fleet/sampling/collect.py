"""Samples taken while a case runs -> the numeric series fleet keeps. Pure.

:class:`SampleCollector` is the ``on_sample`` sink of a sampled run (fleet.agent.session): it
decodes each message (fleet.sampling.decode), parses the files with fleet.collectors and keeps,
per sample, only these series (cumulative counters as the kernel counts them unless said):

=============================  ===========  ==================================================
series                         labels       from
=============================  ===========  ==================================================
tlb_shootdowns                 {} / {node}  /proc/interrupts TLB row: shootdown IPIs received
                                            since the first sample (per-CPU resets handled),
                                            per node by nodeN/cpulist
nr_tlb_remote_flush(_received)  {}          /proc/vmstat (CONFIG_DEBUG_TLBFLUSH kernels only)
numa_hint_faults               {}           /proc/vmstat
numa_pages_migrated            {}           /proc/vmstat
sec_page_tables_bytes          {node}       nodeN/meminfo SecPageTables (gauge; Linux >= 6.1)
page_tables_bytes              {node}       nodeN/meminfo PageTables (gauge)
workload_resident_bytes        {node}       /proc/PID/numa_maps summed over the process tree
kvm_remote_tlb_flush           {}           /sys/kernel/debug/kvm/remote_tlb_flush
agent_cpu_seconds              {}           the agent's own CPU time (overhead)
=============================  ===========  ==================================================

A series is absent when its source is (never zeros). Volume: with N nodes, at most 5 + 4N
values per sample; :func:`thin` keeps at most ``MAX_POINTS_PER_SERIES`` points per series in
the store (evenly spread, first and last kept); derived metrics use every sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from fleet.agent.protocol import ProtocolError
from fleet.collectors.interrupts import parse_interrupts
from fleet.collectors.kmsg import KmsgRecord, parse_kmsg
from fleet.collectors.numa_maps import parse_numa_maps
from fleet.collectors.vmstat import parse_vmstat
from fleet.errors import ParseError
from fleet.facts.parsers import parse_cpulist, parse_node_meminfo
from fleet.runs import SeriesPoint
from fleet.sampling.decode import SampleDecoder, Snapshot

T = TypeVar("T")
MAX_POINTS_PER_SERIES = 600
Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]
VMSTAT_SERIES = ("numa_hint_faults", "numa_pages_migrated", "nr_tlb_remote_flush",
                 "nr_tlb_remote_flush_received")


def node_labels(node: int) -> Labels:
    return (("node", str(node)),)


@dataclass(frozen=True)
class Collected:
    """Everything one sampled run gave: series points, sample times, kernel log, problems."""

    points: Mapping[SeriesKey, tuple[tuple[float, float, float], ...]]  # (mono, wall, value)
    times: tuple[tuple[float, float, bool], ...]  # (monotonic, wall, final) per sample
    missed: int
    kmsg: tuple[KmsgRecord, ...]
    kmsg_readable: bool
    notes: tuple[str, ...]  # why something could not be read or parsed (first ones)


class SampleCollector:
    """The sink of one sampled run; never raises: a broken sample ends collection, noted."""

    def __init__(self) -> None:
        self._decoder = SampleDecoder()
        self._points: dict[SeriesKey, list[tuple[float, float, float]]] = {}
        self._times: list[tuple[float, float, bool]] = []
        self._missed = 0
        self._kmsg: list[str] = []
        self._kmsg_readable = True
        self._notes: list[str] = []
        self._broken = False
        self._cache: dict[str, tuple[str, Any]] = {}  # key -> (text, parsed)
        self._tlb_before: dict[int, int] | None = None
        self._tlb_total: dict[int, float] = {}  # node (-1: all) -> shootdowns so far
        self._cpu_nodes: dict[int, int] = {}

    def __call__(self, body: Mapping[str, object]) -> None:
        if self._broken:
            return
        try:
            snapshot = self._decoder.feed(body)
        except ProtocolError as exc:
            self._broken = True
            self._note(f"sampling stopped: broken sample: {exc}")
            return
        self._add(snapshot)

    def result(self) -> Collected:
        return Collected({k: tuple(v) for k, v in self._points.items()}, tuple(self._times),
                         self._missed, self._parse_kmsg(), self._kmsg_readable,
                         tuple(self._notes))

    # ---- one snapshot -------------------------------------------------------------------

    def _add(self, snap: Snapshot) -> None:
        self._times.append((snap.monotonic_seconds, snap.wall_seconds, snap.final))
        self._missed = snap.missed
        for key, why in snap.errors.items():
            if key == "kmsg":
                self._kmsg_readable = False
            if not (key.startswith("kvm/") and why.startswith("ENOENT")):  # no KVM: usual
                self._note(f"cannot read {key}: {why}")
        if snap.kmsg:
            self._kmsg.append(snap.kmsg)
        if snap.kmsg_lost:
            self._note("kernel log records were lost (overwritten before they were read)")
        when = (snap.monotonic_seconds, snap.wall_seconds)
        self._put(when, "agent_cpu_seconds", (), snap.agent_cpu_seconds)
        self._vmstat(snap, when)
        self._nodes(snap, when)
        self._tlb(snap, when)
        self._resident(snap, when)
        kvm = self._parsed(snap, "kvm/remote_tlb_flush", lambda t, w: int(t.strip()))
        if kvm is not None:
            self._put(when, "kvm_remote_tlb_flush", (), kvm)

    def _put(self, when: tuple[float, float], series: str, labels: Labels,
             value: float) -> None:
        self._points.setdefault((series, labels), []).append((when[0], when[1], float(value)))

    def _note(self, text: str) -> None:
        if len(self._notes) < 20 and text not in self._notes:
            self._notes.append(text)

    def _parsed(self, snap: Snapshot, key: str, parse: Callable[[str, str], T]) -> T | None:
        """The file's parsed value, parsed again only when its text changed; None if absent."""
        text = snap.text(key)
        if text is None:
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == text:
            return cast(T, cached[1])
        try:
            value = parse(text, key)
        except (ParseError, ValueError) as exc:
            self._note(f"cannot parse {key}: {exc}")
            return None
        self._cache[key] = (text, value)
        return value

    def _vmstat(self, snap: Snapshot, when: tuple[float, float]) -> None:
        vm = self._parsed(snap, "vmstat", lambda t, w: parse_vmstat(t, where=w))
        if vm is None:
            return
        for name in VMSTAT_SERIES:
            value = vm.get(name)
            if value is not None:
                self._put(when, name, (), value)

    def _nodes(self, snap: Snapshot, when: tuple[float, float]) -> None:
        for key in snap.texts:
            if not (key.startswith("node") and key.endswith("/meminfo")):
                continue
            node = int(key[4:key.index("/")])
            if node not in self._cpu_nodes.values():
                cpus = self._parsed(snap, f"node{node}/cpulist",
                                    lambda t, w: parse_cpulist(t, where=w))
                self._cpu_nodes.update(dict.fromkeys(cpus or (), node))
            info = self._parsed(snap, key, lambda t, w: parse_node_meminfo(t, where=w))
            if info is None:
                continue
            for field, series in (("SecPageTables", "sec_page_tables_bytes"),
                                  ("PageTables", "page_tables_bytes")):
                if field in info:
                    self._put(when, series, node_labels(node), info[field])

    def _tlb(self, snap: Snapshot, when: tuple[float, float]) -> None:
        interrupts = self._parsed(snap, "interrupts", lambda t, w: parse_interrupts(t, where=w))
        counts = None if interrupts is None else interrupts.ipi_per_cpu("TLB")
        if counts is None:
            return
        before, self._tlb_before = self._tlb_before, dict(counts)
        if before is None:  # the first sample: every count starts at 0
            self._tlb_total = {-1: 0.0, **{n: 0.0 for n in set(self._cpu_nodes.values())}}
        else:
            for cpu in counts.keys() & before.keys():
                grew = counts[cpu] - before[cpu]
                grew = counts[cpu] if grew < 0 else grew  # a reset: counted from 0
                self._tlb_total[-1] += grew
                node = self._cpu_nodes.get(cpu)
                if node is not None and node in self._tlb_total:
                    self._tlb_total[node] += grew
        for node, total in self._tlb_total.items():
            self._put(when, "tlb_shootdowns", () if node < 0 else node_labels(node), total)

    def _resident(self, snap: Snapshot, when: tuple[float, float]) -> None:
        totals: dict[int, int] = {}
        seen = False
        for pid in snap.pids:
            maps = self._parsed(snap, f"pid/{pid}/numa_maps",
                                lambda t, w: parse_numa_maps(t, where=w).node_bytes())
            if not maps:
                continue
            known = {n: v for n, v in maps.items() if v is not None}
            if len(known) < len(maps):
                self._note(f"pid {pid}: numa_maps has pages of unknown size")
                continue
            seen = True
            for node, size in known.items():
                totals[node] = totals.get(node, 0) + size
        if seen:
            for node in sorted(set(totals) | set(self._cpu_nodes.values())):
                self._put(when, "workload_resident_bytes", node_labels(node),
                          totals.get(node, 0))

    def _parse_kmsg(self) -> tuple[KmsgRecord, ...]:
        try:
            return parse_kmsg("".join(self._kmsg), where="/dev/kmsg")
        except ParseError as exc:
            self._note(f"cannot parse the kernel log: {exc}")
            return ()


def thin(points: tuple[tuple[float, float, float], ...],
         limit: int = MAX_POINTS_PER_SERIES) -> tuple[tuple[float, float, float], ...]:
    """At most ``limit`` points, evenly spread over the series, the first and last kept."""
    if len(points) <= limit:
        return points
    last = len(points) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return tuple(points[i] for i in picks)


def series_points(collected: Collected) -> tuple[SeriesPoint, ...]:
    """The stored rows: every kept series, thinned."""
    return tuple(SeriesPoint(series, labels, mono, wall, value)
                 for (series, labels), points in sorted(collected.points.items())
                 for mono, wall, value in thin(points))
