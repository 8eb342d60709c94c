"""The records of a full patched-kernel build (frozen, between the stages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class KernelBuildRequest:
    """Build a whole kernel (a linux-image .deb) from ``source`` + ``patches`` (in order) with
    ``config_text`` as its base configuration, brought up to date by ``make olddefconfig``.

    ``source`` is a Debian source package name (``linux-source-6.1``: its candidate version
    unless ``source_version`` pins one), a kernel source directory or a git checkout.
    ``config_origin`` says where the configuration came from, for messages ("the running
    config of host X", or the file's path).
    """

    source: str
    config_text: str
    config_origin: str
    patches: tuple[Path, ...] = ()
    source_version: str | None = None
    debug_info: bool = False  # False: CONFIG_DEBUG_INFO_NONE (no -dbg package, a faster build)
    cache_dir: Path | None = None  # None: ~/.cache/fleet/build
    preflight: bool = True  # check the controller has make bindeb-pkg's tools before a build
    jobs: int | None = None  # None: one per CPU
    nice: int = 10  # the build's niceness (the controller keeps running other work)


@dataclass(frozen=True)
class KernelBuild:
    """One cached kernel build: the linux-image .deb, its release and the hashes naming it."""

    key: str
    directory: Path
    deb: Path
    kernel_release: str
    source: str
    patches: tuple[str, ...]
    source_hash: str
    series_hash: str
    config_hash: str
    build_seconds: float | None  # the cold build's own time (None: unknown)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # copy, patch, config, make
    cached: bool = False  # True when this call found the build in the cache
