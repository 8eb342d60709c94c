"""``/proc/PID/numa_maps``: per-mapping policy and pages per node; totals per node in bytes.

Line grammar (fs/proc/task_mmu.c ``show_numa_map``)::

    <hex start> <policy> [file=<path, "\\040" for space>|heap|stack|stack:<tid>] [huge]
        [anon=N] [dirty=N] [mapped=N] [mapmax=N] [swapcache=N] [active=N] [writeback=N]
        [N<node>=<pages>]... [kernelpagesize_kB=N]

Policies: ``default``, ``local``, ``bind:0-1``, ``prefer:0``, ``interleave:2-3``,
``weighted interleave:0-1``, ``prefer (many):0-1``, with optional ``=static``/``=relative``
flags (``bind=static:0``); 2006 kernels printed ``interleave=0-7`` and no
``kernelpagesize_kB``. Page counts are in units of the mapping's kernel page size, so
bytes = pages x kernelpagesize; without that token the caller's page sizes are used, and
without those the bytes are unknown (None).

:func:`numastat_process` reproduces ``numastat -p`` (numactl numastat.c show_process_info):
Huge/Heap/Stack/Private MB per node, sized with the SYSTEM page size and the DEFAULT huge
page size (numastat ignores kernelpagesize_kB, so 1 GiB hugetlb pages under a 2 MiB default
are under-counted there; :meth:`NumaMaps.node_bytes` uses the per-mapping size).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from fleet.errors import ParseError
from fleet.facts.parsers import parse_cpulist

_KB = 1024
_MB = 1024 * 1024
_POLICY = re.compile(r"(weighted interleave|prefer \(many\)|[a-z]+)(\S*)")
_COUNTS = ("anon", "dirty", "mapped", "mapmax", "swapcache", "active", "writeback")
_OCTAL = re.compile(r"\\([0-7]{3})")
_HINT = "check that the text is /proc/PID/numa_maps captured whole"


@dataclass(frozen=True)
class NumaMapping:
    """One line of numa_maps. Counts the kernel did not print are None (it omits zeros)."""

    start_address: int
    policy: str  # as printed: "bind:0", "interleave:2-3", "default", "interleave=0-7"
    policy_mode: str  # "bind", "interleave", "default", "weighted interleave", ...
    policy_nodes: tuple[int, ...] | None  # None when the policy names no nodes
    path: str | None  # file=..., with \\040 etc. unescaped
    heap: bool
    stack: bool
    huge: bool  # a hugetlb mapping
    node_pages: tuple[tuple[int, int], ...]  # (node, pages), as printed
    kernel_page_size_bytes: int | None
    anon_pages: int | None = None
    dirty_pages: int | None = None
    mapped_pages: int | None = None
    mapmax: int | None = None
    swapcache_pages: int | None = None
    active_pages: int | None = None
    writeback_pages: int | None = None
    other_tokens: tuple[str, ...] = ()  # tokens of newer kernels, kept verbatim

    @property
    def file(self) -> bool:
        return self.path is not None

    @property
    def anon(self) -> bool:
        return bool(self.anon_pages)

    @property
    def pages(self) -> int:
        return sum(p for _, p in self.node_pages)

    def page_size_bytes(self, base_page_size_bytes: int | None,
                        huge_page_size_bytes: int | None) -> int | None:
        """The size of this mapping's pages: its own, else the given default for its kind."""
        if self.kernel_page_size_bytes is not None:
            return self.kernel_page_size_bytes
        return huge_page_size_bytes if self.huge else base_page_size_bytes


def _unescape(path: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), path)


def _policy(rest: str, where: str, ) -> tuple[str, str, tuple[int, ...] | None, str]:
    match = _POLICY.match(rest)
    if match is None:
        raise ParseError(f"no memory policy in {rest[:60]!r}", where=where, hint=_HINT)
    mode, suffix = match.group(1), match.group(2)
    nodes_text = suffix.rpartition(":")[2] if ":" in suffix else suffix.rpartition("=")[2]
    nodes = None
    if nodes_text and nodes_text[0].isdigit():
        nodes = parse_cpulist(nodes_text, where=where)
    return mode + suffix, mode, nodes, rest[match.end():]


def _int(value: str, token: str, where: str) -> int:
    if not value.isdigit():
        raise ParseError(f"bad count in {token!r}", where=where, hint=_HINT)
    return int(value)


