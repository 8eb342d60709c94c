"""A host's desired state, read from its inventory variables (pure).

The variables (group_vars / host_vars, or the inventory file's vars):

* ``fleet_sysctl``: {name: value}, e.g. ``{vm.swappiness: 10}``: written to /proc/sys;
  ``fleet_sysctl_persistent: true`` also writes /etc/sysctl.d/90-fleet.conf.
* ``fleet_hugepages``: [{node: 0, size_kb: 2048, count: 64}]: per NUMA node and page size.
* ``fleet_thp``: {enabled: madvise, defrag: defer}: transparent hugepages.
* ``fleet_tools``: [numactl, stress-ng]: Debian packages that must be installed.
* ``fleet_kvm_options``: {kvm: {tdp_mmu: "Y"}}: /etc/modprobe.d/fleet-kvm.conf.
* ``fleet_vfio_devices``: ["0000:00:05.0"]: PCI devices bound to vfio-pci (with every other
  device of their IOMMU groups already bound, listed too, a bridge or driverless: else refused).
* ``fleet_allow_shared_host_changes: true``: allow persistent changes on a network-namespace
  lab host (``fleet_lab_kind: netns``), which shares the controller's kernel and root fs.

Every value is checked here, before any host is touched: a bad one is a ProvisionError naming
the host and the variable (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.config.inventory.variables import ORIGINS, shares_controller
from fleet.errors import ProvisionError

THP_CHOICES: Mapping[str, tuple[str, ...]] = {
    "enabled": ("always", "madvise", "never"),
    "defrag": ("always", "defer", "defer+madvise", "madvise", "never"),
}
_SYSCTL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]+")
_MODULE_WORD = re.compile(r"[A-Za-z0-9_]+")
_VALUE = re.compile(r"[^\x00-\x1f]*")  # one line, no control characters
PCI_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")  # domain:bus:dev.fn


@dataclass(frozen=True)
class HugepagePool:
    node: int
    size_kb: int
    count: int


@dataclass(frozen=True)
class DesiredState:
    """What one host should look like; empty fields ask for nothing."""

    host: str
    sysctl: tuple[tuple[str, str], ...] = ()
    sysctl_persistent: bool = False
    hugepages: tuple[HugepagePool, ...] = ()
    thp: tuple[tuple[str, str], ...] = ()
    tools: tuple[str, ...] = ()
    kvm_options: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    vfio_devices: tuple[str, ...] = ()  # PCI addresses, 0000:00:05.0
    shared_host: bool = False  # a netns lab host: same kernel and root fs as the controller
    allow_shared_host_changes: bool = False

    @property
    def persistent(self) -> tuple[str, ...]:
        """The variables that ask for persistent state (files under /etc)."""
        asked = []
        if self.sysctl_persistent and self.sysctl:
            asked.append("fleet_sysctl_persistent")
        if self.kvm_options:
            asked.append("fleet_kvm_options")
        return tuple(asked)

    @property
    def shared_host_refused(self) -> tuple[str, ...]:
        """The variables refused on a host that shares the controller's kernel and root fs:
        persistent state, and devices taken from the kernel's drivers."""
        return self.persistent + (("fleet_vfio_devices",) if self.vfio_devices else ())


def desired_state(host: str, variables: Mapping[str, Any]) -> DesiredState:
    """The host's fleet_* variables as a DesiredState, or a ProvisionError naming the bad one."""
    return DesiredState(
        host=host,
        sysctl=_sysctl(host, variables.get("fleet_sysctl")),
        sysctl_persistent=_flag(host, "fleet_sysctl_persistent", variables),
        hugepages=_hugepages(host, variables.get("fleet_hugepages")),
        thp=_thp(host, variables.get("fleet_thp")),
        tools=_tools(host, variables.get("fleet_tools")),
        kvm_options=_kvm_options(host, variables.get("fleet_kvm_options")),
        vfio_devices=_vfio_devices(host, variables.get("fleet_vfio_devices"),
                                   variables.get(ORIGINS) or {}),
        shared_host=shares_controller(variables),
        allow_shared_host_changes=_flag(host, "fleet_allow_shared_host_changes", variables),
    )


def _bad(host: str, variable: str, what: str, hint: str) -> ProvisionError:
    return ProvisionError(f"{variable}: {what}", where=host, hint=hint)


def _flag(host: str, name: str, variables: Mapping[str, Any]) -> bool:
    value = variables.get(name, False)
    if not isinstance(value, bool):
        raise _bad(host, name, f"{value!r} is not true or false", "write true or false")
    return value


