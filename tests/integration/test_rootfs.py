"""The cached guest image: built (or reused) once per session, inspected without mounting."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleet.errors import LabError
from fleet.lab.image import build as rootfs_build
from fleet.lab.image import rootfs
from fleet.lab.image.build import mounts_below
from fleet.lab.image.recipe import default_recipe, guest_file_text
from fleet.lab.image.rootfs import (
    RootfsImage,
    cached_rootfs,
    default_cache_dir,
    ensure_rootfs,
    recipe_hash,
)

pytestmark = pytest.mark.integration


def debugfs(image: Path, request: str) -> str:
    done = subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True, check=True)
    return done.stdout


def link_image(image: RootfsImage, cache: Path) -> Path:
    """A copy of the cached image directory in ``cache`` (hard links when possible)."""
    target = cache / image.directory.name
    target.mkdir(parents=True)
    for source in image.directory.iterdir():
        try:
            os.link(source, target / source.name)
        except OSError:
            subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
    return target


def test_image_is_complete(rootfs_image: RootfsImage) -> None:
    image = rootfs_image
    assert image.recipe_hash == recipe_hash()
    assert image.directory == default_cache_dir() / f"rootfs-{image.recipe_hash}"
    assert image.size_bytes == default_recipe().image_size_bytes == image.base_image.stat().st_size
    assert image.base_image.stat().st_blocks * 512 < image.size_bytes  # sparse
    with image.kernel.open("rb") as kernel:
        kernel.seek(0x202)
        assert kernel.read(4) == b"HdrS"  # x86 boot protocol header: a bzImage
    with image.initrd.open("rb") as initrd:
        assert initrd.read(4) in {b"\x1f\x8b\x08\x08", b"\x28\xb5\x2f\xfd", b"0707"}  # gz/zstd/cpio
    meta = json.loads((image.directory / "recipe.json").read_text())
    assert meta["recipe_hash"] == image.recipe_hash
    assert meta["kernel_release"] == image.kernel_release
    assert image.kernel_release in debugfs(image.base_image, "ls /lib/modules")


def test_second_call_is_a_fast_cache_hit(rootfs_image: RootfsImage) -> None:
    started = time.monotonic()
    again = ensure_rootfs(default_cache_dir())
    assert time.monotonic() - started < 1.0
    assert again == rootfs_image
    assert cached_rootfs(default_cache_dir()) == rootfs_image
    assert cached_rootfs(rootfs_image.directory / "elsewhere") is None


def test_image_has_no_host_keys_and_the_seed_mechanism(rootfs_image: RootfsImage) -> None:
    base = rootfs_image.base_image
    listing = debugfs(base, "ls -l /etc/ssh")
    assert "sshd_config.d" in listing
    assert "ssh_host_" not in listing
    assert "Inode:" in debugfs(base, "stat /usr/local/sbin/fleet-seed")
    assert debugfs(base, "cat /usr/local/sbin/fleet-seed") == guest_file_text("fleet-seed")
    assert debugfs(base, "cat /etc/ssh/sshd_config.d/fleet.conf") == \
        guest_file_text("sshd-fleet.conf")
    wants = debugfs(base, "ls /etc/systemd/system/multi-user.target.wants")
    assert "fleet-seed.service" in wants
    assert "systemd-networkd.service" in wants


def test_root_can_log_in_by_key(rootfs_image: RootfsImage) -> None:
    shadow = debugfs(rootfs_image.base_image, "cat /etc/shadow")
    root = next(line.split(":") for line in shadow.splitlines() if line.startswith("root:"))
    assert not root[1].startswith("!")  # locked: sshd would refuse even key logins


def test_trimmed_module_trees_are_gone(rootfs_image: RootfsImage) -> None:
    kernel = f"/lib/modules/{rootfs_image.kernel_release}/kernel"
    drivers = debugfs(rootfs_image.base_image, f"ls {kernel}/drivers").split()
    assert "gpu" not in drivers
    assert "virtio" in drivers
    assert "kvm" in debugfs(rootfs_image.base_image, f"ls {kernel}/arch/x86").split()
    assert "virtio_blk" in debugfs(rootfs_image.base_image, f"cat {kernel}/../modules.dep")


def test_a_waiting_caller_takes_the_image_another_built(
        rootfs_image: RootfsImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    missed = threading.Event()  # the waiter found no image and is about to take the lock
    real_preflight = rootfs_build.preflight  # rootfs calls it by this name

    def preflight() -> None:
        real_preflight()
        missed.set()

    monkeypatch.setattr(rootfs, "preflight", preflight)
    results: list[RootfsImage | BaseException] = []
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test is "the other builder"
        waiter = threading.Thread(target=lambda: results.append(_ensure(cache)))
        waiter.start()
        assert missed.wait(timeout=10)
        link_image(rootfs_image, cache)  # the other build completes ...
        fcntl.flock(lock, fcntl.LOCK_UN)  # ... and lets go
        waiter.join(timeout=30)
    assert len(results) == 1
    assert isinstance(results[0], RootfsImage), results[0]
    assert results[0].directory == cache / rootfs_image.directory.name
    assert sorted(p.name for p in cache.iterdir()) == [".lock", rootfs_image.directory.name]


def _ensure(cache: Path) -> RootfsImage | BaseException:
    try:
        return ensure_rootfs(cache, timeout_seconds=60)
    except BaseException as exc:  # handed to the test thread, which asserts on it
        return exc


def test_lock_held_past_the_deadline_is_a_lab_error(tmp_path: Path) -> None:
    holder = subprocess.Popen(["flock", str(tmp_path / ".lock"), "sleep", "30"])
    try:
        while not (tmp_path / ".lock").exists():
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(LabError, match="another process is still building") as info:
            ensure_rootfs(tmp_path, timeout_seconds=0.5)
        assert time.monotonic() - started < 5
        assert info.value.where == str(tmp_path / ".lock")
    finally:
        holder.kill()
        holder.wait()


def test_build_leftovers_and_other_images_are_discarded(rootfs_image: RootfsImage,
                                                        tmp_path: Path) -> None:
    current = link_image(rootfs_image, tmp_path)
    (tmp_path / ".build-killed" / "root" / "etc").mkdir(parents=True)
    (tmp_path / "rootfs-0123456789abcdef").mkdir()
    (tmp_path / "rootfs-0123456789abcdef" / "base.img").write_bytes(b"old")
    rootfs.discard(tmp_path, keep=None)  # before a build: leftovers and damaged images
    assert sorted(p.name for p in tmp_path.iterdir()) == [current.name]
    other = link_image(rootfs_image, tmp_path / "x").rename(tmp_path / "rootfs-fedcba9876543210")
    meta = json.loads((other / "recipe.json").read_text())
    (other / "recipe.json").unlink()  # a hard link to the real image's file
    (other / "recipe.json").write_text(json.dumps({**meta, "recipe_hash": other.name[7:]}))
    rootfs.discard(tmp_path, keep=None)  # complete images of other recipes survive a failure
    assert (tmp_path / "rootfs-fedcba9876543210").is_dir()
    rootfs.discard(tmp_path, keep=current)  # after a successful build only the current stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [current.name, "x"]


def test_failing_mmdebstrap_names_the_kept_log(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # a mirror nobody listens on: mmdebstrap fails at its first `apt-get update`
    closed = "Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: {0}\nComponents: main\n"
    monkeypatch.setattr(rootfs_build, "host_sources", closed.format)
    recipe = default_recipe()
    digest = rootfs.recipe_hash(recipe)
    with pytest.raises(LabError, match="mmdebstrap exited") as info:
        rootfs.build(recipe, digest, tmp_path, tmp_path / f"rootfs-{digest}",
                     progress=lambda _m: None, deadline=time.monotonic() + 120)
    log = tmp_path / "last-failed-build.log"
    assert info.value.where == str(log)
    assert "127.0.0.1" in log.read_text()
    assert str(info.value).count("\n") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [log.name]  # no half-built dirs
    assert mounts_below(tmp_path) == []


def test_a_killed_build_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    builder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from fleet.lab.image.rootfs import ensure_rootfs; ensure_rootfs(Path(sys.argv[1]))",
         str(cache)])
    try:
        # wait until mmdebstrap installs packages: /proc, /sys, /dev are mounted in its chroot
        deadline = time.monotonic() + 300
        while not any("installing" in log.read_text()
                      for log in cache.glob(".build-*/build.log")):
            assert builder.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        builder.kill()
        builder.wait()
    deadline = time.monotonic() + 60  # mmdebstrap gets SIGKILL with its parent (pdeathsig)
    while processes_mentioning(cache):
        assert time.monotonic() < deadline, processes_mentioning(cache)
        time.sleep(0.1)
    assert mounts_below(cache) == []
    assert [p.name for p in cache.iterdir() if p.name.startswith("rootfs-")] == []
    assert cached_rootfs(cache) is None
    rootfs.discard(cache, keep=None)  # what the next build does first
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]


def processes_mentioning(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone, or not a process directory
            continue
        if proc.name.isdigit() and str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline[:120]}")
    return found


def test_missing_tools_are_refused_with_the_install_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabError, match=r"missing Debian packages: .*mmdebstrap") as info:
        ensure_rootfs(tmp_path / "cache")
    assert info.value.hint is not None
    assert info.value.hint.startswith("apt-get install mmdebstrap")
    assert not (tmp_path / "cache").exists()


def test_non_root_is_refused_with_one_line(tmp_path: Path) -> None:
    nobody = shutil.which("setpriv")
    assert nobody is not None
    done = subprocess.run(
        [nobody, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         "from pathlib import Path; from fleet.lab.image.rootfs import ensure_rootfs;"
         f"ensure_rootfs(Path('{tmp_path}/c'))"],
        capture_output=True, text=True, check=False)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("fleet.errors.LabError: fleet lab rootfs: building the guest image "
                           "needs root")
    assert "apt-get install mmdebstrap" in last
