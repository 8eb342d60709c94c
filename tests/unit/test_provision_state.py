"""The desired state from inventory variables, the probe's output, and the comparison (pure),
with the probe script run by a real sh on real files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import ProvisionError
from fleet.provision.compare import (
    KVM_OPTIONS_FILE,
    SYSCTL_FILE,
    differences,
    hugepages_path,
    kvm_options_text,
    sysctl_file_text,
    sysctl_path,
)
from fleet.provision.desired import HugepagePool, desired_state
from fleet.provision.probe import ProbedState, parse_probe, probe_argv
from fleet.provision.run import (
    refuse_conflicting_shared_hosts,
    refuse_shared_hosts,
    refuse_shared_installs,
)

VARS: dict[str, Any] = {
    "fleet_sysctl": {"net.core.somaxconn": 1024, "net.ipv4.ip_local_port_range": "32768 60999"},
    "fleet_hugepages": [{"node": 0, "size_kb": 2048, "count": 64}],
    "fleet_thp": {"enabled": "madvise", "defrag": "defer"},
    "fleet_tools": ["stress-ng", "numactl"],
    "fleet_kvm_options": {"kvm": {"tdp_mmu": "Y"}, "kvm_intel": {"ept": 1}},
    "fleet_sysctl_persistent": True,
}
THP = "/sys/kernel/mm/transparent_hugepage"


def _state(**overrides: str | None) -> ProbedState:
    desired = desired_state("h1", VARS)
    files: dict[str, str | None] = {
        sysctl_path("net.core.somaxconn"): "1024",
        sysctl_path("net.ipv4.ip_local_port_range"): "32768\t60999",
        hugepages_path(HugepagePool(0, 2048, 64)): "64",
        f"{THP}/enabled": "always [madvise] never",
        f"{THP}/defrag": "always [defer] defer+madvise madvise never",
        SYSCTL_FILE: sysctl_file_text(desired).removesuffix("\n"),
        KVM_OPTIONS_FILE: kvm_options_text(desired).removesuffix("\n"),
    }
    files.update(overrides)
    return ProbedState(files=files, packages={"numactl": "installed", "stress-ng": "installed"})


def test_a_host_in_state_has_no_differences() -> None:
    assert differences(desired_state("h1", VARS), _state()) == ()


def test_each_kind_of_difference_is_found() -> None:
    state = _state(**{sysctl_path("net.core.somaxconn"): "4096",
                      hugepages_path(HugepagePool(0, 2048, 64)): "10",
                      f"{THP}/enabled": "[always] madvise never", KVM_OPTIONS_FILE: None})
    state = ProbedState(files=state.files, packages={"numactl": "installed"})
    found = {(d.role, d.item): (d.current, d.wanted)
             for d in differences(desired_state("h1", VARS), state)}
    assert found[("sysctl", "net.core.somaxconn")] == ("4096", "1024")
    assert found[("memory", "hugepages node0 2048kB")] == ("10", "64")
    assert found[("memory", "thp enabled")] == ("always", "madvise")
    assert found[("tools", "stress-ng")] == (None, "installed")
    assert found[("kvm", KVM_OPTIONS_FILE)][0] is None
    assert len(found) == 5


def test_the_persistent_files_are_what_the_templates_write() -> None:
    desired = desired_state("h1", VARS)
    assert sysctl_file_text(desired) == ("# managed by fleet provision (fleet_sysctl)\n"
                                         "net.core.somaxconn = 1024\n"
                                         "net.ipv4.ip_local_port_range = 32768 60999\n")
    assert kvm_options_text(desired) == ("# managed by fleet provision (fleet_kvm_options)\n"
                                         "options kvm tdp_mmu=Y\noptions kvm_intel ept=1\n")


def test_a_node_the_host_lacks_is_bad_input_naming_node_and_size() -> None:
    desired = desired_state("h1", {"fleet_hugepages": [{"node": 3, "size_kb": 2048,
                                                        "count": 1}]})
    with pytest.raises(ProvisionError, match=r"h1: fleet_hugepages: node 3, 2048 kB"):
        differences(desired, ProbedState(files={}, packages={}))


@pytest.mark.parametrize(("variables", "match"), [
    ({"fleet_sysctl": {"vm.swappiness": True}}, "fleet_sysctl.vm.swappiness: True"),
    ({"fleet_sysctl": {"../etc/passwd": 1}}, "not a sysctl name"),
    ({"fleet_sysctl": ["vm.swappiness"]}, "expected a mapping"),
    ({"fleet_hugepages": [{"node": 0, "size_kb": 2048}]}, r"fleet_hugepages\[0\]"),
    ({"fleet_hugepages": [{"node": -1, "size_kb": 2048, "count": 1}]}, "whole number"),
    ({"fleet_thp": {"enabled": "sometimes"}}, "one of always, madvise, never"),
    ({"fleet_thp": {"shmem": "always"}}, "unknown setting"),
    ({"fleet_tools": ["stress-ng; rm -rf /"]}, "not a Debian package name"),
    ({"fleet_kvm_options": {"kvm": {"tdp_mmu": "Y N"}}}, "not a module option"),
    ({"fleet_allow_shared_host_changes": "yes"}, "not true or false"),
])
def test_bad_values_are_one_line_naming_host_and_variable(variables: dict[str, Any],
                                                          match: str) -> None:
    with pytest.raises(ProvisionError, match=match) as info:
        desired_state("h1", variables)
    assert info.value.line().startswith("h1: fleet_") and "\n" not in info.value.line()


def test_netns_hosts_refuse_persistent_state_unless_allowed() -> None:
    shared = {**VARS, "fleet_lab_kind": "netns"}
    with pytest.raises(ProvisionError, match="fleet_sysctl_persistent, fleet_kvm_options"):
        refuse_shared_hosts([desired_state("lab1", shared)])
    refuse_shared_hosts([desired_state("lab1", {**shared,
                                                "fleet_allow_shared_host_changes": True})])
    runtime_only = {k: v for k, v in shared.items()
                    if k not in ("fleet_kvm_options", "fleet_sysctl_persistent")}
    refuse_shared_hosts([desired_state("lab1", runtime_only)])
    desired = desired_state("lab1", runtime_only)
    state = ProbedState(files=_state().files, packages={"numactl": "installed"})
    with pytest.raises(ProvisionError, match="installing stress-ng refused"):
        refuse_shared_installs(desired, differences(desired, state))


def test_the_probe_script_reads_files_and_marks_missing_ones(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.write_text("always [madvise] never\n")
    two = tmp_path / "two"
    two.write_text("a\n\x1eb\nc")  # a record separator inside content stays content
    missing = tmp_path / "nope"
    argv = probe_argv([str(one), str(two), str(missing), str(tmp_path)], ["no-such-package"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    state = parse_probe(out, host="h1")
    assert state.files[str(one)] == "always [madvise] never"
    assert state.files[str(two)] == "a\n\x1eb\nc"
    assert state.files[str(missing)] is None and state.files[str(tmp_path)] is None
    assert not state.installed("no-such-package")


def test_a_truncated_probe_is_an_error() -> None:
    with pytest.raises(ProvisionError, match="truncated"):
        parse_probe("\x1eF /x\n1\n", host="h1")


def test_netns_hosts_share_one_kernel_so_one_hugepage_count() -> None:
    def host(name: str, count: int) -> Any:
        return desired_state(name, {"fleet_lab_kind": "netns", "fleet_hugepages": [
            {"node": 0, "size_kb": 2048, "count": count}]})

    refuse_conflicting_shared_hosts([host("lab1", 4), host("lab2", 4)])
    with pytest.raises(ProvisionError, match=r"lab2: hugepages node0 2048kB: 8 here but 4 on lab1"):
        refuse_conflicting_shared_hosts([host("lab1", 4), host("lab2", 8)])
    # real hosts have their own kernels
    refuse_conflicting_shared_hosts([desired_state("a", {"fleet_thp": {"enabled": "never"}}),
                                     desired_state("b", {"fleet_thp": {"enabled": "always"}})])


def test_the_roles_templates_write_what_the_comparison_expects() -> None:
    """Rendered as Ansible's template module does (trim_blocks, the trailing newline kept)."""
    import jinja2

    from fleet.provision.ansible import PLAYBOOKS_DIR

    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True,
                             loader=jinja2.FileSystemLoader(PLAYBOOKS_DIR / "roles"))
    desired = desired_state("h1", VARS)
    rendered = env.get_template("sysctl/templates/90-fleet.conf.j2").render(**VARS)
    assert rendered == sysctl_file_text(desired)
    rendered = env.get_template("kvm/templates/fleet-kvm.conf.j2").render(**VARS)
    assert rendered == kvm_options_text(desired)