def _scalar(host: str, variable: str, value: Any) -> str:
    """A value as the text written to the kernel: strings and integers only (YAML's yes/no
    and floats are ambiguous)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad(host, variable, f"{value!r} is not a string or an integer",
                   "quote it, e.g. \"Y\" or \"1\"")
    text = str(value)
    if not _VALUE.fullmatch(text):
        raise _bad(host, variable, f"{text!r} is not one line", "remove the control characters")
    return text


def _mapping(host: str, variable: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(host, variable, f"expected a mapping, got {type(value).__name__}",
                   "see README: Provisioning")
    return value


def _sysctl(host: str, value: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for name, setting in sorted(_mapping(host, "fleet_sysctl", value).items()):
        if not isinstance(name, str) or not _SYSCTL_NAME.fullmatch(name) or ".." in name:
            raise _bad(host, "fleet_sysctl", f"{name!r} is not a sysctl name",
                       "write it with dots, e.g. vm.swappiness")
        out.append((name, _scalar(host, f"fleet_sysctl.{name}", setting)))
    return tuple(out)


def _hugepages(host: str, value: Any) -> tuple[HugepagePool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad(host, "fleet_hugepages", "expected a list of {node, size_kb, count}",
                   "e.g. [{node: 0, size_kb: 2048, count: 64}]")
    pools: dict[tuple[int, int], HugepagePool] = {}
    for index, item in enumerate(value):
        where = f"fleet_hugepages[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"node", "size_kb", "count"}:
            raise _bad(host, where, f"{item!r} is not {{node, size_kb, count}}",
                       "e.g. {node: 0, size_kb: 2048, count: 64}")
        numbers = {key: item[key] for key in ("node", "size_kb", "count")}
        for key, number in numbers.items():
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise _bad(host, f"{where}.{key}", f"{number!r} is not a whole number >= 0",
                           "write a number")
        pool = HugepagePool(**numbers)
        if (pool.node, pool.size_kb) in pools:
            raise _bad(host, where, f"node {pool.node}, {pool.size_kb} kB is given twice",
                       "keep one entry per node and size")
        pools[(pool.node, pool.size_kb)] = pool
    return tuple(pools[key] for key in sorted(pools))


def _thp(host: str, value: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for name, setting in sorted(_mapping(host, "fleet_thp", value).items()):
        choices = THP_CHOICES.get(name)
        if choices is None:
            raise _bad(host, "fleet_thp", f"unknown setting {name!r}",
                       f"use {' or '.join(THP_CHOICES)}")
        if setting not in choices:
            raise _bad(host, f"fleet_thp.{name}", f"{setting!r} is not a choice",
                       f"use one of {', '.join(choices)}")
        out.append((name, str(setting)))
    return tuple(out)


def _tools(host: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _bad(host, "fleet_tools", "expected a list of Debian package names",
                   "e.g. [numactl, stress-ng]")
    for name in value:
        if not isinstance(name, str) or not _PACKAGE.fullmatch(name):
            raise _bad(host, "fleet_tools", f"{name!r} is not a Debian package name",
                       "e.g. stress-ng")
    return tuple(sorted(set(value)))


def _kvm_options(host: str, value: Any) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    out = []
    for module, options in sorted(_mapping(host, "fleet_kvm_options", value).items()):
        if not isinstance(module, str) or not _MODULE_WORD.fullmatch(module):
            raise _bad(host, "fleet_kvm_options", f"{module!r} is not a module name",
                       "e.g. kvm or kvm_intel")
        params = []
        for name, setting in sorted(_mapping(host, f"fleet_kvm_options.{module}",
                                             options).items()):
            text = _scalar(host, f"fleet_kvm_options.{module}.{name}", setting)
            if not isinstance(name, str) or not _MODULE_WORD.fullmatch(name) or " " in text:
                raise _bad(host, f"fleet_kvm_options.{module}", f"{name}={text!r} is not a "
                           "module option", "a parameter name and a value without spaces")
            params.append((name, text))
        if params:
            out.append((module, tuple(params)))
    return tuple(out)


def _vfio_devices(host: str, value: Any, origins: Mapping[str, str]) -> tuple[str, ...]:
    """PCI addresses as sysfs names them (lowercase, with the domain); a bad one names the
    file:line it was read from when Ansible knows it."""
    name = "fleet_vfio_devices"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProvisionError(f"host {host}: {name}: expected a list of PCI addresses",
                             where=origins.get(name, host), hint='e.g. ["0000:00:05.0"]')
    for index, item in enumerate(value):
        if not isinstance(item, str) or not PCI_ADDRESS.fullmatch(item):
            # YAML 1.1 reads an unquoted 0000:00:05.0 as the base-60 number 5.0
            number = isinstance(item, (int, float)) and not isinstance(item, bool)
            raise ProvisionError(
                f"host {host}: {name}[{index}]: {item!r} is not a PCI address"
                + (" (YAML read an unquoted address as a number)" if number else ""),
                where=origins.get(f"{name}[{index}]") or origins.get(name) or host,
                hint="write domain:bus:device.function in lowercase as lspci -D shows it, "
                     'quoted: "0000:00:05.0"')
    return tuple(sorted(set(value)))
