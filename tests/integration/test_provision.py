"""`fleet provision` on the netns lab: real Ansible over real sshd.

Only per-network-namespace sysctls (net.core.somaxconn, net.ipv4.tcp_fin_timeout) change, so
nothing outside the lab's namespaces moves; the one global value changed (2 MB hugepages on
node 0, shared by every netns host) is restored.
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

from fleet.cli.main import main
from fleet.lab import LabState
from fleet.provision.ansible import PLAYBOOKS_DIR, PlaybookRequest, run_playbook
from fleet.store import Store
from fleet.store.provisioning import load_provisionings

pytestmark = pytest.mark.integration

HUGEPAGES = Path("/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages")


def fleet(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleet", "provision", *args, "--store",
                           str(store)], capture_output=True, text=True, timeout=300, check=False)


def netns_read(lab: LabState, host: str, path: str) -> str:
    namespace = next(h.namespace for h in lab.hosts if h.name == host)
    assert namespace is not None
    return subprocess.run(["ip", "netns", "exec", namespace, "cat", path], capture_output=True,
                          text=True, check=True).stdout.strip()


def write_vars(tmp_path: Path, groups: dict[str, Any]) -> Path:
    path = tmp_path / "vars.yml"
    path.write_text(yaml.safe_dump({"lab": groups}))
    return path


@pytest.fixture
def hugepages_restored() -> Iterator[int]:
    before = int(HUGEPAGES.read_text())
    try:
        yield before
    finally:
        HUGEPAGES.write_text(f"{before}\n")


def by_host(out: str) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in json.loads(out)["hosts"]}


def test_roles_apply_verify_are_idempotent_and_the_fast_path_skips_ansible(
        lab: LabState, tmp_path: Path, hugepages_restored: int) -> None:
    somaxconn = int(netns_read(lab, "lab1", "/proc/sys/net/core/somaxconn"))
    lab3_before = netns_read(lab, "lab3", "/proc/sys/net/core/somaxconn")
    pages = hugepages_restored + 2
    variables = write_vars(tmp_path, {
        "vars": {"fleet_thp": {"enabled": _selected("enabled"), "defrag": _selected("defrag")},
                 "fleet_tools": ["numactl"]},
        "hosts": {
            "lab1": {"fleet_sysctl": {"net.core.somaxconn": somaxconn + 7,
                                      "net.ipv4.tcp_fin_timeout": 41},
                     "fleet_hugepages": [{"node": 0, "size_kb": 2048, "count": pages}]},
            "lab2": {"fleet_sysctl": {"net.core.somaxconn": somaxconn + 9}},
        }})
    inventory = ["-i", str(lab.inventory_path), "-i", str(variables)]
    store = tmp_path / "s.sqlite"

    check = fleet(*inventory, "--check", "--diff", "--json", store=store)
    assert check.returncode == 0, check.stderr
    hosts = by_host(check.stdout)
    assert hosts["lab1"]["status"] == "changed" and hosts["lab3"]["status"] == "in_state"
    assert any("somaxconn" in d for d in hosts["lab1"]["differences"])
    assert int(netns_read(lab, "lab1", "/proc/sys/net/core/somaxconn")) == somaxconn
    assert int(HUGEPAGES.read_text()) == hugepages_restored  # check mode changed nothing

    applied = fleet(*inventory, "--json", store=store)
    assert applied.returncode == 0, applied.stderr
    hosts = by_host(applied.stdout)
    assert json.loads(applied.stdout)["ansible_hosts"] == ["lab1", "lab2"]
    # changed counts tasks: the sysctl loop and the hugepages loop on lab1
    assert hosts["lab1"]["changed"] == 2 and hosts["lab2"]["changed"] == 1
    assert hosts["lab3"]["status"] == "in_state" and hosts["lab3"]["ok"] is None
    assert int(netns_read(lab, "lab1", "/proc/sys/net/core/somaxconn")) == somaxconn + 7
    assert netns_read(lab, "lab1", "/proc/sys/net/ipv4/tcp_fin_timeout") == "41"
    assert int(netns_read(lab, "lab2", "/proc/sys/net/core/somaxconn")) == somaxconn + 9
    assert netns_read(lab, "lab3", "/proc/sys/net/core/somaxconn") == lab3_before
    assert int(HUGEPAGES.read_text()) == pages  # verified by the role: asked == got

    # the roles themselves are idempotent: a plain run over every host changes nothing
    again = run_playbook(PlaybookRequest(playbook=PLAYBOOKS_DIR / "host.yml",
                                         inventory=(lab.inventory_path, variables),
                                         host_count=3))
    assert [(r.host, r.changed, r.failed) for r in again.hosts] == [
        ("lab1", 0, 0), ("lab2", 0, 0), ("lab3", 0, 0)]

    fast = fleet(*inventory, "--json", store=store)
    assert fast.returncode == 0, fast.stderr
    assert json.loads(fast.stdout)["ansible_hosts"] == []
    assert {h["status"] for h in by_host(fast.stdout).values()} == {"in_state"}
    with Store.open(store) as opened:
        records = load_provisionings(opened)
    assert [r.check_mode for r in records] == [True, False, False]
    assert [h.status for h in records[1].hosts] == ["changed", "changed", "in_state"]


def test_a_failing_task_and_an_unreachable_host_are_reported_while_others_complete(
        lab: LabState, tmp_path: Path) -> None:
    somaxconn = int(netns_read(lab, "lab3", "/proc/sys/net/core/somaxconn"))
    variables = write_vars(tmp_path, {"hosts": {
        "lab1": {"fleet_sysctl": {"net.core.somaxconn": -5}},  # the kernel refuses it
        "lab3": {"fleet_sysctl": {"net.core.somaxconn": somaxconn + 3}},
        # allowed, so apt runs (and finds no such package: nothing can be installed)
        "lab2": {"fleet_tools": ["fleet-no-such-package"],
                 "fleet_allow_shared_host_changes": True},
        # nothing listens on port 1 here: refused at once
        "ghost": {"ansible_host": "127.0.0.1", "ansible_port": 1,
                  "fleet_sysctl": {"net.core.somaxconn": 1}},
    }})
    store = tmp_path / "s.sqlite"
    done = fleet("-i", str(lab.inventory_path), "-i", str(variables), "--json", store=store)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["ansible_hosts"] == ["lab1", "lab2", "lab3", "ghost"]
    hosts = by_host(done.stdout)
    assert hosts["lab1"]["status"] == "failed"
    assert hosts["lab1"]["failed_task"] == "Set runtime sysctls"
    assert "the kernel refused -5" in hosts["lab1"]["message"]
    assert hosts["ghost"]["status"] == "unreachable"
    assert "Connection refused" in hosts["ghost"]["message"]
    assert hosts["lab2"]["status"] == "failed"
    assert hosts["lab2"]["message"].startswith("tools: could not install fleet-no-such-package")
    assert hosts["lab3"]["status"] == "changed"
    assert int(netns_read(lab, "lab3", "/proc/sys/net/core/somaxconn")) == somaxconn + 3
    errors = done.stderr.strip().splitlines()
    assert any(e.startswith("fleet: error: lab1: failed at 'Set runtime sysctls'")
               for e in errors)
    assert any(e.startswith("fleet: error: ghost: unreachable") for e in errors)
    with Store.open(store) as opened:
        (record,) = load_provisionings(opened)
    stored = {h.host: h for h in record.hosts}
    assert stored["lab1"].failed == 1 and stored["ghost"].unreachable == 1
    assert stored["lab2"].failed == 1 and stored["lab3"].changed == 1


def test_netns_hosts_refuse_persistent_state_and_bad_input_applies_nothing(
        lab: LabState, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (fleet's main, as the command runs it): no Ansible runs here, so the
    interpreter's start-up would be most of the time."""
    somaxconn = netns_read(lab, "lab2", "/proc/sys/net/core/somaxconn")
    store = tmp_path / "s.sqlite"
    cases = [
        ({"fleet_sysctl": {"net.core.somaxconn": 999}, "fleet_sysctl_persistent": True},
         "lab2: fleet_sysctl_persistent: refused on a network-namespace lab host"),
        ({"fleet_vfio_devices": ["0000:00:05.0"]},
         "lab2: fleet_vfio_devices: refused on a network-namespace lab host"),
        ({"fleet_vfio_devices": ["0000:00:05.0", "00:05.0"]},
         "{path}:6:9: host lab2: fleet_vfio_devices[1]: '00:05.0' is not a PCI address"),
        ({"fleet_kvm_options": {"kvm": {"tdp_mmu": "Y"}}}, "lab2: fleet_kvm_options:"),
        ({"fleet_tools": ["fleet-no-such-package"]},
         "lab2: fleet_tools: installing fleet-no-such-package refused"),
        ({"fleet_sysctl": {"net.core.somaxconn": 999},
          "fleet_hugepages": [{"node": 63, "size_kb": 2048, "count": 1}]},
         "lab2: fleet_hugepages: node 63, 2048 kB pages"),
        ({"fleet_thp": {"enabled": "sometimes"}}, "lab2: fleet_thp.enabled: 'sometimes'"),
    ]
    for index, (host_vars, line) in enumerate(cases):
        path = tmp_path / f"vars{index}.yml"
        path.write_text(yaml.safe_dump({"lab": {"hosts": {"lab2": host_vars}}}))
        code = main(["provision", "-i", str(lab.inventory_path), "-i", str(path), "--store",
                     str(store)])
        stderr = capsys.readouterr().err
        assert code == 2, (line, stderr)
        (error,) = stderr.strip().splitlines()
        assert error.startswith(f"fleet: error: {line.format(path=path)}"), error
    assert netns_read(lab, "lab2", "/proc/sys/net/core/somaxconn") == somaxconn
    assert not Path("/etc/sysctl.d/90-fleet.conf").exists()
    variant = fleet("-i", str(lab.inventory_path), "--variant", "v1", store=store)
    assert variant.returncode == 2
    assert "host lab1 declares no variant 'v1' (its variants: none)" in variant.stderr
    assert variant.stderr.count("\n") == 1
    assert not store.exists() or not load_provisionings(Store.open(store))


def test_the_playbook_alone_refuses_vfio_devices_on_a_netns_host(lab: LabState,
                                                                 tmp_path: Path) -> None:
    """Plain ansible-playbook (no fleet checks first): host.yml's pre_task refuses the host."""
    path = write_vars(tmp_path, {"hosts": {"lab2": {"fleet_vfio_devices": ["0000:00:05.0"]}}})
    result = run_playbook(PlaybookRequest(playbook=PLAYBOOKS_DIR / "host.yml",
                                          inventory=(lab.inventory_path, path), limit="lab2"))
    (recap,) = result.hosts
    assert recap.failed == 1 and recap.changed == 0
    assert recap.message is not None and recap.message.startswith(
        "lab2 is a network-namespace lab host"), recap.message
    assert "vfio devices are refused" in recap.message


def _selected(name: str) -> str:
    """The THP setting in force now (the test asks for it: nothing global changes)."""
    text = Path(f"/sys/kernel/mm/transparent_hugepage/{name}").read_text()
    return text.split("[", 1)[1].split("]", 1)[0]
