"""The workload interface, parameter schemas, and the located YAML node workloads read config from.

A workload family (``command``, ``sleep``, ...) is configured from its suite entry into a
:class:`Workload`: it declares its parameters and required host capabilities, builds an argv
(a list of strings, never a shell string: parameter values are data) and parses the output
into typed :class:`~fleet.model.Measurement` records.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import yaml

from fleet.errors import ConfigError
from fleet.model import Facts, Measurement, ParamValue, Requirements

_S = TypeVar("_S", str, int, bool)
ParamType = Literal["str", "int", "float", "bool", "scalar"]

_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str"}


def type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type, default, whether it must be given, allowed values."""

    name: str
    type: ParamType
    required: bool = True
    default: ParamValue | None = None
    choices: tuple[ParamValue, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    def coerce(self, value: ParamValue) -> ParamValue:
        """The value in canonical form (int -> float for float params) or ValueError."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number, not {value}")
        checked = self._typed(value)
        if isinstance(checked, str) and "\0" in checked:
            raise ValueError(f"{self.name} contains a NUL byte, which no argv element can hold")
        if self.choices is not None and checked not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise ValueError(f"{self.name} must be one of {allowed}, not {value!r}")
        if self.minimum is not None and not isinstance(checked, str | bool) \
                and checked < self.minimum:
            raise ValueError(f"{self.name} must be >= {self.minimum:g}, not {value!r}")
        if self.maximum is not None and not isinstance(checked, str | bool) \
                and checked > self.maximum:
            raise ValueError(f"{self.name} must be <= {self.maximum:g}, not {value!r}")
        return checked

    def describe(self) -> str:
        """What values the parameter takes, for hints."""
        if self.choices is not None:
            return f"{self.name} takes one of {', '.join(map(str, self.choices))}"
        kind = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or "
                "false", "scalar": "a string, number or boolean"}[self.type]
        limits = [f">= {self.minimum:g}"] if self.minimum is not None else []
        limits += [f"<= {self.maximum:g}"] if self.maximum is not None else []
        return f"{self.name} takes {kind}{' ' if limits else ''}{' and '.join(limits)}"

    def _typed(self, value: ParamValue) -> ParamValue:
        kind = type_name(value)
        if self.type in ("scalar", kind):
            return value
        if self.type == "float" and kind == "int":
            return float(value)
        raise ValueError(f"{self.name} must be {self.type}, not {kind} {value!r}")


def format_value(value: ParamValue) -> str:
    """How a parameter value appears inside an argv element."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value) if not isinstance(value, float) else repr(value)


class Workload(ABC):
    """A configured workload: what it needs, how to run it, how to read its output."""

    kind: str = ""

    @abstractmethod
    def params(self) -> tuple[ParamSpec, ...]:
        """The parameter schema (names, types, defaults, required)."""

    def requirements(self, params: Mapping[str, ParamValue]) -> Requirements:
        """Host capabilities the workload needs for these params."""
        del params
        return Requirements()

    def identity(self) -> Mapping[str, object]:
        """Configuration that changes what runs (part of every case id); JSON-able."""
        return {}

    def estimate_seconds(self, params: Mapping[str, ParamValue]) -> float | None:
        """Expected duration of one run, or None if unknown (the planner uses the timeout)."""
        del params
        return None

    @abstractmethod
    def build(self, params: Mapping[str, ParamValue], facts: Facts | None) -> tuple[str, ...]:
        """The argv to run: one element per argument, values never split or re-parsed."""

    @abstractmethod
    def parse(self, stdout: str, stderr: str, exit_code: int) -> tuple[Measurement, ...]:
        """Typed measurements; a metric not found is reported with value None."""

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params() if p.name == name), None)


# ---- located YAML -------------------------------------------------------------------------

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
}


