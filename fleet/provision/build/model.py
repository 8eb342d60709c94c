"""The records of a patched-KVM-module build and install (frozen, between the stages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODULE_NAMES = ("kvm", "kvm_amd", "kvm_intel")  # as /sys/module names them (files use '-')


@dataclass(frozen=True)
class BuildRequest:
    """Build arch/x86/kvm for ``kernel_release`` from ``source`` + ``patches`` (in order).

    ``source`` is a Debian source package name (``linux-source-6.1``), a kernel source
    directory or a git checkout. ``source_version`` pins the package's version (None: the
    version of the target's headers package, so sources and headers match).
    """

    source: str
    kernel_release: str
    patches: tuple[Path, ...] = ()
    source_version: str | None = None
    cache_dir: Path | None = None  # None: ~/.cache/fleet/build
    jobs: int | None = None  # None: one per CPU


@dataclass(frozen=True)
class BuiltModule:
    name: str  # kvm, kvm_amd, kvm_intel
    path: Path
    srcversion: str
    vermagic: str


@dataclass(frozen=True)
class BuildResult:
    """One cached build: the .ko files and the hashes that name it."""

    key: str
    directory: Path
    kernel_release: str
    source: str
    patches: tuple[str, ...]
    source_hash: str
    series_hash: str
    kernel_hash: str
    modules: tuple[BuiltModule, ...]
    build_seconds: float | None  # the cold build's own time (None: unknown)
    cached: bool  # True when this call found the build in the cache

    def srcversions(self) -> dict[str, str]:
        return {m.name: m.srcversion for m in self.modules}


@dataclass(frozen=True)
class InstallRequest:
    """Install (or, with ``remove``, roll back) a build on the inventory's hosts."""

    inventory: tuple[Path, ...]
    build: BuildResult | None  # None only with remove=True
    kernel_release: str
    limit: str | None = None
    remove: bool = False
    allow_shared_kernel: bool = False  # netns lab hosts share this machine's kernel
    host_count: int = 1


@dataclass(frozen=True)
class InstalledModules:
    """What a host runs after install/rollback, verified by the role: kvm is loaded, and every
    loaded KVM module (kvm always, the vendor module that was loaded before) has the srcversion
    given here (None: the stock module, which carries none on Debian). A vendor module that
    was not loaded is installed but not loaded."""

    host: str
    kernel_release: str
    srcversions: dict[str, str | None]
