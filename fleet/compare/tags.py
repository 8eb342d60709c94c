"""Run tags: ``--tag KEY=VALUE`` parsing. Keys: a letter, then letters, digits, ``_ . -``.

The tags every run gets by default (date, fleet_version, git_sha): fleet.api.tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fleet.errors import ConfigError

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
MAX_VALUE_CHARS = 200


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
