"""The patched-KVM-module build's pure parts and its bad-input refusals (no download, no make).

The real build, install and rollback run in tests/integration/test_kvm_modules.py.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.errors import ProvisionError
from fleet.provision.build import (
    BuildRequest,
    BuildResult,
    BuiltModule,
    build_kvm_modules,
    cache,
    kbuild,
    series,
)
from fleet.provision.build.modinfo import modinfo

DATA = Path(__file__).resolve().parents[1] / "data" / "kvm_patches"
PROBE = DATA / "0001-kvm-fleet_probe-parameter.patch"
# the 6.1 lines around the hunk (linux-source-6.1 6.1.192-3, arch/x86/kvm/x86.c:150-160)
X86_C = """unsigned int min_timer_period_us = 200;
module_param(min_timer_period_us, uint, S_IRUGO | S_IWUSR);

static bool __read_mostly kvmclock_periodic_sync = true;
module_param(kvmclock_periodic_sync, bool, S_IRUGO);

/* tsc tolerance in parts per million - default to 1/2 of the NTP threshold */
static u32 __read_mostly tsc_tolerance_ppm = 250;
module_param(tsc_tolerance_ppm, uint, S_IRUGO | S_IWUSR);
"""
# patch(1)'s real output for that patch on a tree whose x86.c lacks those lines, and on a tree
# without the file (GNU patch 2.7.6)
HUNK_FAILED_OUTPUT = """patching file arch/x86/kvm/x86.c
Hunk #1 FAILED at 153.
1 out of 1 hunk FAILED
"""
NO_FILE_OUTPUT = """can't find file to patch at input line 3
Perhaps you used the wrong -p or --strip option?
The text leading up to this was:
--------------------------
|--- a/arch/x86/kvm/x86.c
|+++ b/arch/x86/kvm/x86.c
--------------------------
No file to patch.  Skipping patch.
1 out of 1 hunk ignored
"""


def fake_tree(root: Path, x86_c: str = X86_C) -> Path:
    """A tree with the layout the build checks (arch/x86/kvm/Makefile, virt/kvm)."""
    (root / "arch/x86/kvm").mkdir(parents=True)
    (root / "virt/kvm").mkdir(parents=True)
    (root / "arch/x86/kvm/Makefile").write_text("obj-m += kvm.o\n")
    (root / "arch/x86/kvm/x86.c").write_text("\n" * 149 + x86_c)
    (root / "virt/kvm/kvm_main.c").write_text("/* main */\n")
    return root


def test_touched_paths_of_a_diff_and_a_git_mail() -> None:
    assert series.touched_paths(PROBE.read_text()) == ("arch/x86/kvm/x86.c",)
    mail = ("From 1 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n"
            "diff --git a/include/linux/kvm_host.h b/include/linux/kvm_host.h\n"
            "--- a/include/linux/kvm_host.h\n+++ b/include/linux/kvm_host.h\n"
            "diff --git a/virt/kvm/new.c b/virt/kvm/new.c\nnew file mode 100644\n"
            "--- /dev/null\n+++ b/virt/kvm/new.c\n")
    assert series.touched_paths(mail) == ("include/linux/kvm_host.h", "virt/kvm/new.c")


def test_patch_failure_names_the_hunk_and_the_file() -> None:
    assert series.patch_failure(HUNK_FAILED_OUTPUT) == \
        "hunk #1 of arch/x86/kvm/x86.c FAILED at line 153"
    assert series.patch_failure(NO_FILE_OUTPUT) == "arch/x86/kvm/x86.c is not in the source tree"
    git = ("error: patch failed: arch/x86/kvm/x86.c:153\n"
           "error: arch/x86/kvm/x86.c: patch does not apply\n")
    assert series.patch_failure(git) == "a hunk of arch/x86/kvm/x86.c FAILED at line 153"


def test_the_series_applies_with_patch(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "t")
    series.apply_series(tree, (PROBE,), use_git=False)
    assert "module_param(fleet_probe, int, 0444);" in (tree / "arch/x86/kvm/x86.c").read_text()


def test_a_hunk_whose_context_differs_is_not_applied_with_fuzz(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "t", x86_c=X86_C.replace("kvmclock_periodic_sync, bool",
                                                         "kvmclock_periodic_sync, int"))
    with pytest.raises(ProvisionError, match=r"hunk #1 of arch/x86/kvm/x86\.c FAILED at line 153"):
        series.apply_series(tree, (PROBE,), use_git=False)


def test_a_hunk_that_does_not_apply_is_named(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "t", x86_c="something else\n")
    with pytest.raises(ProvisionError) as caught:
        series.apply_series(tree, (PROBE,), use_git=False)
    assert caught.value.line().startswith(
        f"{PROBE}: patch does not apply: hunk #1 of arch/x86/kvm/x86.c FAILED at line 153")
    assert not list(tree.rglob("*.rej")) and not list(tree.rglob("*.orig"))


@pytest.mark.parametrize("as_mail", [False, True])
def test_the_series_applies_in_a_git_checkout(tmp_path: Path, as_mail: bool) -> None:
    patch = PROBE
    if as_mail:
        patch = tmp_path / "0001.mbox"
        patch.write_text("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                         "From: A <a@example.org>\nDate: Thu, 3 Dec 2026 10:00:00 +0000\n"
                         "Subject: [PATCH] kvm: fleet_probe\n\n---\n" + PROBE.read_text())
    tree = fake_tree(tmp_path / "t")
    series.apply_series(tree, (patch,), use_git=True)
    assert "fleet_probe" in (tree / "arch/x86/kvm/x86.c").read_text()
    log = subprocess.run(["git", "log", "--format=%s"], cwd=tree, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert log[0] == ("kvm: fleet_probe" if as_mail else patch.name)


def test_a_file_built_into_the_kernel_is_refused() -> None:
    assert kbuild.check_touched(["arch/x86/kvm/x86.c", "include/linux/kvm_host.h",
                                 "tools/testing/selftests/kvm/x.c"], where="p") == \
        ("include/linux/kvm_host.h",)
    with pytest.raises(ProvisionError, match=r"patches mm/gup\.c, which is built into the kernel"):
        kbuild.check_touched(["arch/x86/kvm/x86.c", "mm/gup.c"], where="p")


def test_a_missing_source_tree_is_one_line(tmp_path: Path) -> None:
    request = BuildRequest(source=str(tmp_path / "nowhere"), kernel_release="6.1.0-57-amd64",
                           patches=(PROBE,), cache_dir=tmp_path / "cache")
    with pytest.raises(ProvisionError) as caught:
        build_kvm_modules(request)
    assert caught.value.line() == (
        f"{tmp_path / 'nowhere'}: kernel source tree not found (give an unpacked kernel tree, a "
        "git checkout or a Debian package such as linux-source-6.1)")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProvisionError, match="not a kernel source tree"):
        build_kvm_modules(BuildRequest(source=str(empty), kernel_release="6.1.0-57-amd64",
                                       cache_dir=tmp_path / "cache"))


def test_a_bad_patch_fails_before_any_download(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "t", x86_c="other\n")
    before = (tree / "arch/x86/kvm/x86.c").read_text()
    with pytest.raises(ProvisionError, match=r"hunk #1 of arch/x86/kvm/x86\.c FAILED"):
        build_kvm_modules(BuildRequest(source=str(tree), kernel_release="6.1.0-57-amd64",
                                       patches=(PROBE,), cache_dir=tmp_path / "cache"))
    assert (tree / "arch/x86/kvm/x86.c").read_text() == before  # the tree itself untouched
    assert list((tmp_path / "cache").iterdir()) == []  # no download, no copy left behind


def test_modinfo_of_a_real_object(tmp_path: Path) -> None:
    source = tmp_path / "m.c"
    source.write_text('__attribute__((section(".modinfo"), used)) static const char a[] = '
                      '"srcversion=8C56730E51440DFC8519837";\n'
                      '__attribute__((section(".modinfo"), used)) static const char b[] = '
                      '"vermagic=6.1.0-57-amd64 SMP preempt mod_unload modversions ";\n')
    assert shutil.which("gcc"), "gcc is a controller build tool (scripts/bootstrap)"
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "m.o"), str(source)], check=True)
    info = modinfo((tmp_path / "m.o").read_bytes(), where="m.o")
    assert info["srcversion"] == "8C56730E51440DFC8519837"
    assert info["vermagic"].startswith("6.1.0-57-amd64 SMP")
    with pytest.raises(ProvisionError, match="not an ELF64"):
        modinfo(b"not elf", where="x.ko")


def test_hashes_and_the_manifest(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "t")
    first = cache.tree_hash(tree, kbuild.KVM_DIRS)
    assert cache.tree_hash(tree, kbuild.KVM_DIRS) == first
    (tree / "virt/kvm/kvm_main.c").write_text("/* changed */\n")
    assert cache.tree_hash(tree, kbuild.KVM_DIRS) != first
    assert series.series_hash((PROBE,)) != series.series_hash(())
    key = cache.build_key("s", "p", "k")
    assert key.startswith("kvm-") and key != cache.build_key("s", "p", "k2")
    directory = tmp_path / key
    directory.mkdir()
    module = BuiltModule("kvm", directory / "kvm.ko", "ABC", "6.1.0-57-amd64 SMP")
    result = BuildResult(key=key, directory=directory, kernel_release="6.1.0-57-amd64",
                         source="linux-source-6.1", patches=(PROBE.name,), source_hash="s",
                         series_hash="p", kernel_hash="k",
                         modules=(module,),
                         build_seconds=12.5, cached=False)
    cache.write_manifest(result)
    assert cache.read_manifest(directory) == replace(result, cached=True)
    assert cache.read_manifest(tmp_path) is None


def test_the_first_compiler_error_is_the_line() -> None:
    tree = Path("/root/.cache/fleet/build/.build-x/build/src")
    log = ("  CC [M]  /x/virt/kvm/kvm_main.o\n"
           f"{tree}/arch/x86/kvm/x86.c:157:1: error: expected ';' before 'static'\n"
           f"{tree}/include/trace/define_trace.h:95:42: fatal error: ../../x.h: No such file\n"
           "make: *** [Makefile:2065: arch/x86/kvm] Error 2\n")
    assert kbuild.first_error(log, tree=tree) == \
        "arch/x86/kvm/x86.c:157:1: expected ';' before 'static'"
    assert kbuild.first_error(log.splitlines()[2], tree=tree) == \
        "include/trace/define_trace.h:95:42: ../../x.h: No such file"
    assert kbuild.first_error("make: *** [Makefile:2065: arch/x86/kvm] Error 2\n") == \
        "make: *** [Makefile:2065: arch/x86/kvm] Error 2"
