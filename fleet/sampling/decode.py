"""The agent's "sample" messages, read back into whole file texts. Pure.

The agent (fleet/agent/remote/sampler.py) sends each file's text whole the first time, then only
its changed lines (``[[index, line], ...]``), nothing when it did not change, and null when it
cannot be read. :class:`SampleDecoder` keeps the current lines of every file and turns each
message, in order, into a :class:`Snapshot` with every file's whole text as of that sample.
Per-process files (``pid/<pid>/<name>``) are in a snapshot only for the pids it lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleet.agent.protocol import ProtocolError


@dataclass(frozen=True)
class Snapshot:
    """One sample: host clocks, the workload's pids and every sampled file's text."""

    seq: int
    monotonic_seconds: float
    wall_seconds: float
    final: bool  # taken as the workload's exit was seen (off the interval grid)
    missed: int  # deadlines the agent could not keep so far
    pids: tuple[int, ...]
    texts: Mapping[str, str | None]  # key -> text; None: could not be read
    errors: Mapping[str, str]  # key -> why it could not be read (sent once per key)
    kmsg: str  # /dev/kmsg records logged since the previous sample
    kmsg_lost: bool  # records were overwritten before the agent read them
    agent_cpu_seconds: float  # the agent's CPU time so far (user + system)
    sample_seconds: float  # how long the agent took to take this sample

    def text(self, key: str) -> str | None:
        return self.texts.get(key)


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"sample.{key} is {value!r:.60}, expected a number")
    return float(value)


def _count(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"sample.{key} is {value!r:.60}, expected an int")
    return value


class SampleDecoder:
    """Applies one run's sample messages in order; each ``feed`` gives a Snapshot."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str] | None] = {}
        self._texts: dict[str, str | None] = {}
        self._next_seq = 0

    def feed(self, body: Mapping[str, Any]) -> Snapshot:
        seq = _count(body, "seq")
        if seq != self._next_seq:
            raise ProtocolError(f"sample {seq} arrived, expected {self._next_seq}")
        self._next_seq += 1
        files = body.get("files")
        pids = body.get("pids")
        if not isinstance(files, dict):
            raise ProtocolError("sample.files is not an object")
        if not isinstance(pids, list) or not all(
                isinstance(p, int) and not isinstance(p, bool) for p in pids):
            raise ProtocolError("sample.pids is not a list of ints")
        for key, change in files.items():
            self._apply(str(key), change)
        live = {f"pid/{p}/" for p in pids}
        for key in [k for k in self._texts if k.startswith("pid/")
                    and k[:k.index("/", 4) + 1] not in live]:
            del self._texts[key], self._lines[key]
        return Snapshot(
            seq=seq, monotonic_seconds=_number(body, "monotonic_seconds"),
            wall_seconds=_number(body, "wall_seconds"), final=body.get("final") is True,
            missed=_count(body, "missed"), pids=tuple(pids), texts=dict(self._texts),
            errors=_strings(body.get("errors"), "errors"), kmsg=_text(body.get("kmsg")),
            kmsg_lost=body.get("kmsg_lost") is True,
            agent_cpu_seconds=_number(body, "agent_cpu_seconds"),
            sample_seconds=_number(body, "sample_seconds"))

    def _apply(self, key: str, change: Any) -> None:
        if change is None:
            self._lines[key] = None
            self._texts[key] = None
        elif isinstance(change, str):
            self._lines[key] = change.split("\n")
            self._texts[key] = change
        elif isinstance(change, list):
            lines = self._lines.get(key)
            if lines is None:
                raise ProtocolError(f"sample changes lines of {key}, whose text it never sent")
            for item in change:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                        and isinstance(item[1], str) and 0 <= item[0] < len(lines)):
                    raise ProtocolError(f"sample.files[{key!r}] has a bad change {item!r:.60}")
                lines[item[0]] = item[1]
            self._texts[key] = "\n".join(lines)
        else:
            raise ProtocolError(f"sample.files[{key!r}] is {change!r:.60}")


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ProtocolError(f"sample.{what} is not an object of strings")
    return {str(k): v for k, v in value.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"sample.kmsg is {value!r:.60}, expected a string")
    return value
