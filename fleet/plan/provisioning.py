"""Pure: how a host reaches a case's variant (``kernel``, ``kernel_cmdline``, ``<module>.<param>``).

For each variant setting the host's facts do not already show, one step says how:

* ``knob``: a KVM module parameter whose mode has the owner write bit (``0644``): set before
  the case, read back, restored after, like a sysctl (fleet.execute.knobs);
* ``reload``: a read-only module parameter (``0444``), or a module that is not loaded: a
  modprobe.d option and a module (re)load when no VM runs;
* ``kexec`` / ``reboot``: another kernel or kernel command line; kexec on hosts that boot that
  way (emulated lab guests, ``fleet_boot: kexec`` in the inventory), else a reboot;
  a ``kernel`` value naming a variant the host declares (fleet_variants) is a step `fleet run`
  takes itself before the variant's group (``by_run``; a kvm_modules variant is a reload);
* ``unknown``: the facts do not say (parameter modes not recorded: re-gather facts);
* ``impossible``: the host cannot have it (no such parameter, a module for another CPU vendor,
  a value the parameter cannot take).

Values are compared as the kernel prints them: a boolean parameter prints ``Y``/``N``, so a
suite's ``1``, ``true``, ``on`` mean ``Y``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from fleet.hosts import BootMethod
from fleet.knobs import module_param_path
from fleet.model import Assignment, Facts, HostQueue, ParamValue
from fleet.workloads.base import format_param_value

How = Literal["knob", "reload", "kexec", "reboot", "unknown", "impossible"]
# the heavier a step, the later: a variant's ``how`` is its heaviest step
HOW_ORDER: tuple[How, ...] = ("knob", "reload", "kexec", "reboot", "unknown", "impossible")
_TRUE = frozenset(("y", "yes", "1", "true", "on"))
_FALSE = frozenset(("n", "no", "0", "false", "off"))
READ_ONLY = "read-only parameter"
_VENDOR_MODULES = {"kvm_intel": "GenuineIntel", "kvm_amd": "AuthenticAMD"}


@dataclass(frozen=True)
class Step:
    """One variant setting the host does not have yet, and how it would get it."""

    name: str  # kvm.eager_page_split, kernel, kernel_cmdline
    wanted: str  # as the kernel prints it (Y/N for a boolean parameter)
    current: str | None  # the host's value; None: it has none (or the facts do not say)
    how: How
    why: str  # e.g. "writable parameter", "read-only parameter"
    by_run: bool = False  # a declared variant: `fleet run` provisions it before its group

    def text(self) -> str:
        have = "not set" if self.current is None else self.current
        return f"{self.name}={self.wanted} (host: {have}): {self.how}, {self.why}"


@dataclass(frozen=True)
class ModuleKnob:
    """A module parameter the executor sets (or, when it already holds, verifies) as a knob."""

    name: str  # kvm.eager_page_split
    path: str  # /sys/module/kvm/parameters/eager_page_split
    text: str  # the value as the kernel prints it


@dataclass(frozen=True)
class Provisioning:
    """What one host needs for one variant: the steps, and the module parameters to set."""

    steps: tuple[Step, ...]  # only settings the host does not have yet
    knobs: tuple[ModuleKnob, ...]  # writable parameters that differ, and parameters that hold

    @property
    def how(self) -> How | None:
        """The heaviest step; None: the host already is this variant."""
        if not self.steps:
            return None
        return max((s.how for s in self.steps), key=HOW_ORDER.index)

    @property
    def blocking(self) -> tuple[Step, ...]:
        """The steps a run cannot take itself (all but knobs)."""
        return tuple(s for s in self.steps if s.how != "knob")

    def failure(self) -> str | None:
        """Why a case of this variant cannot run here now (None: it can, knobs included)."""
        blocking = self.blocking
        if not blocking:
            return None
        parts = "; ".join(f"{s.name}={s.wanted} {_needs(s)}" for s in blocking)
        if all(s.by_run for s in blocking):
            names = ", ".join(s.wanted for s in blocking)
            return (f"variant {parts}; fleet run provisions it before the variant's group "
                    f"(or: fleet provision --variant {names})")
        if any(s.how in ("reload", "kexec", "reboot") for s in blocking):
            return f"variant {parts}; run `fleet provision` first{_as_variant(blocking)}"
        return f"variant {parts}"


def _as_variant(blocking: tuple[Step, ...]) -> str:
    """For read-only module parameters: the way fleet run reaches them itself."""
    words = [f"{s.name}={s.wanted}" for s in blocking
             if s.how == "reload" and s.why == READ_ONLY]
    if not words:
        return ""
    return (f", or declare a kernel variant with cmdline: {' '.join(words)} and name it in the "
            "kernel axis (fleet run boots it between groups)")


def _needs(step: Step) -> str:
    if step.how == "reload":
        return f"needs a module reload ({step.why})"
    if step.how in ("kexec", "reboot"):
        verb = "a kexec" if step.how == "kexec" else "a reboot"
        return f"needs {verb} ({step.why})"
    if step.how == "unknown":
        return f"cannot be planned ({step.why})"
    return f"cannot be reached on this host ({step.why})"


def provisioning(variant: Assignment, facts: Facts | None, *,
                 boot: BootMethod | None = None,
                 releases: Mapping[str, str] | None = None,
                 declared: Mapping[str, str] | None = None) -> Provisioning:
    """How a host with these facts (booting by ``boot``; None: reboot) reaches ``variant``.

    ``releases``: the host's declared kernel variants (fleet_variants) -> the kernel release
    each one runs, where the declaration says (a package's or a .deb's); a ``kernel`` value
    naming one is met when the host runs that release. ``declared``: every declared variant
    -> its kind (a kvm_modules or kernel variant is never taken as met from the facts)."""
    steps: list[Step] = []
    knobs: list[ModuleKnob] = []
    for name, value in variant:
        if name in ("kernel", "kernel_cmdline"):
            step = _boot_step(name, format_param_value(value), facts, boot,
                              releases=releases or {}, declared=declared or {})
        else:
            step, knob = _module_step(name, value, facts)
            if knob is not None:
                knobs.append(knob)
        if step is not None:
            steps.append(step)
    return Provisioning(tuple(steps), tuple(knobs))


def _boot_step(name: str, wanted: str, facts: Facts | None, boot: BootMethod | None, *,
               releases: Mapping[str, str], declared: Mapping[str, str]) -> Step | None:
    release = releases.get(wanted) if name == "kernel" else None
    kind = declared.get(wanted) if name == "kernel" else None
    kind = kind or ("package" if release is not None else None)  # a declared release
    if facts is None and kind is None:
        return Step(name, wanted, None, "unknown", "the host has no facts")
    current = None if facts is None else \
        facts.kernel_release if name == "kernel" else facts.kernel_cmdline
    if current == wanted or (release is not None and current == release and
                             kind in (None, "package", "deb")):
        return None
    how: How = "kexec" if boot == "kexec" else "reboot"
    what = "another kernel" if name == "kernel" else "another kernel command line"
    if kind is not None:
        what = f"variant {wanted} runs {release}" if release is not None else \
            f"variant {wanted} ({kind})"
        return Step(name, wanted, current, "reload" if kind == "kvm_modules" else how, what,
                    by_run=True)
    return Step(name, wanted, current, how, what)


def _module_step(name: str, value: ParamValue, facts: Facts | None
                 ) -> tuple[Step | None, ModuleKnob | None]:
    module_name, _, param = name.partition(".")
    text = format_param_value(value)
    if facts is None:
        return Step(name, text, None, "unknown", "the host has no facts"), None
    module = next((m for m in facts.kvm.modules if m.name == module_name), None)
    if module is None:
        return _not_loaded(name, module_name, text, facts), None
    current = module.value(param)
    if current is None:
        return Step(name, text, None, "impossible",
                    f"{module_name} has no parameter {param} on kernel "
                    f"{facts.kernel_release or 'unknown'}"), None
    return _loaded_step(name, text, current, module.is_writable(param))


def _loaded_step(name: str, text: str, current: str, writable: bool | None
                 ) -> tuple[Step | None, ModuleKnob | None]:
    wanted = kernel_text(text, current)
    if wanted is None:
        return Step(name, text, current, "impossible",
                    "a boolean parameter takes Y or N"), None
    module, _, param = name.partition(".")
    knob = ModuleKnob(name, module_param_path(module, param), wanted)
    if wanted == current:
        return None, knob  # holds already: verified (and recorded) like a knob
    if writable:
        return Step(name, wanted, current, "knob", "writable parameter"), knob
    if writable is None:
        return Step(name, wanted, current, "unknown",
                    "its mode was not recorded: re-gather facts (fleet facts)"), None
    return Step(name, wanted, current, "reload", READ_ONLY), None


def _not_loaded(name: str, module: str, wanted: str, facts: Facts) -> Step:
    vendor = _VENDOR_MODULES.get(module)
    if vendor is not None and facts.cpu.vendor is not None and facts.cpu.vendor != vendor:
        return Step(name, wanted, None, "impossible",
                    f"{module} needs a {vendor} CPU, the host has {facts.cpu.vendor}")
    return Step(name, wanted, None, "reload", f"{module} is not loaded")


def kernel_text(text: str, current: str) -> str | None:
    """``text`` as the kernel would print it for a parameter now printing ``current``:
    Y/N for a boolean one (None: not a boolean), else unchanged."""
    if current not in ("Y", "N"):
        return text
    lower = text.lower()
    if lower in _TRUE:
        return "Y"
    if lower in _FALSE:
        return "N"
    return None


@dataclass(frozen=True)
class GroupProvisioning:
    """One variant group of a host's queue that the host is not in yet, and how it gets there."""

    host: str
    variant: Assignment
    case_ids: tuple[str, ...]  # the group's cases, in queue order, once each
    provisioning: Provisioning
    group: int = 0  # its index in the host's queue (a variant may have several groups)


