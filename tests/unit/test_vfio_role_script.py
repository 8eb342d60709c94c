"""The vfio role's script (playbooks/roles/vfio/files/vfio.sh) run by a real sh against a copy
of the captured lab guest's PCI layout (tests/data/probes/vm-guest-vfio-probe.txt) as sysfs
names it: symlinks for devices, drivers and IOMMU groups. Its refusals are the same lines as
the controller's (fleet.provision.vfio) without the host; the real binding is the VM test's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleet.errors import ProvisionError
from fleet.provision.ansible import PLAYBOOKS_DIR
from fleet.provision.probe import parse_probe
from fleet.provision.vfio import parse_pci, to_bind

SCRIPT = PLAYBOOKS_DIR / "roles" / "vfio" / "files" / "vfio.sh"
CAPTURED = Path(__file__).resolve().parents[1] / "data" / "probes" / "vm-guest-vfio-probe.txt"
CMDLINE = "root=/dev/vda rw console=ttyS0 quiet intel_iommu=on amd_iommu=on iommu=pt"


def fake_root(root: Path, cmdline: str = CMDLINE) -> Path:
    """/sys and /proc as the captured guest has them (only what the script reads)."""
    pci = parse_pci(parse_probe(CAPTURED.read_text(), host="vm1").pci)
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f"{cmdline}\n")
    (root / "proc" / "cpuinfo").write_text(f"processor\t: 0\nvendor_id\t: {pci.cpu_vendor}\n")
    devices, drivers = root / "sys/bus/pci/devices", root / "sys/bus/pci/drivers"
    devices.mkdir(parents=True)
    (drivers / "vfio-pci").mkdir(parents=True)  # loaded: no modprobe
    for device in pci.devices.values():
        if device.group is None:
            continue
        group = root / "sys/kernel/iommu_groups" / device.group / "devices"
        group.mkdir(parents=True, exist_ok=True)
        for member in device.members:
            real = root / "sys/devices/pci0000:00" / member.address
            if real.exists():
                continue
            real.mkdir(parents=True)
            (real / "class").write_text(f"{member.pci_class}\n")
            (real / "iommu_group").symlink_to(group.parent)
            if member.driver is not None:
                (drivers / member.driver).mkdir(exist_ok=True)
                (real / "driver").symlink_to(drivers / member.driver)
            (group / member.address).symlink_to(real)
            (devices / member.address).symlink_to(real)
    return root


def script(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True,
                          env={"FLEET_VFIO_ROOT": str(root), "PATH": "/usr/bin:/bin"},
                          check=False, timeout=30)


def controller_line(devices: list[str], cmdline: str = CMDLINE) -> str:
    """The controller's refusal for the same input, without its 'vm1: ' prefix."""
    pci = parse_pci(parse_probe(CAPTURED.read_text(), host="vm1").pci)
    with pytest.raises(ProvisionError) as info:
        to_bind("vm1", devices, pci, cmdline)
    return info.value.line().removeprefix("vm1: ")


@pytest.mark.parametrize(("devices", "cmdline"), [
    (["0000:01:01.0"], CMDLINE),  # shares group 4 with 0000:01:02.0 on e1000
    (["0000:00:1f.2"], CMDLINE),  # ahci with lpc_ich and i801_smbus
    (["0000:07:00.0"], CMDLINE),  # no such device
    (["0000:02:00.0"], "root=/dev/vda intel_iommu=on iommu=pt"),  # AMD CPU: amd_iommu=on
])
def test_the_check_refuses_with_the_controllers_line(tmp_path: Path, devices: list[str],
                                                      cmdline: str) -> None:
    done = script(fake_root(tmp_path, cmdline), "check", *devices)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == controller_line(devices, cmdline) + "\n"


def test_a_viable_group_passes_and_plan_names_what_bind_would_move(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert script(root, "check", "0000:02:00.0").returncode == 0
    both = ["0000:01:02.0", "0000:01:01.0"]
    assert script(root, "check", *both).returncode == 0  # the bridge 00:04.0 has no driver
    plan = script(root, "plan", "0000:02:00.0", *both)
    assert plan.returncode == 0 and plan.stdout == (
        "changed: 0000:02:00.0 0000:01:02.0 0000:01:01.0\n")
    assert not (root / "sys/devices/pci0000:00/0000:02:00.0/driver_override").exists()


def test_bind_overrides_unbinds_probes_and_verifies(tmp_path: Path) -> None:
    """A copy of sysfs does not rebind, so the verification fails, in one line."""
    root = fake_root(tmp_path)
    done = script(root, "bind", "0000:02:00.0")
    device = root / "sys/devices/pci0000:00/0000:02:00.0"
    assert (device / "driver_override").read_text() == "vfio-pci\n"
    assert (root / "sys/bus/pci/drivers/e1000e/unbind").read_text() == "0000:02:00.0\n"
    assert (root / "sys/bus/pci/drivers_probe").read_text() == "0000:02:00.0\n"
    assert done.returncode == 1 and done.stderr == (
        "fleet_vfio_devices: 0000:02:00.0 is on 'e1000e' after the probe, not vfio-pci "
        "(see dmesg)\n")
    (device / "driver").unlink()
    (device / "driver").symlink_to(root / "sys/bus/pci/drivers/vfio-pci")
    again = script(root, "bind", "0000:02:00.0")
    assert again.returncode == 0 and again.stdout == "unchanged\n"
