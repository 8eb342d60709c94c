"""The cached guest root filesystem of the emulated NUMA lab.

``ensure_rootfs`` returns the image for the current recipe, building it once (root, ~1-2 min)
into ``CACHE/rootfs-<recipe hash>/`` {base.img, vmlinuz, initrd.img, recipe.json, build.log}.
A build happens in ``CACHE/.build-*`` and becomes ``rootfs-<hash>`` by one rename when
complete; ``CACHE/.lock`` (flock) makes concurrent callers build once. Guests boot a qcow2
overlay of base.img with ``-kernel vmlinuz -initrd initrd.img``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet.cachedirs import cache_dir as fleet_cache_dir
from fleet.errors import LabError
from fleet.lab.image import recipe as rootfs_recipe
from fleet.lab.image.build import build_image, preflight, remove_tree
from fleet.lab.image.recipe import Recipe, default_recipe

IMAGE_PREFIX = "rootfs-"
BUILD_PREFIX = ".build-"
LOCK_NAME = ".lock"
FAILED_LOG_NAME = "last-failed-build.log"
IMAGE_FILES = ("base.img", "vmlinuz", "initrd.img", "recipe.json", "build.log")
LOCK_POLL_SECONDS = 0.2
DEFAULT_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class RootfsImage:
    """A complete cached image. ``size_bytes`` is base.img's (sparse) apparent size."""

    recipe_hash: str
    directory: Path
    base_image: Path
    kernel: Path
    initrd: Path
    kernel_release: str
    size_bytes: int


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/fleet/lab, or ~/.cache/fleet/lab (a relative XDG value is ignored)."""
    return fleet_cache_dir("lab")


def recipe_hash(recipe: Recipe | None = None) -> str:
    """The hash naming the image of ``recipe`` (default: this host's lab recipe)."""
    return rootfs_recipe.recipe_hash(recipe if recipe is not None else default_recipe())


def cached_rootfs(cache_dir: Path | None = None) -> RootfsImage | None:
    """The image for the current recipe if it is already built; never builds."""
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    digest = recipe_hash()
    return load_image(cache / f"{IMAGE_PREFIX}{digest}", digest)


def ensure_rootfs(cache_dir: Path | None = None, *,
                  progress: Callable[[str], None] | None = None,
                  timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> RootfsImage:
    """The image for the current recipe, built (once, under a lock) when not cached."""
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    recipe = default_recipe()
    digest = rootfs_recipe.recipe_hash(recipe)
    final = cache / f"{IMAGE_PREFIX}{digest}"
    image = load_image(final, digest)
    if image is not None:
        return image
    preflight()
    deadline = time.monotonic() + timeout_seconds
    cache.mkdir(parents=True, exist_ok=True)
    with cache_lock(cache, deadline):
        image = load_image(final, digest)  # another caller may have built it meanwhile
        if image is not None:
            return image
        discard(cache, keep=None)  # leftovers of killed builds; a damaged final dir
        build(recipe, digest, cache, final, progress=progress or _quiet, deadline=deadline)
        discard(cache, keep=final)  # images of other recipes
    image = load_image(final, digest)
    if image is None:
        raise LabError("the image just built is incomplete", where=str(final),
                       hint=f"remove {cache} and retry")
    return image


def _quiet(_message: str) -> None:
    return None


def build(recipe: Recipe, digest: str, cache: Path, final: Path, *,
          progress: Callable[[str], None], deadline: float) -> None:
    """Build in a scratch directory inside ``cache``; rename into place only when complete."""
    work = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=cache))
    work.chmod(0o755)  # mkdtemp makes 0700: apt's _apt user, and guests, must read inside
    failed_log = cache / FAILED_LOG_NAME
    try:
        build_image(recipe, digest, work, failed_log=failed_log, progress=progress,
                    deadline=deadline)
    except BaseException:
        log = work / "build.log"
        if log.is_file():
            shutil.copyfile(log, failed_log)
        remove_tree(work)
        raise
    os.rename(work, final)
    failed_log.unlink(missing_ok=True)


def discard(cache: Path, *, keep: Path | None) -> None:
    """Remove build leftovers and every image directory but ``keep`` (call under the lock)."""
    for path in sorted(cache.iterdir()):
        stale_image = path.name.startswith(IMAGE_PREFIX) and path != keep
        if path.name.startswith(BUILD_PREFIX) or (stale_image and keep is not None):
            remove_tree(path)
        elif stale_image and load_image(path, path.name.removeprefix(IMAGE_PREFIX)) is None:
            remove_tree(path)  # damaged (files deleted by hand): rebuilt below


def load_image(directory: Path, digest: str) -> RootfsImage | None:
    """The image in ``directory`` if it is complete and was built for ``digest``."""
    try:
        if not all((directory / name).is_file() for name in IMAGE_FILES):
            return None
        meta = json.loads((directory / "recipe.json").read_text(encoding="utf-8"))
        release = str(meta["kernel_release"])
        built_for = str(meta["recipe_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if built_for != digest:
        return None
    base = directory / "base.img"
    return RootfsImage(recipe_hash=digest, directory=directory, base_image=base,
                       kernel=directory / "vmlinuz", initrd=directory / "initrd.img",
                       kernel_release=release, size_bytes=base.stat().st_size)


@contextmanager
def cache_lock(cache: Path, deadline: float) -> Iterator[None]:
    """flock(cache/.lock), waiting until ``deadline`` for another builder to finish."""
    with (cache / LOCK_NAME).open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LabError("another process is still building the guest image",
                                   where=str(cache / LOCK_NAME),
                                   hint="wait for it, or raise timeout_seconds") from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = ["RootfsImage", "cached_rootfs", "default_cache_dir", "ensure_rootfs", "recipe_hash"]
