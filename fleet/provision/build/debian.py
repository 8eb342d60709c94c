"""Debian packages on the controller: ``apt-get download`` into the cache and ``dpkg -x``
(never installed system-wide). Headers of a kernel release and a linux-source tarball, each
unpacked once into the cache (into a temporary directory first, renamed when complete).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from fleet.errors import ProvisionError

_RELEASE = re.compile(r"^[0-9][A-Za-z0-9.+~_-]*$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")


def headers_tree(release: str, cache: Path) -> Path:
    """The unpacked root holding usr/src/linux-headers-<release> and its -common + kbuild."""
    if not _RELEASE.match(release):
        raise ProvisionError(f"not a kernel release: {release!r}", where="kvm module build")
    root = cache / "headers" / release
    if root.is_dir():
        return root
    debs = cache / "debs"
    arch_deb = download(f"linux-headers-{release}", debs)
    depends = _field(arch_deb, "Depends")
    names = [arch_deb]
    for dependency in depends.split(","):
        name, _, version = dependency.strip().partition(" ")
        if name.startswith(("linux-headers-", "linux-kbuild-")):
            pin = version.strip("()").split()[-1] if "=" in version else None
            names.append(download(name if pin is None else f"{name}={pin}", debs))
    return _unpack_into(root, names)


def headers_version(release: str, cache: Path) -> str:
    """The Debian version of linux-headers-<release> (from the cached .deb)."""
    found = sorted((cache / "debs").glob(f"linux-headers-{release}_*.deb"))
    if not found:
        headers_tree(release, cache)
        found = sorted((cache / "debs").glob(f"linux-headers-{release}_*.deb"))
    return _field(found[-1], "Version")


def source_tree(package: str, version: str | None, cache: Path) -> Path:
    """linux-source-X's tarball unpacked in full (decompression dominates: a partial unpack
    costs the same, see benchmarks/perf/README.md)."""
    if not _PACKAGE.match(package):
        raise ProvisionError(f"not a Debian package name: {package!r}", where="kvm module build",
                             hint="give a package (linux-source-6.1), a directory or a git"
                                  " checkout")
    deb = None
    if version is None:  # the candidate (or the one already downloaded): named by its version
        deb = download(package, cache / "debs")
        version = _field(deb, "Version")
    root = cache / "sources" / f"{package}_{version}"
    if root.is_dir():
        return _single_dir(root)
    deb = deb or download(f"{package}={version}", cache / "debs")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as scratch:
        work = Path(scratch)
        _run(["dpkg-deb", "-x", str(deb), str(work / "deb")], where=str(deb))
        tarballs = sorted((work / "deb" / "usr" / "src").glob("linux-source-*.tar.*"))
        if not tarballs:
            raise ProvisionError("no usr/src/linux-source-*.tar.* inside", where=str(deb))
        (work / "tree").mkdir()
        _run(["tar", "-xf", str(tarballs[0]), "-C", str(work / "tree")], where=str(tarballs[0]))
        root.parent.mkdir(parents=True, exist_ok=True)
        _rename(work / "tree", root)
    return _single_dir(root)


def download(spec: str, debs: Path) -> Path:
    """``apt-get download name[=version]`` into ``debs`` (reused when already there)."""
    name, _, version = spec.partition("=")
    pattern = f"{name}_{_deb_version(version) if version else '*'}_*.deb"
    found = sorted(debs.glob(pattern))
    if found:
        return found[-1]
    debs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", "-q", spec], cwd=debs, capture_output=True,
                          text=True, check=False)
    found = sorted(debs.glob(pattern))
    if done.returncode != 0 or not found:
        lines = [x for x in done.stderr.splitlines() if x.startswith("E:")] or ["no .deb"]
        raise ProvisionError(f"apt-get download {spec} failed: {lines[0]}", where="controller",
                             hint="check the name and version (apt-cache policy), or run"
                                  " apt-get update")
    return found[-1]


def _deb_version(version: str) -> str:
    return version.split(":", 1)[-1]  # the epoch is not in the file name


def _field(deb: Path, name: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), name], where=str(deb)).strip()


def _unpack_into(root: Path, debs: list[Path]) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".unpack-") as scratch:
        target = Path(scratch) / "root"
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(target)], where=str(deb))
        _rename(target, root)
    return root


def _rename(source: Path, target: Path) -> None:
    try:
        source.rename(target)
    except OSError:  # another build unpacked it meanwhile
        if not target.is_dir():
            raise
        shutil.rmtree(source, ignore_errors=True)


def _single_dir(root: Path) -> Path:
    entries = [p for p in root.iterdir() if p.is_dir()]
    return entries[0] if len(entries) == 1 else root


def _run(argv: list[str], *, where: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ProvisionError(f"{argv[0]} failed: {last}", where=where)
    return done.stdout
