"""fleet.variant on a real probe of a lab guest (6.1.0-57, KVM modules with build ids only):
the identity, its place in the comparability fingerprint and in the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fleet.compare.fingerprint import AXIS_FIELDS, differences, host_fields
from fleet.config.inventory.variants import VariantSpec
from fleet.errors import ParseError, ProvisionError
from fleet.model import CpuInfo, Facts, IommuInfo, KvmInfo, NumaNode, Topology
from fleet.provision.variants.debs import kernel_release
from fleet.runs import Attempt, JobKey, RunInfo
from fleet.store import Store
from fleet.store.runs import create_run, load_completed, load_run, record_attempt
from fleet.variant import (
    VariantIdentity,
    build_id_from_note,
    cmdline_mismatch,
    identity_from_json,
    parse_probe,
)

PROBE = Path(__file__).resolve().parent.parent / "data" / "variants" / "probe-vm-6.1.0-57.txt"


def identity(**changes: object) -> VariantIdentity:
    seen = parse_probe(PROBE.read_text(encoding="utf-8"), "vm1-2n")
    base = VariantIdentity(variant="deb57", kind="deb", kernel_release=seen.kernel_release,
                           kvm_modules=seen.kvm_modules, cmdline=seen.cmdline,
                           source_sha256="ab" * 32)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_real_probe_is_parsed() -> None:
    seen = parse_probe(PROBE.read_text(encoding="utf-8"), "vm1-2n")
    assert seen.boot_id == "dbc1c8ab-76f6-449b-80e5-57a864c26ae6"
    assert seen.kernel_release == "6.1.0-57-amd64"
    assert seen.cmdline == "root=/dev/vda rw console=ttyS0 nokaslr panic=-1 quiet"
    assert seen.kvm_modules == (
        ("kvm", "build-id:657a52fb987ebe2b8127d8c3880dd1f1f6c5358c"),
        ("kvm_amd", "build-id:9f75afb396eb69ffc6686dff133046bb290ea114"))


def test_srcversion_wins_over_the_build_id_and_a_probe_without_a_release_is_refused() -> None:
    text = ("boot_id b\nrelease 6.1.0-56-amd64\ncmdline quiet\nsrcversion kvm ABC123\n"
            "buildid kvm 040000001400000003000000474e5500"
            "657a52fb987ebe2b8127d8c3880dd1f1f6c5358c\n")
    assert parse_probe(text, "h").kvm_modules == (("kvm", "srcversion:ABC123"),)
    with pytest.raises(ParseError, match=r"^h: the kernel probe printed no release"):
        parse_probe("boot_id b\ncmdline quiet\n", "h")
    assert build_id_from_note("zz") is None
    assert build_id_from_note("0400000004000000010000004e6f6e6500000000") is None  # not GNU


def test_cmdline_check_wants_every_expected_word_in_order() -> None:
    booted = "BOOT_IMAGE=/vmlinuz root=/dev/vda rw quiet init=/nonexistent"
    assert cmdline_mismatch("root=/dev/vda quiet init=/nonexistent", booted) is None
    assert cmdline_mismatch("root=/dev/vda mitigations=off", booted) == (
        f"'mitigations=off' is missing from the booted command line {booted!r}")


def test_identity_round_trips_through_json() -> None:
    ident = identity()
    assert identity_from_json(ident.to_json()) == ident


def facts() -> Facts:
    return Facts(host="vm1-2n", collected_at_unix_seconds=1.0, hostname="vm1-2n",
                 kernel_release="6.1.0-57-amd64", kernel_cmdline="quiet",
                 cpu=CpuInfo("AuthenticAMD", "EPYC", "0x1", 4),
                 topology=Topology((NumaNode(0, (0, 1), 1 << 30, None, (10,)),), (0,)),
                 mem_total_bytes=1 << 30, hugepages=(), thp_enabled="madvise",
                 thp_defrag="madvise", numa_balancing=1, kvm=KvmInfo(True, ()),
                 iommu=IommuInfo(False, ()), fingerprint="fp")


def test_fingerprint_without_a_variant_is_unchanged_and_with_one_it_tells_builds_apart() -> None:
    plain = host_fields(facts(), ())
    assert "variant" not in dict(plain)
    assert host_fields(facts(), (), variant=None) == plain
    a = host_fields(facts(), (), variant=identity())
    b = host_fields(facts(), (), variant=identity(kvm_modules=(("kvm", "srcversion:X"),)))
    assert dict(a)["variant"] == (
        '{"kind":"deb","kvm_modules":[["kvm","build-id:657a52fb987ebe2b8127d8c3880dd1f1f6c5358c"]'
        ',["kvm_amd","build-id:9f75afb396eb69ffc6686dff133046bb290ea114"]],"series_sha256":null,'
        f'"source_sha256":"{"ab" * 32}","variant":"deb57"}}')
    (diff,) = differences("vm1-2n", [a], [b])
    assert diff.field == "variant"
    assert differences("vm1-2n", [a], [b], ignore=AXIS_FIELDS["kernel"]) == ()


def test_the_store_keeps_each_attempts_variant(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite")
    create_run(store, RunInfo("r1", "s", "s.yml", "abc", 7, ("inv.yml",), None, "0.1.0", 100.0,
                              None, "running"),
               suite_text="schema_version: 1\n", plan_json="{}", cases=[("c1", "w", "{}")],
               jobs=(JobKey("c1", 1, "vm1-2n"), JobKey("c1", 2, "vm1-2n")), skipped=[])
    for rep, variant in ((1, identity()), (2, None)):
        record_attempt(store, Attempt(
            run_id="r1", job=JobKey("c1", rep, "vm1-2n"), host="vm1-2n", attempt_no=1,
            status="completed", started_at_unix_seconds=1.0, ended_at_unix_seconds=2.0,
            exit_code=0, signal=None, stdout="", stderr="", stdout_truncated=False,
            stderr_truncated=False, fingerprint="fp", variant=variant))
    first, second = load_run(store, "r1").attempts
    assert first.attempt.variant == identity() and second.attempt.variant is None
    _, completed = load_completed(store, "r1")
    assert [a.variant for a in completed] == [identity(), None]


CONTENTS = PROBE.with_name("contents-linux-image-6.1.0-56-amd64.txt")


def test_the_kernel_release_is_read_from_the_debs_contents(tmp_path: Path) -> None:
    spec = VariantSpec(name="deb56", kind="deb", where="inv.yml:3:9", deb=tmp_path / "k.deb")
    listing = CONTENTS.read_text(encoding="utf-8")
    assert kernel_release(listing, tmp_path / "k.deb", spec) == "6.1.0-56-amd64"
    with pytest.raises(ProvisionError) as info:
        kernel_release("drwxr-xr-x root/root 0 2026-11-16 10:17 ./usr/\n", tmp_path / "k.deb",
                       spec)
    assert str(info.value) == ("inv.yml:3:9: variant deb56: k.deb holds no kernel "
                               "(/boot/vmlinuz-RELEASE) (name a linux-image-RELEASE package, "
                               "not a metapackage)")


def test_the_console_tail_quotes_the_panic_line_before_the_stack_trace(tmp_path: Path) -> None:
    from fleet.provision.variants.wait import Console

    log = tmp_path / "console.log"
    log.write_text("old boot\nvm1-2n login: \n", encoding="utf-8")
    console = Console.mark(log)
    with log.open("a", encoding="utf-8") as f:
        f.write("[    6.221109] Kernel panic - not syncing: VFS: Unable to mount root fs on "
                "unknown-block(0,0)\n")
        for line in ("kernel_init_freeable+0x25c/0x286", "? rest_init+0xd0/0xd0",
                     "kernel_init+0x16/0x130", "ret_from_fork+0x22/0x30", "</TASK>",
                     "Kernel Offset: disabled"):
            f.write(f"[    6.221109]  {line}\n")
    assert console.panicked()
    assert console.tail() == (
        "[ 6.221109] Kernel panic - not syncing: VFS: Unable to mount root fs on "
        "unknown-block(0,0) | [ 6.221109] kernel_init_freeable+0x25c/0x286 | [ 6.221109] ? "
        "rest_init+0xd0/0xd0 | [ 6.221109] kernel_init+0x16/0x130 | [ 6.221109] "
        "ret_from_fork+0x22/0x30 | [ 6.221109] </TASK> | [ 6.221109] Kernel Offset: disabled")
    assert not Console.mark(log).panicked() and Console(None).tail() == ""


def test_the_probe_reads_the_cpu_vendor_and_patched_modules() -> None:
    text = ("boot_id b\nrelease 6.1.0-57-amd64\ncmdline root=/dev/vda\nfleet_modules yes\n"
            "vendor AuthenticAMD\n")
    seen = parse_probe(text, "h")
    assert (seen.cpu_vendor, seen.fleet_modules) == ("AuthenticAMD", True)
    old = parse_probe(PROBE.read_text(encoding="utf-8"), "vm1-2n")  # an older probe's output
    assert (old.cpu_vendor, old.fleet_modules) == (None, False)


def test_a_vfio_host_boots_its_variants_with_the_iommu_words_once() -> None:
    from fleet.config.inventory.variants import HostProvisioning
    from fleet.hosts import Host
    from fleet.provision.variants.switch import _extra_cmdline, _Target

    spec = VariantSpec(name="v", kind="package", where="inv.yml:3", package="linux-image-x",
                       cmdline="mitigations=off iommu=pt")
    seen = parse_probe("boot_id b\nrelease r\ncmdline root=/dev/vda\nvendor GenuineIntel\n", "h")

    def extra(*, vfio: bool, boot: str, base: str = "root=/dev/vda") -> str:
        target = _Target(Host(name="h", address="127.0.0.1"),
                         HostProvisioning(host="h", where="inv.yml", boot=boot,  # type: ignore[arg-type]
                                          vfio=vfio), spec, ())
        return _extra_cmdline(target, base, seen)

    assert extra(vfio=True, boot="kexec") == "mitigations=off iommu=pt intel_iommu=on"
    assert extra(vfio=True, boot="kexec", base="root=/dev/vda intel_iommu=on") == \
        "mitigations=off iommu=pt"
    assert extra(vfio=False, boot="kexec") == "mitigations=off iommu=pt"
    assert extra(vfio=True, boot="reboot") == "mitigations=off iommu=pt"


def test_a_deb_is_read_once_per_file_version(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`fleet run` asks for a deb variant's release before each of its groups: a real .deb
    (dpkg-deb --build) is listed once, and again only when the file changes."""
    import subprocess

    from fleet.provision.variants import debs

    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "boot").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: linux-image-9.9.9-fleet\nVersion: 1\nArchitecture: amd64\n"
        "Maintainer: fleet <fleet@example.org>\nDescription: test\n")
    (root / "boot" / "vmlinuz-9.9.9-fleet").write_bytes(b"\0" * 64)
    deb = tmp_path / "k.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True)
    listed: list[Path] = []
    real = debs._contents

    def counting(path: Path, spec: VariantSpec) -> str:
        listed.append(path)
        return real(path, spec)

    monkeypatch.setattr(debs, "_contents", counting)
    spec = VariantSpec(name="k", kind="deb", where="inv.yml:2", deb=deb)
    first = debs.kernel_deb(spec, tmp_path)
    assert first.kernel_release == "9.9.9-fleet" and len(first.sha256) == 64
    assert debs.kernel_deb(spec, tmp_path) == first and len(listed) == 1
    deb.write_bytes(deb.read_bytes() + b"\n")  # another file version (dpkg-deb tolerates it)
    assert debs.kernel_deb(spec, tmp_path).sha256 != first.sha256 and len(listed) == 2
