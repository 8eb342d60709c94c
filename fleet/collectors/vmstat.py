"""``/proc/vmstat`` (and ``nodeN/vmstat``, same format): every counter as an int.

The named selections (NUMA balancing, TLB flushes) give None for a counter the kernel did
not print: ``nr_tlb_*`` exist only with CONFIG_DEBUG_TLBFLUSH, ``numa_*`` only with
CONFIG_NUMA(_BALANCING). A missing counter is never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from fleet.facts.parsers import parse_numastat


@dataclass(frozen=True)
class NumaCounters:
    """NUMA allocation and NUMA-balancing counters (pages or events; None: not printed)."""

    numa_hit: int | None
    numa_miss: int | None
    numa_foreign: int | None
    numa_interleave: int | None
    numa_local: int | None
    numa_other: int | None
    numa_pte_updates: int | None
    numa_huge_pte_updates: int | None
    numa_hint_faults: int | None
    numa_hint_faults_local: int | None
    numa_pages_migrated: int | None


@dataclass(frozen=True)
class TlbCounters:
    """TLB flush events (CONFIG_DEBUG_TLBFLUSH kernels only; None elsewhere)."""

    nr_tlb_remote_flush: int | None
    nr_tlb_remote_flush_received: int | None
    nr_tlb_local_flush_all: int | None
    nr_tlb_local_flush_one: int | None


@dataclass(frozen=True)
class VmStat:
    """All counters of one vmstat file, in file order."""

    counters: Mapping[str, int]

    def get(self, name: str) -> int | None:
        return self.counters.get(name)

    def prefixed(self, prefix: str) -> dict[str, int]:
        """Counters whose name starts with ``prefix`` (``"pgmigrate_"``, ``"thp_"``)."""
        return {k: v for k, v in self.counters.items() if k.startswith(prefix)}

    @property
    def numa(self) -> NumaCounters:
        return NumaCounters(**{f.name: self.get(f.name) for f in fields(NumaCounters)})

    @property
    def tlb(self) -> TlbCounters:
        return TlbCounters(**{f.name: self.get(f.name) for f in fields(TlbCounters)})

    @property
    def pgmigrate(self) -> dict[str, int]:
        return self.prefixed("pgmigrate_")

    @property
    def thp(self) -> dict[str, int]:
        return self.prefixed("thp_")


def parse_vmstat(text: str, *, where: str | None = None) -> VmStat:
    """``name value`` lines (/proc/vmstat, nodeN/vmstat) -> VmStat; malformed -> ParseError."""
    return VmStat(counters=parse_numastat(text, where=where))
