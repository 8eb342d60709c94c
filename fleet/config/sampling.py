"""The suite's ``sampling`` option (top level and per workload entry) and the agent's spec.

    sampling: {interval_seconds: 1.0, enabled: true}

Both keys are optional; a workload entry's ``sampling`` overrides the suite's key by key.
The interval is at least 0.1 s (the agent's floor). Unknown keys are errors (file:line).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.agent.protocol import SampleSpec
from fleet.yamlnode import Node

DEFAULT_INTERVAL_SECONDS = 1.0
MIN_INTERVAL_SECONDS = 0.1
SAMPLING_KEYS = ("enabled", "interval_seconds")
KVM_STATS = ("remote_tlb_flush",)  # the KVM debugfs files fleet.sampling.collect keeps


@dataclass(frozen=True)
class SamplingConfig:
    enabled: bool = True
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS


DEFAULT_SAMPLING = SamplingConfig()


def parse_sampling(node: Node | None, default: SamplingConfig) -> SamplingConfig:
    """``sampling:`` at ``node`` (None: not given -> ``default``), keys not given inherited."""
    if node is None:
        return default
    items = node.fields("sampling", optional=SAMPLING_KEYS)
    enabled = items["enabled"].boolean("sampling.enabled") if "enabled" in items \
        else default.enabled
    interval = items["interval_seconds"].number("sampling.interval_seconds",
                                                minimum=MIN_INTERVAL_SECONDS) \
        if "interval_seconds" in items else default.interval_seconds
    return SamplingConfig(enabled, interval)


def sample_spec(config: SamplingConfig | None) -> SampleSpec | None:
    """What the agent is asked to sample; None when sampling is off."""
    if config is None or not config.enabled:
        return None
    return SampleSpec(config.interval_seconds, kvm_stats=KVM_STATS)
