"""``/proc/PID/status``: the memory and thread fields fleet samples for a workload process.

``Key:<tab>value`` lines; ``kB`` sizes become bytes. Kernel threads print no ``Vm*`` lines
and old kernels lack newer keys (``VmPin`` 3.2, ``HugetlbPages`` 4.4): those are None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.errors import ParseError
from fleet.facts.parsers import parse_cpulist

_KB = 1024
_HINT = "check that the text is /proc/PID/status captured whole"


@dataclass(frozen=True)
class ProcStatus:
    pid: int | None
    name: str | None
    threads: int | None
    vm_peak_bytes: int | None
    vm_size_bytes: int | None
    vm_hwm_bytes: int | None
    vm_rss_bytes: int | None
    rss_anon_bytes: int | None
    rss_file_bytes: int | None
    rss_shmem_bytes: int | None
    vm_pin_bytes: int | None
    vm_lck_bytes: int | None
    vm_pte_bytes: int | None
    vm_pmd_bytes: int | None
    vm_swap_bytes: int | None
    hugetlb_pages_bytes: int | None
    voluntary_ctxt_switches: int | None
    nonvoluntary_ctxt_switches: int | None
    cpus_allowed: tuple[int, ...] | None
    mems_allowed: tuple[int, ...] | None
    fields: Mapping[str, str]  # every line, raw value text (stripped)


def _fields(text: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip():
            raise ParseError(f"not a 'Key: value' line: {line[:60]!r}", where=f"{where}:{number}",
                             hint=_HINT)
        found[key] = value.strip()
    return found


def parse_proc_status(text: str, *, where: str | None = None) -> ProcStatus:
    place = where or "<status>"
    raw = _fields(text, place)

    def size(key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        amount, _, unit = value.partition(" ")
        if not amount.isdigit() or unit.strip() != "kB":
            raise ParseError(f"{key}: expected '<n> kB', got {value[:40]!r}", where=place,
                             hint=_HINT)
        return int(amount) * _KB

    def count(key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if not value.isdigit():
            raise ParseError(f"{key}: expected an integer, got {value[:40]!r}", where=place,
                             hint=_HINT)
        return int(value)

    def cpus(key: str) -> tuple[int, ...] | None:
        value = raw.get(key)
        return None if value is None else parse_cpulist(value, where=f"{place} {key}")

    return ProcStatus(
        pid=count("Pid"), name=raw.get("Name"), threads=count("Threads"),
        vm_peak_bytes=size("VmPeak"), vm_size_bytes=size("VmSize"), vm_hwm_bytes=size("VmHWM"),
        vm_rss_bytes=size("VmRSS"), rss_anon_bytes=size("RssAnon"),
        rss_file_bytes=size("RssFile"), rss_shmem_bytes=size("RssShmem"),
        vm_pin_bytes=size("VmPin"), vm_lck_bytes=size("VmLck"), vm_pte_bytes=size("VmPTE"),
        vm_pmd_bytes=size("VmPMD"), vm_swap_bytes=size("VmSwap"),
        hugetlb_pages_bytes=size("HugetlbPages"),
        voluntary_ctxt_switches=count("voluntary_ctxt_switches"),
        nonvoluntary_ctxt_switches=count("nonvoluntary_ctxt_switches"),
        cpus_allowed=cpus("Cpus_allowed_list"), mems_allowed=cpus("Mems_allowed_list"),
        fields=raw)
