"""The vfio role on an emulated lab host with an IOMMU (`fleet lab up --numa 2n --vfio`): real
sysfs, real vfio-pci, real Ansible. One guest (about 15-20 % slower to boot than a default
guest under TCG: the emulated IOMMU). The role script's own refusals are unit tests on the
captured layout of this guest (tests/unit/test_vfio_role_script.py).

The device alone in its IOMMU group is bound, verified and in state on the second run (the
probe skips Ansible; the role itself changes nothing either); a device sharing its group with
a device on a host driver is refused in one line, exit 2, nothing changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.errors import LabError
from fleet.lab import LabState, lab_down
from fleet.lab.vm.passthrough import OWN_GROUP, SHARED_GROUP, with_passthrough
from fleet.provision.ansible import PLAYBOOKS_DIR, PlaybookRequest, run_playbook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vfio_lab(tmp_path_factory: pytest.TempPathFactory, rootfs_image: Any) -> Iterator[LabState]:
    from fleet.lab import vm_lab_up

    state_dir = tmp_path_factory.mktemp("vfio")
    try:
        state = vm_lab_up(["2n"], state_dir, image=rootfs_image, guest_hook=with_passthrough,
                          memory_mib=1024, ready_timeout_seconds=420)
    except LabError as exc:
        failure: str | None = f"vfio lab guest could not be booted: {exc}"
    else:
        failure = None
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    try:
        yield state
    finally:
        lab_down(state_dir)


def guest_drivers(lab: LabState) -> dict[str, str]:
    """PCI address -> its driver ("-": none), read over SSH as root."""
    (host,) = lab.hosts
    script = ('for d in /sys/bus/pci/devices/*; do l=-; [ -e "$d/driver" ] && '
              'l=$(readlink "$d/driver"); echo "${d##*/} ${l##*/}"; done')
    done = subprocess.run(
        ["ssh", "-q", "-p", str(host.port), "-i", str(lab.client_key_path), "-o",
         f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", f"root@{host.address}", script],
        capture_output=True, text=True, check=True, timeout=60)
    return dict(line.split() for line in done.stdout.splitlines())


def provision(lab: LabState, tmp_path: Path, devices: list[str]
              ) -> subprocess.CompletedProcess[str]:
    (host,) = lab.hosts
    path = tmp_path / "vfio.yml"
    path.write_text(yaml.safe_dump({"lab": {"hosts": {host.name: {
        "fleet_vfio_devices": devices}}}}))
    return subprocess.run([sys.executable, "-m", "fleet", "provision", "-i",
                           str(lab.inventory_path), "-i", str(path), "--json", "--no-store"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_device_alone_in_its_group_is_bound_and_a_shared_group_refused(
        vfio_lab: LabState, tmp_path: Path) -> None:
    before = guest_drivers(vfio_lab)
    assert before[OWN_GROUP] == "e1000e" and before[SHARED_GROUP[0]] == "e1000"

    refused = provision(vfio_lab, tmp_path, [SHARED_GROUP[0]])
    assert refused.returncode == 2, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"fleet: error: {vfio_lab.hosts[0].name}: fleet_vfio_devices: "
                           f"{SHARED_GROUP[0]} is in IOMMU group "), line
    assert f"with {SHARED_GROUP[1]}, which is bound to e1000: the group is not viable" in line
    assert guest_drivers(vfio_lab) == before

    bound = provision(vfio_lab, tmp_path, [OWN_GROUP])
    assert bound.returncode == 0, bound.stderr
    (host,) = json.loads(bound.stdout)["hosts"]
    assert host["status"] == "changed" and host["differences"] == [
        f"vfio: {OWN_GROUP} 'e1000e' -> 'vfio-pci'"]
    after = guest_drivers(vfio_lab)
    assert after[OWN_GROUP] == "vfio-pci"
    assert {a: d for a, d in after.items() if a != OWN_GROUP} == {
        a: d for a, d in before.items() if a != OWN_GROUP}

    again = provision(vfio_lab, tmp_path, [OWN_GROUP])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["hosts"][0]["status"] == "in_state"
    role = run_playbook(PlaybookRequest(  # the role alone, past the probe: changes nothing
        playbook=PLAYBOOKS_DIR / "host.yml",
        inventory=(vfio_lab.inventory_path, tmp_path / "vfio.yml")))
    (recap,) = role.hosts
    assert recap.succeeded and recap.changed == 0, recap

