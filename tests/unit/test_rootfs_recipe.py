"""The guest image recipe: hash stability/sensitivity, the guest files, the host's apt sources."""

from __future__ import annotations

import configparser
import dataclasses
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fleet.errors import LabError
from fleet.lab.image import recipe as rr
from fleet.lab.image import sources as rs
from fleet.lab.image.build import mmdebstrap_argv, mounts_below
from fleet.lab.image.recipe import GuestFile, Recipe, default_recipe, recipe_hash
from fleet.lab.image.rootfs import default_cache_dir

LAB = Path(rr.__file__).parent
GUEST = LAB / "guest"

SMALL = Recipe(format_version=1, codename="bookworm", packages=("a", "b"),
               dpkg_path_excludes=("/usr/share/doc/*",), module_trims=("sound",),
               preinstall_files=(GuestFile("/etc/p", 0o644, "p\n"),),
               guest_files=(GuestFile("/etc/x", 0o644, "x\n"),), remove_globs=("etc/k*",),
               enable_units=("u.service",), mask_units=("t.timer",),
               image_size_bytes=1024**3, fs_label="l")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(rr.guest_file_text(name))
    return parser


def changed(value: Any) -> Any:
    """A different value of the same shape, for any Recipe field."""
    if isinstance(value, bool | int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    assert isinstance(value, tuple)
    if value and isinstance(value[0], GuestFile):
        first = dataclasses.replace(value[0], content=value[0].content + "#\n")
        return (first, *value[1:])
    return (*value, "extra")


# -- hash ------------------------------------------------------------------------------------

def test_same_recipe_same_hash() -> None:
    assert default_recipe() == default_recipe()
    assert recipe_hash(default_recipe()) == recipe_hash(default_recipe())
    assert len(recipe_hash(default_recipe())) == 16


def test_hash_is_stable_across_runs() -> None:
    # a golden value: the hash names cache directories on developers' machines
    assert recipe_hash(SMALL) == "74c594adbbd50895"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Recipe)])
def test_every_field_changes_the_hash(field: str) -> None:
    recipe = default_recipe()
    edited = dataclasses.replace(recipe, **{field: changed(getattr(recipe, field))})
    assert recipe_hash(edited) != recipe_hash(recipe)


@pytest.mark.parametrize("index", range(len(rr.GUEST_FILE_TABLE)))
def test_editing_any_guest_file_changes_the_hash(index: int) -> None:
    recipe = default_recipe()
    files = list(recipe.guest_files)
    files[index] = dataclasses.replace(files[index], content=files[index].content + " ")
    assert recipe_hash(dataclasses.replace(recipe, guest_files=tuple(files))) \
        != recipe_hash(recipe)
    files[index] = dataclasses.replace(recipe.guest_files[index], mode=0o600)
    assert recipe_hash(dataclasses.replace(recipe, guest_files=tuple(files))) \
        != recipe_hash(recipe)


def test_package_list_change_changes_the_hash() -> None:
    recipe = default_recipe()
    fewer = dataclasses.replace(recipe, packages=recipe.packages[:-1])
    more = dataclasses.replace(recipe, packages=(*recipe.packages, "vim-tiny"))
    assert len({recipe_hash(recipe), recipe_hash(fewer), recipe_hash(more)}) == 3


def test_recipe_reads_every_guest_file_from_package_data() -> None:
    recipe = default_recipe()
    shipped = {p.name for p in GUEST.iterdir()}
    used = {name for name, _, _ in (*rr.GUEST_FILE_TABLE, *rr.PREINSTALL_FILE_TABLE)}
    assert used == shipped
    seed = next(f for f in recipe.guest_files if f.path == "/usr/local/sbin/fleet-seed")
    assert seed.mode == 0o755
    assert seed.content == (GUEST / "fleet-seed").read_text()


def test_codename_comes_from_the_host() -> None:
    host = rs.codename_of(Path("/etc/os-release").read_text())
    assert default_recipe().codename == host
    assert rs.codename_of('NAME="Debian"\nVERSION_CODENAME="trixie"\n') == "trixie"
    with pytest.raises(LabError, match="no VERSION_CODENAME"):
        rs.codename_of('NAME="Debian GNU/Linux"\nVERSION_CODENAME=\n', "x/os-release")


# -- the guest files parse and say what they must ---------------------------------------------

def test_seed_service_runs_before_sshd_after_local_fs() -> None:
    service = unit("fleet-seed.service")
    assert service["Unit"]["DefaultDependencies"] == "no"
    assert service["Unit"]["ConditionPathExists"] == "/dev/vdb"
    assert "local-fs.target" in service["Unit"]["After"].split()
    assert "udev-settle" not in str(dict(service["Unit"]))  # 20 s of boot under TCG
    assert {"ssh.service", "network-pre.target"} <= set(service["Unit"]["Before"].split())
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["RemainAfterExit"] == "yes"
    assert shlex.split(service["Service"]["ExecStart"])[0] == "/usr/local/sbin/fleet-seed"
    assert service["Install"]["WantedBy"] == "multi-user.target"
    assert "fleet-seed.service" in rr.ENABLE_UNITS


def test_network_file_matches_the_virtio_nic() -> None:
    network = unit("10-fleet.network")
    assert "en*" in network["Match"]["Name"].split()
    assert network["Network"]["DHCP"] == "ipv4"


