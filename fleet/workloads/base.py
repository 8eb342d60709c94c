"""The workload interface and parameter schemas (the located YAML node workloads read their
config from: fleet.yamlnode).

A workload family (``command``, ``sleep``, ...) is configured from its suite entry into a
:class:`Workload`: it declares its parameters and required host capabilities, builds an argv
(a list of strings, never a shell string: parameter values are data) and parses the output
into typed :class:`~fleet.model.Measurement` records.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fleet.model import Facts, Measurement, ParamValue, Requirements
from fleet.yamlnode import type_name, yaml11_float

ParamType = Literal["str", "int", "float", "bool", "scalar"]

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
        written = yaml11_float(value) if self.type in ("float", "int") else None
        advice = f" (YAML 1.1 reads {value} as text: write {written})" if written else ""
        raise ValueError(f"{self.name} must be {self.type}, not {kind} {value!r}{advice}")


def format_param_value(value: ParamValue) -> str:
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
