"""``/dev/kmsg`` records and the kernel problems fleet flags while a case runs.

A record (Documentation/ABI/testing/dev-kmsg) is one line
``<prio>,<seq>,<ts_usec>,<flags>[,<more>];<message>`` where prio = facility * 8 + level,
ts_usec is CLOCK_MONOTONIC microseconds since boot, flags ``-`` (whole line), ``c``
(continuation begins) or ``+`` (continues), followed by zero or more dictionary lines
``" KEY=value"`` (space-prefixed). Non-printable bytes in the message are ``\\xNN``.

Classification (:func:`classify`) looks at the first line of a splat only:
``warn``  ``WARNING: CPU: 3 PID: 7 at <file>:<line> ...`` (and 2.6-era ``WARNING: at ...``)
``bug``   ``kernel BUG at ...``, ``BUG: <what>`` (NULL dereference, soft lockup, KASAN, ...)
``oops``  ``Oops: ...``, ``general protection fault``, ``invalid opcode: ...``
``panic`` ``Kernel panic - not syncing: ...``
``kvm``   a KVM module message (``kvm:``, ``kvm [pid]:``, ``kvm_intel:``, ``kvm_amd:``,
          ``KVM:``) at level warning or more severe; guest-side ``kvm-clock:``/``kvm-guest:``
          lines are not KVM errors. Everything else -> None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from fleet.errors import ParseError

Problem = Literal["warn", "bug", "oops", "panic", "kvm"]
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_HINT = "expected /dev/kmsg records: 'prio,seq,ts_usec,flags;message'"
_PATTERNS: tuple[tuple[Problem, re.Pattern[str]], ...] = (
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("warn", re.compile(r"WARNING: (CPU: \d+ PID: \d+ at |at )")),
    ("bug", re.compile(r"kernel BUG at |BUG: ")),
    ("oops", re.compile(r"Oops: |general protection fault|invalid opcode: ")),
)
_KVM = re.compile(r"(kvm(_intel|_amd)?( \[\d+\])?|KVM): ")
_WARNING_LEVEL = 4


@dataclass(frozen=True)
class KmsgRecord:
    facility: int
    level: int  # 0 emerg ... 7 debug
    sequence: int
    monotonic_seconds: float  # ts_usec / 1e6
    flags: str  # "-", "c" or "+"
    message: str
    dictionary: tuple[tuple[str, str], ...] = ()  # (KEY, value) continuation lines

    @property
    def level_name(self) -> str:
        return LEVELS[self.level]


def _header(line: str, where: str) -> tuple[int, int, int, str]:
    prefix, _, _ = line.partition(";")
    parts = prefix.split(",")
    if len(parts) < 4 or not all(p.isdigit() for p in parts[:3]):
        raise ParseError(f"bad record prefix {prefix[:40]!r}", where=where, hint=_HINT)
    return int(parts[0]), int(parts[1]), int(parts[2]), parts[3]


def parse_kmsg(text: str, *, where: str | None = None) -> tuple[KmsgRecord, ...]:
    """Records in ``text`` (what reads of /dev/kmsg returned, concatenated)."""
    place = where or "<kmsg>"
    entries: list[tuple[KmsgRecord, list[tuple[str, str]]]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        if line.startswith(" "):
            if not entries:
                raise ParseError("dictionary line before any record", where=f"{place}:{number}",
                                 hint=_HINT)
            key, _, value = line[1:].partition("=")
            entries[-1][1].append((key, value))
            continue
        if ";" not in line:
            raise ParseError(f"no ';' in {line[:40]!r}", where=f"{place}:{number}", hint=_HINT)
        prio, seq, usec, flags = _header(line, f"{place}:{number}")
        entries.append((KmsgRecord(facility=prio >> 3, level=prio & 7, sequence=seq,
                                   monotonic_seconds=usec / 1e6, flags=flags,
                                   message=line.partition(";")[2]), []))
    return tuple(replace(r, dictionary=tuple(d)) if d else r for r, d in entries)


def classify(record: KmsgRecord) -> Problem | None:
    """The kind of kernel problem a record reports (see the module docstring), or None."""
    message = record.message
    for kind, pattern in _PATTERNS:
        if pattern.match(message):
            return kind
    if record.level <= _WARNING_LEVEL and _KVM.match(message):
        return "kvm"
    return None


def problems(records: tuple[KmsgRecord, ...]) -> tuple[tuple[Problem, KmsgRecord], ...]:
    """The records that report a problem, with their kind, in order."""
    found = []
    for record in records:
        kind = classify(record)
        if kind is not None:
            found.append((kind, record))
    return tuple(found)
