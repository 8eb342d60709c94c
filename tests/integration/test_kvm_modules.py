"""Patched KVM modules on an emulated lab host: a real patch to arch/x86/kvm (a read-only
parameter, fleet_probe) built against the guest's Debian kernel from linux-source-6.1,
installed, reloaded, verified by srcversion and the parameter, refused while /dev/kvm is held,
rolled back. The source tarball, the headers and the build are cached in ~/.cache/fleet/build
across runs (a cold build costs minutes; see benchmarks/perf/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.config.inventory import load_inventory
from fleet.errors import ProvisionError
from fleet.hosts import Host
from fleet.lab import LabState, lab_down, vm_lab_up
from fleet.lab.image.rootfs import RootfsImage
from fleet.provision.ansible import TaskEvent
from fleet.provision.build import (
    BuildRequest,
    BuildResult,
    InstallRequest,
    build_kvm_modules,
    install,
    rollback,
)
from fleet.transport import connect

pytestmark = pytest.mark.integration

PROBE = Path(__file__).resolve().parents[1] / "data" / "kvm_patches" / \
    "0001-kvm-fleet_probe-parameter.patch"
HOLD_KVM = ("import os, time; fd = os.open('/dev/kvm', os.O_RDWR); "
            "open('/run/kvm-holder.pid', 'w').write(str(os.getpid())); time.sleep(600)")


@pytest.fixture(scope="module")
def guest_lab(tmp_path_factory: pytest.TempPathFactory,
              rootfs_image: RootfsImage) -> Iterator[LabState]:
    state_dir = tmp_path_factory.mktemp("kvm-modules")
    try:
        yield vm_lab_up(["2n"], state_dir, image=rootfs_image, ready_timeout_seconds=420)
    finally:
        lab_down(state_dir)


@pytest.fixture(scope="module")
def guest(guest_lab: LabState) -> Host:
    (host,) = load_inventory([guest_lab.inventory_path]).hosts
    return host


def sh(host: Host, command: str) -> str:
    with connect(host) as transport:
        result = transport.run(["sh", "-c", command], timeout_seconds=120)
    assert result.ok, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def release(rootfs_image: RootfsImage) -> str:
    """The lab guests' kernel (the image's one linux-image); the guest's uname -r is checked."""
    return rootfs_image.kernel_release


@pytest.fixture(scope="module")
def probe_build(release: str) -> BuildResult:
    return build_kvm_modules(BuildRequest(source="linux-source-6.1", kernel_release=release,
                                          patches=(PROBE,)))


def loaded(host: Host) -> dict[str, str]:
    """/sys/module/<m>/srcversion of the loaded KVM modules ('' when it has none) and the
    fleet_probe parameter ('absent' when the module has no such parameter)."""
    text = sh(host, "for m in kvm kvm_amd kvm_intel; do [ -e /sys/module/$m/initstate ] || "
                    "continue; echo $m=$(cat /sys/module/$m/srcversion 2>/dev/null); done; "
                    "echo probe=$(cat /sys/module/kvm/parameters/fleet_probe 2>/dev/null "
                    "|| echo absent)")
    return dict(line.split("=", 1) for line in text.splitlines())


def test_the_build_is_cached(probe_build: BuildResult, release: str) -> None:
    assert {m.name for m in probe_build.modules} == {"kvm", "kvm_amd", "kvm_intel"}
    assert all(m.vermagic.startswith(f"{release} ") for m in probe_build.modules)
    assert (probe_build.directory / "manifest.json").is_file()
    started = time.monotonic()
    again = build_kvm_modules(BuildRequest(source="linux-source-6.1", kernel_release=release,
                                           patches=(PROBE,)))
    assert again.cached and again.key == probe_build.key
    assert again.srcversions() == probe_build.srcversions()
    assert time.monotonic() - started < 60  # hashes only: about a second here


