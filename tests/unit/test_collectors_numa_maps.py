"""/proc/PID/numa_maps on real lines, per-node bytes, and numastat -p's algorithm."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet.collectors.numa_maps import (
    NumaMaps,
    numastat_process,
    parse_numa_maps,
    parse_numa_maps_line,
)
from fleet.errors import ParseError

MB = 1 << 20
REAL = "numa_outputs/numa_maps_real_lines.txt"
SNP = "numa_outputs/qemu_snp_4node_numastat_numa_maps__nikunj_2023-07.txt"


def sections(corpus: Path) -> dict[str, NumaMaps]:
    """The numa_maps lines of each ``### [X]`` section of the corpus file."""
    found: dict[str, list[str]] = {}
    current = ""
    for line in (corpus / REAL).read_text().splitlines():
        if line.startswith("### ["):
            current = line[5]
            found[current] = []
        elif re.match(r"[0-9a-f]+ \S", line):
            found[current].append(line)
    return {k: parse_numa_maps("\n".join(v), where=f"{REAL}[{k}]") for k, v in found.items()}


def test_qemu_bound_to_node0(corpus: Path) -> None:
    ram, huge = sections(corpus)["A"].mappings
    assert (ram.policy, ram.policy_mode, ram.policy_nodes) == ("bind:0", "bind", (0,))
    assert ram.anon and not ram.huge and ram.anon_pages == 262144 and ram.active_pages == 39847
    assert ram.node_pages == ((0, 262144),) and ram.kernel_page_size_bytes == 4096
    assert huge.huge and huge.file and not huge.anon
    assert huge.path == "/dev/hugepages/qemu_back_mem.mem.WQDRfi (deleted)"  # \040 unescaped
    maps = sections(corpus)["A"]
    assert maps.node_bytes() == {0: 262144 * 4096 + 512 * 2 * MB}
    assert maps.node_bytes(huge=True) == {0: 1024 * MB}
    assert maps.node_bytes(huge=False) == {0: 1024 * MB}


def test_snp_guest_interleaved_over_nodes_2_and_3(corpus: Path) -> None:
    maps = sections(corpus)["B"]
    first = maps.mappings[0]
    assert (first.policy_mode, first.policy_nodes) == ("interleave", (2, 3))
    assert (first.mapped_pages, first.mapmax, first.dirty_pages) == (1987, 256, 1070)
    assert maps.mappings[1].node_pages == () and maps.mappings[1].kernel_page_size_bytes is None
    assert maps.node_pages() == {2: 582 + 32 + 512, 3: 1405 + 380}
    assert maps.node_bytes() == {2: 1126 * 4096, 3: 1785 * 4096}


def test_1g_pages_sized_per_mapping(corpus: Path) -> None:
    maps = sections(corpus)["C"]
    assert maps.node_bytes() == {0: 1 << 30, 1: 1 << 30}
    assert all(m.huge and m.policy_nodes is None for m in maps.mappings)


def test_heap_and_2m_huge(corpus: Path) -> None:
    heap, anon, huge = sections(corpus)["D"].mappings
    assert heap.heap and heap.start_address == 0x01dbe000 and not heap.stack
    assert anon.node_pages == ((1, 143),) and huge.huge


def test_2006_formats(corpus: Path) -> None:
    old = sections(corpus)["E"]
    assert {m.policy for m in old.mappings} == {"interleave=0-7"}
    assert old.mappings[0].policy_nodes == tuple(range(8))
    assert old.node_bytes() == dict.fromkeys(range(8), None)  # no kernelpagesize_kB
    assert old.node_bytes(huge_page_size_bytes=16 * MB)[0] == 2 * 16 * MB
    ia64 = sections(corpus)["F"]
    assert [m.heap for m in ia64.mappings] == [False, False, True, False, False, False]
    assert ia64.mappings[3].swapcache_pages == 1 and ia64.mappings[4].stack
    assert ia64.mappings[5].huge and ia64.mappings[5].node_pages == ((0, 1), (2, 2))
    sized = ia64.node_bytes(base_page_size_bytes=16384, huge_page_size_bytes=256 * MB)
    assert sized == {0: 256 * MB, 1: 3 * 16384, 2: 16384 + 2 * 256 * MB}


