"""build_kernel: source -> a private patched copy -> .config (base + edits + olddefconfig) ->
``make bindeb-pkg`` out of tree -> the cached linux-image .deb. Once per (source, series,
config) key, on the controller; a cache hit costs the hashes only."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleet.errors import ProvisionError
from fleet.provision.build import cache, kbuild, series
from fleet.provision.build.builder import is_directory_source, source_tree
from fleet.provision.build.kernel import plan
from fleet.provision.build.kernel.model import KernelBuild, KernelBuildRequest

MANIFEST = "manifest.json"
TREE_HASH = ".fleet-tree-hash"  # beside an unpacked package's tree
BASE_CONFIG = "base.config"  # the config the build started from (before edits, olddefconfig)
Stage = Callable[[], None]


def build_kernel(request: KernelBuildRequest) -> KernelBuild:
    """The cached build for the request, built first when missing."""
    root = (request.cache_dir or cache.default_cache_dir()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for patch in request.patches:
        if not patch.is_file():
            raise ProvisionError("patch file not found", where=str(patch))
    tree = source_tree(request.source, request.source_version, root)
    result = KernelBuild(
        key="", directory=root, deb=root, kernel_release="", source=request.source,
        patches=tuple(p.name for p in request.patches),
        source_hash=_source_hash(request.source, tree),
        series_hash=series.series_hash(request.patches),
        config_hash=plan.config_hash(request.config_text, debug_info=request.debug_info),
        build_seconds=None)
    key = plan.build_key(result.source_hash, result.series_hash, result.config_hash)
    found = read_manifest(root / key)
    if found is not None:
        return found
    if request.preflight:
        _check_controller()
    with tempfile.TemporaryDirectory(dir=root, prefix=".kbuild-") as scratch:
        _build(replace(result, key=key), request, tree, Path(scratch))
    final = read_manifest(root / key)
    if final is None:
        raise ProvisionError("the kernel build finished without a manifest",
                             where=str(root / key))
    return replace(final, cached=False)


def _check_controller() -> None:
    """Before a cold build: one line naming every missing tool or header (not a make error
    an hour in)."""
    missing = plan.missing_build_needs(
        lambda command: shutil.which(command) is not None,
        lambda header: Path("/usr/include", header).is_file())
    if missing:
        raise ProvisionError(f"a kernel build needs {', '.join(missing)} on this controller",
                             where="controller",
                             hint=f"apt-get install {' '.join(plan.CONTROLLER_PACKAGES)}")


def _source_hash(source: str, tree: Path) -> str:
    """Over the whole tree (not .git). A Debian package's tree is unpacked once and never
    changed: its hash is kept beside it (reading 1.3 GB costs ~50 s cold, ~10 s warm)."""
    kept = tree.parent / f"{TREE_HASH}-{tree.name}" if not is_directory_source(source) else None
    if kept is not None and kept.is_file():
        return kept.read_text().strip()
    digest = cache.tree_hash(tree, sorted(p.name for p in tree.iterdir() if p.name != ".git"))
    if kept is not None:
        kept.write_text(digest + "\n")
    return digest


def _build(result: KernelBuild, request: KernelBuildRequest, tree: Path, work: Path) -> None:
    src, obj, log = work / "src", work / "obj", work / "build.log"
    jobs = request.jobs or os.cpu_count() or 1
    release: list[str] = []
    stages: list[tuple[str, Stage]] = [
        ("copy", lambda: _copy_tree(tree, src, log)),
        ("patch", lambda: series.apply_series(src, request.patches,
                                              use_git=(tree / ".git").exists())),
        ("config", lambda: release.append(_configure(src, obj, request, result.key, log))),
        ("make", lambda: _run(plan.make_argv(src, obj, plan.DEB_TARGET, key=result.key,
                                             jobs=jobs, nice=request.nice), log, src)),
    ]
    seconds: dict[str, float] = {}
    for name, stage in stages:
        started = time.monotonic()
        try:
            stage()
        except ProvisionError as exc:
            raise _failed(name, exc, result, log) from None
        seconds[name] = round(time.monotonic() - started, 1)
        with log.open("a") as done:
            done.write(f"fleet: stage {name} done in {seconds[name]} s\n")
    debs = [p for p in work.iterdir() if plan.is_image_deb(p.name, release[0])]
    if len(debs) != 1:
        raise ProvisionError(f"make {plan.DEB_TARGET} made {len(debs)} linux-image-"
                             f"{release[0]} packages, not one", where=str(work),
                             hint=f"the build log: {_keep_log(log, result)}")
    out = work / "out"
    out.mkdir()
    for path in (debs[0], obj / ".config", log):
        shutil.copy2(path, out / path.name)
    (out / BASE_CONFIG).write_text(request.config_text)
    built = replace(result, directory=out, deb=out / debs[0].name, kernel_release=release[0],
                    build_seconds=round(sum(seconds.values()), 1), stage_seconds=seconds)
    write_manifest(built)
    with contextlib.suppress(OSError):  # built meanwhile by another controller process
        out.rename(result.directory / result.key)


def _copy_tree(tree: Path, copy: Path, log: Path) -> None:
    """A private copy to patch and build in (O= keeps the objects out of it): hard links
    where the file system allows (patch and git replace a file they change, never write
    through a link), else a full copy. Never .git: git appends to files there (the reflog);
    a git checkout's series is applied in a repository of its own (series.apply_series)."""
    copy.mkdir()
    entries = [str(p) for p in sorted(tree.iterdir()) if p.name != ".git"]
    done = subprocess.run(["cp", "-al", *entries, str(copy)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        _run(["cp", "-a", *entries, str(copy)], log)


def _configure(src: Path, obj: Path, request: KernelBuildRequest, key: str, log: Path) -> str:
    """The base config + fleet's edits + ``make olddefconfig``; the kernel release."""
    obj.mkdir()
    (obj / ".config").write_text(request.config_text)
    _run(plan.config_argv(src, obj / ".config", debug_info=request.debug_info), log)
    _run(plan.make_argv(src, obj, "olddefconfig", key=key), log, src)
    done = subprocess.run([*plan.make_argv(src, obj, "kernelrelease", key=key), "-s"],
                          capture_output=True, text=True, env=kbuild.make_env(), check=False)
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 1:
        raise ProvisionError(f"make kernelrelease failed: {kbuild.first_error(done.stderr)}",
                             where=str(src))
    return lines[0]


def _run(argv: list[str], log: Path, tree: Path | None = None) -> None:
    """Run, appending its output to ``log``; ProvisionError with the first error line (its
    file relative to ``tree``: the private copy is gone by the time the line is read)."""
    with log.open("a") as out:
        out.write(f"$ {shlex.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=kbuild.make_env(),
                              check=False)
    if done.returncode != 0:
        raise ProvisionError(f"{Path(argv[0]).name} exited {done.returncode}: "
                             f"{kbuild.first_error(log.read_text(errors='replace'), tree=tree)}",
                             where=" ".join(argv[:4]))


def _failed(stage: str, exc: ProvisionError, result: KernelBuild, log: Path) -> ProvisionError:
    """One line: the stage, what failed, and the full log kept in the cache directory."""
    hint = f"the full log: {_keep_log(log, result)}" if log.is_file() else exc.hint
    return ProvisionError(f"the kernel build failed at {stage}: {exc.what}",
                          where=exc.where if stage == "patch" else result.source, hint=hint)


def _keep_log(log: Path, result: KernelBuild) -> Path:
    kept = result.directory / f"{result.key}-failed.log"
    shutil.copy2(log, kept)
    return kept


def write_manifest(build: KernelBuild) -> None:
    record = {
        "format_version": plan.FORMAT_VERSION, "key": build.key, "deb": build.deb.name,
        "kernel_release": build.kernel_release, "source": build.source,
        "patches": list(build.patches), "source_hash": build.source_hash,
        "series_hash": build.series_hash, "config_hash": build.config_hash,
        "build_seconds": build.build_seconds, "stage_seconds": build.stage_seconds,
    }
    (build.directory / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> KernelBuild | None:
    """The cached build in ``directory`` (None when absent, from another format, or its
    .deb is gone)."""
    try:
        record = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format_version") != plan.FORMAT_VERSION:
        return None
    try:
        build = KernelBuild(
            key=record["key"], directory=directory, deb=directory / record["deb"],
            kernel_release=record["kernel_release"], source=record["source"],
            patches=tuple(record["patches"]), source_hash=record["source_hash"],
            series_hash=record["series_hash"], config_hash=record["config_hash"],
            build_seconds=record["build_seconds"], stage_seconds=dict(record["stage_seconds"]),
            cached=True)
    except (KeyError, TypeError) as exc:
        raise ProvisionError(f"malformed kernel build manifest ({exc})",
                             where=str(directory / MANIFEST),
                             hint="remove that directory to rebuild") from exc
    return build if build.deb.is_file() else None


def kept_base_config(release: str, cache_dir: Path | None = None) -> str | None:
    """The base config of the cached fleet build of ``release`` (None: not a fleet build)."""
    if plan.LOCAL_PREFIX not in release:
        return None
    root = (cache_dir or cache.default_cache_dir()).expanduser()
    for directory in sorted(root.glob(f"{plan.KEY_PREFIX}*")):
        found = read_manifest(directory)
        if found is not None and found.kernel_release == release:
            with contextlib.suppress(OSError):
                return (directory / BASE_CONFIG).read_text()
    return None
