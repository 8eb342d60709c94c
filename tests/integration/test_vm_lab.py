"""The vm lab against the real thing: QEMU guests with NUMA topologies, SSH, fleet facts, Ansible.

The shared ``numa_lab`` (2n + 4n, booted in parallel) serves the read-only tests; lifecycle
tests (death, teardown, failed readiness) boot their own single guest.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.config.inventory import load_inventory
from fleet.errors import LabError
from fleet.lab import LabState, lab_down, lab_status, lab_up, vm_lab_status, vm_lab_up
from fleet.lab.vm import GuestDefinition
from fleet.lab.vm import lab as vm
from fleet.lab.vm import ready as vm_ready
from fleet.lab.vm.state import read_vm_record
from fleet.transport import connect

pytestmark = pytest.mark.integration

ANSIBLE = Path(sys.executable).with_name("ansible")
# a node loses memory to the kernel image (node 0), memmap and firmware: allow 10% or 64 MiB
NODE_MEMORY_SLACK_FRACTION = 0.10
NODE_MEMORY_SLACK_MIB = 64
KVM_PROBE = ("import fcntl, os; fd = os.open('/dev/kvm', os.O_RDWR); "
             "print(fcntl.ioctl(fd, 0xAE00), fcntl.ioctl(fd, 0xAE01, 0) >= 0)")


def fleet(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def qemu_numa_args(pid: int) -> dict[int, dict[str, Any]]:
    """The topology the running QEMU was really given, read back from /proc/PID/cmdline."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    pairs = list(itertools.pairwise(argv))
    sizes = {}
    for option, value in pairs:
        if option == "-object" and value.startswith("memory-backend-ram,"):
            fields = dict(f.split("=") for f in value.split(",")[1:])
            sizes[fields["id"]] = int(fields["size"].removesuffix("M"))
    nodes: dict[int, dict[str, Any]] = {}
    for option, value in pairs:
        if option == "-numa" and value.startswith("node,"):
            fields = dict(f.split("=") for f in value.split(",")[1:])
            lo, _, hi = fields["cpus"].partition("-")
            nodes[int(fields["nodeid"])] = {
                "cpus": list(range(int(lo), int(hi or lo) + 1)),
                "memory_mib": sizes[fields["memdev"]], "distances": {}}
    for option, value in pairs:
        if option == "-numa" and value.startswith("dist,"):
            fields = dict(f.split("=") for f in value.split(",")[1:])
            nodes[int(fields["src"])]["distances"][int(fields["dst"])] = int(fields["val"])
    for node_id, node in nodes.items():
        row = node["distances"]
        node["distances"] = [10 if other == node_id else row[other] for other in sorted(nodes)]
    return nodes


def inventory_vars(state: LabState) -> dict[str, Any]:
    data = yaml.safe_load(state.inventory_path.read_text())
    hosts: dict[str, Any] = data["all"]["children"]["lab"]["hosts"]
    return hosts


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def listeners(port: int) -> str:
    done = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True,
                          check=False)
    return " ".join(done.stdout.split()) or "no listener"


