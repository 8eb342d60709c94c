"""~/.ssh/config as OpenSSH evaluates it (captured `ssh -G` output) -> the options fleet takes,
behind the inventory's own; and a real `ssh -G` on a real config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleet.config.inventory import load_inventory
from fleet.config.inventory.ssh_args import behind, parse_ssh_args
from fleet.config.inventory.ssh_config import parse_dump, resolve, set_by_config
from fleet.errors import InventoryError

DATA = Path(__file__).resolve().parent.parent / "data" / "ssh_config"
BASELINE = parse_dump((DATA / "G_baseline.txt").read_text())


def test_host_pattern_block_sets_what_fleet_uses() -> None:
    found = set_by_config(parse_dump((DATA / "G_epyc1.txt").read_text()), BASELINE, "epyc1")
    assert dict(found) == {"user": "perf", "hostname": "10.1.2.3", "port": "2222",
                           "stricthostkeychecking": "accept-new",
                           "identityfile": "~/.ssh/lab_key", "proxyjump": "bastion.example:2200"}


def test_defaults_are_not_taken_as_settings() -> None:
    found = set_by_config(parse_dump((DATA / "G_xeon1.txt").read_text()), BASELINE, "xeon1")
    assert found == (("connecttimeout", "7"), ("proxycommand", "nc %h %p"))


def test_inventory_arguments_win_and_keep_their_relay() -> None:
    args = parse_ssh_args("h", ["-o ProxyCommand='ssh -W %h:%p gw' -p 2200"])
    config = (("port", "2222"), ("proxyjump", "bastion:22"), ("user", "perf"))
    merged = behind(args, config)
    assert merged.get("port") == "2200" and merged.get("user") == "perf"
    assert merged.get("proxyjump") is None and merged.get("proxycommand") == "ssh -W %h:%p gw"


def test_real_ssh_reads_the_file(tmp_path: Path) -> None:
    found = resolve(DATA / "config", ["epyc7", "xeon1", "other"])
    assert dict(found["epyc7"])["hostname"] == "10.1.2.3"
    assert dict(found["xeon1"])["proxycommand"] == "nc %h %p"
    assert found["other"] == ()


def test_inventory_hosts_take_the_config_behind_their_own_vars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text((DATA / "config").read_text())
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "epyc1": None, "epyc2": {"ansible_user": "root", "ansible_port": 22},
        "xeon1": {"ansible_ssh_common_args": "-o ConnectTimeout=3"}}}}))
    hosts = {h.name: h for h in load_inventory([inventory]).hosts}
    one, two, xeon = hosts["epyc1"], hosts["epyc2"], hosts["xeon1"]
    assert (one.address, one.port, one.user) == ("10.1.2.3", 2222, "perf")
    assert one.key_files == (str(tmp_path / ".ssh" / "lab_key"),)
    assert one.accept_new_host_keys and one.via() == "jump bastion.example:2200"
    assert (two.address, two.port, two.user) == ("10.1.2.3", 22, "root")
    assert xeon.connect_timeout_seconds == 3 and xeon.via() == "proxy command nc"


def test_a_config_openssh_refuses_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("Host x\n  NoSuchOption yes\n")
    with pytest.raises(InventoryError) as caught:
        resolve(bad, ["x"])
    assert str(bad) in caught.value.line() and "\n" not in caught.value.line()
