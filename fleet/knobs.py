"""Knobs, variants and requirements: what a case sets on a host, and what it needs from it.

A knob is a runtime setting the executor writes before a case (and restores after); a variant
(``kernel``, ``kernel_cmdline``, ``<module>.<param>``) may need provisioning (a package, a
reboot, a module reload), so the plan groups cases by variant. A ``<module>.<param>`` variant
whose parameter is writable on a host is reached there like a knob
(fleet.plan.provisioning says how each host reaches each variant).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fleet.model import ParamValue, Requirements
from fleet.workloads.base import ParamSpec


@dataclass(frozen=True)
class Knob:
    """A runtime setting the executor writes before a case (and restores after)."""

    spec: ParamSpec
    path: str


def _knob(name: str, kind: Literal["int", "str"], path: str, *,
          choices: tuple[ParamValue, ...] | None = None, minimum: float | None = None,
          maximum: float | None = None) -> Knob:
    return Knob(ParamSpec(name, kind, choices=choices, minimum=minimum, maximum=maximum), path)


_THP = "/sys/kernel/mm/transparent_hugepage"
_HUGEPAGES = "/sys/kernel/mm/hugepages"
KNOBS: Mapping[str, Knob] = {k.spec.name: k for k in (
    _knob("numa_balancing", "int", "/proc/sys/kernel/numa_balancing", choices=(0, 1, 2, 3)),
    _knob("thp", "str", f"{_THP}/enabled", choices=("always", "madvise", "never")),
    _knob("thp_defrag", "str", f"{_THP}/defrag",
          choices=("always", "defer", "defer+madvise", "madvise", "never")),
    _knob("zone_reclaim_mode", "int", "/proc/sys/vm/zone_reclaim_mode", minimum=0, maximum=7),
    _knob("swappiness", "int", "/proc/sys/vm/swappiness", minimum=0, maximum=200),
    _knob("compaction_proactiveness", "int", "/proc/sys/vm/compaction_proactiveness",
          minimum=0, maximum=100),
    _knob("ksm_run", "int", "/sys/kernel/mm/ksm/run", choices=(0, 1, 2)),
    _knob("nr_hugepages_2m", "int", f"{_HUGEPAGES}/hugepages-2048kB/nr_hugepages", minimum=0),
    _knob("nr_hugepages_1g", "int", f"{_HUGEPAGES}/hugepages-1048576kB/nr_hugepages",
          minimum=0),
)}
VARIANT_NAMES = ("kernel", "kernel_cmdline")
_MODULE_PARAM = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")


def is_variant(name: str) -> bool:
    return name in VARIANT_NAMES or _MODULE_PARAM.fullmatch(name) is not None


def is_module_param(name: str) -> bool:
    """``kvm.eager_page_split``: a kernel module parameter (``/sys/module/<m>/parameters``)."""
    return _MODULE_PARAM.fullmatch(name) is not None


def module_param_path(module: str, param: str) -> str:
    """Where the kernel shows (and, when writable, takes) a module parameter."""
    return f"/sys/module/{module}/parameters/{param}"


def knob_requirements(knobs: Mapping[str, ParamValue]) -> Requirements:
    """What a host needs for these knob values (1 GiB pages for nr_hugepages_1g > 0)."""
    pages = knobs.get("nr_hugepages_1g")
    return Requirements(hugepages_1g=isinstance(pages, int) and pages > 0)


def merge_requirements(a: Requirements, b: Requirements) -> Requirements:
    """Both sets at once: the larger minimum, either flag, all groups."""
    def larger(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else max(x, y)

    return Requirements(
        min_numa_nodes=larger(a.min_numa_nodes, b.min_numa_nodes),
        min_cpus=larger(a.min_cpus, b.min_cpus),
        min_memory_bytes=larger(a.min_memory_bytes, b.min_memory_bytes),
        kvm=a.kvm or b.kvm, iommu=a.iommu or b.iommu, hugepages_1g=a.hugepages_1g or b.hugepages_1g,
        groups=tuple(dict.fromkeys((*a.groups, *b.groups))),
        host_patterns=a.host_patterns or b.host_patterns,
    )
