"""fleet-agent's file requests (``read`` many files, ``write`` one existing file, a knob) and
the bounded capture of a child's output.

HOST side, stdlib only, python3 >= 3.8: shipped after runner.py's text (see fleet/agent/session.py).
"""

from __future__ import annotations

import os
from typing import Any


def read_files(paths: list[str], max_bytes: int) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as e:
            files.append(dict(_os_error(path, e), text=None, truncated=False))
            continue
        files.append({"path": path, "text": data[:max_bytes].decode("utf-8", errors="replace"),
                      "truncated": len(data) > max_bytes, "errno": None, "error": None})
    return files


def _os_error(path: str, e: OSError) -> dict[str, Any]:
    return {"path": path, "errno": e.errno, "error": e.strerror or str(e)}


def write_file(path: str, value: str) -> dict[str, Any]:
    """Write ``value`` in one write(2) to an EXISTING file (knobs: no O_CREAT, truncated)."""
    data = value.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        return _os_error(path, e)
    if written != len(data):
        return {"path": path, "errno": None, "error": f"wrote {written} of {len(data)} bytes"}
    return {"path": path, "errno": None, "error": None}


class Capture:
    """A bounded sink for one pipe: the first half of the cap, the last half, the total count."""

    def __init__(self, cap_bytes: int) -> None:
        self.head_cap = cap_bytes // 2
        self.tail_cap = cap_bytes - self.head_cap
        self.head, self.tail = bytearray(), bytearray()
        self.total_bytes = 0

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_cap:
            self.tail += data
            if len(self.tail) > self.tail_cap:
                del self.tail[:len(self.tail) - self.tail_cap]

    def text(self) -> tuple[str, bool]:
        """The kept text and whether bytes were dropped (then a marker stands between halves)."""
        omitted = self.total_bytes - len(self.head) - len(self.tail)
        if omitted <= 0:
            return bytes(self.head + self.tail).decode("utf-8", errors="replace"), False
        marker = f"\n[fleet-agent: {omitted} bytes omitted]\n"  # = AGENT_NAME
        return (self.head.decode("utf-8", errors="replace") + marker
                + self.tail.decode("utf-8", errors="replace")), True
