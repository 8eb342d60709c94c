"""Where fleet keeps what it fetches and builds on the controller (lab images, kernel .debs,
KVM module builds)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    """$XDG_CACHE_HOME/fleet/NAME, or ~/.cache/fleet/NAME (a relative XDG value is ignored)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fleet" / name