def test_sshd_conf_uses_the_seeded_key_and_keys_only() -> None:
    lines = [line.split(None, 1) for line in rr.guest_file_text("sshd-fleet.conf").splitlines()
             if line.strip() and not line.startswith("#")]
    options = {key: value for key, value in lines}
    assert options["HostKey"] == "/etc/ssh/ssh_host_ed25519_key"
    assert options["PermitRootLogin"] == "prohibit-password"
    assert options["PasswordAuthentication"] == "no"
    assert rr.REMOVE_GLOBS == ("etc/ssh/ssh_host_*",)


def test_seed_script_is_valid_sh_and_keeps_directory_modes() -> None:
    script = GUEST / "fleet-seed"
    assert script.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert "--no-overwrite-dir" in script.read_text()


def test_fstab_mounts_vda_as_root_and_initrd_loads_virtio_blk() -> None:
    entries = [line.split() for line in rr.guest_file_text("fstab").splitlines()
               if line.strip() and not line.startswith("#")]
    assert entries == [["/dev/vda", "/", "ext4", "rw,relatime", "0", "0"]]
    modules = rr.guest_file_text("initramfs-modules").split()
    assert {"virtio_blk", "virtio_pci", "ext4"} <= set(modules)
    assert "MODULES=list" in rr.guest_file_text("initramfs.conf").splitlines()


def test_mmdebstrap_runs_in_a_private_mount_namespace() -> None:
    recipe = default_recipe()
    argv = mmdebstrap_argv(recipe, Path("/c/root"), Path("/c/host.sources"))
    assert argv[:8] == ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                        "--kill-child", "--"]
    assert f"--include={','.join(recipe.packages)}" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert argv[-3:] == [recipe.codename, "/c/root", "/c/host.sources"]


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/var/tmp/xdg")
    assert default_cache_dir() == Path("/var/tmp/xdg/fleet/lab")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache" / "fleet" / "lab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "fleet" / "lab"


# -- apt sources ---------------------------------------------------------------------------------

DEB822 = """\
Types: deb
# a snapshot comment
URIs: http://archive.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://archive.invalid/debian-security
Suites: bookworm-security
Components: main contrib

Types: deb
URIs: https://vendor.invalid/node
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://archive.invalid/debian
Suites: bookworm-backports
Components: main
"""

ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://archive.invalid/debian bookworm main
deb-src http://archive.invalid/debian bookworm main
deb https://vendor.invalid/apt cloud-sdk-bookworm main
deb cdrom:[Debian 12]/ bookworm main
"""


def test_deb822_sources_keep_only_the_release() -> None:
    kept = rs.for_release(rs.parse_deb822(DEB822, "debian.sources"), "bookworm")
    assert [(s.get("URIs"), s.get("Suites"), s.get("Types")) for s in kept] == [
        ("http://archive.invalid/debian", "bookworm bookworm-updates", "deb"),
        ("http://archive.invalid/debian-security", "bookworm-security", "deb"),
    ]
    rendered = rs.render_deb822(kept)
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in rendered
    assert rs.parse_deb822(rendered, "again")[0].fields == kept[0].fields


def test_one_line_sources_become_deb822() -> None:
    kept = rs.for_release(rs.parse_one_line(ONE_LINE, "sources.list"), "bookworm")
    assert len(kept) == 1
    assert kept[0].origin == "sources.list:2"
    assert kept[0].get("Architectures") == "amd64"
    assert kept[0].get("Signed-By") == "/usr/share/keyrings/x.gpg"
    assert kept[0].get("Components") == "main"


def test_no_source_for_the_release_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "vendor.sources").write_text(DEB822.split("\n\n")[2])
    (tmp_path / "sources.list.d" / "off.sources.disabled").write_text(DEB822)
    with pytest.raises(LabError, match="no apt source for bookworm"):
        rs.host_sources("bookworm", tmp_path)


def test_host_sources_of_this_machine() -> None:
    codename = default_recipe().codename
    stanzas = rs.parse_deb822(rs.host_sources(codename), "rendered")
    assert stanzas
    for stanza in stanzas:
        assert all(s == codename or s.startswith(f"{codename}-")
                   for s in (stanza.get("Suites") or "").split())


def test_no_mirror_host_is_named_in_the_builder() -> None:
    hosts = set()
    for path in rs.source_files():
        text = path.read_text()
        parse = rs.parse_deb822 if path.suffix == ".sources" else rs.parse_one_line
        for stanza in parse(text, str(path)):
            hosts |= {urlsplit(uri).hostname for uri in (stanza.get("URIs") or "").split()}
    hosts.discard(None)
    assert hosts
    ours = [*LAB.glob("rootfs*.py"), *GUEST.iterdir(),
            *Path(__file__).parent.parent.glob("*/test_rootfs*.py")]
    for path in ours:
        text = path.read_text()
        assert not [h for h in hosts if h and h in text], path


# -- mounts ---------------------------------------------------------------------------------------

def test_mounts_below_reads_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "90 27 0:21 / /c/.build-x/root/proc rw,relatime - proc proc rw\n"
        "91 27 0:22 / /c/.build-x/root/a\\040b rw - tmpfs tmpfs rw\n"
        "92 27 0:23 / /c/.build-xy rw - tmpfs tmpfs rw\n")
    assert mounts_below(Path("/c/.build-x"), info) == ["/c/.build-x/root/proc",
                                                       "/c/.build-x/root/a b"]
    assert mounts_below(Path("/c/other"), info) == []
