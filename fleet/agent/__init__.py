"""The fleet agent: one long-lived process per host, spoken to over one channel.

``runner.py`` is the HOST side (stdlib only, python3 >= 3.8, shipped as source text with
``host_files.py`` and ``sampler.py``);
``session.py`` is the controller side (AgentSession); ``protocol.py`` and
``protocol_decode.py`` are the pure message layer.
"""

from fleet.agent.protocol import (
    PROTOCOL_VERSION,
    FileContent,
    Hello,
    RunOutcome,
    SampleSpec,
    WriteOutcome,
)
from fleet.agent.session import AgentSession

__all__ = [
    "PROTOCOL_VERSION",
    "AgentSession",
    "FileContent",
    "Hello",
    "RunOutcome",
    "SampleSpec",
    "WriteOutcome",
]
