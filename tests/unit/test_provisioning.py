"""How a host reaches a variant (fleet.plan.provisioning), on real captured probe dumps.

tests/data/probes/ holds two real `PROBE_SCRIPT` outputs: ``vm-guest-debian-6.1.dump`` from an
emulated lab guest (Debian 6.1.0-57, kvm + kvm_amd loaded, kvm.eager_page_split 0644,
kvm.enable_pmu 0444) and ``host-kvm-readonly.dump`` from this project's build machine (6.18,
GenuineIntel, kvm loaded with every parameter 0444, no kvm_intel).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.codec import facts_from_json_data, facts_to_json_data
from fleet.compare.fingerprint import differences, host_fields, ignored_fields
from fleet.facts.build import build_facts
from fleet.facts.tree import parse_dump, parse_ls_line, render_dump
from fleet.model import Facts, KvmInfo
from fleet.plan.provisioning import ModuleKnob, Step, kernel_text, provisioning
from fleet.runs import KnobState

PROBES = Path(__file__).parents[1] / "data" / "probes"


def facts_of(name: str) -> Facts:
    text = (PROBES / name).read_text(encoding="utf-8")
    return build_facts(name, parse_dump(text, source=name), collected_at_unix_seconds=0.0)


@pytest.fixture(scope="module")
def guest() -> Facts:
    return facts_of("vm-guest-debian-6.1.dump")


@pytest.fixture(scope="module")
def host() -> Facts:
    return facts_of("host-kvm-readonly.dump")


# ---- facts: parameter modes -------------------------------------------------------------------


def test_guest_facts_know_which_parameters_are_writable(guest: Facts) -> None:
    kvm, kvm_amd = guest.kvm.modules
    assert (kvm.name, kvm_amd.name) == ("kvm", "kvm_amd")
    assert kvm.value("eager_page_split") == "Y"
    assert kvm.is_writable("eager_page_split") is True  # -rw-r--r--
    assert kvm.is_writable("halt_poll_ns") is True
    assert kvm.is_writable("enable_pmu") is False  # -r--r--r--
    assert kvm_amd.is_writable("avic") is False
    assert kvm_amd.is_writable("dump_invalid_vmcb") is True
    assert kvm.is_writable("no_such_parameter") is None
    assert kvm.writable is not None
    assert [n for n, _ in kvm.writable] == [n for n, _ in kvm.parameters]


def test_host_facts_have_every_parameter_read_only(host: Facts) -> None:
    (kvm,) = host.kvm.modules
    assert kvm.writable is not None and len(kvm.writable) == len(kvm.parameters) > 10
    assert not any(w for _, w in kvm.writable)


def test_ls_lines_parse_to_permission_bits() -> None:
    assert parse_ls_line("-rw-r--r-- 1 0 0 4096 Dec  3 15:21 eager_page_split") == \
        ("eager_page_split", 0o644)
    assert parse_ls_line("-r--r--r-- 1 0 0 4096 Dec  3 09:09 enable_pmu") == ("enable_pmu", 0o444)
    assert parse_ls_line("-rw------- 1 0 0 4096 Jan  1  2024 a b") == ("a b", 0o600)
    assert parse_ls_line("-rwsr-xr-t 1 0 0 4096 Jan  1  2024 s") == ("s", 0o5755)
    assert parse_ls_line("total 0") == ()
    assert parse_ls_line("eager_page_split") is None
    assert parse_ls_line("?rw-r--r-- 1 0 0 4096 Dec  3 15:21 x") is None


def test_a_malformed_mode_record_names_its_line() -> None:
    text = (PROBES / "vm-guest-debian-6.1.dump").read_text(encoding="utf-8")
    broken = text.replace("-rw-r--r-- 1 0 0 4096 Dec  3 15:21 eager_page_split",
                          "eager_page_split is writable")
    from fleet.errors import ParseError

    with pytest.raises(ParseError) as info:
        parse_dump(broken, source="vm1")
    assert "not an `ls -ln` line" in info.value.line() and "vm1:" in info.value.line()


def test_modes_survive_render_and_parse(guest: Facts) -> None:
    tree = parse_dump((PROBES / "vm-guest-debian-6.1.dump").read_text(encoding="utf-8"))
    assert parse_dump(render_dump(tree)) == tree
    assert tree.mode("/sys/module/kvm/parameters/eager_page_split") == 0o644


def test_stored_facts_without_modes_still_load_with_modes_unknown(guest: Facts) -> None:
    data = json.loads(json.dumps(facts_to_json_data(guest)))
    assert data["kvm"]["modules"][0]["writable"] is not None
    for module in data["kvm"]["modules"]:
        del module["writable"]  # what fleet stored before it recorded modes
    old = facts_from_json_data(data)
    assert old.kvm.modules[0].writable is None
    assert old.kvm.modules[0].is_writable("eager_page_split") is None  # unknown, not False
    assert old.kvm.modules[0].value("eager_page_split") == "Y"
    assert facts_from_json_data(facts_to_json_data(guest)) == guest


def test_the_fingerprint_tracks_module_parameters(guest: Facts) -> None:
    tree = parse_dump((PROBES / "vm-guest-debian-6.1.dump").read_text(encoding="utf-8"))
    path = "/sys/module/kvm/parameters/eager_page_split"
    changed = replace(tree, files={**tree.files, path: "N\n"})
    other = build_facts("g", changed, collected_at_unix_seconds=0.0)
    assert other.fingerprint != guest.fingerprint


# ---- provisioning -------------------------------------------------------------------------------


def test_a_writable_parameter_is_a_knob(guest: Facts) -> None:
    reach = provisioning((("kvm.eager_page_split", "N"),), guest)
    assert reach.steps == (Step("kvm.eager_page_split", "N", "Y", "knob", "writable parameter"),)
    assert reach.how == "knob" and reach.failure() is None
    assert reach.knobs == (ModuleKnob("kvm.eager_page_split",
                                      "/sys/module/kvm/parameters/eager_page_split", "N"),)


def test_a_value_the_host_has_is_verified_not_provisioned(guest: Facts, host: Facts) -> None:
    for facts in (guest, host):  # writable or not: read back and recorded, never written
        reach = provisioning((("kvm.eager_page_split", "Y"),), facts)
        assert reach.steps == () and reach.how is None and reach.failure() is None
        assert [k.text for k in reach.knobs] == ["Y"]


@pytest.mark.parametrize(("value", "printed"), [
    ("N", "N"), ("n", "N"), (0, "N"), (False, "N"), ("off", "N"),
    ("Y", "Y"), (1, "Y"), (True, "Y"), ("on", "Y")])
def test_booleans_compare_as_the_kernel_prints_them(guest: Facts, value: object,
                                                    printed: str) -> None:
    reach = provisioning((("kvm.eager_page_split", value),), guest)  # type: ignore[arg-type]
    assert [k.text for k in reach.knobs] == [printed]
    assert reach.how == (None if printed == "Y" else "knob")


def test_kernel_text() -> None:
    assert kernel_text("maybe", "Y") is None
    assert kernel_text("100", "200000") == "100"


def test_a_read_only_parameter_needs_a_module_reload(host: Facts, guest: Facts) -> None:
    reach = provisioning((("kvm.eager_page_split", "N"),), host)
    assert reach.how == "reload" and reach.knobs == ()
    assert reach.failure() == ("variant kvm.eager_page_split=N needs a module reload "
                               "(read-only parameter); run `fleet provision` first, or declare "
                               "a kernel variant with cmdline: kvm.eager_page_split=N and name "
                               "it in the kernel axis (fleet run boots it between groups)")
    assert provisioning((("kvm.enable_pmu", "Y"),), guest).how == "reload"


def test_modes_unknown_is_said_not_guessed(guest: Facts) -> None:
    old = replace(guest, kvm=KvmInfo(guest.kvm.dev_kvm, tuple(
        replace(m, writable=None) for m in guest.kvm.modules)))
    reach = provisioning((("kvm.eager_page_split", "N"),), old)
    assert reach.how == "unknown" and reach.knobs == ()
    assert reach.failure() == ("variant kvm.eager_page_split=N cannot be planned (its mode "
                               "was not recorded: re-gather facts (fleet facts))")


def test_unknown_parameter_and_foreign_module_are_impossible(guest: Facts, host: Facts) -> None:
    reach = provisioning((("kvm.no_such", "1"),), guest)
    assert reach.how == "impossible"
    assert reach.failure() == ("variant kvm.no_such=1 cannot be reached on this host (kvm has "
                               "no parameter no_such on kernel 6.1.0-57-amd64)")
    amd = provisioning((("kvm_amd.npt", "N"),), host)  # an Intel host
    assert amd.how == "impossible"
    assert "kvm_amd needs a AuthenticAMD CPU, the host has GenuineIntel" in (amd.failure() or "")
    intel = provisioning((("kvm_intel.ept", "N"),), host)  # Intel, kvm_intel not loaded
    assert intel.how == "reload" and intel.steps[0].why == "kvm_intel is not loaded"
    assert provisioning((("kvm.eager_page_split", "maybe"),), guest).how == "impossible"


def test_kernel_and_cmdline_need_kexec_or_reboot(guest: Facts) -> None:
    kernel = (("kernel", "6.12.0-1-amd64"),)
    assert provisioning(kernel, guest, boot="kexec").how == "kexec"
    assert provisioning(kernel, guest).how == "reboot"
    assert provisioning(kernel, guest, boot="reboot").how == "reboot"
    same = (("kernel", "6.1.0-57-amd64"),)
    assert provisioning(same, guest).how is None
    cmdline = provisioning((("kernel_cmdline", "quiet"),), guest, boot="kexec")
    assert cmdline.failure() == ("variant kernel_cmdline=quiet needs a kexec (another kernel "
                                 "command line); run `fleet provision` first")


def test_the_heaviest_step_decides_and_knobs_alone_do_not_block(guest: Facts) -> None:
    variant = (("kernel", "6.12.0-1-amd64"), ("kvm.eager_page_split", "N"),
               ("kvm.enable_pmu", "Y"))
    reach = provisioning(variant, guest, boot="kexec")
    assert [s.how for s in reach.steps] == ["kexec", "knob", "reload"]
    assert reach.how == "kexec"
    assert [s.name for s in reach.blocking] == ["kernel", "kvm.enable_pmu"]
    assert reach.failure() == (
        "variant kernel=6.12.0-1-amd64 needs a kexec (another kernel); kvm.enable_pmu=Y needs "
        "a module reload (read-only parameter); run `fleet provision` first, or declare a "
        "kernel variant with cmdline: kvm.enable_pmu=Y and name it in the kernel axis (fleet "
        "run boots it between groups)")


# ---- like for like: the module parameters a case ran with ---------------------------------------


def knob(value: str) -> KnobState:
    return KnobState("kvm.eager_page_split", "/sys/module/kvm/parameters/eager_page_split",
                     "Y", value, value, True)


def with_param(facts: Facts, value: str) -> Facts:
    kvm = facts.kvm.modules[0]
    params = tuple((n, value if n == "eager_page_split" else v) for n, v in kvm.parameters)
    return replace(facts, kvm=replace(facts.kvm, modules=(replace(kvm, parameters=params),
                                                          *facts.kvm.modules[1:])))


def test_module_parameters_the_case_ran_with_are_compared(guest: Facts) -> None:
    ran_n = host_fields(guest, [knob("N")])  # a Y host, set to N by the run
    ran_y = host_fields(guest, [knob("Y")])  # verified: the host's own Y
    default_n = host_fields(with_param(guest, "N"), [])  # an N host, no such axis
    assert dict(ran_n)["kvm_parameters"] != dict(ran_y)["kvm_parameters"]
    assert '"kvm.eager_page_split": "N"' in dict(ran_n)["kvm_parameters"]
    assert [d.field for d in differences("g", [ran_n], [ran_y])] == ["kvm_parameters"]
    assert differences("g", [ran_n], [default_n]) == ()  # N is N, set or not
    assert dict(ran_n)["knobs"] == "{}"  # not a second time among the knobs
    # the axis under test is not a mismatch; anything else about KVM still is
    axis = "kvm.eager_page_split"
    assert differences("g", [host_fields(guest, [knob("N")], axis=axis)],
                       [host_fields(guest, [knob("Y")], axis=axis)]) == ()
    assert ignored_fields(axis) == frozenset({"kernel_cmdline"})
    assert "kvm_parameters" in ignored_fields("kernel")
    # without facts only knobs are compared: the module parameter is among them
    assert [d.field for d in differences("g", [host_fields(None, [knob("N")])],
                                         [host_fields(None, [knob("Y")])])] == ["knobs"]


# ---- fleet plan: per host, how ------------------------------------------------------------------

PLAN_SUITE = """\
schema_version: 1
name: eps
workloads:
  - name: look
    type: command
    argv: [cat, /sys/module/kvm/parameters/eager_page_split]
    axes:
      kvm.eager_page_split: [N, Y]
