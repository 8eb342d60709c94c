"""Run tags: ``--tag KEY=VALUE`` parsing and the tags every run gets by default.

Defaults (a ``--tag`` with the same key wins): ``date`` (UTC day the run started,
YYYY-MM-DD), ``fleet_version``, and ``git_sha`` (HEAD of the git repository holding the suite
file, when it is in one and git is installed). Keys: a letter, then letters, digits, ``_ . -``.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from fleet import __version__
from fleet.errors import ConfigError

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
MAX_VALUE_CHARS = 200
_GIT_TIMEOUT_SECONDS = 5.0


def parse_tag(text: str, *, where: str = "--tag") -> tuple[str, str]:
    """``"branch=main"`` -> ("branch", "main"); ConfigError on anything else."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or _KEY.fullmatch(key) is None:
        raise ConfigError(f"tag {text!r} is not KEY=VALUE with a KEY of letters, digits, _ . -",
                          where=where, hint="e.g. --tag branch=main --tag kernel=6.12-rc1")
    if not value or len(value) > MAX_VALUE_CHARS or any(c in value for c in "\r\n\t"):
        raise ConfigError(f"tag {key!r} needs a one-line value of 1 to {MAX_VALUE_CHARS} "
                          "characters", where=where, hint="e.g. --tag branch=main")
    return key, value


def parse_tags(texts: Iterable[str], *, where: str = "--tag") -> dict[str, str]:
    tags: dict[str, str] = {}
    for text in texts:
        key, value = parse_tag(text, where=where)
        if key in tags and tags[key] != value:
            raise ConfigError(f"tag {key!r} given twice ({tags[key]!r}, {value!r})", where=where,
                              hint="a run has one value per tag key")
        tags[key] = value
    return tags


def default_tags(suite_path: Path | None, *, now_unix_seconds: float | None = None
                 ) -> dict[str, str]:
    """date, fleet_version and (when the suite is in a git checkout) git_sha."""
    stamp = time.gmtime(time.time() if now_unix_seconds is None else now_unix_seconds)
    tags = {"date": time.strftime("%Y-%m-%d", stamp), "fleet_version": __version__}
    sha = None if suite_path is None else git_sha(suite_path.resolve().parent)
    if sha is not None:
        tags["git_sha"] = sha
    return tags


def with_defaults(given: Mapping[str, str], suite_path: Path | None) -> dict[str, str]:
    return {**default_tags(suite_path), **given}


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
