"""Workload families: each one configures a Workload from its suite entry.

A family is its ``kind`` (the suite's ``type:``), the entry keys it reads, and ``configure``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleet.workloads import command, sleep
from fleet.workloads.base import ParamSpec, Workload, format_param_value
from fleet.yamlnode import Node


@dataclass(frozen=True)
class Family:
    kind: str
    config_keys: tuple[str, ...]
    configure: Callable[[Mapping[str, Node], str], Workload]


FAMILIES: Mapping[str, Family] = {
    "command": Family("command", command.CONFIG_KEYS, command.configure),
    "sleep": Family("sleep", sleep.CONFIG_KEYS, sleep.configure),
}

__all__ = ["FAMILIES", "Family", "Node", "ParamSpec", "Workload", "format_param_value"]