"""


def test_plan_says_per_host_how_each_variant_is_reached(guest: Facts, host: Facts) -> None:
    from rich.console import Console

    from fleet.api.plan import plan_suite, plan_summary, provisioning_needed
    from fleet.cli.render import plan_view
    from fleet.config.suite import parse_suite
    from fleet.hosts import Host

    facts = [replace(guest, host="guest"), replace(host, host="intel")]
    hosts = [Host("guest", "192.0.2.1", boot="kexec"), Host("intel", "192.0.2.2")]
    plan = plan_suite(parse_suite(PLAN_SUITE, source="eps.yml"), facts, hosts, seed=1,
                      where="eps.yml")
    needed = provisioning_needed(plan, facts, hosts)
    assert [(g.host, dict(g.variant), g.provisioning.how) for g in needed] == [
        ("guest", {"kvm.eager_page_split": "N"}, "knob"),
        ("intel", {"kvm.eager_page_split": "N"}, "reload")]
    data = plan_summary(plan, needed)
    assert [[g["how"] for g in h["groups"]] for h in data["hosts"]] == \
        [["knob", None], ["reload", None]]
    (intel,) = [p for p in data["provisioning"] if p["host"] == "intel"]
    assert intel["runs_without_provisioning"] is False
    assert intel["reason"].startswith("variant kvm.eager_page_split=N needs a module reload "
                                      "(read-only parameter); run `fleet provision` first, or ")
    assert intel["steps"] == [{"name": "kvm.eager_page_split", "wanted": "N", "current": "Y",
                               "how": "reload", "why": "read-only parameter"}]
    assert "provisioning" not in plan_summary(plan)  # the stored plan's document is unchanged
    console = Console(record=True, width=200)
    console.print(plan_view(plan, needed))
    text = console.export_text()
    assert "kvm.eager_page_split=N (host: Y): knob, writable parameter" in text
    assert "kvm.eager_page_split=N (host: Y): reload, read-only parameter" in text


def test_a_kernel_value_naming_a_declared_variant_is_met_by_its_release(guest: Facts) -> None:
    """kernel: [stock-57, stock-56] with fleet_variants: the guest runs 6.1.0-57-amd64."""
    releases = {"stock-57": "6.1.0-57-amd64", "stock-56": "6.1.0-56-amd64"}
    on = provisioning((("kernel", "stock-57"),), guest, boot="kexec", releases=releases)
    assert on.steps == () and on.failure() is None
    off = provisioning((("kernel", "stock-56"),), guest, boot="kexec", releases=releases)
    (step,) = off.steps
    assert (step.how, step.current) == ("kexec", "6.1.0-57-amd64")
    assert "fleet provision --variant stock-56" in (off.failure() or "")
    # a name the host does not declare stays a release to compare with
    assert provisioning((("kernel", "stock-57"),), guest, releases={}).steps != ()


def test_a_declared_kvm_modules_or_kernel_variant_is_provisioned_by_the_run(guest: Facts
                                                                           ) -> None:
    """Never met from the facts (its modules' srcversions are verified by the run itself): a
    kvm_modules variant is a reload, a patched kernel a kexec, both taken by fleet run."""
    declared = {"probe": "kvm_modules", "patched": "kernel", "stock-57": "package"}
    releases = {"stock-57": "6.1.0-57-amd64"}
    modules = provisioning((("kernel", "probe"),), guest, boot="kexec", releases=releases,
                           declared=declared)
    (step,) = modules.steps
    assert (step.how, step.by_run, step.why) == ("reload", True, "variant probe (kvm_modules)")
    assert modules.failure() == (
        "variant kernel=probe needs a module reload (variant probe (kvm_modules)); fleet run "
        "provisions it before the variant's group (or: fleet provision --variant probe)")
    kernel = provisioning((("kernel", "patched"),), guest, boot="kexec", declared=declared)
    assert [(s.how, s.by_run) for s in kernel.steps] == [("kexec", True)]
    assert provisioning((("kernel", "stock-57"),), guest, releases=releases,
                        declared=declared).steps == ()


def test_variant_releases_of_package_variants(tmp_path: Path) -> None:
    from fleet.config.inventory.variants import HostProvisioning, VariantSpec
    from fleet.provision.variants.debs import variant_releases

    declared = HostProvisioning(host="h", where="inv.yml", variants=(
        VariantSpec("a", "package", "inv.yml:3", package="linux-image-6.12.117+deb12-amd64"),
        VariantSpec("b", "deb", "inv.yml:4", deb=tmp_path / "missing.deb"),
        VariantSpec("c", "kvm_modules", "inv.yml:5", source="linux-source-6.1"),
        VariantSpec("d", "package", "inv.yml:6", package="linux-image-6.12.117+deb12-amd64",
                    cmdline="kvm.tdp_mmu=N")))  # the same release is not the same variant
    assert variant_releases({"h": declared}) == {"h": {"a": "6.12.117+deb12-amd64"}}
