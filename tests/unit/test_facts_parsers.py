"""Pure /proc and /sys parsers on captured files (prometheus node_exporter and procfs fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import ParseError
from fleet.facts.parsers import (
    format_cpulist,
    hugepage_size_bytes,
    parse_cpuinfo,
    parse_cpulist,
    parse_distance_row,
    parse_int,
    parse_meminfo,
    parse_node_meminfo,
    parse_numastat,
    parse_thp_mode,
)

KB = 1024


@pytest.fixture
def node_dir(corpus: Path) -> Path:
    return corpus / "node_exporter" / "fixtures" / "sys" / "devices" / "system" / "node"


def test_node_meminfo_node0_values_in_bytes(node_dir: Path) -> None:
    values = parse_node_meminfo((node_dir / "node0" / "meminfo").read_text())
    assert values["Active(anon)"] == 707915776 == 691324 * KB
    assert values["AnonHugePages"] == 150994944
    assert values["MemTotal"] == 134182340 * KB
    assert values["MemFree"] == 53030372 * KB
    assert values["HugePages_Total"] == 0  # a count, not bytes
    assert len(values) == 29
    assert list(values)[5] == "Active(anon)"  # original key names, file order


def test_node_meminfo_node1_values_in_bytes(node_dir: Path) -> None:
    values = parse_node_meminfo((node_dir / "node1" / "meminfo").read_text())
    assert values["Inactive(anon)"] == 291930112
    assert values["FilePages"] == 85585088512


def test_node_numastat_counts(node_dir: Path) -> None:
    node0 = parse_numastat((node_dir / "node0" / "numastat").read_text())
    node1 = parse_numastat((node_dir / "node1" / "numastat").read_text())
    assert node0["numa_hit"] == 193460335812
    assert node0["local_node"] == 193454780853
    assert node1["numa_miss"] == 59858626709
    assert node1["other_node"] == 59860526920
    assert list(node0) == ["numa_hit", "numa_miss", "numa_foreign", "interleave_hit",
                           "local_node", "other_node"]


def test_node_cpulists(node_dir: Path) -> None:
    assert parse_cpulist((node_dir / "node0" / "cpulist").read_text()) == (0, 1)
    assert parse_cpulist((node_dir / "node1" / "cpulist").read_text()) == (2, 3)
    assert parse_cpulist((node_dir / "node2" / "cpulist").read_text()) == ()


PROCFS_MEMINFO_KB = {
    "MemTotal": 15666184, "MemFree": 440324, "Buffers": 1020128, "Cached": 12007640,
    "Active": 6761276, "Inactive": 6532708, "Active(anon)": 267256, "Inactive(anon)": 268,
    "Active(file)": 6494020, "Inactive(file)": 6532440, "Zswap": 22414, "Zswapped": 10502,
    "Dirty": 768, "AnonPages": 266216, "Mapped": 44204, "Shmem": 1308, "Slab": 1807264,
    "SReclaimable": 1738124, "SUnreclaim": 69140, "KernelStack": 1616, "PageTables": 5288,
    "CommitLimit": 7833092, "Committed_AS": 530844, "VmallocTotal": 34359738367,
    "VmallocUsed": 36596, "VmallocChunk": 34359637840, "Percpu": 26176, "AnonHugePages": 12288,
    "Hugepagesize": 2048, "DirectMap4k": 91136, "DirectMap2M": 16039936,
}


def test_proc_meminfo_procfs_fixture(corpus: Path) -> None:
    values = parse_meminfo((corpus / "procfs" / "fixtures" / "proc" / "meminfo").read_text())
    for key, kb in PROCFS_MEMINFO_KB.items():
        assert values[key] == kb * KB, key
    assert values["MemTotal"] == 16042172416
    for key in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"):
        assert values[key] == 0
    assert len(values) == 45


def test_meminfo_bad_unit_names_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_meminfo("MemTotal: 1 kB\nMemFree: 2 MB\n", where="h:/proc/meminfo")
    assert info.value.where == "h:/proc/meminfo:2"
    assert "MB" in str(info.value)


def test_node_meminfo_rejects_mixed_nodes() -> None:
    with pytest.raises(ParseError):
        parse_node_meminfo("Node 0 MemTotal: 1 kB\nNode 1 MemFree: 1 kB\n")


def test_cpuinfo_procfs_fixture(procfs_root: Path) -> None:
    info = parse_cpuinfo((procfs_root / "proc" / "cpuinfo").read_text())
    assert info.vendor == "GenuineIntel"
    assert info.model_name == "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"
    assert info.microcode == "0xb4"
    assert info.logical_cpus == 8
    assert info.flags[:3] == ("fpu", "vme", "de")
    assert info.flags[-1] == "flush_l1d"
    assert info.virtualization == "vmx"


def test_cpuinfo_arm64_keys() -> None:
    text = ("processor\t: 0\nBogoMIPS\t: 200.00\nFeatures\t: fp asimd evtstrm aes\n"
            "CPU implementer\t: 0x48\nCPU part\t: 0xd01\n\n"
            "processor\t: 1\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x48\n")
    info = parse_cpuinfo(text)
    assert (info.vendor, info.model_name, info.microcode) == ("0x48", None, None)
    assert info.logical_cpus == 2
    assert info.flags == ("fp", "asimd", "evtstrm", "aes")
    assert info.virtualization is None


@pytest.mark.parametrize(("text", "mode"), [
    ("always [madvise] never\n", "madvise"),
    ("always defer defer+madvise [madvise] never\n", "madvise"),
    ("[always] madvise never\n", "always"),
    ("always madvise [never]", "never"),
])
def test_thp_mode(text: str, mode: str) -> None:
    assert parse_thp_mode(text) == mode


@pytest.mark.parametrize("text", ["always madvise never", "[always] [never]", ""])
def test_thp_mode_without_one_choice_is_an_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_thp_mode(text)


def test_hugepage_dir_sizes() -> None:
    assert hugepage_size_bytes("hugepages-2048kB") == 2097152
    assert hugepage_size_bytes("hugepages-1048576kB") == 1073741824
    assert hugepage_size_bytes("hugepages-64kB") == 65536
    with pytest.raises(ParseError):
        hugepage_size_bytes("hugepages-2M")


def test_single_values_never_turn_missing_into_zero() -> None:
    assert parse_int("") is None
    assert parse_int("\n") is None
    assert parse_int("0\n") == 0
    assert parse_int("-1\n") == -1
    with pytest.raises(ParseError):
        parse_int("Y\n")


def test_distance_row() -> None:
    assert parse_distance_row("10 21 31 31\n") == (10, 21, 31, 31)
    assert parse_distance_row("10\n") == (10,)
    with pytest.raises(ParseError):
        parse_distance_row("10 x\n")


@pytest.mark.parametrize("text", ["3-1", "a", "0-", "1,,2", "-1", "0-3:2/4"])
def test_bad_cpulists_are_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse_cpulist(text, where="h:/sys/x/cpulist")


def test_cpulist_kernel_forms() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert format_cpulist((0, 1, 2, 3, 8, 10, 11)) == "0-3,8,10-11"
    assert format_cpulist(()) == ""


@given(st.sets(st.integers(min_value=0, max_value=4096), max_size=200))
def test_cpulist_format_parse_round_trip(cpus: set[int]) -> None:
    text = format_cpulist(cpus)
    assert parse_cpulist(text) == tuple(sorted(cpus))
    assert format_cpulist(parse_cpulist(text + "\n")) == text


def test_the_cli_shows_cpus_in_the_one_cpulist_form() -> None:
    from fleet.cli.render import format_cpus

    assert format_cpus((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8" == format_cpulist((0, 1, 2, 5, 7, 8))
    assert format_cpus((3,)) == "3"
    assert format_cpus(()) == "-"
