"""``/proc/interrupts``: rows keyed by name with per-CPU counts, and IPI counts per NUMA node.

The format, as every kernel prints it (``show_interrupts``, ``arch_show_interrupts``):

- a header of the online CPUs, ``CPU0 CPU1 ...``; it defines the columns, which need not be
  contiguous after hotplug (``CPU0 CPU2 CPU3``);
- one row per interrupt: ``<name>:`` then one count per column, then free text. Numbered rows
  (``  0:``) carry the chip name and the rest (hwirq, trigger, devices): procfs semantics,
  ``info`` = the first token after the counts, ``devices`` = the rest joined by one space
  (``IO-APIC`` / ``2-edge timer``; old kernels: ``IO-APIC-edge`` / ``timer``). Named rows
  (``TLB:``) carry a description: ``info`` = ``TLB shootdowns``, ``devices`` = ``""``;
- short rows with a single value and no per-CPU columns (``ERR:``, ``MIS:``; arm64 ``Err:``);
- arm64 glues wide labels to the first count (``IPI0:2768808080``): the name ends at the
  first ``:``.

Parsing is lazy per row: :func:`parse_interrupts` checks the header and the row names; a
row's counts are parsed (and checked) when first read. A 448-CPU host has ~110,000 numbers
in this file and a sampler reads five rows of it (see benchmarks/perf/parse_interrupts.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from fleet.errors import ParseError
from fleet.model import Topology

_HINT = "check that the text is a whole /proc/interrupts capture from Linux"
IpiKind = Literal["TLB", "CAL", "RES"]
# x86 row name -> the description other architectures print for the same IPI (arm64 IPIn rows)
IPI_DESCRIPTIONS: Mapping[str, str] = {
    "TLB": "TLB shootdowns",
    "CAL": "Function call interrupts",
    "RES": "Rescheduling interrupts",
}


def _error(what: str, where: str | None, line_number: int | None) -> ParseError:
    place = where or "<interrupts>"
    if line_number is not None:
        place = f"{place}:{line_number}"
    return ParseError(what, where=place, hint=_HINT)


@dataclass(frozen=True)
class _Parsed:
    counts: tuple[int, ...]
    info: str
    devices: str


@dataclass(frozen=True)
class InterruptRow:
    """One row. ``counts`` follows the header's columns; short rows (ERR, MIS) have one count."""

    name: str
    body: str = field(repr=False)  # the raw text after "<name>:"
    column_count: int
    line_number: int
    where: str | None = field(default=None, compare=False)

    @cached_property
    def _parsed(self) -> _Parsed:
        return _parse_body(self)

    @property
    def counts(self) -> tuple[int, ...]:
        return self._parsed.counts

    @property
    def info(self) -> str:
        return self._parsed.info

    @property
    def devices(self) -> str:
        return self._parsed.devices

    @property
    def per_cpu(self) -> bool:
        """True if the row has one count per CPU column (False for ERR/MIS-style rows)."""
        return len(self._parsed.counts) == self.column_count

    @property
    def total(self) -> int:
        return sum(self._parsed.counts)


def _leading_digits(tokens: list[str], limit: int) -> int:
    head = tokens[:limit]
    if all(map(str.isdigit, head)):  # fast path: every row of a sane file
        return len(head)
    return next(i for i, token in enumerate(head) if not token.isdigit())


def _parse_body(row: InterruptRow) -> _Parsed:
    columns = row.column_count
    tokens = row.body.split(None, columns)
    digits = _leading_digits(tokens, columns)
    if digits == columns:
        tail = tokens[columns] if len(tokens) > columns else ""
        if tail[:1].isdigit() and tail.split(None, 1)[0].isdigit():
            raise _error(f"row {row.name!r} has more counts than the header's {columns} CPU "
                         "columns", row.where, row.line_number)
    elif digits == 1 and len(tokens) == 1:  # ERR: 0 / MIS: 0, one global count
        tail = ""
    else:
        raise _error(f"row {row.name!r} has {digits} counts where the header has {columns} CPU "
                     f"columns (or one, for ERR/MIS rows): {row.body.strip()[:60]!r}",
                     row.where, row.line_number)
    counts = tuple(map(int, tokens[:digits]))
    words = tail.split()
    if row.name.isdigit():
        return _Parsed(counts, words[0] if words else "", " ".join(words[1:]))
    return _Parsed(counts, " ".join(words), "")