class Node:
    """A YAML node that knows its file:line; every accessor raises ConfigError there."""

    def __init__(self, node: yaml.Node, source: str) -> None:
        self.node = node
        self.source = source

    @property
    def where(self) -> str:
        return f"{self.source}:{self.node.start_mark.line + 1}"

    def error(self, what: str, hint: str | None = None) -> ConfigError:
        return ConfigError(what, where=self.where, hint=hint)

    def mapping(self, what: str) -> dict[str, Node]:
        """Keys (strings, no duplicates) -> value nodes, in file order."""
        return {name: value for _, name, value in self._pairs(what)}

    def _pairs(self, what: str) -> list[tuple[Node, str, Node]]:
        """(key, name, value) in file order; merged (``<<: *x``) keys yield to explicit ones."""
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"{what} must be a mapping", hint="write 'key: value' lines")
        explicit: dict[str, tuple[Node, str, Node]] = {}
        merged: dict[str, tuple[Node, str, Node]] = {}
        for key_node, value_node in self.node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                    else [value_node]
                for source in sources:
                    for pair in Node(source, self.source)._pairs(what):
                        merged.setdefault(pair[1], pair)
                continue
            key = Node(key_node, self.source)
            name = key.string(f"a key of {what}")
            if name in explicit:
                raise key.error(f"duplicate key {name!r} in {what}", hint="give each key once")
            explicit[name] = (key, name, Node(value_node, self.source))
        return list({**merged, **explicit}.values())

    def fields(self, what: str, *, required: Sequence[str] = (),
               optional: Sequence[str] = ()) -> dict[str, Node]:
        """A mapping whose keys are all known; unknown keys and missing required keys fail."""
        pairs = self._pairs(what)
        known = [*required, *optional]
        for key, name, _ in pairs:
            if name not in known:
                raise key.error(f"unknown key {name!r} in {what}",
                                hint=f"known keys: {', '.join(sorted(set(known)))}")
        items = {name: value for _, name, value in pairs}
        missing = [k for k in required if k not in items]
        if missing:
            raise self.error(f"{what} lacks {', '.join(map(repr, missing))}",
                             hint=f"add {missing[0]}: ...")
        return items

    def sequence(self, what: str) -> list[Node]:
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"{what} must be a list", hint="write '- item' lines or [a, b]")
        return [Node(n, self.source) for n in self.node.value]

    def scalar(self, what: str) -> ParamValue:
        """A YAML string, int, float or bool (null, lists and mappings are refused)."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag not in _SCALAR_TAGS:
            shown = "a list" if isinstance(self.node, yaml.SequenceNode) else \
                "a mapping" if isinstance(self.node, yaml.MappingNode) else \
                self.node.tag.rsplit(":", 1)[-1]
            raise self.error(f"{what} must be a string, number or boolean, not {shown}",
                             hint="write a scalar such as 3, 0.5, text or true")
        value = yaml.SafeLoader("").construct_object(self.node)
        assert isinstance(value, str | int | float | bool)
        return value

    def string(self, what: str) -> str:
        return self._typed(what, str, "a string")

    def boolean(self, what: str) -> bool:
        return self._typed(what, bool, "true or false")

    def integer(self, what: str, *, minimum: int | None = None) -> int:
        value = self._typed(what, int, "an integer")
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum}, not {value}",
                             hint=f"use {minimum} or more")
        return value

    def number(self, what: str, *, minimum: float | None = None) -> float:
        value = self.scalar(what)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise self.error(f"{what} must be a number, not {value!r}", hint="write e.g. 30 or 0.5")
        if minimum is not None and value < minimum:
            raise self.error(f"{what} must be >= {minimum:g}, not {value!r}",
                             hint=f"use {minimum:g} or more")
        return float(value)

    def strings(self, what: str) -> tuple[str, ...]:
        """A list of strings (a single string counts as a list of one)."""
        if isinstance(self.node, yaml.ScalarNode):
            return (self.string(what),)
        return tuple(item.string(f"an item of {what}") for item in self.sequence(what))

    def _typed(self, what: str, kind: type[_S], expected: str) -> _S:
        value = self.scalar(what)
        if not isinstance(value, kind) or type(value) is not kind:
            raise self.error(f"{what} must be {expected}, not {type_name(value)} {value!r}",
                             hint="YAML quotes make strings: write 3, not '3'"
                             if kind is not str else "quote it: '...'")
        return value
