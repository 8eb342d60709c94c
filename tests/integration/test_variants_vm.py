"""Kernel variants on a real emulated lab guest (QEMU, TCG): a Debian kernel package fetched
on the controller with `apt-get download` (the guest has no network), installed by the
``kernel`` role, booted by kexec (``boot`` role), verified, and back by the lab's power
command; a variant whose command line cannot boot (rdinit= and init=/nonexistent) is detected,
power-cycled through the inventory's fleet_power_command and rolled back onto the lab's kernel.

Slow (one package install under TCG is several minutes): one guest for the module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fleet.config.inventory import Inventory, load_inventory
from fleet.errors import LabError
from fleet.lab import LabState, lab_down, vm_lab_up
from fleet.lab.image.rootfs import RootfsImage
from fleet.provision.variants import switch
from fleet.provision.variants.wait import Console, probe, wait_new_boot

pytestmark = pytest.mark.integration

GUEST = "vm1-2n"
BACK_TIMEOUT_SECONDS = 600.0  # a loaded machine boots a TCG guest slowly
# init=/nonexistent alone boots: initramfs-tools falls back to /sbin/init ("Target filesystem
# doesn't have requested /nonexistent"); without the initramfs's init the kernel cannot mount
# root (virtio_blk is a module) and panics, and QEMU (-no-reboot) quits
BROKEN_CMDLINE = "rdinit=/nonexistent init=/nonexistent"


@dataclass(frozen=True)
class VariantLab:
    state: LabState
    inventory: Inventory
    cache_dir: Path
    lab_release: str  # what QEMU's -kernel boots
    other_release: str  # the package variant's


def _other_package(lab_release: str) -> str:
    """A Debian 6.1 kernel package other than the guest's own (apt-cache on the controller)."""
    found = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+"
                            r"-amd64$"], capture_output=True, text=True, check=True).stdout
    names = sorted({line.split()[0] for line in found.splitlines()},
                   key=lambda n: int(re.findall(r"-(\d+)-amd64", n)[0]))
    others = [n for n in names if n != f"linux-image-{lab_release}"]
    assert others, f"apt-cache knows no Debian 6.1 kernel but {lab_release}"
    return others[-1]


@pytest.fixture(scope="module")
def variant_lab(tmp_path_factory: pytest.TempPathFactory,
                rootfs_image: RootfsImage) -> Iterator[VariantLab]:
    state_dir = tmp_path_factory.mktemp("variants")
    # the power cycle boots the guest again from its overlay on the base image: a hard link
    # keeps that image whatever the shared image cache does meanwhile (it keeps one recipe's)
    base = tmp_path_factory.mktemp("variants-base") / "base.img"
    os.link(rootfs_image.base_image, base)
    try:
        state = vm_lab_up(["2n"], state_dir, image=replace(rootfs_image, base_image=base),
                          ready_timeout_seconds=420)
    except LabError as exc:
        failure: str | None = f"vm lab could not be booted: {exc}"
    else:
        failure = None
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        host = load_inventory([state.inventory_path]).host(GUEST)
        lab_release = probe(host).kernel_release
        package = _other_package(lab_release)
        extra = state_dir / "variants.yml"
        extra.write_text(
            "all:\n  hosts:\n    vm1-2n:\n      fleet_variants:\n"
            f"        other: {{kind: package, package: {package}}}\n"
            f"        broken: {{kind: package, package: {package}, cmdline: {BROKEN_CMDLINE}}}\n",
            encoding="utf-8")
        inventory = load_inventory([state.inventory_path, extra])
        yield VariantLab(state, inventory, state_dir / "debs", lab_release,
                         package.removeprefix("linux-image-"))
    finally:
        lab_down(state_dir)


def _power_cycle_back(lab: VariantLab) -> None:
    """Back onto the lab's kernel through the inventory's own power command."""
    host = lab.inventory.host(GUEST)
    before = probe(host)
    argv = lab.inventory.provisioning[GUEST].power_command
    assert argv is not None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    back = wait_new_boot(host, before.boot_id, timeout_seconds=BACK_TIMEOUT_SECONDS,
                         console=Console(None), progress=lambda _line: None)
    assert not isinstance(back, str), back
    assert back.kernel_release == lab.lab_release


def test_switch_to_another_kernel_package_by_kexec_and_back(variant_lab: VariantLab) -> None:
    lines: list[str] = []
    identity = switch(variant_lab.inventory, GUEST, "other", cache_dir=variant_lab.cache_dir,
                      progress=lines.append)
    assert identity.variant == "other" and identity.kind == "package"
    assert identity.kernel_release == variant_lab.other_release != variant_lab.lab_release
    assert identity.cmdline.split()[:2] == ["root=/dev/vda", "rw"]
    assert identity.source_sha256 is not None and len(identity.source_sha256) == 64
    assert dict(identity.kvm_modules)["kvm"].startswith(("build-id:", "srcversion:"))
    seen = probe(variant_lab.inventory.host(GUEST))
    assert (seen.kernel_release, seen.kvm_modules) == (identity.kernel_release,
                                                       identity.kvm_modules)
    assert any("back after" in line for line in lines)
    # in state already: nothing installed or booted again
    started = time.monotonic()
    again = switch(variant_lab.inventory, GUEST, "other", cache_dir=variant_lab.cache_dir,
                   progress=lines.append)
    assert again == identity and probe(variant_lab.inventory.host(GUEST)).boot_id == seen.boot_id
    assert lines[-1] == f"{GUEST}: already on variant other ({variant_lab.other_release})"
    assert time.monotonic() - started < 120
    _power_cycle_back(variant_lab)


BROKEN_SUITE = """\
schema_version: 1
name: broken-variant
repetitions: 2
sampling: {enabled: false}
workloads:
  - name: uname
    type: command
    argv: [uname, -r]
    axes:
      kernel: [broken]
"""


def test_a_variant_that_cannot_boot_is_power_cycled_and_rolled_back(
        variant_lab: VariantLab, tmp_path: Path) -> None:
    """Through `fleet run`: the host is provisioned before the group, the boot fails, the
    host is power-cycled back onto its last good kernel, and the group's cases fail with
    that one line (the variant is not tried again for the second case)."""
    suite = tmp_path / "broken.yml"
    suite.write_text(BROKEN_SUITE)
    argv = [sys.executable, "-m", "fleet", "run", str(suite), "--store",
            str(tmp_path / "f.db"), "--json"]
    for source in variant_lab.inventory.sources:
        argv += ["-i", str(source)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode != 0, done.stdout[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [e for e in events if e["event"] == "host_provisioned"]
    attempts = [e for e in events if e["event"] == "attempt_finished"]
    assert [a["status"] for a in attempts] == ["failed", "failed"], done.stderr[-2000:]
    first, second = (a["error"] for a in attempts)
    assert first == second and "\n" not in first
    assert first.startswith(f"variant broken was not provisioned: {GUEST}: variant broken "
                            f"({variant_lab.other_release}) did not boot: ")
    assert (f"power-cycled, back on its last good kernel {variant_lab.lab_release} (verified); "
            "console: ") in first
    assert "the kernel panicked (console log)" in first and "Kernel panic" in first
    assert probe(variant_lab.inventory.host(GUEST)).kernel_release == variant_lab.lab_release
