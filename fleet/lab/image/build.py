"""Build one guest image from Debian packages into a scratch directory (root only).

Steps: mmdebstrap (inside a private mount namespace, so a killed build leaves no mounts
behind) -> customise (guest files, units, no host keys) -> trim module trees -> copy out the
kernel and initrd -> ``mkfs.ext4 -d`` (no mounts) -> recipe.json. Every command's output goes
to the build log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from fleet.errors import LabError
from fleet.lab.image.recipe import GuestFile, Recipe, recipe_dict
from fleet.lab.image.sources import host_sources

Progress = Callable[[str], None]
REQUIRED_TOOLS = {"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs",
                  "qemu-img": "qemu-utils", "unshare": "util-linux", "setpriv": "util-linux"}
INSTALL_HINT = "apt-get install mmdebstrap e2fsprogs qemu-utils qemu-system-x86"
WHERE = "fleet lab rootfs"
LOG_TAIL_CHARS = 300


def preflight() -> None:
    """Refuse early: the build needs root and the Debian tools."""
    if os.geteuid() != 0:
        raise LabError("building the guest image needs root (mmdebstrap --mode=root, chroot)",
                       where=WHERE, hint=f"run as root; it needs: {INSTALL_HINT}")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise LabError(f"missing Debian packages: {' '.join(missing)}", where=WHERE,
                       hint=INSTALL_HINT)


def build_image(recipe: Recipe, digest: str, work: Path, *, failed_log: Path,
                progress: Progress, deadline: float) -> tuple[str, int]:
    """Fill ``work`` with base.img, vmlinuz, initrd.img, recipe.json, build.log.

    Returns (kernel release, bytes trimmed). A failure raises LabError naming ``failed_log``
    (where the caller keeps build.log); ``work`` is left for the caller to remove.
    """
    started = time.monotonic()
    root = work / "root"
    sources = work / "host.sources"
    sources.write_text(host_sources(recipe.codename), encoding="utf-8")
    with (work / "build.log").open("a", encoding="utf-8") as log:
        runner = Runner(log, failed_log, deadline)
        write_files(root, recipe.preinstall_files)
        progress(f"mmdebstrap {recipe.codename} ({len(recipe.packages)} packages, ~1-2 min)")
        runner.run(mmdebstrap_argv(recipe, root, sources), step="mmdebstrap")
        progress("customising the image")
        customise(root, recipe, runner)
        release = kernel_release(root)
        trimmed = trim_modules(root, release, recipe.module_trims, runner)
        progress(f"trimmed {trimmed / 1e6:.0f} MB of kernel modules; mkfs.ext4")
        copy_boot_files(root, release, work)
        runner.run(["mkfs.ext4", "-q", "-F", "-L", recipe.fs_label, "-d", str(root),
                    str(work / "base.img"), f"{recipe.image_size_bytes // 1024}k"],
                   step="mkfs.ext4")
        log.write(f"rootfs {du_bytes(root)} bytes after trimming {trimmed} bytes\n")
    remove_tree(root)
    sources.unlink()
    write_metadata(work, recipe, digest, release, time.monotonic() - started)
    return release, trimmed


def mmdebstrap_argv(recipe: Recipe, root: Path, sources: Path) -> list[str]:
    excludes = [f"--dpkgopt=path-exclude={pattern}" for pattern in recipe.dpkg_path_excludes]
    # private mount namespace: its /proc, /sys, /dev mounts never reach the host's;
    # own PID namespace: when it dies (killed with this process), the kernel kills every
    # apt/dpkg process inside
    return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
            "--",
            "mmdebstrap", "--mode=root", "--variant=apt", "--skip=check/empty",
            f"--include={','.join(recipe.packages)}", *excludes,
            recipe.codename, str(root), str(sources)]


class Runner:
    """Runs build commands with output to the log; a failure or the deadline -> LabError."""

    def __init__(self, log: IO[str], failed_log: Path, deadline: float) -> None:
        self.log = log
        self.failed_log = failed_log
        self.deadline = deadline

    def run(self, argv: Sequence[str], *, step: str) -> None:
        self.log.write(f"$ {' '.join(argv)}\n")
        self.log.flush()
        remaining = self.deadline - time.monotonic()
        # setpriv: the command dies with this process, even when it is SIGKILLed
        proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", *argv],
                                stdin=subprocess.DEVNULL, stdout=self.log,
                                stderr=subprocess.STDOUT, start_new_session=True, umask=0o022)
        try:
            code = proc.wait(timeout=max(remaining, 0.1))
        except subprocess.TimeoutExpired:
            raise self.error(f"{step} did not finish before the build deadline") from None
        finally:
            if proc.poll() is None:  # deadline or interrupt: the whole group goes
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if code != 0:
            raise self.error(f"{step} exited {code}")

    def error(self, what: str) -> LabError:
        self.log.flush()
        tail = last_line(Path(self.log.name))
        detail = f": {tail}" if tail else ""
        return LabError(f"{what}{detail}", where=str(self.failed_log),
                        hint="read that build log; the build uses the host's apt sources")


def last_line(path: Path) -> str | None:
    lines = [s.strip() for s in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    found = [s for s in lines if s and not s.startswith("$ ")]
    return found[-1][:LOG_TAIL_CHARS] if found else None


def customise(root: Path, recipe: Recipe, runner: Runner) -> None:
    for pattern in recipe.remove_globs:
        for path in root.glob(pattern):
            path.unlink()
    write_files(root, recipe.guest_files)
    # the image's own systemctl, offline (no mounts, no running systemd needed)
    if recipe.enable_units:
        runner.run(["chroot", str(root), "systemctl", "enable", *recipe.enable_units],
                   step="systemctl enable")
    if recipe.mask_units:
        runner.run(["chroot", str(root), "systemctl", "mask", *recipe.mask_units],
                   step="systemctl mask")


def write_files(root: Path, files: Sequence[GuestFile]) -> None:
    for guest_file in files:
        target = root / guest_file.path.lstrip("/")
        if target.is_symlink():  # never write through a link that points at the host
            target.unlink()
        make_dirs(target.parent)
        target.write_text(guest_file.content, encoding="utf-8")
        target.chmod(guest_file.mode)


def make_dirs(path: Path) -> None:
    """mkdir -p with mode 0755 whatever the umask (these are the image's directories)."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir()
        directory.chmod(0o755)


def kernel_release(root: Path) -> str:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise LabError(f"expected one kernel in the image's /boot, found {len(kernels)}",
                       where=WHERE, hint="the recipe must install exactly one linux-image")
    return kernels[0].name.removeprefix("vmlinuz-")


def trim_modules(root: Path, release: str, trims: Sequence[str], runner: Runner) -> int:
    """Remove unneeded module trees, then rebuild modules.dep; returns the bytes removed."""
    kernel_dir = root / "lib" / "modules" / release / "kernel"
    removed = 0
    for tree in trims:
        path = kernel_dir / tree
        if path.is_dir() and not path.is_symlink():
            removed += du_bytes(path)
            shutil.rmtree(path)
    runner.run(["chroot", str(root), "depmod", release], step="depmod")
    return removed


def copy_boot_files(root: Path, release: str, work: Path) -> None:
    for name in ("vmlinuz", "initrd.img"):
        source = root / "boot" / f"{name}-{release}"
        if not source.is_file():
            raise LabError(f"{source.name} missing in the image's /boot", where=WHERE,
                           hint="linux-image-amd64 and initramfs-tools must install cleanly")
        shutil.copyfile(source, work / name)
        (work / name).chmod(0o644)


def write_metadata(work: Path, recipe: Recipe, digest: str, release: str,
                   build_seconds: float) -> None:
    data = {"recipe_hash": digest, "kernel_release": release,
            "build_seconds": round(build_seconds, 1), "recipe": recipe_dict(recipe)}
    (work / "recipe.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n",
                                      encoding="utf-8")


def du_bytes(path: Path) -> int:
    """Bytes allocated on disk below ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in [".", *files]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def mounts_below(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    """Mount points at or below ``path`` (mountinfo field 5, octal escapes decoded)."""
    prefix = str(path.resolve())
    found = []
    for line in mountinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        point = fields[4].encode().decode("unicode_escape") if len(fields) > 4 else ""
        if point == prefix or point.startswith(f"{prefix}/"):
            found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """rm -rf ``path``, but never through a mount (it could be the host's /dev or /proc)."""
    mounted = mounts_below(path)
    if mounted:
        raise LabError(f"{mounted[0]} is mounted inside a build directory", where=str(path),
                       hint=f"umount -R {mounted[0]} and retry")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
