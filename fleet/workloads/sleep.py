"""The ``sleep`` workload: ``["sleep", seconds]``, for scheduling tests; estimate = seconds."""

from __future__ import annotations

from collections.abc import Mapping

from fleet.errors import ConfigError
from fleet.model import Facts, Measurement, ParamValue
from fleet.workloads.base import ParamSpec, Workload, format_param_value
from fleet.yamlnode import Node

CONFIG_KEYS: tuple[str, ...] = ()
SECONDS = ParamSpec("seconds", "float", minimum=0.0, description="how long to sleep")


class SleepWorkload(Workload):
    kind = "sleep"

    def params(self) -> tuple[ParamSpec, ...]:
        return (SECONDS,)

    def estimate_seconds(self, params: Mapping[str, ParamValue]) -> float | None:
        return float(params["seconds"])

    def build(self, params: Mapping[str, ParamValue], facts: Facts | None) -> tuple[str, ...]:
        del facts
        return ("sleep", format_param_value(SECONDS.coerce(params["seconds"])))

    def parse(self, stdout: str, stderr: str, exit_code: int) -> tuple[Measurement, ...]:
        del stdout, stderr, exit_code
        return ()


def configure(config: Mapping[str, Node], where: str) -> SleepWorkload:
    if config:
        raise ConfigError(f"the sleep workload takes no {', '.join(config)}", where=where,
                          hint="give seconds under params or axes")
    return SleepWorkload()
