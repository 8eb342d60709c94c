"""The full kernel build (kind ``kernel``): its pure plan (config edits, olddefconfig and make
command lines, the hashes, the key, the release suffix) and the pipeline's stages, cache and
refusals, run for real on a tiny stand-in tree whose Makefile only writes the files a kernel
build would (the real build of linux-source-6.1 is measured in benchmarks/perf/README.md)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fleet.errors import ProvisionError
from fleet.provision.build.kernel import KernelBuildRequest, build_kernel, plan
from fleet.provision.build.kernel.build import kept_base_config

KEY = "kernel-0123456789abcdef01234567"
# a stand-in kernel tree: make olddefconfig appends a line, kernelrelease prints the release,
# bindeb-pkg writes the .deb next to the object directory (where the real builddeb puts it)
MAKEFILE = """\
REL := 6.1.0$(LOCALVERSION)
olddefconfig:
\t@grep -q '^CONFIG_FAIL=y' $(O)/.config && echo "$(CURDIR)/kernel/x.c:1:2: error: told to fail" \
&& exit 1 || true
\t@echo CONFIG_OLDDEF=y >> $(O)/.config
kernelrelease:
\t@echo $(REL)
bindeb-pkg:
\t@cat fleet.c > $(O)/../linux-image-$(REL)_1_amd64.deb
\t@touch $(O)/../linux-image-$(REL)-dbg_1_amd64.deb $(O)/../linux-headers-$(REL)_1_amd64.deb
"""
SCRIPTS_CONFIG = "#!/bin/sh\necho \"# edited: $*\" >> \"$2\"\n"
PATCH = """\
--- a/fleet.c
+++ b/fleet.c
@@ -1 +1,2 @@
 int base;
