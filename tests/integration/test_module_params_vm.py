"""KVM module parameters as knobs, on a real emulated lab guest (Debian 6.1 inside QEMU).

In the guest ``/sys/module/kvm/parameters/eager_page_split`` is 0644 (writable at runtime) and
``enable_pmu`` is 0444; this machine's own are all 0444, so the writable path is tested here
only (the read-only one also on captured facts: tests/unit/test_provisioning.py).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.codec import plan_from_json
from fleet.config.inventory import load_inventory
from fleet.hosts import Host
from fleet.lab import LabState
from fleet.store import Store
from fleet.store.runs import list_runs, load_run
from fleet.transport import connect

pytestmark = pytest.mark.integration

EPS = "/sys/module/kvm/parameters/eager_page_split"
GUEST_GROUP = "numa2"  # the 2-node guest of the shared numa_lab


def fleet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def read_param(host: Host, path: str = EPS) -> str:
    with connect(host) as transport:
        result = transport.run(["cat", path])
    assert result.ok, result.stderr
    return result.stdout.strip()


def suite(tmp_path: Path, axes: str) -> Path:
    path = tmp_path / "eps.yml"
    path.write_text(f"""\
schema_version: 1
name: eps
workloads:
  - name: look
    type: command
    repetitions: 2
    argv: [cat, {EPS}]
    axes:
{axes}""")
    return path


def test_eager_page_split_both_halves_run_on_one_guest_and_it_is_restored(
        numa_lab: LabState, tmp_path: Path) -> None:
    (host,) = load_inventory([numa_lab.inventory_path], limit=GUEST_GROUP).hosts
    original = read_param(host)
    assert original in ("Y", "N")
    store = tmp_path / "fleet.sqlite"
    path = suite(tmp_path, "      kvm.eager_page_split: [N, Y]\n")
    result = fleet("run", str(path), "-i", str(numa_lab.inventory_path), "--limit",
                   GUEST_GROUP, "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert read_param(host) == original  # restored after the run
    with Store.open(store) as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        detail = load_run(s, str(run_id))
    with sqlite3.connect(store) as conn:
        (plan_json,) = conn.execute("SELECT plan_json FROM runs").fetchone()
    settings = {cid: c.settings() for cid, c in plan_from_json(plan_json).cases.items()}
    attempts = [a.attempt for a in detail.attempts]
    assert len(attempts) == 4 and {a.status for a in attempts} == {"completed"}
    seen = sorted((str(settings[a.job.case_id]["kvm.eager_page_split"]), a.stdout.strip())
                  for a in attempts)
    assert seen == [("N", "N"), ("N", "N"), ("Y", "Y"), ("Y", "Y")]  # each case saw its value
    for a in attempts:  # the value verified by reading it back is recorded with the result
        (knob,) = a.knobs
        wanted = str(settings[a.job.case_id]["kvm.eager_page_split"])
        assert (knob.name, knob.path, knob.before, knob.requested, knob.after, knob.restored) \
            == ("kvm.eager_page_split", EPS, original, wanted, wanted, True)


def test_plan_says_how_the_guest_reaches_each_variant(numa_lab: LabState,
                                                     tmp_path: Path) -> None:
    (host,) = load_inventory([numa_lab.inventory_path], limit=GUEST_GROUP).hosts
    assert host.boot == "kexec"  # a lab guest
    eps, pmu = read_param(host), read_param(host, "/sys/module/kvm/parameters/enable_pmu")
    other = {"Y": "N", "N": "Y"}
    axes = (f"      kvm.eager_page_split: [{other[eps]}]\n"
            f"      kvm.enable_pmu: [{pmu}, {other[pmu]}]\n"
            "      kernel: [6.1.0-57-amd64, 6.12.0-0-amd64]\n")
    result = fleet("plan", str(suite(tmp_path, axes)), "-i", str(numa_lab.inventory_path),
                   "--limit", GUEST_GROUP, "--store", str(tmp_path / "fleet.sqlite"),
                   "--gather", "--json")
    assert result.returncode == 0, result.stderr
    needed = json.loads(result.stdout)["provisioning"]
    hows = {(g["variant"]["kvm.enable_pmu"], g["variant"]["kernel"]): g["how"] for g in needed}
    running = read_param(host, "/proc/sys/kernel/osrelease")
    kernel_how = {k: (None if k == running else "kexec")
                  for k in ("6.1.0-57-amd64", "6.12.0-0-amd64")}
    for (pmu_value, kernel), how in hows.items():
        expected = [h for h in (kernel_how[kernel],
                                "reload" if pmu_value != pmu else None) if h] or ["knob"]
        assert how == max(expected, key=["knob", "reload", "kexec"].index), (pmu_value, kernel)
    steps = {s["name"]: s for g in needed for s in g["steps"]}
    assert (steps["kvm.eager_page_split"]["how"], steps["kvm.eager_page_split"]["why"]) == \
        ("knob", "writable parameter")
    assert (steps["kvm.enable_pmu"]["how"], steps["kvm.enable_pmu"]["why"]) == \
        ("reload", "read-only parameter")


def test_a_kernel_axis_of_declared_variants_runs_where_the_guest_is_on_one(
        numa_lab: LabState, tmp_path: Path) -> None:
    """kernel: [stock, other] names fleet_variants: fleet run provisions the guest onto each
    before its group. stock is the release it runs (verified in place, its cases run, stamped
    with the identity); other names a package Debian does not have, so its case fails with
    the one line of the failed fetch."""
    (host,) = load_inventory([numa_lab.inventory_path], limit=GUEST_GROUP).hosts
    running = read_param(host, "/proc/sys/kernel/osrelease")
    extra = tmp_path / "variants.yml"
    extra.write_text(json.dumps({"all": {"hosts": {host.name: {"fleet_variants": {
        "stock": {"kind": "package", "package": f"linux-image-{running}"},
        "other": {"kind": "package", "package": "linux-image-6.1.0-1-amd64"}}}}}}))
    path = tmp_path / "kernels.yml"
    path.write_text("schema_version: 1\nname: kernels\nworkloads:\n  - name: release\n"
                    "    type: command\n    argv: [uname, -r]\n    axes:\n"
                    "      kernel: [stock, other]\n")
    store = tmp_path / "fleet.sqlite"
    result = fleet("run", str(path), "-i", str(numa_lab.inventory_path), "-i", str(extra),
                   "--limit", host.name, "--store", str(store))
    assert result.returncode != 0  # the other kernel's case failed
    with Store.open(store) as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        detail = load_run(s, str(run_id))
    with sqlite3.connect(store) as conn:
        (plan_json,) = conn.execute("SELECT plan_json FROM runs").fetchone()
    settings = {cid: c.settings() for cid, c in plan_from_json(plan_json).cases.items()}
    by_kernel = {str(settings[a.attempt.job.case_id]["kernel"]): a.attempt
                 for a in detail.attempts}
    assert by_kernel["stock"].status == "completed"
    assert by_kernel["stock"].stdout.strip() == running
    assert by_kernel["stock"].variant is not None
    assert (by_kernel["stock"].variant.variant, by_kernel["stock"].variant.kernel_release) == \
        ("stock", running)
    assert by_kernel["other"].status == "failed"
    assert (by_kernel["other"].error or "").startswith(
        "variant other was not provisioned: ")
    assert "apt-get download linux-image-6.1.0-1-amd64" in (by_kernel["other"].error or "")
