"""inventories/lab.yml and benchmarks/ci.yml, which the README and --help cite: they read, and
what they declare passes fleet's own checks."""

from __future__ import annotations

from pathlib import Path

from fleet.config.inventory import load_with_variables
from fleet.config.suite import load_suite
from fleet.provision.desired import desired_state

REPO = Path(__file__).resolve().parents[2]


def test_lab_inventory_reads_with_its_groups_relay_and_become() -> None:
    inventory, variables = load_with_variables([REPO / "inventories" / "lab.yml"])
    assert inventory.groups["ci"] == ("epyc1", "xeon1")
    for host in inventory.hosts:
        assert host.user == "perf" and host.via() == "jump perf@bastion.lab.example:22"
        assert host.become is not None and host.become.user == "root"
        assert variables[host.name]["fleet_power_command"][0] == "ipmitool"
        desired = desired_state(host.name, variables[host.name])
        assert desired.hugepages and "numactl" in desired.tools
    assert inventory.host("xeon1").boot == "kexec" and inventory.host("epyc1").boot == "reboot"
    for name, declared in inventory.provisioning.items():
        assert declared.variant_names() == ("stock-6.1", "stock-6.12"), name
        assert declared.power_command is not None and declared.power_command[0] == "ipmitool"
        assert [v.package_release() for v in declared.variants] == [
            "6.1.0-57-amd64", "6.12.117+deb12-amd64"]


def test_ci_suite_reads_with_a_gate_on_its_times() -> None:
    suite = load_suite(REPO / "benchmarks" / "ci.yml")
    assert suite.name == "ci-kvm-dirty-log"
    assert suite.compare is not None
    gated = {name for name, rule in suite.compare.metrics if rule.gate}
    assert suite.compare.threshold_ratio == 0.05 and suite.compare.min_repetitions == 5
    assert gated == {"dirty_memory_seconds", "get_dirty_log_seconds", "clear_dirty_log_seconds"}
