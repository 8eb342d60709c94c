"""fleet_variants and the boot settings in real inventories read by Ansible: each bad field is
one line naming the file:line, the host and the variant; `fleet plan` refuses a kernel value
that names no variant of the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.api.plan import plan_suite
from fleet.config.inventory import load_inventory
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError, InventoryError, ProvisionError
from fleet.facts.build import build_facts
from fleet.facts.tree import tree_from_root
from fleet.model import Facts
from fleet.provision.variants import switch
from fleet.provision.variants.power import power_cycle

GOOD = """\
all:
  hosts:
    vm1:
      fleet_boot: kexec
      fleet_power_command: [python3, -m, fleet, lab, power-cycle, vm1]
      fleet_console_log: console.log
      fleet_boot_timeout_seconds: 120
      fleet_variants:
        deb-56: {kind: package, package: linux-image-6.1.0-56-amd64}
        local: {kind: deb, deb: debs/k.deb, cmdline: "mitigations=off  quiet"}
        eps: {kind: kvm_modules, source: linux-source-6.1, patches: [p/0001-x.patch],
              base: deb-56}
        mine: {kind: kernel, source: /src/linux, config: running}
    plain:
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_variants_and_boot_settings_are_read(tmp_path: Path) -> None:
    inv = load_inventory([write(tmp_path, GOOD)])
    vm1 = inv.provisioning["vm1"]
    assert vm1.variant_names() == ("deb-56", "local", "eps", "mine")
    assert vm1.boot == "kexec" and vm1.boot_timeout_seconds == 120.0
    assert vm1.power_command == ("python3", "-m", "fleet", "lab", "power-cycle", "vm1")
    assert vm1.console_log == tmp_path / "console.log"
    deb56, local, eps, mine = vm1.variants
    assert deb56.package_release() == "6.1.0-56-amd64"
    assert deb56.where == f"{tmp_path / 'hosts.yml'}:9:9"
    assert local.deb == tmp_path / "debs" / "k.deb"
    assert local.cmdline == "mitigations=off quiet"
    assert eps.patches == (str(tmp_path / "p" / "0001-x.patch"),) and eps.base == "deb-56"
    assert eps.source == "linux-source-6.1"
    assert mine.source == "/src/linux" and mine.config == "running"
    plain = inv.provisioning["plain"]
    assert plain.variants == () and plain.boot == "reboot" and plain.power_command is None
    assert inv.host_variants() == {"vm1": ("deb-56", "local", "eps", "mine")}


BAD_CASES = [
    ("a: {kind: package, package: linux-image-6.1.0-56-amd64, extra: 1}",
     "host h: variant a: unknown key 'extra' for kind package"),
    ("a: {kind: rpm}", "host h: variant a: kind 'rpm' is not one of package, deb, "),
    ("a: {package: linux-image-6.1.0-56-amd64}", "host h: variant a: no kind"),
    ("a: {kind: deb}", "host h: variant a: a deb variant needs 'deb'"),
    ("a: {kind: package, package: linux-image-amd64}",
     "host h: variant a: package 'linux-image-amd64' is not a versioned kernel package"),
    ("a: {kind: deb, deb: kernel.rpm}", "host h: variant a: deb 'kernel.rpm' is not a "),
    ("a: {kind: kvm_modules, source: linux-source-6.1, base: nope}",
     "host h: variant a: base 'nope' is not a package or deb variant of this host "
     "(those: none)"),
    ("a: {kind: kernel, source: /src, patches: p.patch}",
     "host h: variant a: patches must be a list of patch files"),
    ("a: {kind: package, package: linux-image-6.1.0-56-amd64, cmdline: ''}",
     "host h: variant a: cmdline must be a one-line, non-empty string"),
    ("'bad name': {kind: deb, deb: a.deb}", "host h: variant name 'bad name' is not a "),
    ("a: [package]", "host h: variant a: its spec must be a mapping with a kind, not a list"),
]