@dataclass(frozen=True)
class Interrupts:
    """A parsed /proc/interrupts: CPU ids of the columns and the rows in file order."""

    cpus: tuple[int, ...]
    rows: tuple[InterruptRow, ...]

    @cached_property
    def _by_name(self) -> dict[str, InterruptRow]:
        return {r.name: r for r in self.rows}

    def row(self, name: str) -> InterruptRow | None:
        return self._by_name.get(name)

    def per_cpu(self, name: str) -> dict[int, int] | None:
        """``{cpu: count}`` for a per-CPU row; None if absent or a single-value row."""
        row = self.row(name)
        if row is None or not row.per_cpu:
            return None
        return dict(zip(self.cpus, row.counts, strict=True))

    def total(self, name: str) -> int | None:
        row = self.row(name)
        return None if row is None else row.total

    def ipi_row(self, kind: IpiKind) -> InterruptRow | None:
        """The TLB/CAL/RES row: by its x86 name, else by its description (arm64 ``IPIn``).

        None where the architecture has no such IPI (arm64 flushes TLBs without IPIs).
        """
        row = self.row(kind)
        if row is not None:
            return row
        description = IPI_DESCRIPTIONS[kind]
        for candidate in self.rows:
            if not candidate.name.isdigit() and candidate.info == description:
                return candidate
        return None

    def ipi_per_cpu(self, kind: IpiKind) -> dict[int, int] | None:
        row = self.ipi_row(kind)
        return None if row is None else self.per_cpu(row.name)

    def per_node(self, name: str, cpu_nodes: Mapping[int, int]) -> dict[int, int] | None:
        """Counts of a per-CPU row summed per NUMA node (``cpu_nodes``: cpu -> node).

        Nodes with no CPU in the header (CPU-less nodes, all CPUs offline) are absent.
        Raises ParseError if a CPU of the header is on no node: the topology is another host's.
        """
        counts = self.per_cpu(name)
        return None if counts is None else sum_per_node(counts, cpu_nodes)


def sum_per_node(per_cpu: Mapping[int, int], cpu_nodes: Mapping[int, int]) -> dict[int, int]:
    """Sum ``{cpu: count}`` into ``{node: count}``; every CPU must have a node."""
    totals: dict[int, int] = {}
    for cpu, count in per_cpu.items():
        node = cpu_nodes.get(cpu)
        if node is None:
            raise ParseError(f"CPU {cpu} is on no NUMA node of the topology", where="interrupts",
                             hint="use the topology (facts) of the same host and boot")
        totals[node] = totals.get(node, 0) + count
    return dict(sorted(totals.items()))


def cpu_nodes(topology: Topology) -> dict[int, int]:
    """``{cpu: node}`` from a Topology."""
    return {cpu: node.node_id for node in topology.nodes for cpu in node.cpus}


def _header(line: str, where: str | None, number: int) -> tuple[int, ...]:
    cpus = []
    for token in line.split():
        if not (token.startswith("CPU") and token[3:].isdigit()):
            raise _error(f"header token {token!r} is not CPU<n>", where, number)
        cpus.append(int(token[3:]))
    if len(set(cpus)) != len(cpus):
        raise _error("a CPU appears twice in the header", where, number)
    return tuple(cpus)


def parse_interrupts(text: str, *, where: str | None = None) -> Interrupts:
    """Parse ``/proc/interrupts``. Blank lines are skipped; the first line must be the header."""
    cpus: tuple[int, ...] | None = None
    rows: list[InterruptRow] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if cpus is None:
            if line.strip():
                cpus = _header(line, where, number)
            continue
        name, colon, body = line.partition(":")
        if not colon:
            if line.strip():
                raise _error(f"not an interrupt row (no ':'): {line.strip()[:60]!r}", where,
                             number)
            continue
        name = name.strip()
        if not name or " " in name:
            raise _error(f"bad interrupt name {name[:40]!r}", where, number)
        if name in seen:
            raise _error(f"interrupt {name!r} appears twice", where, number)
        seen.add(name)
        rows.append(InterruptRow(name, body, len(cpus), number, where))
    if cpus is None:
        raise _error("empty: no CPU header line", where, None)
    if not cpus:
        raise _error("the header names no CPU", where, None)
    return Interrupts(cpus=cpus, rows=tuple(rows))
