"""What goes into the lab's guest image, as data; its hash names the cached image.

Everything that changes the image is a field of ``Recipe`` (the guest files by content), so
``recipe_hash`` changes with it and the cache rebuilds. The apt mirror is not part of it: it
says where the packages come from, not which ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fleet.lab.image.sources import OS_RELEASE, codename_of

# bump when the builder changes what it does with the same recipe
FORMAT_VERSION = 1
HASH_CHARS = 16
GUEST_PACKAGE = "fleet.lab.image"
GUEST_DIR = "guest"

# kexec-tools: kernel variants switch by kexec; python3-apt: Ansible's apt module installs a
# variant's .deb (lab guests have no network to fetch python3-apt themselves)
PACKAGES = ("systemd-sysv", "udev", "kmod", "openssh-server", "python3", "iproute2",
            "linux-image-amd64", "numactl", "procps", "tar", "kexec-tools", "python3-apt")
DPKG_PATH_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*",
                      "/usr/share/info/*", "/usr/share/lintian/*")
# module trees (under lib/modules/RELEASE/kernel/) no emulated lab guest loads
MODULE_TRIMS = ("drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/infiniband",
                "drivers/staging", "drivers/iio", "drivers/comedi", "drivers/bluetooth",
                "drivers/isdn", "sound", "net/wireless", "net/mac80211", "net/bluetooth")
# (package file under fleet/lab/image/guest/, path in the image, mode)
GUEST_FILE_TABLE = (
    ("fleet-seed", "/usr/local/sbin/fleet-seed", 0o755),
    ("fleet-seed.service", "/etc/systemd/system/fleet-seed.service", 0o644),
    ("10-fleet.network", "/etc/systemd/network/10-fleet.network", 0o644),
    ("sshd-fleet.conf", "/etc/ssh/sshd_config.d/fleet.conf", 0o644),
    ("fstab", "/etc/fstab", 0o644),
    ("hosts", "/etc/hosts", 0o644),
    ("hostname", "/etc/hostname", 0o644),
    ("resolv.conf", "/etc/resolv.conf", 0o644),
)
# written before the packages install, so the initrd built then is already the small one
PREINSTALL_FILE_TABLE = (
    ("initramfs.conf", "/etc/initramfs-tools/conf.d/fleet.conf", 0o644),
    ("initramfs-modules", "/usr/share/initramfs-tools/modules.d/fleet.conf", 0o644),
)
REMOVE_GLOBS = ("etc/ssh/ssh_host_*",)  # no host key shared by every guest
ENABLE_UNITS = ("systemd-networkd.service", "fleet-seed.service")
# timers that would wake up in the middle of a benchmark
MASK_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
              "fstrim.timer")
IMAGE_SIZE_BYTES = 2 * 1024**3  # sparse: costs only what is used
FS_LABEL = "fleetroot"


@dataclass(frozen=True)
class GuestFile:
    """A file the builder writes into the image (replacing what packages put there)."""

    path: str  # absolute, inside the image
    mode: int
    content: str


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the guest image's content."""

    format_version: int
    codename: str
    packages: tuple[str, ...]
    dpkg_path_excludes: tuple[str, ...]
    module_trims: tuple[str, ...]
    preinstall_files: tuple[GuestFile, ...]
    guest_files: tuple[GuestFile, ...]
    remove_globs: tuple[str, ...]
    enable_units: tuple[str, ...]
    mask_units: tuple[str, ...]
    image_size_bytes: int
    fs_label: str


def guest_file_text(name: str) -> str:
    """The text of a guest file shipped as package data."""
    return (resources.files(GUEST_PACKAGE) / GUEST_DIR / name).read_text(encoding="utf-8")


def default_recipe(os_release: Path = OS_RELEASE) -> Recipe:
    """The lab's recipe for this host's Debian release (reads package data and os-release)."""
    codename = codename_of(os_release.read_text(encoding="utf-8"), str(os_release))
    return Recipe(format_version=FORMAT_VERSION, codename=codename, packages=PACKAGES,
                  dpkg_path_excludes=DPKG_PATH_EXCLUDES, module_trims=MODULE_TRIMS,
                  preinstall_files=_guest_files(PREINSTALL_FILE_TABLE),
                  guest_files=_guest_files(GUEST_FILE_TABLE), remove_globs=REMOVE_GLOBS,
                  enable_units=ENABLE_UNITS,
                  mask_units=MASK_UNITS, image_size_bytes=IMAGE_SIZE_BYTES, fs_label=FS_LABEL)


def _guest_files(table: tuple[tuple[str, str, int], ...]) -> tuple[GuestFile, ...]:
    return tuple(GuestFile(path, mode, guest_file_text(name)) for name, path, mode in table)


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return asdict(recipe)


def recipe_hash(recipe: Recipe) -> str:
    """Pure: a short sha256 of the canonical JSON of every field."""
    canonical = json.dumps(recipe_dict(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:HASH_CHARS]