+int patched;
"""


def tree(root: Path) -> Path:
    source = root / "linux"
    for name in ("arch/x86/kvm", "virt/kvm", "scripts"):
        (source / name).mkdir(parents=True)
    (source / "arch/x86/kvm/Makefile").write_text("")
    (source / "Makefile").write_text(MAKEFILE)
    (source / "fleet.c").write_text("int base;\n")
    (source / "scripts/config").write_text(SCRIPTS_CONFIG)
    (source / "scripts/config").chmod(0o755)
    return source


def request(tmp_path: Path, config: str = "CONFIG_X=y\n", **kw: object) -> KernelBuildRequest:
    patch = tmp_path / "0001-x.patch"
    patch.write_text(PATCH)
    fields: dict[str, object] = {"source": str(tmp_path / "linux"), "config_text": config,
                                 "config_origin": "test.config", "patches": (patch,),
                                 "cache_dir": tmp_path / "cache", "jobs": 1, "nice": 0,
                                 "preflight": False}  # the stand-in tree's make needs none
    fields.update(kw)
    return KernelBuildRequest(**fields)  # type: ignore[arg-type]


def test_config_edits_blank_the_distribution_certificates_and_drop_debug_info() -> None:
    edits = plan.config_edits(debug_info=False)
    assert ("--set-str", "SYSTEM_TRUSTED_KEYS", "") in edits
    assert ("--set-str", "SYSTEM_REVOCATION_KEYS", "") in edits
    assert ("--set-str", "MODULE_SIG_KEY", "certs/signing_key.pem") in edits
    assert ("--enable", "DEBUG_INFO_NONE") in edits and ("--disable", "DEBUG_INFO_BTF") in edits
    assert not any("DEBUG_INFO" in e[1] for e in plan.config_edits(debug_info=True))
    argv = plan.config_argv(Path("/s"), Path("/o/.config"), debug_info=True)
    assert argv[:3] == ["/s/scripts/config", "--file", "/o/.config"]
    assert argv[3:6] == ["--set-str", "SYSTEM_TRUSTED_KEYS", ""]


def test_make_argv_is_out_of_tree_niced_and_names_the_key() -> None:
    assert plan.make_argv(Path("/s"), Path("/o"), "bindeb-pkg", key=KEY, jobs=2, nice=10) == [
        "nice", "-n", "10", "make", "-C", "/s", "O=/o", "-j2",
        "LOCALVERSION=-fleet-0123456789", "bindeb-pkg"]
    assert plan.make_argv(Path("/s"), Path("/o"), "olddefconfig", key=KEY)[:2] == ["make", "-C"]
    assert plan.local_version(KEY) == "-fleet-0123456789"


def test_the_key_changes_with_each_input_and_only_with_them() -> None:
    config = plan.config_hash("CONFIG_X=y\n", debug_info=False)
    assert config == plan.config_hash("CONFIG_X=y\n", debug_info=False)
    assert config != plan.config_hash("CONFIG_X=m\n", debug_info=False)
    assert config != plan.config_hash("CONFIG_X=y\n", debug_info=True)
    key = plan.build_key("s", "p", config)
    assert key.startswith("kernel-") and len(key) == len("kernel-") + 24
    assert key == plan.build_key("s", "p", config)
    assert len({key, plan.build_key("t", "p", config), plan.build_key("s", "q", config),
                plan.build_key("s", "p", "c")}) == 4


def test_only_the_image_package_is_the_kernel() -> None:
    release = "6.1.0-fleet-0123456789"
    assert plan.is_image_deb(f"linux-image-{release}_1_amd64.deb", release)
    assert not plan.is_image_deb(f"linux-image-{release}-dbg_1_amd64.deb", release)
    assert not plan.is_image_deb(f"linux-headers-{release}_1_amd64.deb", release)


def test_a_cold_build_then_a_cache_hit(tmp_path: Path) -> None:
    tree(tmp_path)
    built = build_kernel(request(tmp_path))
    assert not built.cached and built.key.startswith("kernel-")
    assert built.kernel_release == "6.1.0" + plan.local_version(built.key)
    assert built.deb.name == f"linux-image-{built.kernel_release}_1_amd64.deb"
    assert built.deb.read_text() == "int base;\nint patched;\n"  # built from the patched copy
    assert (tmp_path / "linux/fleet.c").read_text() == "int base;\n"  # the tree is untouched
    config = (built.directory / ".config").read_text()
    assert config.startswith("CONFIG_X=y\n# edited: --file ") and "CONFIG_OLDDEF=y" in config
    assert "--set-str SYSTEM_TRUSTED_KEYS" in config
    assert set(built.stage_seconds) == {"copy", "patch", "config", "make"}
    manifest = json.loads((built.directory / "manifest.json").read_text())
    assert manifest["config_hash"] == built.config_hash
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [built.key]  # no scratch left
    again = build_kernel(request(tmp_path))
    assert again.cached and again.key == built.key and again.deb == built.deb
    assert kept_base_config(built.kernel_release, tmp_path / "cache") == "CONFIG_X=y\n"
    assert kept_base_config("6.1.0-57-amd64", tmp_path / "cache") is None
    other = build_kernel(request(tmp_path, config="CONFIG_X=m\n"))
    assert not other.cached and other.key != built.key


def test_a_git_checkout_is_patched_in_a_repository_of_its_own(tmp_path: Path) -> None:
    source = tree(tmp_path)
    for argv in (["init", "-q"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", *argv], cwd=source, check=True)
    before = {p: p.read_bytes() for p in (source / ".git").rglob("*") if p.is_file()}
    built = build_kernel(request(tmp_path))
    assert built.deb.read_text() == "int base;\nint patched;\n"  # by git apply in the copy
    after = {p: p.read_bytes() for p in (source / ".git").rglob("*") if p.is_file()}
    assert after == before  # no reflog line, no object, no index written into the user's .git


def test_a_failed_stage_is_one_line_with_the_kept_log(tmp_path: Path) -> None:
    tree(tmp_path)
    with pytest.raises(ProvisionError) as failed:
        build_kernel(request(tmp_path, config="CONFIG_FAIL=y\n"))
    line = failed.value.line()
    assert "the kernel build failed at config: make exited 2: kernel/x.c:1:2: told to fail" \
        in line and "\n" not in line
    kept = next((tmp_path / "cache").glob("kernel-*-failed.log"))
    assert f"the full log: {kept}" in line and "told to fail" in kept.read_text()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [kept.name]


def test_a_patch_that_does_not_apply_names_the_patch_and_the_hunk(tmp_path: Path) -> None:
    (tree(tmp_path) / "fleet.c").write_text("int other;\n")
    with pytest.raises(ProvisionError) as failed:
        build_kernel(request(tmp_path))
    line = failed.value.line()
    assert line.startswith(f"{tmp_path / '0001-x.patch'}: the kernel build failed at patch: "
                           "patch does not apply: hunk #1 of fleet.c FAILED at line 1"), line


@pytest.mark.parametrize(("setup", "says"), [
    ("no-tree", "kernel source tree not found"),
    ("not-kernel", "not a kernel source tree"),
    ("no-patch", "patch file not found"),
])
def test_bad_input_is_refused_before_any_build(tmp_path: Path, setup: str, says: str) -> None:
    if setup == "not-kernel":
        (tmp_path / "linux").mkdir()
    if setup == "no-patch":
        tree(tmp_path)
    req = request(tmp_path)
    if setup == "no-patch":
        req = request(tmp_path, patches=(tmp_path / "missing.patch",))
    with pytest.raises(ProvisionError, match=says):
        build_kernel(req)
    assert not list((tmp_path / "cache").glob("kernel-*"))


def test_a_controller_without_the_build_tools_is_told_before_the_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan.missing_build_needs(lambda c: c not in ("flex", "bc"),
                                    lambda h: h != "gelf.h") == ("flex", "bc",
                                                                 "gelf.h (libelf-dev)")
    assert plan.missing_build_needs(lambda c: True, lambda h: True) == ()
    tree(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a controller with none of the commands
    with pytest.raises(ProvisionError) as caught:
        build_kernel(request(tmp_path, preflight=True))
    assert caught.value.line().startswith(
        "controller: a kernel build needs make, gcc, flex, bison, bc, cpio, rsync, depmod")
    assert "apt-get install build-essential flex bison" in caught.value.line()
    assert not list((tmp_path / "cache").glob("kernel-*"))  # nothing built or kept
