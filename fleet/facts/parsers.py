"""Pure parsers for the /proc and /sys files the probe reads. Text in, values out.

Every parser takes ``where`` (a file path or ``host:path``) used in ParseError messages.
Sizes in kB become bytes (``kB * 1024``); unit-less values (``HugePages_Total``) stay counts.
An empty single-value file is None, never 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fleet.errors import ParseError
from fleet.model import CpuInfo

_KB = 1024
_MEMINFO_LINE = re.compile(r"(?:Node (\d+) +)?([^:\s][^:]*):\s*(\d+)(?:\s+(\S+))?\s*")
_HUGEPAGE_DIR = re.compile(r"hugepages-(\d+)kB")
_INT = re.compile(r"-?\d+")


def _error(what: str, where: str | None, line_number: int | None = None, *,
           hint: str | None = None) -> ParseError:
    place = where or "<text>"
    if line_number is not None:
        place = f"{place}:{line_number}"
    return ParseError(what, where=place, hint=hint or "check that the file comes from Linux "
                      "procfs/sysfs and was captured whole")


def parse_int(text: str, *, where: str | None = None) -> int | None:
    """A single-integer file (``nr_hugepages``, ``numa_balancing``). Empty -> None."""
    value = text.strip()
    if not value:
        return None
    if not _INT.fullmatch(value):
        raise _error(f"expected one integer, got {value[:40]!r}", where)
    return int(value)


def parse_cpulist(text: str, *, where: str | None = None) -> tuple[int, ...]:
    """Kernel list format ``"0-3,8,10-11"`` -> sorted distinct ints; ``""`` -> ``()``."""
    value = text.strip()
    if not value:
        return ()
    cpus: set[int] = set()
    for part in value.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise _error(f"bad cpu list element {part!r} in {value[:60]!r}", where)
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise _error(f"descending cpu range {part!r}", where)
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """Inverse of parse_cpulist, in the kernel's canonical form (``0-1,4``)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            low, high = ordered[start], ordered[i - 1]
            parts.append(str(low) if low == high else f"{low}-{high}")
            start = i
    return ",".join(parts)


def _meminfo_values(text: str, where: str | None) -> tuple[dict[str, int], set[int]]:
    values: dict[str, int] = {}
    node_ids: set[int] = set()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        match = _MEMINFO_LINE.fullmatch(line)
        if match is None:
            raise _error(f"not a meminfo line: {line[:80]!r}", where, number)
        node, key, amount, unit = match.groups()
        if unit not in (None, "kB"):
            raise _error(f"unknown unit {unit!r} in {line[:80]!r}", where, number)
        if node is not None:
            node_ids.add(int(node))
        values[key.strip()] = int(amount) * _KB if unit == "kB" else int(amount)
    return values, node_ids


def parse_meminfo(text: str, *, where: str | None = None) -> dict[str, int]:
    """``/proc/meminfo``: ``{"MemTotal": bytes, ..., "HugePages_Total": count}``."""
    values, node_ids = _meminfo_values(text, where)
    if node_ids:
        raise _error("per-node lines in /proc/meminfo (use parse_node_meminfo)", where)
    return values


def parse_node_meminfo(text: str, *, where: str | None = None) -> dict[str, int]:
    """``nodeN/meminfo``: ``Node 0 MemTotal: 123 kB`` -> ``{"MemTotal": 125952}``."""
    values, node_ids = _meminfo_values(text, where)
    if len(node_ids) > 1:
        raise _error(f"lines of several nodes {sorted(node_ids)} in one node meminfo", where)
    return values


def parse_numastat(text: str, *, where: str | None = None) -> dict[str, int]:
    """``nodeN/numastat``: ``numa_hit 123`` lines -> ``{"numa_hit": 123, ...}`` (pages)."""
    values: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise _error(f"not a 'name count' numastat line: {line[:80]!r}", where, number)
        values[fields[0]] = int(fields[1])
    return values


def parse_distance_row(text: str, *, where: str | None = None) -> tuple[int, ...]:
    """``nodeN/distance``: ``"10 21"`` -> ``(10, 21)``."""
    fields = text.split()
    if not all(f.isdigit() for f in fields):
        raise _error(f"not a distance row: {text.strip()[:80]!r}", where)
    return tuple(int(f) for f in fields)


def parse_thp_mode(text: str, *, where: str | None = None) -> str:
    """``"always [madvise] never"`` -> ``"madvise"`` (the bracketed, active choice)."""
    chosen = [w[1:-1] for w in text.split() if len(w) > 2 and w[0] == "[" and w[-1] == "]"]
    if len(chosen) != 1:
        raise _error(f"expected exactly one [mode] in {text.strip()[:80]!r}", where)
    return chosen[0]


def hugepage_size_bytes(dir_name: str, *, where: str | None = None) -> int:
    """``"hugepages-2048kB"`` -> ``2097152``."""
    match = _HUGEPAGE_DIR.fullmatch(dir_name)
    if match is None:
        raise _error(f"not a hugepages-<N>kB directory name: {dir_name!r}", where)
    return int(match.group(1)) * _KB


def _cpuinfo_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.split("\n"):
        key, colon, value = line.partition(":")
        if colon:
            pairs.append((key.strip(), value.strip()))
    return pairs


def parse_cpuinfo(text: str, *, where: str | None = None) -> CpuInfo:
    """``/proc/cpuinfo`` -> CpuInfo from the first processor's fields.

    vendor: ``vendor_id`` (x86, s390) or ``CPU implementer`` (arm64); model: ``model name``
    (x86) or ``cpu`` (powerpc); flags: ``flags`` (x86) or ``Features`` (arm64);
    logical_cpus: number of ``processor`` entries.
    """
    pairs = _cpuinfo_pairs(text)
    if not pairs:
        raise _error("no 'key : value' lines in cpuinfo", where)
    first: dict[str, str] = {}
    for key, value in pairs:
        first.setdefault(key, value)

    def pick(*keys: str) -> str | None:
        for key in keys:
            if first.get(key):
                return first[key]
        return None

    flags = pick("flags", "Features")
    return CpuInfo(
        vendor=pick("vendor_id", "CPU implementer"),
        model_name=pick("model name", "cpu"),
        microcode=pick("microcode"),
        logical_cpus=sum(1 for key, _ in pairs if key == "processor"),
        flags=tuple(flags.split()) if flags else (),
    )
