"""Run one local command for the lab; a failure becomes a one-line LabError.

Every process the lab starts and waits for goes through :func:`run`, the QEMU start included:
``what`` and ``doing`` name it in the messages ("QEMU exited 1 while starting: ..."),
``missing_hint`` says how to install a missing binary, and lines with ``skip_marker`` (QEMU's
``warning:`` lines) are left out of the detail when there is anything else to say.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from fleet.errors import LabError

COMMAND_TIMEOUT_SECONDS = 30.0
MAX_DETAIL_CHARS = 400


def run(argv: Sequence[str], *, stdin: str | None = None, where: str = "lab",
        hint: str | None = None, timeout_seconds: float = COMMAND_TIMEOUT_SECONDS,
        what: str | None = None, doing: str | None = None, missing_hint: str | None = None,
        skip_marker: str | None = None) -> str:
    """Run ``argv``; return its stdout. Non-zero exit, timeout or a missing binary -> LabError.
    The messages call the command ``what`` (default: its command line in backquotes)."""
    name = what or f"`{' '.join(argv)}`"
    finish, exited = (f" {doing}", f" while {doing}") if doing else ("", "")
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=timeout_seconds, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} not found", where=where, hint=missing_hint or hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{name} did not finish{finish} within {timeout_seconds:g} s",
                       where=where, hint=hint) from exc
    if done.returncode != 0:
        raise LabError(f"{name} exited {done.returncode}{exited}: {_detail(done, skip_marker)}",
                       where=where, hint=hint)
    return done.stdout


def _detail(done: subprocess.CompletedProcess[str], skip_marker: str | None) -> str:
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
    lines = [line for line in lines if line]
    if skip_marker is not None:
        lines = [line for line in lines if skip_marker not in line] or lines
    return "; ".join(lines)[:MAX_DETAIL_CHARS] or "no output"
