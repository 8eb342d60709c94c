"""build_kvm_modules: source -> private patched copy -> build against the target's headers ->
cached .ko files with their srcversion. Once per (source, series, kernel) key."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fleet.errors import ProvisionError
from fleet.provision.build import cache, debian, kbuild, series
from fleet.provision.build.model import BuildRequest, BuildResult, BuiltModule
from fleet.provision.build.modinfo import modinfo

WHERE = "kvm module build"


def build_kvm_modules(request: BuildRequest) -> BuildResult:
    """The cached build for the request, built first when missing. The series is applied to
    a private copy before anything is downloaded: a bad patch fails fast, nothing is kept."""
    root = (request.cache_dir or cache.default_cache_dir()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for patch in request.patches:
        if not patch.is_file():
            raise ProvisionError("patch file not found", where=str(patch))
    tree = _source_tree(request, root)
    texts = "\n".join(p.read_text(errors="replace") for p in request.patches)
    touched = series.touched_paths(texts)
    where = str(request.patches[0]) if request.patches else WHERE
    header_paths = kbuild.check_touched(touched, where=where)
    inputs = (*kbuild.KVM_DIRS, *touched)
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as scratch:
        work = Path(scratch)
        patched = _patched_copy(tree, inputs, request.patches, work / "patched")
        headers = debian.headers_tree(request.kernel_release, root)
        arch_headers = headers / "usr" / "src" / f"linux-headers-{request.kernel_release}"
        result = BuildResult(
            key="", directory=root, kernel_release=request.kernel_release,
            source=request.source, patches=tuple(p.name for p in request.patches),
            source_hash=cache.tree_hash(tree, inputs),
            series_hash=series.series_hash(request.patches),
            kernel_hash=cache.kernel_hash(request.kernel_release, arch_headers), modules=(),
            build_seconds=None, cached=False)
        key = cache.build_key(result.source_hash, result.series_hash, result.kernel_hash)
        found = cache.read_manifest(root / key)
        if found is not None:
            return found
        _build(replace(result, key=key), request, patched=patched, headers=headers,
               header_paths=header_paths, work=work)
    final = cache.read_manifest(root / key)
    if final is None:
        raise ProvisionError("the build finished without a manifest", where=str(root / key))
    return replace(final, cached=False)


def _build(result: BuildResult, request: BuildRequest, *, patched: Path, headers: Path,
           header_paths: tuple[str, ...], work: Path) -> None:
    """Build in a private overlay of the headers; move the outputs to the key's directory."""
    root, key = result.directory, result.key
    started = time.monotonic()
    obj, module_dir = kbuild.overlay(headers, request.kernel_release, patched, header_paths,
                                     work / "build")
    log = work / "build.log"
    try:
        kbuild.make_modules(obj, module_dir, jobs=request.jobs or os.cpu_count() or 1, log=log)
    except ProvisionError:
        kept = root / f"{key}-failed.log"
        shutil.copy2(log, kept)
        reason = kbuild.first_error(log.read_text(), tree=obj.parent / "src")
        raise ProvisionError(f"the KVM module build failed: {reason}",
                             where=request.source, hint=f"the build log: {kept}") from None
    out = work / "out"
    out.mkdir()
    shutil.copy2(log, out / "build.log")
    built = replace(result, directory=out,
                    modules=_collect(module_dir, out, request.kernel_release),
                    build_seconds=round(time.monotonic() - started, 1))
    cache.write_manifest(built)
    with contextlib.suppress(OSError):  # built meanwhile by another controller process
        out.rename(root / key)


def _source_tree(request: BuildRequest, root: Path) -> Path:
    version = request.source_version
    if version is None and not is_directory_source(request.source):
        version = debian.headers_version(request.kernel_release, root)
    return source_tree(request.source, version, root)


def is_directory_source(source: str) -> bool:
    """A path (a tree or a git checkout), not a Debian source package name."""
    return "/" in source or source.startswith((".", "~"))


def source_tree(source: str, version: str | None, root: Path) -> Path:
    """The unpacked kernel tree of ``source`` (a package at ``version``, None: the candidate)."""
    if is_directory_source(source):
        tree = Path(source).expanduser()
        if not tree.is_dir():
            raise ProvisionError("kernel source tree not found", where=str(tree),
                                 hint="give an unpacked kernel tree, a git checkout or a "
                                      "Debian package such as linux-source-6.1")
    else:
        tree = debian.source_tree(source, version, root)
    if not (tree / "arch/x86/kvm/Makefile").is_file() or not (tree / "virt/kvm").is_dir():
        raise ProvisionError("not a kernel source tree (no arch/x86/kvm/Makefile or virt/kvm)",
                             where=str(tree), hint="point the variant's source at the top of a "
                                                   "Linux tree")
    return tree


def _patched_copy(tree: Path, inputs: tuple[str, ...], patches: tuple[Path, ...],
                  copy: Path) -> Path:
    """The KVM directories and every file the series touches, copied, then patched."""
    for name in inputs:
        source, target = tree / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        elif source.is_file() and not target.exists():
            shutil.copy2(source, target)
    series.apply_series(copy, patches, use_git=(tree / ".git").exists())
    return copy


def _collect(module_dir: Path, out: Path, release: str) -> tuple[BuiltModule, ...]:
    modules = []
    for ko in sorted(module_dir.glob("*.ko")):
        info = modinfo(ko.read_bytes(), where=str(ko))
        vermagic = info.get("vermagic", "")
        if vermagic.split(" ", 1)[0] != release:
            raise ProvisionError(f"built for {vermagic.split(' ', 1)[0]!r}, not {release!r}",
                                 where=str(ko), hint="the headers do not match the release")
        srcversion = info.get("srcversion")
        if not srcversion:
            raise ProvisionError("no srcversion in the built module", where=str(ko))
        (out / "debug").mkdir(exist_ok=True)
        shutil.copy2(ko, out / "debug" / ko.name)  # with debug info, for perf and crash
        _strip(ko, out / ko.name)
        modules.append(BuiltModule(name=ko.stem.replace("-", "_"), path=out / ko.name,
                                   srcversion=srcversion, vermagic=vermagic))
    if not any(m.name == "kvm" for m in modules):
        raise ProvisionError("the build made no kvm.ko", where=str(module_dir))
    return tuple(modules)


def _strip(ko: Path, target: Path) -> None:
    """What modules_install's INSTALL_MOD_STRIP does (Debian's own modules are stripped):
    kvm.ko shrinks from ~19 MB to ~2 MB, which is most of the install's copy time."""
    done = subprocess.run(["strip", "--strip-debug", "-o", str(target), str(ko)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ProvisionError(f"strip --strip-debug failed: {last}", where=str(ko),
                             hint="install binutils on the controller (scripts/bootstrap)")
