"""GuestDefinition -> qemu argv (pure): exact arguments for every spec, no shell strings."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.errors import LabError
from fleet.lab.vm import BootFiles, GuestDefinition, Iommu, PciDevice, build_argv, resolve
from fleet.lab.vm.qemu import DEFAULT_CMDLINE

D = Path("/var/lib/fleet/lab/guests/vm1-2n")


def guest(spec: str = "2n", /, **changes: object) -> GuestDefinition:
    base = GuestDefinition(
        name="vm1-2n", topology=resolve(spec),
        boot=BootFiles(kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"),
                       cmdline=DEFAULT_CMDLINE),
        disk=D / "disk.qcow2", seed=D / "seed.tar", ssh_port=40022,
        qmp_socket=D / "qmp.sock", console_log=D / "console.log", pid_file=D / "qemu.pid")
    return replace(base, **changes)  # type: ignore[arg-type]


def values(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def test_full_argv_of_the_2n_guest() -> None:
    assert build_argv(guest()) == (
        "qemu-system-x86_64", "-name", "fleet-vm1-2n",
        "-machine", "q35", "-accel", "tcg",
        "-cpu", "max,+svm", "-smp", "4,sockets=2,cores=2,threads=1",
        "-m", "2048M",
        "-object", "memory-backend-ram,id=ram0,size=1024M",
        "-object", "memory-backend-ram,id=ram1,size=1024M",
        "-numa", "node,nodeid=0,cpus=0-1,memdev=ram0",
        "-numa", "node,nodeid=1,cpus=2-3,memdev=ram1",
        "-numa", "dist,src=0,dst=1,val=20",
        "-numa", "dist,src=1,dst=0,val=20",
        "-kernel", "/img/vmlinuz", "-initrd", "/img/initrd.img",
        "-append", "root=/dev/vda rw console=ttyS0 nokaslr panic=-1 quiet",
        "-drive", f"file={D}/disk.qcow2,if=none,id=disk0,format=qcow2",
        "-device", "virtio-blk-pci,drive=disk0",
        "-drive", f"file={D}/seed.tar,if=none,id=seed0,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=seed0",
        "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-nodefaults", "-display", "none", "-no-reboot",
        "-serial", f"file:{D}/console.log",
        "-qmp", f"unix:{D}/qmp.sock,server=on,wait=off",
        "-pidfile", f"{D}/qemu.pid",
        "-daemonize",
    )


def test_4n_numa_arguments() -> None:
    argv = build_argv(guest("4n"))
    assert values(argv, "-smp") == ["4,sockets=4,cores=1,threads=1"]
    assert values(argv, "-m") == ["2048M"]
    assert values(argv, "-object") == [
        f"memory-backend-ram,id=ram{i},size=512M" for i in range(4)]
    numa = values(argv, "-numa")
    assert numa[:4] == [f"node,nodeid={i},cpus={i},memdev=ram{i}" for i in range(4)]
    assert numa[4:] == [
        "dist,src=0,dst=1,val=16", "dist,src=0,dst=2,val=22", "dist,src=0,dst=3,val=28",
        "dist,src=1,dst=0,val=16", "dist,src=1,dst=2,val=16", "dist,src=1,dst=3,val=22",
        "dist,src=2,dst=0,val=22", "dist,src=2,dst=1,val=16", "dist,src=2,dst=3,val=16",
        "dist,src=3,dst=0,val=28", "dist,src=3,dst=1,val=22", "dist,src=3,dst=2,val=16",
    ]


def test_2n_asym_numa_arguments() -> None:
    argv = build_argv(guest("2n-asym"))
    assert values(argv, "-smp") == ["4,sockets=4,cores=1,threads=1"]
    assert values(argv, "-object") == ["memory-backend-ram,id=ram0,size=1536M",
                                       "memory-backend-ram,id=ram1,size=512M"]
    assert values(argv, "-numa") == [
        "node,nodeid=0,cpus=0-2,memdev=ram0", "node,nodeid=1,cpus=3,memdev=ram1",
        "dist,src=0,dst=1,val=24", "dist,src=1,dst=0,val=24"]


@pytest.mark.parametrize("spec", ["2n", "4n", "2n-asym"])
def test_distances_given_to_qemu_are_symmetric(spec: str) -> None:
    given: dict[tuple[int, int], int] = {}
    for value in values(build_argv(guest(spec)), "-numa"):
        if value.startswith("dist,"):
            fields = dict(part.split("=") for part in value.split(",")[1:])
            given[int(fields["src"]), int(fields["dst"])] = int(fields["val"])
    nodes = len(resolve(spec).nodes)
    assert len(given) == nodes * (nodes - 1)
    assert all(given[b, a] == value for (a, b), value in given.items())


def test_argv_is_a_list_of_arguments_not_a_shell_string() -> None:
    argv = build_argv(guest())
    assert isinstance(argv, tuple)
    assert all(isinstance(arg, str) for arg in argv)
    with_spaces = [arg for arg in argv if " " in arg]
    assert with_spaces == [" ".join(DEFAULT_CMDLINE)]  # only the kernel command line


def test_ssh_is_forwarded_from_loopback_only() -> None:
    netdev = values(build_argv(guest(ssh_port=2222)), "-netdev")
    assert netdev == ["user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"]


def test_kvm_accel_and_no_nesting() -> None:
    argv = build_argv(guest(accel="kvm", nested_virtualization=False))
    assert values(argv, "-accel") == ["kvm"]
    assert values(argv, "-cpu") == ["max"]


def test_iommu_switches_the_machine_and_comes_before_other_devices() -> None:
    argv = build_argv(guest(iommu=Iommu("intel-iommu", (("intremap", "on"),))))
    assert values(argv, "-machine") == ["q35,kernel-irqchip=split"]
    devices = values(argv, "-device")
    assert devices[0] == "intel-iommu,intremap=on"
    amd = build_argv(guest(iommu=Iommu("amd-iommu")))
    assert values(amd, "-device")[0] == "amd-iommu"


def test_spare_pci_devices_come_last() -> None:
    spare = PciDevice("e1000e", "spare0", (("mac", "52:54:00:12:34:56"),))
    devices = values(build_argv(guest(pci_devices=(spare,))), "-device")
    assert devices[-1] == "e1000e,id=spare0,mac=52:54:00:12:34:56"


def test_the_vfio_guest_adds_an_iommu_a_shared_group_and_a_device_alone() -> None:
    """`fleet lab up --numa 2n --vfio`; the default guest is unchanged (the test above)."""
    from fleet.lab.vm.passthrough import with_passthrough

    argv = build_argv(with_passthrough(guest()))
    assert values(argv, "-machine") == ["q35,kernel-irqchip=split"]
    assert values(argv, "-append") == [
        "root=/dev/vda rw console=ttyS0 nokaslr panic=-1 quiet intel_iommu=on amd_iommu=on "
        "iommu=pt"]
    devices = values(argv, "-device")
    assert devices[0] == "intel-iommu,intremap=on"
    assert devices[-5:] == [
        "pcie-pci-bridge,id=vfiobr0,bus=pcie.0,addr=0x10",
        "e1000,id=vfioshared0,bus=vfiobr0,addr=0x1",
        "e1000,id=vfioshared1,bus=vfiobr0,addr=0x2",
        "pcie-root-port,id=vfiorp0,bus=pcie.0,addr=0x11,chassis=1",
        "e1000e,id=vfioalone0,bus=vfiorp0"]


@pytest.mark.parametrize("changes", [
    {"disk": Path("/tmp/a,b/disk.qcow2")},
    {"console_log": Path("/tmp/x,file=/etc/passwd")},
    {"pci_devices": (PciDevice("e1000e", "x,bus=pcie.0"),)},
])
def test_commas_that_would_inject_qemu_options_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(LabError, match="contains ','"):
        build_argv(guest(**changes))


@pytest.mark.parametrize(("changes", "message"), [
    ({"accel": "hvf"}, "unknown accelerator"),
    ({"ssh_port": 0}, "out of range"),
])
def test_bad_values_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message):
        build_argv(guest(**changes))


def test_guest_modules_are_pure() -> None:
    allowed = {"__future__", "collections", "dataclasses", "pathlib", "typing", "math", "fleet"}
    package = Path(__file__).resolve().parents[2] / "fleet" / "lab" / "vm"
    for path in [package / n for n in ("__init__.py", "qemu.py", "topologies.py",
                                       "passthrough.py")]:
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module.split(".")[0])
        assert found <= allowed, (path.name, found - allowed)
        fleet_imports = {n.module for n in ast.walk(ast.parse(path.read_text()))
                         if isinstance(n, ast.ImportFrom) and n.module
                         and n.module.startswith("fleet.")}
        assert fleet_imports <= {"fleet.errors", "fleet.lab.vm.qemu", "fleet.lab.vm.topologies"}


def test_vfio_without_numa_guests_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from fleet.cli.main import main

    assert main(["lab", "up", "2", "--vfio"]) == 2
    assert capsys.readouterr().err == (
        "fleet: error: fleet lab up: --vfio needs QEMU guests (fleet lab up --numa 2n --vfio)\n")
