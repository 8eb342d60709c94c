"""fleet_vfio_devices: the address check, the probe's PCI section and the viability refusals
(pure), on a real probe captured from a QEMU lab guest with an emulated intel-iommu
(q35, intremap=on; booted with intel_iommu=on iommu=pt): IOMMU group 4 holds a
pcie-pci-bridge (00:04.0, no driver) and two e1000 behind it (01:01.0, 01:02.0); group 7 holds
one e1000e (02:00.0) alone; group 6 the ICH9 functions; 07:00.0 does not exist. The guest's
CPU is QEMU's AuthenticAMD ``max``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet.config.inventory.variables import ORIGINS
from fleet.errors import ProvisionError
from fleet.provision.compare import Difference, differences, files_to_probe
from fleet.provision.desired import desired_state
from fleet.provision.probe import ProbedState, parse_probe, probe_argv
from fleet.provision.run import refuse_shared_hosts
from fleet.provision.vfio import CMDLINE_FILE, iommu_cmdline, parse_pci, to_bind

CAPTURED = Path(__file__).resolve().parents[1] / "data" / "probes" / "vm-guest-vfio-probe.txt"
AMD_WORDS = "iommu=pt amd_iommu=on"


def captured(cmdline_extra: str = AMD_WORDS) -> ProbedState:
    """The captured probe; its guest booted with intel_iommu=on iommu=pt (an AMD CPU model
    needs amd_iommu=on as well, so tests add the words they want present)."""
    state = parse_probe(CAPTURED.read_text(), host="vm1")
    cmdline = f"{state.files[CMDLINE_FILE]} {cmdline_extra}"
    return ProbedState(files={**state.files, CMDLINE_FILE: cmdline}, packages=state.packages,
                       pci=state.pci)


def check(devices: list[str], state: ProbedState | None = None) -> tuple[Difference, ...]:
    desired = desired_state("vm1", {"fleet_vfio_devices": devices})
    return differences(desired, state or captured())


def test_the_captured_probe_reads_groups_members_drivers_and_the_vendor() -> None:
    pci = parse_pci(captured().pci)
    assert pci.cpu_vendor == "AuthenticAMD"
    shared = pci.devices["0000:01:01.0"]
    assert shared.group == "4" and shared.driver == "e1000"
    assert [(m.address, m.pci_class, m.driver) for m in shared.members] == [
        ("0000:00:04.0", "0x060400", None), ("0000:01:01.0", "0x020000", "e1000"),
        ("0000:01:02.0", "0x020000", "e1000")]
    alone = pci.devices["0000:02:00.0"]
    assert alone.group == "7" and [m.address for m in alone.members] == ["0000:02:00.0"]
    assert not pci.devices["0000:07:00.0"].present


def test_a_device_alone_in_its_group_is_to_be_bound() -> None:
    assert check(["0000:02:00.0"]) == (Difference("vfio", "0000:02:00.0", "e1000e", "vfio-pci"),)


def test_a_shared_group_is_refused_naming_device_group_member_and_driver() -> None:
    with pytest.raises(ProvisionError) as info:
        check(["0000:01:01.0"])
    assert info.value.line() == (
        "vm1: fleet_vfio_devices: 0000:01:01.0 is in IOMMU group 4 with 0000:01:02.0, which is "
        "bound to e1000: the group is not viable (list 0000:01:02.0 too (it then leaves "
        "e1000), or move the device to a slot with an IOMMU group of its own)")


def test_listing_the_whole_group_makes_it_viable_and_the_bridge_does_not_count() -> None:
    found = check(["0000:01:02.0", "0000:01:01.0"])
    assert [d.item for d in found] == ["0000:01:01.0", "0000:01:02.0"]


def test_members_already_on_vfio_or_without_a_driver_are_viable() -> None:
    text = CAPTURED.read_text().replace("0000:01:02.0 0x020000 e1000", "0000:01:02.0 0x020000 -")
    state = parse_probe(text, host="vm1")
    state = ProbedState(files={CMDLINE_FILE: AMD_WORDS}, packages={}, pci=state.pci)
    assert [d.item for d in check(["0000:01:01.0"], state)] == ["0000:01:01.0"]
    bound = text.replace("0000:02:00.0 0x020000 e1000e", "0000:02:00.0 0x020000 vfio-pci")
    state = ProbedState(files={CMDLINE_FILE: AMD_WORDS}, packages={},
                        pci=parse_probe(bound, host="vm1").pci)
    assert check(["0000:02:00.0"], state) == ()  # in state


def test_a_cmdline_without_the_iommu_words_needs_a_boot() -> None:
    state = captured(cmdline_extra="")  # intel_iommu=on iommu=pt, but the CPU is AMD
    with pytest.raises(ProvisionError) as info:
        check(["0000:02:00.0"], state)
    line = info.value.line()
    assert line.startswith("vm1: fleet_vfio_devices: the running kernel command line lacks "
                           "amd_iommu=on (boot the host with 'iommu=pt amd_iommu=on' on its kernel")
    assert iommu_cmdline("GenuineIntel") == ("iommu=pt", "intel_iommu=on")
    assert iommu_cmdline("AuthenticAMD") == ("iommu=pt", "amd_iommu=on")


def test_a_missing_device_or_no_iommu_group_is_refused() -> None:
    with pytest.raises(ProvisionError, match=r"no PCI device 0000:07:00\.0 on this host"):
        check(["0000:07:00.0"])
    with pytest.raises(ProvisionError, match=r"no PCI device 0000:09:00\.0"):
        check(["0000:09:00.0"])  # not probed at all
    pci = ("vendor GenuineIntel", "device 0000:00:05.0 -", "pci 0000:00:05.0 0x020000 e1000")
    state = ProbedState(files={CMDLINE_FILE: "iommu=pt intel_iommu=on"}, packages={}, pci=pci)
    with pytest.raises(ProvisionError, match=r"0000:00:05\.0 has no IOMMU group: the IOMMU is off"):
        check(["0000:00:05.0"], state)


def test_nothing_listed_probes_and_checks_nothing() -> None:
    desired = desired_state("vm1", {})
    assert CMDLINE_FILE not in files_to_probe(desired)
    assert to_bind("vm1", (), parse_pci(()), None) == ()


@pytest.mark.parametrize("value", ["00:05.0", "0000:00:05.0 ", "0000:00:05.8", "0000:00:20.0",
                                   "0000:00:0G.0", "0000:00:05.0;reboot", 5])
def test_a_bad_address_is_one_line_with_the_file_line_it_was_read_from(value: Any) -> None:
    variables = {"fleet_vfio_devices": ["0000:00:05.0", value],
                 ORIGINS: {"fleet_vfio_devices": "hosts.yml:4:7",
                           "fleet_vfio_devices[1]": "hosts.yml:6:9"}}
    with pytest.raises(ProvisionError) as info:
        desired_state("h1", variables)
    assert info.value.line().startswith(
        f"hosts.yml:6:9: host h1: fleet_vfio_devices[1]: {value!r} is not a PCI address")
    unquoted = {"fleet_vfio_devices": [5.0]}  # what YAML makes of an unquoted 0000:00:05.0
    with pytest.raises(ProvisionError, match=r"5\.0 is not a PCI address \(YAML read an unquo"):
        desired_state("h1", unquoted)
    with pytest.raises(ProvisionError, match=r"^h1: host h1: fleet_vfio_devices: expected a list"):
        desired_state("h1", {"fleet_vfio_devices": "0000:00:05.0"})


def test_netns_hosts_refuse_vfio_devices_unless_allowed() -> None:
    shared = {"fleet_lab_kind": "netns", "fleet_vfio_devices": ["0000:00:05.0"]}
    with pytest.raises(ProvisionError, match="lab1: fleet_vfio_devices: refused on a network-"):
        refuse_shared_hosts([desired_state("lab1", shared)])
    refuse_shared_hosts([desired_state("lab1", {**shared,
                                                "fleet_allow_shared_host_changes": True})])


def test_the_probe_script_reports_a_device_without_iommu_group_and_a_missing_one() -> None:
    """Run by a real sh on this machine's sysfs (no IOMMU here; 0000:ff:1f.7 never exists)."""
    present = sorted(p.name for p in Path("/sys/bus/pci/devices").iterdir())[:1]
    argv = probe_argv(["/proc/cmdline"], [], [*present, "0000:ff:1f.7"])
    state = parse_probe(subprocess.run(argv, capture_output=True, text=True, check=True).stdout,
                        host="here")
    pci = parse_pci(state.pci)
    assert pci.cpu_vendor is not None
    assert not pci.devices["0000:ff:1f.7"].present
    for address in present:
        has_group = Path(f"/sys/bus/pci/devices/{address}/iommu_group").exists()
        device = pci.devices[address]
        assert device.present and (device.group is not None) == has_group
        assert address in [m.address for m in device.members]