@pytest.mark.parametrize(("variant", "expected"), BAD_CASES)
def test_a_bad_variant_is_one_line_naming_the_file_line_host_and_variant(
        tmp_path: Path, variant: str, expected: str) -> None:
    path = write(tmp_path, f"all:\n  hosts:\n    h: {{fleet_variants: {{{variant}}}}}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    line = str(info.value)
    assert line.startswith(f"{path}:3:")
    assert expected in line and "\n" not in line


@pytest.mark.parametrize(("text", "expected"), [
    ("fleet_variants: [a, b]", "host h: fleet_variants must be a mapping of variant name"),
    ("fleet_power_command: 'ipmitool power cycle'",
     "host h: fleet_power_command must be a non-empty list of words"),
    ("fleet_power_command: []", "host h: fleet_power_command must be a non-empty list"),
    ("fleet_boot_timeout_seconds: -5", "host h: fleet_boot_timeout_seconds -5 is not a "),
])
def test_bad_boot_settings_are_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, f"all:\n  hosts:\n    h:\n      {text}\n")
    with pytest.raises(InventoryError) as info:
        load_inventory([path])
    assert str(info.value).startswith(f"{path}:4:")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_group_vars_variants_resolve_paths_against_their_own_file(tmp_path: Path) -> None:
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "lab.yml").write_text(
        "fleet_variants:\n  local: {kind: deb, deb: ../debs/k.deb}\n", encoding="utf-8")
    path = write(tmp_path, "lab:\n  hosts:\n    h:\n")
    (local,) = load_inventory([path]).provisioning["h"].variants
    assert local.deb is not None and local.deb.resolve() == tmp_path / "debs" / "k.deb"
    assert local.where == f"{tmp_path / 'group_vars' / 'lab.yml'}:2:3"


SUITE = """\
schema_version: 1
name: kernels
repetitions: 1
workloads:
  - name: sleepy
    type: sleep
    params: {seconds: 1}
    axes:
      kernel: [deb-56, nope]
"""


@pytest.fixture
def ne_facts(node_exporter_sys_root: Path) -> Facts:
    return build_facts("vm1", tree_from_root(node_exporter_sys_root), collected_at_unix_seconds=0)


def test_plan_refuses_a_kernel_value_that_is_no_variant_of_the_host(
        tmp_path: Path, ne_facts: Facts) -> None:
    inv = load_inventory([write(tmp_path, GOOD)])
    suite = parse_suite(SUITE, source="kernels.yml")
    hosts = [inv.host("vm1")]
    with pytest.raises(ConfigError) as info:
        plan_suite(suite, [ne_facts], hosts, seed=1, where="kernels.yml",
                   host_variants=inv.host_variants())
    assert str(info.value) == (
        "kernels.yml:9: kernel 'nope' is not a variant of host vm1 (its variants: deb-56, "
        "local, eps, mine) (name one of the host's fleet_variants, or declare this one in the "
        "inventory)")
    # without fleet_variants the value is a kernel release, planned as before
    plan = plan_suite(suite, [ne_facts], hosts, seed=1, where="kernels.yml")
    assert [dict(g.variant)["kernel"] for g in plan.queues[0].groups] == ["deb-56", "nope"]


# ---- switch's refusals before it touches a host -----------------------------------------------


@pytest.mark.parametrize(("variant", "expected"), [
    ("nope", "{inv}: variant 'nope' is not declared for host vm1 (its variants: deb-56, local, "
             "eps, mine) (declare it under fleet_variants in the inventory)"),
    ("eps", "{inv}:11:9: variant eps: switch() boots package and deb variants, not "
            "kvm_modules (fleet provision --variant (fleet.provision.variants.apply))"),
    ("local", "{inv}:10:9: variant local: the .deb {tmp}/debs/k.deb does not exist (fix the "
              "path (relative to the inventory file), or fetch it: apt-get download PACKAGE)"),
])
def test_switch_refuses_bad_input_in_one_line(tmp_path: Path, variant: str,
                                              expected: str) -> None:
    path = write(tmp_path, GOOD)
    inv = load_inventory([path])
    with pytest.raises(ProvisionError) as info:
        switch(inv, "vm1", variant, cache_dir=tmp_path / "cache")
    assert str(info.value) == expected.format(inv=path, tmp=tmp_path)


def test_a_host_without_a_power_command_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    plain = load_inventory([path]).provisioning["plain"]
    with pytest.raises(ProvisionError) as info:
        power_cycle(plain, "variant x (6.1.0-56-amd64) did not boot: not back within 180 s")
    assert str(info.value) == (
        "plain: variant x (6.1.0-56-amd64) did not boot: not back within 180 s, and the host "
        "has no fleet_power_command to power-cycle it (add fleet_power_command: [argv...] to "
        f"its inventory ({path}), or power-cycle it by hand)")
