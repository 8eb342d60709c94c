"""Run one local command for the lab; a failure becomes a one-line LabError."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from fleet.errors import LabError

COMMAND_TIMEOUT_SECONDS = 30.0
MAX_DETAIL_CHARS = 400


def run(argv: Sequence[str], *, stdin: str | None = None, where: str = "lab",
        hint: str | None = None, timeout_seconds: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run ``argv``; return its stdout. Non-zero exit, timeout or a missing binary -> LabError."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=timeout_seconds, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found", where=where, hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout_seconds:g} s",
                       where=where, hint=hint) from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
        detail = "; ".join(line for line in lines if line)[:MAX_DETAIL_CHARS] or "no output"
        raise LabError(f"`{' '.join(argv)}` exited {done.returncode}: {detail}",
                       where=where, hint=hint)
    return done.stdout