def plan_provisioning(queues: Sequence[HostQueue], facts: Mapping[str, Facts],
                      boot: Mapping[str, BootMethod],
                      releases: Mapping[str, Mapping[str, str]] | None = None,
                      declared: Mapping[str, Mapping[str, str]] | None = None
                      ) -> tuple[GroupProvisioning, ...]:
    """Every (host, variant group) of a plan that needs a step, host by host in queue order.

    The first group is reached from the host's facts. After a group of a declared kernel
    variant the host runs that variant: a later group of another one is a switch, also to
    the variant the facts show (A B A: the second A is a switch back); a later group of the
    same one is none (the run verifies it stays)."""
    out: list[GroupProvisioning] = []
    for queue in queues:
        host_releases = (releases or {}).get(queue.host) or {}
        host_declared = (declared or {}).get(queue.host) or {}
        on: str | None = None  # the declared variant an earlier group switched the host to
        for number, group in enumerate(queue.groups):
            reach = provisioning(group.variant, facts.get(queue.host),
                                 boot=boot.get(queue.host), releases=host_releases,
                                 declared=host_declared)
            kernel = dict(group.variant).get("kernel")
            name = None if kernel is None else format_param_value(kernel)
            if name is None or (name not in host_declared and name not in host_releases):
                name = None
            elif on is not None:
                reach = _from_variant(reach, name, on, boot=boot.get(queue.host),
                                      releases=host_releases, declared=host_declared)
            on = name or on
            if reach.steps:
                cases = tuple(dict.fromkeys(e.case_id for e in group.entries))
                out.append(GroupProvisioning(queue.host, group.variant, cases, reach, number))
    return tuple(out)


def _from_variant(reach: Provisioning, name: str, on: str, *, boot: BootMethod | None,
                  releases: Mapping[str, str], declared: Mapping[str, str]) -> Provisioning:
    """``reach`` (from the facts) for a host an earlier group put on declared variant ``on``:
    no kernel step when it is ``name``, else the run's switch from ``on`` to ``name``."""
    others = tuple(s for s in reach.steps if s.name != "kernel")
    if name == on:
        return Provisioning(others, reach.knobs)
    (switch,) = provisioning((("kernel", name),), None, boot=boot, releases=releases,
                             declared=declared).steps
    return Provisioning((replace(switch, current=on), *others), reach.knobs)
