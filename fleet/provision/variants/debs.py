"""The controller's side of a package or deb variant: the .deb file and the kernel it holds.

Lab hosts have no network: a ``package`` variant is fetched here with ``apt-get download``
(once, into the cache directory) and copied to the host like a ``deb`` variant.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.cachedirs import cache_dir
from fleet.config.inventory.variants import HostProvisioning, VariantSpec
from fleet.errors import ProvisionError

APT_TIMEOUT_SECONDS = 600.0
_VMLINUZ = re.compile(r"\./boot/vmlinuz-([0-9][0-9A-Za-z.+~_-]*)$")
# (path, size, mtime) -> (release, sha256): listing a 70 MB kernel .deb decompresses all of it
# (~6 s), and `fleet run` asks again before every group of the variant
_READ: dict[tuple[str, int, int], tuple[str, str]] = {}
_READ_LOCK = threading.Lock()


@dataclass(frozen=True)
class KernelDeb:
    path: Path
    kernel_release: str
    sha256: str


def default_cache_dir() -> Path:
    """Where package variants' .debs are kept on the controller."""
    return cache_dir("debs")


def kernel_deb(spec: VariantSpec, cache_dir: Path) -> KernelDeb:
    """The variant's .deb on the controller (fetched into ``cache_dir`` for a package)."""
    if spec.kind == "package":
        assert spec.package is not None
        path = _download(spec, cache_dir)
    elif spec.kind == "deb":
        assert spec.deb is not None
        path = spec.deb
        if not path.is_file():
            raise ProvisionError(f"variant {spec.name}: the .deb {path} does not exist",
                                 where=spec.where, hint="fix the path (relative to the "
                                 "inventory file), or fetch it: apt-get download PACKAGE")
    else:
        raise ProvisionError(f"variant {spec.name}: a {spec.kind} variant has no .deb",
                             where=spec.where)
    release, sha256 = _read_deb(path, spec)
    return KernelDeb(path=path, kernel_release=release, sha256=sha256)


def _read_deb(path: Path, spec: VariantSpec) -> tuple[str, str]:
    """The .deb's kernel release and sha256, read once per file version in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _READ_LOCK:
        known = _READ.get(key)
    if known is not None:
        return known
    read = (kernel_release(_contents(path, spec), path, spec), _sha256(path))
    with _READ_LOCK:
        _READ[key] = read
    return read


def built_deb(path: Path, kernel_release: str) -> KernelDeb:
    """A .deb built on the controller (a kernel variant's), its release already known."""
    return KernelDeb(path=path, kernel_release=kernel_release, sha256=_sha256(path))


def kernel_release(contents: str, path: Path, spec: VariantSpec) -> str:
    """Pure: the release of the one kernel in a `dpkg-deb --contents` listing."""
    releases = sorted({m.group(1) for line in contents.splitlines()
                       if (m := _VMLINUZ.search(line.split()[-1] if line.split() else ""))})
    if len(releases) != 1:
        what = "no kernel" if not releases else f"{len(releases)} kernels"
        raise ProvisionError(f"variant {spec.name}: {path.name} holds {what} "
                             "(/boot/vmlinuz-RELEASE)", where=spec.where,
                             hint="name a linux-image-RELEASE package, not a metapackage")
    return releases[0]


def _download(spec: VariantSpec, cache_dir: Path) -> Path:
    package = spec.package or ""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    argv = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
    try:
        done = subprocess.run(argv, cwd=cache_dir, capture_output=True, text=True,
                              timeout=APT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"variant {spec.name}: apt-get download {package} failed: {exc}",
                             where=spec.where, hint="apt-get must work on the controller") \
            from None
    found = sorted(cache_dir.glob(f"{package}_*.deb"))
    if done.returncode != 0 or not found:
        reason = _last_line(done.stderr) or f"exit {done.returncode}"
        raise ProvisionError(f"variant {spec.name}: apt-get download {package}: {reason}",
                             where=spec.where, hint="check the name (apt-cache search "
                             "linux-image-) and the controller's apt sources")
    return found[-1]


def _contents(path: Path, spec: VariantSpec) -> str:
    try:
        done = subprocess.run(["dpkg-deb", "--contents", str(path)], capture_output=True,
                              text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"variant {spec.name}: cannot list {path}: {exc}",
                             where=spec.where, hint="dpkg-deb must be installed") from None
    if done.returncode != 0:
        raise ProvisionError(f"variant {spec.name}: {path} is not a .deb: "
                             f"{_last_line(done.stderr)}", where=spec.where,
                             hint="download it again")
    return done.stdout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def variant_releases(provisioning: Mapping[str, HostProvisioning]
                     ) -> dict[str, dict[str, str]]:
    """host -> its package and deb variants -> the kernel release each one runs (a package's
    from its name, a .deb's from its contents; a .deb that cannot be read, or a variant that
    adds command-line words, is left out: the plan then says it needs provisioning)."""
    out: dict[str, dict[str, str]] = {}
    for host, declared in provisioning.items():
        releases: dict[str, str] = {}
        for spec in declared.variants:
            if spec.cmdline:  # its release alone does not say the host runs it
                continue
            release = spec.package_release() if spec.kind == "package" else None
            if spec.kind == "deb" and spec.deb is not None and spec.deb.is_file():
                with contextlib.suppress(ProvisionError):
                    release = kernel_release(_contents(spec.deb, spec), spec.deb, spec)
            if release is not None:
                releases[spec.name] = release
        if releases:
            out[host] = releases
    return out
