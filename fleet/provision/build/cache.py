"""The controller's build cache: one directory per (source, series, kernel) key holding the
.ko files and manifest.json; hashes of the inputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from fleet.cachedirs import cache_dir
from fleet.errors import ProvisionError
from fleet.provision.build.model import BuildResult, BuiltModule

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: the .ko files are stripped of debug info (debug/ keeps them)


def default_cache_dir() -> Path:
    return cache_dir("build")


def tree_hash(root: Path, paths: Iterable[str]) -> str:
    """Over the contents of the files under ``paths`` (directories walked), sorted by path."""
    digest = hashlib.sha256(b"fleet-tree-1\0")
    files: list[Path] = []
    for name in paths:
        target = root / name
        if target.is_dir():
            files += [p for p in target.rglob("*") if p.is_file()]
        elif target.is_file():
            files.append(target)
    for path in sorted(set(files)):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(root)}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def kernel_hash(release: str, arch_headers: Path) -> str:
    """The release, its .config and Module.symvers: what a module must match to load."""
    digest = hashlib.sha256(f"fleet-kernel-1\0{release}\0".encode())
    for name in (".config", "Module.symvers"):
        digest.update((arch_headers / name).read_bytes())
    return digest.hexdigest()


def build_key(source_hash: str, series_hash: str, kernel_hash_: str) -> str:
    text = f"kvm-modules-{FORMAT_VERSION}\0{source_hash}\0{series_hash}\0{kernel_hash_}"
    return "kvm-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def write_manifest(result: BuildResult) -> None:
    record = {
        "format_version": FORMAT_VERSION, "key": result.key,
        "kernel_release": result.kernel_release, "source": result.source,
        "patches": list(result.patches), "source_hash": result.source_hash,
        "series_hash": result.series_hash, "kernel_hash": result.kernel_hash,
        "build_seconds": result.build_seconds,
        "modules": [{"name": m.name, "file": m.path.name, "srcversion": m.srcversion,
                     "vermagic": m.vermagic} for m in result.modules],
    }
    (result.directory / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> BuildResult | None:
    """The cached build in ``directory`` (None when absent or from another format)."""
    try:
        record = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if record.get("format_version") != FORMAT_VERSION:
        return None
    try:
        modules = tuple(BuiltModule(name=m["name"], path=directory / m["file"],
                                    srcversion=m["srcversion"], vermagic=m["vermagic"])
                        for m in record["modules"])
        return BuildResult(
            key=record["key"], directory=directory, kernel_release=record["kernel_release"],
            source=record["source"], patches=tuple(record["patches"]),
            source_hash=record["source_hash"], series_hash=record["series_hash"],
            kernel_hash=record["kernel_hash"], modules=modules,
            build_seconds=record["build_seconds"], cached=True)
    except (KeyError, TypeError) as exc:
        raise ProvisionError(f"malformed build manifest ({exc})", where=str(directory / MANIFEST),
                             hint="remove that directory to rebuild") from exc