def provision_variant_cli(guest_lab: LabState, guest: Host, tmp_path: Path) -> dict[str, Any]:
    """`fleet provision --variant probe` on the guest: a kvm_modules variant in the inventory."""
    extra = tmp_path / "variants.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {str(guest.name): {"fleet_variants": {
        "probe": {"kind": "kvm_modules", "source": "linux-source-6.1",
                  "patches": [str(PROBE)]}}}}}}))
    done = subprocess.run([sys.executable, "-m", "fleet", "provision", "-i",
                           str(guest_lab.inventory_path), "-i", str(extra), "--variant", "probe",
                           "--json", "--store", str(tmp_path / "f.db")],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["hosts"]
    assert row["status"] == "verified", row
    identity: dict[str, Any] = row["identity"]
    return identity


def test_install_verify_refuse_and_roll_back(guest_lab: LabState, guest: Host, release: str,
                                             probe_build: BuildResult, tmp_path: Path) -> None:
    assert sh(guest, "uname -r") == release
    stock = loaded(guest)
    assert stock["probe"] == "absent" and stock["kvm_amd"] == ""  # nested KVM: kvm_amd loaded
    request = InstallRequest(inventory=(guest_lab.inventory_path,), build=probe_build,
                             kernel_release=release)
    (installed,) = install(request)
    assert installed.host == guest.name and installed.srcversions == probe_build.srcversions()
    now = loaded(guest)
    assert now == {"kvm": probe_build.srcversions()["kvm"],
                   "kvm_amd": probe_build.srcversions()["kvm_amd"], "probe": "1"}
    events: list[TaskEvent] = []
    install(request, on_event=events.append)  # idempotent: no copy, no reload
    assert [e.task for e in events if e.status == "changed"] == []
    identity = provision_variant_cli(guest_lab, guest, tmp_path)  # the same build, by its name
    assert identity["kind"] == "kvm_modules" and identity["kernel_release"] == release
    assert identity["series_sha256"] == probe_build.series_hash
    assert ["kvm", f"srcversion:{probe_build.srcversions()['kvm']}"] in identity["kvm_modules"]
    assert loaded(guest) == now

    sh(guest, f"setsid python3 -c \"{HOLD_KVM}\" >/dev/null 2>&1 < /dev/null & sleep 2")
    holder = sh(guest, "cat /run/kvm-holder.pid")
    with pytest.raises(ProvisionError) as caught:
        rollback(request)
    assert f"python3 (pid {holder})" in caught.value.line()
    assert "refusing to reload kvm" in caught.value.line()
    assert loaded(guest) == now  # nothing unloaded while the VM ran
    sh(guest, f"kill {holder}; sleep 1")

    (back,) = rollback(request)
    assert back.srcversions == {"kvm": None, "kvm_amd": None, "kvm_intel": None}
    assert loaded(guest) == stock
    assert sh(guest, f"ls /lib/modules/{release}/updates/fleet 2>&1 || true").endswith(
        "No such file or directory")


def test_a_patch_that_does_not_apply_to_the_real_tree(tmp_path: Path, release: str) -> None:
    bad = tmp_path / "0002-bad.patch"
    # one context line that 6.1 does not have: no fuzz, the hunk fails
    bad.write_text(PROBE.read_text().replace(" module_param(kvmclock_periodic_sync",
                                             " module_param(kvmclock_periodic_sync_ms"))
    with pytest.raises(ProvisionError) as caught:
        build_kvm_modules(BuildRequest(source="linux-source-6.1", kernel_release=release,
                                       patches=(PROBE, bad)))
    assert caught.value.line().startswith(
        f"{bad}: patch does not apply: hunk #1 of arch/x86/kvm/x86.c FAILED at line 153")


def test_a_netns_lab_host_is_refused(lab: LabState, probe_build: BuildResult,
                                     release: str) -> None:
    hosts = load_inventory([lab.inventory_path]).hosts
    with pytest.raises(ProvisionError) as caught:
        install(InstallRequest(inventory=(lab.inventory_path,), build=probe_build,
                               kernel_release=release, host_count=len(hosts)))
    assert "is a netns lab host: it shares the controller's kernel" in caught.value.line()
    assert f"on {len(hosts)} host(s)" in caught.value.line()


RUN_SUITE = """\
schema_version: 1
name: variants-run
repetitions: 2
sampling: {enabled: false}
workloads:
  - name: probe
    type: command
    timeout_seconds: 60
    argv: [sh, -c, 'echo "probe=$(cat /sys/module/kvm/parameters/fleet_probe || echo 0)"']
    axes:
      kernel: [stock, probe]
    parse:
      patterns: ['probe=(?P<probe>\\d+)']
      metrics:
        probe: {unit: count}
"""


def test_fleet_run_provisions_between_variant_groups(guest_lab: LabState, guest: Host,
                                                     release: str, probe_build: BuildResult,
                                                     tmp_path: Path) -> None:
    """A suite whose kernel axis names two declared variants (the guest's own kernel package,
    and the patched modules on it): fleet run brings the guest onto each before its group,
    and every result carries the variant it ran on, verified (srcversion)."""
    extra = tmp_path / "variants.yml"
    extra.write_text(yaml.safe_dump({"all": {"hosts": {str(guest.name): {"fleet_variants": {
        "stock": {"kind": "package", "package": f"linux-image-{release}"},
        "probe": {"kind": "kvm_modules", "source": "linux-source-6.1",
                  "patches": [str(PROBE)]}}}}}}))
    suite = tmp_path / "suite.yml"
    suite.write_text(RUN_SUITE)
    store = tmp_path / "f.db"
    done = subprocess.run([sys.executable, "-m", "fleet", "run", str(suite), "-i",
                           str(guest_lab.inventory_path), "-i", str(extra), "--store",
                           str(store), "--json"],
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    switched = [e for e in events if e["event"] == "host_provisioned"]
    assert sorted(e["variant"] for e in switched) == ["probe", "stock"]  # once per group
    attempts = [e for e in events if e["event"] == "attempt_finished"]
    assert len(attempts) == 4 and {a["status"] for a in attempts} == {"completed"}
    patched = f"srcversion:{probe_build.srcversions()['kvm']}"
    for a in attempts:
        variant = a["variant"]
        (value,) = [m["value"] for m in a["measurements"] if m["metric"] == "probe"]
        kvm = dict(variant["kvm_modules"])["kvm"]
        assert variant["kernel_release"] == release
        if variant["variant"] == "probe":
            assert (variant["kind"], value, kvm) == ("kvm_modules", 1, patched)
            assert variant["series_sha256"] == probe_build.series_hash
        else:
            assert (variant["kind"], value) == ("package", 0) and kvm != patched
    import sqlite3

    with sqlite3.connect(store) as db:
        stored = [json.loads(v)["variant"] for (v,) in
                  db.execute("SELECT variant_json FROM attempts ORDER BY attempt_id")]
    assert sorted(stored) == ["probe", "probe", "stock", "stock"]
