"""What a vm lab writes: inventory, seed tar, state.json; and how state dirs are told apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from fleet.config.inventory import load_inventory
from fleet.errors import LabError
from fleet.lab.state import recorded_kind
from fleet.lab.vm import resolve
from fleet.lab.vm.files import render_vm_inventory, write_seed
from fleet.lab.vm.process import console_tail, is_lab_qemu, start_ticks
from fleet.lab.vm.state import GuestRecord, VmLabRecord, read_vm_record, write_vm_record


def record(name: str, spec: str, port: int, root: Path) -> GuestRecord:
    d = root / "guests" / name
    return GuestRecord(name=name, spec=spec, port=port, guest_dir=str(d),
                       overlay_path=str(d / "disk.qcow2"), seed_path=str(d / "seed.tar"),
                       host_key_path=str(d / "key"), qmp_path=str(d / "qmp.sock"),
                       console_log_path=str(d / "console.log"), pid_file=str(d / "qemu.pid"))


def test_inventory_groups_vars_and_expected_topology(tmp_path: Path) -> None:
    guests = [(record("vm1-2n", "2n", 40001, tmp_path), resolve("2n")),
              (record("vm2-4n", "4n", 40002, tmp_path), resolve("4n")),
              (record("vm3-2n-asym", "2n-asym", 40003, tmp_path), resolve("2n-asym"))]
    text = render_vm_inventory("abc123", guests, client_key=tmp_path / "client_ed25519",
                               known_hosts=tmp_path / "known_hosts",
                               power_command=("python3", "-m", "fleet", "lab", "power-cycle"))
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    data = yaml.safe_load(text)["all"]["children"]
    assert sorted(data) == ["lab", "numa2", "numa4", "vm"]
    assert sorted(data["numa2"]["hosts"]) == ["vm1-2n", "vm3-2n-asym"]
    assert list(data["numa4"]["hosts"]) == ["vm2-4n"]
    host = data["lab"]["hosts"]["vm2-4n"]
    assert host["ansible_host"] == "127.0.0.1"
    assert host["ansible_port"] == 40002
    assert f"UserKnownHostsFile={tmp_path}/known_hosts" in host["ansible_ssh_common_args"]
    assert host["fleet_expected_topology"]["nodes"][3] == {
        "node_id": 3, "cpus": [3], "memory_mib": 512, "distances": [28, 22, 16, 10]}
    inventory = load_inventory([path])  # through Ansible's own loader, as `fleet facts` does
    loaded = inventory.host("vm1-2n")
    assert (loaded.address, loaded.port, loaded.user) == ("127.0.0.1", 40001, "root")
    assert loaded.known_hosts_files == (str(tmp_path / "known_hosts"),)
    assert set(loaded.groups) == {"lab", "vm", "numa2"}
    boot = inventory.provisioning["vm1-2n"]  # kernel variants switch by kexec, roll back by QEMU
    assert boot.boot == "kexec"
    assert boot.power_command == ("python3", "-m", "fleet", "lab", "power-cycle", "vm1-2n")
    assert boot.console_log == tmp_path / "guests" / "vm1-2n" / "console.log"


def test_seed_tar_holds_exactly_the_guest_identity(tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    seed = tmp_path / "seed.tar"
    write_seed(seed, hostname="vm1-2n", host_key=key, authorized_keys="ssh-ed25519 AAAA x\n")
    with tarfile.open(seed) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["etc/hostname", "etc/ssh/ssh_host_ed25519_key",
                                   "etc/ssh/ssh_host_ed25519_key.pub", "root/.ssh",
                                   "root/.ssh/authorized_keys"]
        assert members["root/.ssh"].isdir() and members["root/.ssh"].mode == 0o700
        assert members["etc/ssh/ssh_host_ed25519_key"].mode == 0o600
        hostname = tar.extractfile("etc/hostname")
        assert hostname is not None and hostname.read() == b"vm1-2n\n"
        private = tar.extractfile("etc/ssh/ssh_host_ed25519_key")
        assert private is not None and private.read() == key.read_bytes()
    assert seed.stat().st_size % 512 == 0  # a whole number of sectors for /dev/vdb


def test_state_round_trip_and_kind(tmp_path: Path) -> None:
    assert recorded_kind(tmp_path) is None
    assert read_vm_record(tmp_path) is None
    lab = VmLabRecord(lab_id="abc123", guests=(record("vm1-2n", "2n", 40001, tmp_path),),
                      files=("/x",), dirs=("/y",), base_image="/img/base.img")
    write_vm_record(tmp_path, lab)
    assert recorded_kind(tmp_path) == "vm"
    assert read_vm_record(tmp_path) == lab
    (tmp_path / "state.json").write_text(json.dumps({"format_version": 1, "lab_id": "n1"}))
    assert recorded_kind(tmp_path) == "netns"  # netns state.json has no "kind"
    with pytest.raises(LabError, match="unexpected vm lab state format"):
        read_vm_record(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(LabError, match="cannot read lab state"):
        recorded_kind(tmp_path)


def test_console_tail(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    assert console_tail(log) == ""
    log.write_bytes(b"[ 0.1] a\r\n\n[ 0.2]   b\n[ 0.3] Kernel panic - not syncing: x\n\xff\n")
    assert console_tail(log) == "[ 0.2] b | [ 0.3] Kernel panic - not syncing: x | \ufffd"
    with log.open("ab") as handle:
        handle.write(b"".join(b"[ 0.4] trace %d\n" % i for i in range(5)))
    assert console_tail(log) == ("[ 0.3] Kernel panic - not syncing: x | ... | "
                                 "[ 0.4] trace 2 | [ 0.4] trace 3 | [ 0.4] trace 4")


def test_console_tail_quotes_unit_failures_before_the_login_prompt(tmp_path: Path) -> None:
    """A guest that booted to its login prompt without sshd: the failure is named too."""
    log = tmp_path / "console.log"
    log.write_bytes(b"[    1.9] random: crng init done\r\n"
                    b"[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.\r\n"
                    b"See 'systemctl status ssh.service' for details.\r\n\r\n"
                    b"Debian GNU/Linux 12 vm1-2n ttyS0\r\n\r\nvm1-2n login: ")
    markers = ("[FAILED]", "Failed to start")
    assert console_tail(log, markers=markers) == (
        "[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server. | ... | "
        "See 'systemctl status ssh.service' for details. | Debian GNU/Linux 12 vm1-2n ttyS0 | "
        "vm1-2n login:")
    assert console_tail(log) == ("See 'systemctl status ssh.service' for details. | "
                                 "Debian GNU/Linux 12 vm1-2n ttyS0 | vm1-2n login:")


def test_is_lab_qemu_refuses_other_processes(tmp_path: Path) -> None:
    pid_file = str(tmp_path / "qemu.pid")
    argv = [sys.executable, "-c", "import sys, time; print(flush=True); time.sleep(30)",
            "-pidfile", pid_file]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"\n"  # it runs
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert f"-pidfile\0{pid_file}".encode() in cmdline
            assert not is_lab_qemu(proc.pid, pid_file)  # alive, same -pidfile, but not qemu
        finally:
            proc.kill()
    assert not is_lab_qemu(2 ** 22 + 1, "/nonexistent")  # no such PID


def test_start_ticks_name_one_process() -> None:
    mine = start_ticks(os.getpid())
    assert isinstance(mine, int) and mine > 0
    assert start_ticks(os.getpid()) == mine
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            theirs = start_ticks(child.pid)
            assert theirs is not None and theirs >= mine
        finally:
            child.kill()
    assert start_ticks(2 ** 22 + 1) is None


def test_power_cycle_refuses_a_guest_whose_base_image_was_rebuilt(tmp_path: Path) -> None:
    from fleet.errors import LabError
    from fleet.lab.vm.state import check_base_unchanged

    guest = record("vm1-2n", "2n", 40001, tmp_path)
    Path(guest.guest_dir).mkdir(parents=True)
    base = tmp_path / "base.img"
    base.write_bytes(b"old")
    seed = Path(guest.seed_path)
    seed.write_bytes(b"seed")
    lab = VmLabRecord(lab_id="abc", guests=(guest,), files=(), dirs=(), base_image=str(base))
    os.utime(base, (1000.0, 1000.0))
    check_base_unchanged(lab, guest)  # made after the image: fine
    os.utime(base, (seed.stat().st_mtime + 60, seed.stat().st_mtime + 60))
    with pytest.raises(LabError) as info:
        check_base_unchanged(lab, guest)
    assert str(info.value) == (
        f"vm1-2n: the lab's base image {base} was rebuilt or removed after guest vm1-2n was "
        "made: it cannot boot again on it (fleet lab down, then fleet lab up)")
