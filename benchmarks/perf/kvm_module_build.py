"""Patched-KVM-module build cost (fleet/provision/build): cold vs cached, and the source unpack.

Cold: an empty cache directory (the .debs are copied from the developer's cache when there, so
the network is not measured), then: unpack linux-source-X in full vs only the directories the
module build reads, the headers, the build of kvm/kvm_amd/kvm_intel with the series; cached: the
same request again (hashes of the inputs, a manifest read).

    .venv/bin/python benchmarks/perf/kvm_module_build.py --release 6.1.0-57-amd64 \
        --patch tests/data/kvm_patches/0001-kvm-fleet_probe-parameter.patch
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from fleet.provision.build import BuildRequest, build_kvm_modules
from fleet.provision.build.cache import default_cache_dir
from fleet.provision.build.debian import download

PARTIAL = ("arch/x86/kvm", "virt/kvm", "include", "arch/x86/include")


def seconds(action: object) -> float:
    started = time.monotonic()
    action()  # type: ignore[operator]
    return time.monotonic() - started


def unpack_costs(package: str, version: str, debs: Path, scratch: Path) -> tuple[float, float]:
    """(full, partial) tar extraction of the source tarball, in seconds."""
    deb = download(f"{package}={version}", debs)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(scratch / "deb")], check=True)
    tarball = next((scratch / "deb/usr/src").glob("linux-source-*.tar.*"))
    top = tarball.name.split(".tar")[0]
    full, partial = scratch / "full", scratch / "partial"
    full.mkdir()
    partial.mkdir()
    full_s = seconds(lambda: subprocess.run(["tar", "-xf", str(tarball), "-C", str(full)],
                                            check=True))
    members = [f"{top}/{d}" for d in PARTIAL]
    partial_s = seconds(lambda: subprocess.run(["tar", "-xf", str(tarball), "-C", str(partial),
                                                *members], check=True))
    return full_s, partial_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", required=True, help="the target's uname -r")
    parser.add_argument("--source", default="linux-source-6.1")
    parser.add_argument("--patch", action="append", type=Path, default=[])
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-kvm-build-") as name:
        cache = Path(name)
        mine = default_cache_dir() / "debs"
        if mine.is_dir():
            shutil.copytree(mine, cache / "debs")
        request = BuildRequest(source=args.source, kernel_release=args.release,
                               patches=tuple(args.patch), cache_dir=cache, jobs=args.jobs)
        started = time.monotonic()
        cold = build_kvm_modules(request)
        cold_s = time.monotonic() - started
        started = time.monotonic()
        again = build_kvm_modules(request)
        cached_s = time.monotonic() - started
        assert again.cached and again.key == cold.key
        version = next((cache / "sources").iterdir()).name.split("_", 1)[1]
        scratch = cache / "unpack"
        scratch.mkdir()
        full_s, partial_s = unpack_costs(args.source, version, cache / "debs", scratch)
    print(f"cold build (unpack source + headers, patch, make): {cold_s:.1f} s "
          f"(make and collect alone: {cold.build_seconds} s), key {cold.key}")
    print(f"cached: {cached_s:.2f} s")
    print(f"source unpack: full {full_s:.1f} s, only {', '.join(PARTIAL)} {partial_s:.1f} s")
    for module in cold.modules:
        print(f"  {module.name}: srcversion {module.srcversion}")


if __name__ == "__main__":
    main()