def parse_numa_maps_line(line: str, *, where: str = "<numa_maps>") -> NumaMapping:
    address, _, rest = line.strip().partition(" ")
    try:
        start = int(address, 16)
    except ValueError:
        raise ParseError(f"bad start address {address[:20]!r}", where=where, hint=_HINT) from None
    policy, mode, policy_nodes, rest = _policy(rest.lstrip(), where)
    flags = {"heap": False, "stack": False, "huge": False}
    counts: dict[str, int] = {}
    nodes: list[tuple[int, int]] = []
    path, page_size, other = None, None, []
    for token in rest.split():
        key, eq, value = token.partition("=")
        if token in flags:
            flags[token] = True
        elif key == "stack" or token.startswith("stack:"):
            flags["stack"] = True
        elif key == "file" and eq:
            path = _unescape(value)
        elif key in _COUNTS and eq:
            counts[key] = _int(value, token, where)
        elif key == "kernelpagesize_kB" and eq:
            page_size = _int(value, token, where) * _KB
        elif key[:1] == "N" and key[1:].isdigit() and eq:
            nodes.append((int(key[1:]), _int(value, token, where)))
        else:
            other.append(token)
    return NumaMapping(
        start_address=start, policy=policy, policy_mode=mode, policy_nodes=policy_nodes,
        path=path, heap=flags["heap"], stack=flags["stack"], huge=flags["huge"],
        node_pages=tuple(nodes), kernel_page_size_bytes=page_size,
        anon_pages=counts.get("anon"), dirty_pages=counts.get("dirty"),
        mapped_pages=counts.get("mapped"), mapmax=counts.get("mapmax"),
        swapcache_pages=counts.get("swapcache"), active_pages=counts.get("active"),
        writeback_pages=counts.get("writeback"), other_tokens=tuple(other))


@dataclass(frozen=True)
class NumaMaps:
    mappings: tuple[NumaMapping, ...]

    def node_bytes(self, *, base_page_size_bytes: int | None = None,
                   huge_page_size_bytes: int | None = None,
                   huge: bool | None = None) -> dict[int, int | None]:
        """``{node: resident bytes}`` over the mappings (``huge``: only hugetlb / only not).

        A node's total is None if any of its pages belongs to a mapping of unknown page size.
        """
        totals: dict[int, int | None] = {}
        for mapping in self.mappings:
            if huge is not None and mapping.huge != huge:
                continue
            size = mapping.page_size_bytes(base_page_size_bytes, huge_page_size_bytes)
            for node, pages in mapping.node_pages:
                before = totals.get(node, 0)
                totals[node] = None if before is None or size is None else before + pages * size
        return dict(sorted(totals.items()))

    def node_pages(self) -> dict[int, int]:
        """``{node: pages}`` summed regardless of page size (for counting, not sizing)."""
        totals: dict[int, int] = {}
        for mapping in self.mappings:
            for node, pages in mapping.node_pages:
                totals[node] = totals.get(node, 0) + pages
        return dict(sorted(totals.items()))


def parse_numa_maps(text: str, *, where: str | None = None) -> NumaMaps:
    """All lines of a numa_maps file (blank lines skipped)."""
    place = where or "<numa_maps>"
    return NumaMaps(tuple(parse_numa_maps_line(line, where=f"{place}:{number}")
                          for number, line in enumerate(text.split("\n"), start=1)
                          if line.strip()))


NUMASTAT_CATEGORIES = ("Huge", "Heap", "Stack", "Private")


@dataclass(frozen=True)
class NumastatProcess:
    """``numastat -p`` for one process: MB per (category, node) and the totals."""

    nodes: tuple[int, ...]
    megabytes: tuple[tuple[str, tuple[float, ...]], ...]  # (category, MB per node)

    def row(self, category: str) -> tuple[float, ...]:
        return dict(self.megabytes)[category]

    @property
    def node_totals_megabytes(self) -> tuple[float, ...]:
        return tuple(sum(row[i] for _, row in self.megabytes) for i in range(len(self.nodes)))

    @property
    def total_megabytes(self) -> float:
        return sum(self.node_totals_megabytes)


def _category(mapping: NumaMapping) -> str:
    if mapping.huge:
        return "Huge"
    if mapping.heap:
        return "Heap"
    return "Stack" if mapping.stack else "Private"


def numastat_process(maps: NumaMaps, *, page_size_bytes: int, huge_page_size_bytes: int,
                     nodes: Iterable[int] = ()) -> NumastatProcess:
    """numastat -p's table from numa_maps (its algorithm: see the module docstring).

    ``nodes``: the host's node ids (numastat prints every node, used or not); nodes seen in
    the mappings are added.
    """
    node_ids = tuple(sorted(set(nodes) | {n for m in maps.mappings for n, _ in m.node_pages}))
    index = {node: i for i, node in enumerate(node_ids)}
    table = {c: [0.0] * len(node_ids) for c in NUMASTAT_CATEGORIES}
    for mapping in maps.mappings:
        category = _category(mapping)
        size = huge_page_size_bytes if category == "Huge" else page_size_bytes
        for node, pages in mapping.node_pages:
            table[category][index[node]] += pages * size / _MB
    return NumastatProcess(node_ids, tuple((c, tuple(table[c])) for c in NUMASTAT_CATEGORIES))