def test_numastat_p_on_the_snp_guest(corpus: Path) -> None:
    """The corpus quotes 4 of the qemu process's numa_maps lines and its numastat -p row.

    numastat -p on just these lines gives their share; it must not exceed the whole
    process's per-node figures, and nodes 0-1 (outside the interleave set) get nothing.
    """
    text = (corpus / SNP).read_text()
    lines = [line.strip() for line in text.splitlines() if re.match(r"\s+7f[0-9a-f]+ inter", line)]
    assert len(lines) == 4
    table = numastat_process(parse_numa_maps("\n".join(lines)), page_size_bytes=4096,
                             huge_page_size_bytes=2 * MB, nodes=range(4))
    assert table.nodes == (0, 1, 2, 3)
    assert table.row("Private") == (0.0, 0.0, 1126 * 4096 / MB, 1785 * 4096 / MB)
    assert f"{table.row('Private')[2]:.2f}" == "4.40" and f"{table.row('Private')[3]:.2f}" == "6.97"
    whole = re.search(r"242179 \(qemu-system-x86\)\s+([\d. ]+)", text)
    assert whole is not None
    per_node = [float(v) for v in whole.group(1).split()]
    assert per_node == [21.14, 1.61, 39.44, 39.38, 101.57]
    assert all(ours <= theirs for ours, theirs in
               zip(table.node_totals_megabytes, per_node[:4], strict=True))


def test_numastat_p_uses_the_default_huge_page_size(corpus: Path) -> None:
    """numastat.c sizes every 'huge' mapping with Hugepagesize, not kernelpagesize_kB."""
    maps = sections(corpus)["C"]  # two 1 GiB pages
    under_2m = numastat_process(maps, page_size_bytes=4096, huge_page_size_bytes=2 * MB)
    assert under_2m.row("Huge") == (2.0, 2.0)
    under_1g = numastat_process(maps, page_size_bytes=4096, huge_page_size_bytes=1 << 30)
    assert under_1g.row("Huge") == (1024.0, 1024.0) and under_1g.total_megabytes == 2048.0
    assert {n: b / MB for n, b in maps.node_bytes().items() if b} == {0: 1024.0, 1: 1024.0}


def test_numastat_categories(corpus: Path) -> None:
    table = numastat_process(sections(corpus)["F"], page_size_bytes=16384,
                             huge_page_size_bytes=256 * MB)
    assert table.nodes == (0, 1, 2)
    assert table.row("Huge") == (256.0, 0.0, 512.0)
    assert table.row("Stack") == (0.0, 16384 / MB, 0.0)
    assert table.row("Heap") == (0.0, 0.0, 0.0)
    assert table.row("Private") == (0.0, 2 * 16384 / MB, 16384 / MB)


@pytest.mark.parametrize(("line", "mode", "nodes"), [
    ("7f00 weighted interleave:0-1 anon=2 N0=1 N1=1 kernelpagesize_kB=4",
     "weighted interleave", (0, 1)),
    ("7f00 prefer (many):2,3 anon=1 N2=1 kernelpagesize_kB=4", "prefer (many)", (2, 3)),
    ("7f00 bind=static:1 anon=1 N1=1 kernelpagesize_kB=4", "bind", (1,)),
    ("7f00 local anon=1 N0=1 kernelpagesize_kB=4", "local", None),
    ("7f00 prefer:0 stack:1234 anon=1 N0=1 kernelpagesize_kB=4", "prefer", (0,)),
])
def test_policy_spellings(line: str, mode: str, nodes: tuple[int, ...] | None) -> None:
    mapping = parse_numa_maps_line(line)
    assert (mapping.policy_mode, mapping.policy_nodes, mapping.other_tokens) == (mode, nodes, ())


def test_malformed_lines() -> None:
    with pytest.raises(ParseError, match=r"maps:2: bad count"):
        parse_numa_maps("7f00 default anon=1 N0=1\n7f01 default N1=x\n", where="maps")
    with pytest.raises(ParseError, match="bad start address"):
        parse_numa_maps_line("zz default")


def test_this_process() -> None:
    maps = parse_numa_maps(Path("/proc/self/numa_maps").read_text())
    sized = maps.node_bytes()
    assert maps.mappings and sized and all(v is not None and v > 0 for v in sized.values())
