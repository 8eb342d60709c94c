"""What the controller ships to a host to start its agent: a constant bootstrap and the
agent's source text: every file of fleet/agent/remote/, runner.py first. Pure: reads only the
package's own files.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fleet.hosts import Become
from fleet.transport.base import BECOME_HINT, become_failure

# Reads the agent's source (a decimal byte count, a newline, the bytes) from stdin, refuses a
# python older than 3.8 with one "fatal" line, then runs the agent. Valid Python 2 and 3.
BOOTSTRAP = """\
import os, sys
def take(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise SystemExit("fleet-agent: stdin closed before the agent source arrived")
        data += chunk
    return data
if sys.version_info < (3, 8):
    os.write(1, ('{"type": "fatal", "message": "python3 on the host is %d.%d.%d; '
                 'fleet-agent needs 3.8 or newer"}\\n' % tuple(sys.version_info[:3])).encode())
    raise SystemExit(3)
header = b""
while not header.endswith(b"\\n"):
    header += take(1)
scope = {"__name__": "fleet_agent"}
exec(compile(take(int(header)), "fleet-agent", "exec"), scope)
scope["main"]()
"""
AGENT_ARGV = ("python3", "-I", "-u", "-c", BOOTSTRAP)
PYTHON_MISSING_EXIT = 127
REMOTE_DIR = Path(__file__).with_name("remote")
RUNNER = "runner.py"  # first: its __future__ line covers the whole text
_FUTURE_LINE = "from __future__ import annotations\n"


def shipped_files() -> list[Path]:
    """runner.py, then every other module of fleet/agent/remote/ by name (not __init__.py)."""
    others = sorted(p for p in REMOTE_DIR.glob("*.py") if p.name not in {RUNNER, "__init__.py"})
    return [REMOTE_DIR / RUNNER, *others]


@functools.cache
def agent_source() -> bytes:
    """The shipped files as one text, each after the first without its ``__future__`` line
    (runner.py's covers the whole text; a second one mid-text would be a SyntaxError). One
    scope: top-level names must be unique across the files."""
    first, *rest = shipped_files()
    parts = [first.read_text(encoding="utf-8")]
    for path in rest:
        text = path.read_text(encoding="utf-8")
        if _FUTURE_LINE not in text:
            raise ValueError(f"{path.name} lacks {_FUTURE_LINE.strip()!r}")
        parts.append(text.replace(_FUTURE_LINE, "", 1))
    return "\n\n".join(parts).encode("utf-8")


def start_failure(code: int | None, stderr: str, tail: str,
                  become: Become | None) -> tuple[str, str]:
    """What an agent that ended before its hello means, and what to do: (what, hint)."""
    refused = become_failure(stderr) if become is not None else None
    if become is not None and refused is not None:
        return f"sudo refused to start the agent as {become.user}: {refused}", BECOME_HINT
    if code == PYTHON_MISSING_EXIT or ("python3: " in tail and "not found" in tail):
        return (f"python3 not found ({tail or f'exit {code}'})",
                "install python3 (3.8 or newer) on the host")
    return (f"the agent exited at start (exit {code}): {tail or 'no stderr'}",
            "check python3 on the host")
