"""`fleet facts` end to end: the real CLI, real sshd lab hosts, a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration


def fleet(*args: str, env: dict[str, str] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HOME": os.environ.get("HOME", "/root"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fleet", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def this_machine_nodes() -> dict[int, str]:
    root = Path("/sys/devices/system/node")
    return {int(p.name[4:]): (p / "cpulist").read_text().strip()
            for p in root.glob("node[0-9]*")}


def cpulist(cpus: list[int]) -> list[int]:
    return sorted(cpus)


def expand(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def lab_inventory(lab: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(Path(lab.inventory_path).read_text())
    return data


def write_inventory(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_facts_over_ssh_report_this_machines_topology(lab: Any, tmp_path: Path) -> None:
    store = tmp_path / "fleet.sqlite"
    proc = fleet("facts", "-i", str(lab.inventory_path), "--json", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    hosts = {h["host"]: h for h in out["hosts"]}
    assert sorted(hosts) == sorted(h.name for h in lab.hosts)
    expected = this_machine_nodes()
    fingerprints = set()
    for entry in hosts.values():
        assert entry["error"] is None
        facts = entry["facts"]
        nodes = {n["node_id"]: n for n in facts["topology"]["nodes"]}
        assert sorted(nodes) == sorted(expected)
        for node_id, text in expected.items():
            assert nodes[node_id]["cpus"] == expand(text)
            assert nodes[node_id]["mem_total_bytes"] > 0
        assert facts["kernel_release"] == os.uname().release
        assert facts["cpu"]["logical_cpus"] == os.cpu_count()
        fingerprints.add(facts["fingerprint"])
    assert len(fingerprints) == 1  # same machine behind every namespace
    info = fleet("store", "info", "--store", str(store), "--json")
    assert json.loads(info.stdout)["store"]["snapshot_count"] == len(lab.hosts)


def test_table_output_and_limit(lab: Any, tmp_path: Path) -> None:
    first = lab.hosts[0].name
    proc = fleet("facts", "-i", str(lab.inventory_path), "--limit", first,
                 "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 0, proc.stderr
    assert first in proc.stdout
    assert lab.hosts[1].name not in proc.stdout
    assert "NUMA nodes" in proc.stdout
    assert "saved 1 snapshot" in proc.stdout


def test_unknown_limit_is_one_line_and_writes_nothing(lab: Any, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    proc = fleet("facts", "-i", str(lab.inventory_path), "--limit", "nosuchhost",
                 "--store", str(store))
    assert proc.returncode == 2
    assert "nosuchhost" in one_line_error(proc)
    assert not store.exists()


def test_one_unreachable_host_does_not_stop_the_others(lab: Any, tmp_path: Path) -> None:
    data = lab_inventory(lab)
    hosts = data["all"]["children"]["lab"]["hosts"] if "children" in data.get("all", {}) \
        else data["lab"]["hosts"]
    dead = dict(next(iter(hosts.values())))
    dead["ansible_port"] = 2  # nothing listens there: connection refused
    hosts["deadhost"] = dead
    inv = write_inventory(tmp_path, data)
    proc = fleet("facts", "-i", str(inv), "--json", "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 1, proc.stderr
    out = {h["host"]: h for h in json.loads(proc.stdout)["hosts"]}
    assert out["deadhost"]["facts"] is None
    assert out["deadhost"]["error"].startswith("deadhost")
    assert all(out[h.name]["facts"] for h in lab.hosts)
    assert one_line_error(proc) == f"fleet: error: {out['deadhost']['error']}"
    table = fleet("facts", "-i", str(inv), "--no-store")  # the table: errors on stderr only
    assert table.returncode == 1
    assert "deadhost" not in table.stdout and "unreachable" not in table.stdout
    assert one_line_error(table).startswith("fleet: error: deadhost")


def test_unknown_host_key_is_refused_then_accepted_explicitly(lab: Any, tmp_path: Path) -> None:
    data = lab_inventory(lab)
    known = tmp_path / "known_hosts"
    text = yaml.safe_dump(data).replace(str(lab.known_hosts_path), str(known))
    inv = tmp_path / "inventory.yml"
    inv.write_text(text)
    first = lab.hosts[0].name
    refused = fleet("facts", "-i", str(inv), "--limit", first, "--no-store")
    assert refused.returncode == 2  # every host (the one) failed
    assert "--accept-new-host-keys" in one_line_error(refused)
    assert "--accept-new-host-keys" not in refused.stdout  # errors go to stderr
    accepted = fleet("facts", "-i", str(inv), "--limit", first, "--no-store",
                     "--accept-new-host-keys")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert lab.hosts[0].address in known.read_text()
    again = fleet("facts", "-i", str(inv), "--limit", first, "--no-store")
    assert again.returncode == 0


def test_missing_key_file_names_host_and_path(lab: Any, tmp_path: Path) -> None:
    text = Path(lab.inventory_path).read_text().replace(
        str(lab.client_key_path), str(tmp_path / "no_such_key"))
    inv = tmp_path / "inventory.yml"
    inv.write_text(text)
    first = lab.hosts[0].name
    proc = fleet("facts", "-i", str(inv), "--limit", first, "--json", "--no-store")
    assert proc.returncode == 2  # every host (the one) failed
    assert first in one_line_error(proc) and "no_such_key" in one_line_error(proc)
    (entry,) = json.loads(proc.stdout)["hosts"]
    assert first in entry["error"] and "no_such_key" in entry["error"]


def test_malformed_inventory_yaml_names_file_and_line(tmp_path: Path) -> None:
    inv = tmp_path / "bad.yml"
    inv.write_text("all:\n  hosts:\n    a: {ansible_host: 1.2.3.4\n    b: [\n")
    proc = fleet("facts", "-i", str(inv), "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert f"{inv}:" in line
    assert not (tmp_path / "s.sqlite").exists()


def test_local_default_inventory(tmp_path: Path) -> None:
    proc = fleet("facts", "--json", "--store", str(tmp_path / "s.sqlite"))
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["hosts"]
    assert entry["host"] == "localhost"
    assert entry["facts"]["topology"]["nodes"]


@pytest.mark.parametrize("command", [["facts"], ["hosts"], ["lab", "up"], ["lab", "down"],
                                     ["lab", "status"], ["store", "info"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    proc = fleet(*command, "--help")
    assert proc.returncode == 0
    assert "example" in proc.stdout
    assert "--json" in proc.stdout


@pytest.mark.parametrize("limit", ["[", "", " ", ",", "~[", "lab[", "lab[x:y]", "lab1,,lab2"])
def test_a_limit_ansible_would_read_as_every_host_is_refused(lab: Any, limit: str) -> None:
    proc = fleet("hosts", "-i", str(lab.inventory_path), "--limit", limit, "--json")
    assert proc.returncode == 2, proc.stdout
    assert f"--limit {limit!r} " in one_line_error(proc)
    assert proc.stdout == ""


def test_hosts_shows_the_jump_and_good_limits_select(lab: Any, tmp_path: Path) -> None:
    text = Path(lab.inventory_path).read_text().replace(
        "-o IdentitiesOnly=yes", "-o IdentitiesOnly=yes -J ops@bastion:2222 -o ControlMaster=auto")
    inv = tmp_path / "inventory.yml"
    inv.write_text(text)
    proc = fleet("hosts", "-i", str(inv), "--limit", "lab[0:1]", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["hosts"]
    assert [r["name"] for r in rows] == [h.name for h in lab.hosts[:2]]
    assert {r["via"] for r in rows} == {"jump ops@bastion:2222"}
    table = fleet("hosts", "-i", str(inv), "--limit", "lab*:!lab1")
    assert table.returncode == 0, table.stderr
    assert "jump ops@bastion:2222" in table.stdout and "lab1 " not in table.stdout


def test_a_non_key_file_as_private_key_is_exit_2_and_writes_nothing(lab: Any,
                                                                     tmp_path: Path) -> None:
    not_a_key = tmp_path / "id_ed25519.pub"
    not_a_key.write_text(Path(f"{lab.client_key_path}.pub").read_text())
    text = Path(lab.inventory_path).read_text().replace(str(lab.client_key_path), str(not_a_key))
    inv = tmp_path / "inventory.yml"
    inv.write_text(text)
    store = tmp_path / "s.sqlite"
    proc = fleet("facts", "-i", str(inv), "--store", str(store))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line_error(proc)
    assert "is not a private key (it is a public key)" in line and lab.hosts[0].name in line
    assert not store.exists()
