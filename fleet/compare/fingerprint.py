"""Pure: like for like. The host fields two sides of a comparison must share, and their diff.

Each attempt records its host's facts fingerprint (fleet.model.comparable_fields); the store
keeps the facts behind it. Compared fields: CPU model, microcode, node layout (nodes with
their CPUs, not their drifting MemTotal; distances, sockets: SNC/NPS modes show here), kernel
release and
command line, THP mode and defrag, NUMA balancing, the KVM module parameters, and the knob
values the attempt ran with. The KVM module parameters are the ones the case ran with: the
facts' values, overridden by the values read back after a run set (or verified) them as
knobs, so eager_page_split=N set by a run and eager_page_split=N as a host's default are alike.
The axis under test is left out: comparing kernels ignores the kernel release, command line
and module parameters (another kernel has other ones); a THP knob axis ignores the THP mode;
a ``<module>.<param>`` axis ignores that parameter (and the command line), and so on.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from fleet.errors import FleetError
from fleet.knobs import is_module_param
from fleet.model import Facts, comparable_fields, kvm_parameters
from fleet.runs import KnobState
from fleet.variant import VariantIdentity

FIELDS = ("cpu_model", "microcode", "nodes", "distances", "sockets", "kernel_release",
          "kernel_cmdline", "thp_enabled", "thp_defrag", "numa_balancing", "kvm_parameters",
          "knobs", "facts", "variant")
# axis name -> fields that axis is expected to change (module parameters: the cmdline)
AXIS_FIELDS: Mapping[str, tuple[str, ...]] = {
    "kernel": ("kernel_release", "kernel_cmdline", "kvm_parameters", "variant"),
    "kernel_cmdline": ("kernel_cmdline", "kvm_parameters"),
    "thp": ("thp_enabled",), "thp_defrag": ("thp_defrag",),
    "numa_balancing": ("numa_balancing",)}
UNKNOWN = "unknown"
Fields = tuple[tuple[str, str], ...]  # sorted (field, value as text)


class MismatchError(FleetError):
    """The two sides ran on hosts that differ in fields not allowed to differ."""


@dataclass(frozen=True)
class FieldDiff:
    host: str
    field: str
    baseline: str
    candidate: str

    def text(self) -> str:
        return f"{self.host} {self.field}: {_short(self.baseline)} vs {_short(self.candidate)}"


def host_fields(facts: Facts | None, knobs: Iterable[KnobState], *, axis: str | None = None,
                variant: VariantIdentity | None = None) -> Fields:
    """The compared fields of one attempt (facts None: every facts field is unknown).

    ``variant``: the verified kernel variant the attempt's host ran (its name, kind, KVM
    modules' srcversions or build ids, source and series hashes); without one there is no
    ``variant`` field, so fingerprints of attempts on unprovisioned hosts do not change."""
    knobs = [k for k in knobs if k.name != axis]
    if facts is None:  # only the knobs are compared: module parameters set as knobs too
        values: dict[str, object] = {"facts": UNKNOWN,
                                     "knobs": {k.name: k.after for k in knobs}}
    else:
        values = {**comparable_fields(facts), "thp_defrag": facts.thp_defrag,
                  "numa_balancing": facts.numa_balancing}
        ran_with = {**kvm_parameters(facts),
                    **{k.name: k.after for k in knobs if is_module_param(k.name)}}
        ran_with.pop(axis or "", None)
        values["kvm_parameters"] = ran_with
        values["knobs"] = {k.name: k.after for k in knobs if not is_module_param(k.name)}
    if variant is not None:
        values["variant"] = variant.fingerprint_text()
    return tuple(sorted((name, _text(value)) for name, value in values.items()))


def ignored_fields(axis: str | None) -> frozenset[str]:
    if axis is None:
        return frozenset()
    if axis in AXIS_FIELDS:
        return frozenset(AXIS_FIELDS[axis])
    return frozenset(("kernel_cmdline",)) if "." in axis else frozenset()


def differences(host: str, baseline: Collection[Fields], candidate: Collection[Fields], *,
                ignore: Collection[str] = ()) -> tuple[FieldDiff, ...]:
    """Fields in which some baseline attempt's host differs from some candidate's."""
    found: dict[str, FieldDiff] = {}
    for b in baseline:
        for c in candidate:
            bd, cd = dict(b), dict(c)
            if "facts" in bd or "facts" in cd:  # no stored facts behind a fingerprint
                if ("facts" in bd) != ("facts" in cd) and "facts" not in ignore:
                    found.setdefault("facts", FieldDiff(host, "facts", bd.get("facts", "known"),
                                                        cd.get("facts", "known")))
                bd, cd = {"knobs": bd["knobs"]}, {"knobs": cd["knobs"]}
            for name in sorted(set(bd) | set(cd)):
                if name in ignore or name in found:
                    continue
                bv, cv = bd.get(name, UNKNOWN), cd.get(name, UNKNOWN)
                if bv != cv:
                    found[name] = FieldDiff(host, name, bv, cv)
    return tuple(found[n] for n in sorted(found))


def check_allowed(diffs: Iterable[FieldDiff], allowed: Collection[str]) -> tuple[FieldDiff, ...]:
    """The allowed differences (to show); MismatchError listing the others."""
    diffs = tuple(diffs)
    refused = [d for d in diffs if d.field not in allowed]
    if refused:
        names = sorted({d.field for d in refused})
        shown = "; ".join(d.text() for d in refused[:6])
        more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
        raise MismatchError(f"not like for like: {shown}{more}", where="fingerprint",
                            hint=f"compare the same hardware and setup, or pass "
                                 f"--allow-mismatch {' '.join(names)}")
    return diffs


def validate_allowed(names: Iterable[str]) -> frozenset[str]:
    unknown = sorted(set(names) - set(FIELDS))
    if unknown:
        raise FleetError(f"--allow-mismatch {' '.join(unknown)}: not a fingerprint field",
                         where="--allow-mismatch", hint=f"fields: {', '.join(FIELDS)}")
    return frozenset(names)


def _text(value: object) -> str:
    if value is None:
        return UNKNOWN
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