def leftovers(state_dir: Path, ports: list[int]) -> list[str]:
    """Processes mentioning state_dir, files under it, and ports that still accept."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if str(state_dir) in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    if state_dir.exists():
        found += [f"file {p}" for p in state_dir.rglob("*")]
    found += [f"port {port}: {listeners(port)}" for port in ports if port_answers(port)]
    return found


# --- the shared 2n + 4n lab ------------------------------------------------------------------


def test_facts_report_exactly_the_topology_given_to_qemu(numa_lab: LabState) -> None:
    proc = fleet("facts", "-i", str(numa_lab.inventory_path), "--json", "--no-store")
    assert proc.returncode == 0, proc.stderr
    outcomes = {h["host"]: h for h in json.loads(proc.stdout)["hosts"]}
    assert sorted(outcomes) == ["vm1-2n", "vm2-4n"]
    expected_vars = inventory_vars(numa_lab)
    for host in numa_lab.hosts:
        assert host.qemu_pid is not None
        given = qemu_numa_args(host.qemu_pid)
        assert len(given) == {"2n": 2, "4n": 4}[str(host.spec)]
        facts = outcomes[host.name]["facts"]
        assert outcomes[host.name]["error"] is None
        nodes = {n["node_id"]: n for n in facts["topology"]["nodes"]}
        assert sorted(nodes) == sorted(given)
        for node_id, qemu in given.items():
            seen = nodes[node_id]
            assert seen["cpus"] == qemu["cpus"]
            assert seen["distances"] == qemu["distances"]
            configured = qemu["memory_mib"] * 2**20
            slack = max(configured * NODE_MEMORY_SLACK_FRACTION, NODE_MEMORY_SLACK_MIB * 2**20)
            assert configured - slack <= seen["mem_total_bytes"] <= configured, (host, node_id)
        # the inventory's expectation is the same topology
        expected = expected_vars[host.name]["fleet_expected_topology"]
        assert {n["node_id"]: n["cpus"] for n in expected["nodes"]} == \
            {k: v["cpus"] for k, v in given.items()}
        assert [n["distances"] for n in expected["nodes"]] == \
            [given[k]["distances"] for k in sorted(given)]
        assert len(facts["topology"]["socket_ids"]) == expected["sockets"]
        assert facts["hostname"] == host.name  # from the seed
        assert facts["kvm"]["dev_kvm"] is True


def test_nested_kvm_works_inside_each_guest(numa_lab: LabState) -> None:
    inventory = load_inventory([numa_lab.inventory_path])
    for host in inventory.hosts:
        with connect(host) as transport:
            flags = transport.run(["grep", "-m1", "-ow", "svm", "/proc/cpuinfo"])
            assert flags.stdout.strip() == "svm", host.name
            result = transport.run(["python3", "-c", KVM_PROBE], timeout_seconds=60)
        assert result.ok, result.stderr
        assert result.stdout.split() == ["12", "True"]  # KVM_GET_API_VERSION, KVM_CREATE_VM


def test_ansible_manages_the_guests(numa_lab: LabState) -> None:
    proc = subprocess.run([str(ANSIBLE), "-i", str(numa_lab.inventory_path), "numa4",
                           "-m", "ansible.builtin.command", "-a", "cat /etc/hostname"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vm2-4n | CHANGED | rc=0 >>\nvm2-4n" in proc.stdout
    assert "vm1-2n" not in proc.stdout  # group numa4 holds only the 4-node guest


def test_status_of_a_healthy_lab(numa_lab: LabState) -> None:
    status = lab_status(numa_lab.state_dir)  # dispatches on the state dir's kind
    assert status.kind == "vm" and status.complete and status.healthy
    for host, state in zip(status.hosts, numa_lab.hosts, strict=True):
        assert (host.name, host.address, host.port) == (state.name, "127.0.0.1", state.port)
        assert host.qemu_alive is True and host.port_open is True
        assert host.qemu_pid == state.qemu_pid
        assert host.console_log_path is not None and host.console_log_path.is_file()
    known = numa_lab.known_hosts_path.read_text().splitlines()
    assert [line.split()[:2] for line in known] == [
        [f"[127.0.0.1]:{h.port}", "ssh-ed25519"] for h in numa_lab.hosts]


def test_up_again_returns_the_same_lab_or_refuses_another(numa_lab: LabState,
                                                          rootfs_image: Any) -> None:
    again = vm_lab_up(["2n", "4n"], numa_lab.state_dir, image=rootfs_image)
    assert again == numa_lab
    with pytest.raises(LabError, match=r"\(2n,4n\) is already up"):
        vm_lab_up(["2n"], numa_lab.state_dir, image=rootfs_image)


def test_one_state_dir_holds_one_kind_of_lab(numa_lab: LabState, lab: LabState,
                                             rootfs_image: Any) -> None:
    with pytest.raises(LabError, match="already holds a netns lab") as info:
        vm_lab_up(["2n"], lab.state_dir, image=rootfs_image)
    assert "fleet lab down" in str(info.value)
    with pytest.raises(LabError, match="already holds a vm lab"):
        lab_up(1, numa_lab.state_dir)
    with pytest.raises(LabError, match="holds a netns lab"):
        vm_lab_status(lab.state_dir)
    assert lab_status(lab.state_dir).kind == "netns"


# --- lifecycle: a guest of its own -----------------------------------------------------------


def test_a_stuck_guest_is_started_again_once_then_a_dead_qemu_is_reported(
        tmp_path: Path, rootfs_image: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first boot's port 22 is made to look closed: at its login prompt the guest is
    stopped and booted again from a fresh overlay (the record follows the new QEMU); later a
    SIGKILLed QEMU is reported and down leaves nothing."""
    restarts: list[int | None] = []
    restart_guest = vm._restart_guest
    ask = vm_ready._Probe.ask

    def record_restart(*args: Any) -> Any:
        restarts.append(args[-1].qemu_pid)
        return restart_guest(*args)

    def closed_until_restarted(probe: Any, guest: Any, deadline: float) -> str:
        return ask(probe, guest, deadline) if restarts else "closed"

    monkeypatch.setattr(vm, "_restart_guest", record_restart)
    monkeypatch.setattr(vm_ready._Probe, "ask", closed_until_restarted)
    monkeypatch.setattr(vm_ready, "STUCK_AFTER_PROMPT_SECONDS", 0.0)
    state_dir = tmp_path / "one"
    said: list[str] = []
    started = time.monotonic()
    state = vm_lab_up(["2n"], state_dir, image=rootfs_image, progress=said.append)
    boot_seconds = time.monotonic() - started
    (host,) = state.hosts
    assert host.qemu_pid is not None
    try:
        assert len(restarts) == 1 and restarts[0] not in (None, host.qemu_pid), said
        assert any(line.endswith("; starting it again, once") for line in said), said
        assert not Path(f"/proc/{restarts[0]}").exists()
        (recorded,) = read_vm_record(state_dir).guests  # type: ignore[union-attr]
        assert recorded.qemu_pid == host.qemu_pid
        assert lab_status(state_dir).healthy, f"booted in {boot_seconds:.1f} s"
        os.kill(host.qemu_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        (seen,) = lab_status(state_dir).hosts
        while seen.qemu_alive and time.monotonic() < deadline:  # SIGKILL is asynchronous
            time.sleep(0.05)
            (seen,) = lab_status(state_dir).hosts
        assert (seen.qemu_alive, seen.port_open, seen.healthy) == (False, False, False)
        assert seen.console_log_path == host.console_log_path
    finally:
        removed = lab_down(state_dir)
    assert removed[-1] == f"removed directory {state_dir}"
    assert leftovers(state_dir, [host.port]) == []
    assert lab_down(state_dir) == ()  # idempotent


def test_readiness_timeout_names_the_console_log_and_leaves_nothing(tmp_path: Path,
                                                                    rootfs_image: Any) -> None:
    state_dir = tmp_path / "slow"
    with pytest.raises(LabError) as info:
        vm_lab_up(["4n"], state_dir, image=rootfs_image, ready_timeout_seconds=1)
    line = str(info.value)
    assert "no SSH banner on 127.0.0.1:" in line and "within 1 s" in line
    assert f"console log {state_dir}/guests/vm1-4n/console.log" in line
    assert "\n" not in line
    assert leftovers(state_dir, []) == []


def test_a_guest_that_dies_while_booting_fails_fast(tmp_path: Path, rootfs_image: Any) -> None:
    """No initramfs init and no virtio_blk in the kernel: it panics, QEMU exits (-no-reboot)."""
    def broken_kernel(guest: GuestDefinition) -> GuestDefinition:
        cmdline = (*guest.boot.cmdline, "rdinit=/nonexistent")
        return replace(guest, boot=replace(guest.boot, cmdline=cmdline))

    state_dir = tmp_path / "dead"
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        vm_lab_up(["2n"], state_dir, image=rootfs_image, guest_hook=broken_kernel,
                  ready_timeout_seconds=240)
    assert time.monotonic() - started < 120  # found dead, not timed out
    line = str(info.value)
    assert line.startswith("vm1-2n: QEMU (pid ")
    assert f"exited during boot; console log {state_dir}/guests/vm1-2n/console.log" in line
    assert "Kernel panic" in line or "VFS" in line, line
    assert read_vm_record(state_dir) is None
    assert leftovers(state_dir, []) == []


def test_a_qemu_that_cannot_start_is_one_line_and_leaves_nothing(tmp_path: Path,
                                                                 rootfs_image: Any) -> None:
    def bad_cpu(guest: GuestDefinition) -> GuestDefinition:
        return replace(guest, cpu_model="no-such-cpu")

    state_dir = tmp_path / "nostart"
    with pytest.raises(LabError) as info:
        vm_lab_up(["2n-asym"], state_dir, image=rootfs_image, guest_hook=bad_cpu)
    line = str(info.value)
    assert line.startswith("vm1-2n-asym: QEMU exited 1 while starting: ")
    assert "unable to find CPU model 'no-such-cpu'" in line
    assert "-numa" not in line and "\n" not in line  # QEMU's error, not its argv
    assert leftovers(state_dir, []) == []
