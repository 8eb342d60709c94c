"""The fleet agent: one long-lived process per host, spoken to over one channel.

``remote/`` is the HOST side (stdlib only, python3 >= 3.8): every file in it is shipped as
source text (``shipping.py``), ``remote/runner.py`` first, and ``remote/version.py`` holds the
protocol version both sides speak. The rest is the controller side: ``session.py``
(AgentSession), and the pure message layer ``protocol.py`` and ``protocol_decode.py``.
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
