"""The tags every new run gets by default (``fleet run`` and ``fleet gate``; a resumed run
keeps the tags it was recorded with).

Defaults (a ``--tag`` with the same key wins): ``date`` (UTC day the run was recorded,
YYYY-MM-DD), ``fleet_version``, and ``git_sha`` (HEAD of the git repository holding the suite
file, when it is in one and git is installed). ``--tag`` parsing: fleet.compare.tags.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from fleet import __version__

_GIT_TIMEOUT_SECONDS = 5.0


def default_tags(suite_path: Path | None, *, now_unix_seconds: float | None = None
                 ) -> dict[str, str]:
    """date, fleet_version and (when the suite is in a git checkout) git_sha."""
    stamp = time.gmtime(time.time() if now_unix_seconds is None else now_unix_seconds)
    tags = {"date": time.strftime("%Y-%m-%d", stamp), "fleet_version": __version__}
    sha = None if suite_path is None else git_sha(suite_path.resolve().parent)
    if sha is not None:
        tags["git_sha"] = sha
    return tags


def with_defaults(given: Mapping[str, str], suite_path: Path | None, *,
                  now_unix_seconds: float | None = None) -> dict[str, str]:
    """The default tags, then ``given`` (which wins on a shared key)."""
    return {**default_tags(suite_path, now_unix_seconds=now_unix_seconds), **given}


def git_sha(directory: Path) -> str | None:
    """HEAD of the repository holding ``directory``; None outside one or without git."""
    try:
        result = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=_GIT_TIMEOUT_SECONDS,
                                check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,64}", sha) else None
