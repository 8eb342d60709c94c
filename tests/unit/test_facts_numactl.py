"""``numactl -H`` parser against every real output in corpus/numa_outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import ParseError
from fleet.facts.numactl import NumactlHardware, parse_numactl_hardware


def load(corpus: Path, name: str) -> NumactlHardware:
    path = corpus / "numa_outputs" / name
    return parse_numactl_hardware(path.read_text(), source=name)


def cpus_per_node(hw: NumactlHardware) -> dict[int, tuple[int, ...]]:
    return {n.node_id: n.cpus for n in hw.nodes}


def memory(hw: NumactlHardware) -> list[tuple[int, int | None, int | None]]:
    return [(n.node_id, n.size_mb, n.free_mb) for n in hw.nodes]


def test_epyc7401_memoryless_nodes_no_distance_table(corpus: Path) -> None:
    hw = load(corpus, "numactl_--hardware__epyc7401_8node_memoryless_nodes.txt")
    assert hw.node_ids == tuple(range(8))
    cpus = cpus_per_node(hw)
    for node, first in zip(range(8), (0, 2, 4, 6, 1, 3, 5, 7), strict=True):
        assert cpus[node] == tuple(range(first, 96, 8))  # stride-8 interleave
    assert memory(hw) == [(0, 0, 0), (1, 31584, 30397), (2, 0, 0), (3, 0, 0), (4, 0, 0),
                          (5, 32214, 31625), (6, 0, 0), (7, 0, 0)]
    assert hw.distances is None
    assert hw.distance(0, 1) is None
    assert hw.first_line == 2  # after the " # numactl --hardware" line


def test_hadoop_2node_96cpu(corpus: Path) -> None:
    hw = load(corpus, "numactl_--hardware__hadoop_yarn_doc_2node_96cpu.txt")
    cpus = cpus_per_node(hw)
    assert cpus[0] == tuple(range(0, 24)) + tuple(range(48, 72))
    assert cpus[1] == tuple(range(24, 48)) + tuple(range(72, 96))
    assert memory(hw) == [(0, 191297, 186539), (1, 191383, 185914)]
    assert hw.distances == ((10, 21), (21, 10))


def test_4node_72cpu_distances_10_21_31(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__4node_72cpu_distances_10_21_31.txt")
    cpus = cpus_per_node(hw)
    for node in range(4):
        assert cpus[node] == tuple(range(9 * node, 9 * node + 9)) + \
            tuple(range(36 + 9 * node, 45 + 9 * node))  # HT siblings at +36
    assert memory(hw) == [(0, 32062, 31304), (1, 32231, 31807), (2, 32252, 32059),
                          (3, 32251, 32012)]
    assert hw.distances == ((10, 21, 31, 31), (21, 10, 31, 31), (31, 31, 10, 21),
                            (31, 31, 21, 10))
    assert hw.distance(0, 2) == 31
    assert hw.distance(2, 3) == 21


def test_cxl_email_merged_line_is_reported_with_line_number(corpus: Path) -> None:
    name = "numactl_-H__amd_cxl_cpuless_node_email_wrapped.txt"
    with pytest.raises(ParseError) as info:
        load(corpus, name)
    error = info.value
    assert error.where == f"{name}:4"
    assert "node 0 size: 63678 MB node 0 free: 59542 MB" in str(error)


def test_cxl_cpuless_node_once_the_merged_line_is_split(corpus: Path) -> None:
    path = corpus / "numa_outputs" / "numactl_-H__amd_cxl_cpuless_node_email_wrapped.txt"
    text = path.read_text().replace("MB node 0 free:", "MB\nnode 0 free:")
    hw = parse_numactl_hardware(text)
    assert cpus_per_node(hw) == {0: tuple(range(17)), 1: ()}  # node 1: CPU-less CXL memory
    assert memory(hw) == [(0, 63678, 59542), (1, 16122, 15627)]
    assert hw.distances == ((10, 50), (50, 10))


def test_k8s_even_odd_with_trailing_spaces(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__k8s_2node_64cpu_even_odd.txt")
    assert cpus_per_node(hw) == {0: tuple(range(0, 64, 2)), 1: tuple(range(1, 64, 2))}
    assert memory(hw) == [(0, 128320, 15904), (1, 128964, 20287)]
    assert hw.distances == ((10, 21), (21, 10))


def test_kunpeng920_4node(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__kunpeng920_4node_2socket.txt")
    assert cpus_per_node(hw) == {n: tuple(range(24 * n, 24 * n + 24)) for n in range(4)}
    assert memory(hw) == [(0, 192832, 146830), (1, 193533, 175354), (2, 193533, 175718),
                          (3, 193532, 183643)]
    assert hw.distances == ((10, 12, 20, 22), (12, 10, 22, 24), (20, 22, 10, 12),
                            (22, 24, 12, 10))


def test_leonardo_8node_snc4(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__leonardo_dcgp_8node_2socket_snc4.txt")
    assert cpus_per_node(hw) == {n: tuple(range(14 * n, 14 * n + 14)) for n in range(8)}
    assert [n.size_mb for n in hw.nodes] == [63565, 64508, 64508, 64508, 64464, 64508,
                                             64508, 64505]
    assert [n.free_mb for n in hw.nodes] == [61356, 64112, 62688, 64015, 62968, 64133,
                                             64076, 63087]
    assert hw.distances is not None
    for a in range(8):
        for b in range(8):
            same_socket = (a < 4) == (b < 4)
            expected = 10 if a == b else 12 if same_socket else 21
            assert hw.distance(a, b) == expected


def test_linux_mm_2012_trailing_spaces(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__linux-mm_2012_2node_24cpu_trailing_spaces.txt")
    assert cpus_per_node(hw) == {0: (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17),
                                 1: (6, 7, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23)}
    assert memory(hw) == [(0, 12276, 11769), (1, 12288, 11727)]
    assert hw.distances == ((10, 21), (21, 10))


def test_ppc_empty_node0(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__ppc_pseries_empty_node0_before_after.txt")
    assert cpus_per_node(hw) == {0: (), 1: tuple(range(72))}
    assert memory(hw) == [(0, 0, 0), (1, 50912, 45248)]
    assert hw.distances == ((10, 40), (40, 10))


def test_vm_4node_asymmetric(corpus: Path) -> None:
    hw = load(corpus, "numactl_-H__vm_4node_asymmetric_distances.txt")
    assert cpus_per_node(hw) == {0: (0, 1, 2, 3), 1: (4, 5), 2: (6, 7),
                                 3: tuple(range(8, 16))}
    assert memory(hw) == [(0, 3869, 3740), (1, 1969, 1937), (2, 1967, 1873), (3, 7842, 7723)]
    assert hw.distances == ((10, 50, 30, 70), (50, 10, 70, 30), (30, 70, 10, 50),
                            (70, 30, 50, 10))


def test_numactl_block_inside_numastat_notes(corpus: Path) -> None:
    hw = load(corpus, "numastat_numactl__2node_32cpu_with_misses.txt")
    assert cpus_per_node(hw) == {0: tuple(range(8)) + tuple(range(16, 24)),
                                 1: tuple(range(8, 16)) + tuple(range(24, 32))}
    assert memory(hw) == [(0, 64044, 2184), (1, 64507, 13821)]
    assert hw.distances == ((10, 21), (21, 10))


def test_numactl_block_between_numastat_and_numactl_show(corpus: Path) -> None:
    hw = load(corpus, "numastat_numactl__e5-2695v4_2node_36cpu.txt")
    assert cpus_per_node(hw) == {0: tuple(range(18)), 1: tuple(range(18, 36))}
    assert memory(hw) == [(0, 130958, 121570), (1, 131072, 126148)]
    assert hw.distances == ((10, 21), (21, 10))
    assert hw.first_line == 13


NUMACTL_FILES = [
    ("numactl_--hardware__epyc7401_8node_memoryless_nodes.txt", 8),
    ("numactl_--hardware__hadoop_yarn_doc_2node_96cpu.txt", 2),
    ("numactl_-H__4node_72cpu_distances_10_21_31.txt", 4),
    ("numactl_-H__k8s_2node_64cpu_even_odd.txt", 2),
    ("numactl_-H__kunpeng920_4node_2socket.txt", 4),
    ("numactl_-H__leonardo_dcgp_8node_2socket_snc4.txt", 8),
    ("numactl_-H__linux-mm_2012_2node_24cpu_trailing_spaces.txt", 2),
    ("numactl_-H__ppc_pseries_empty_node0_before_after.txt", 2),
    ("numactl_-H__vm_4node_asymmetric_distances.txt", 4),
    ("numastat_numactl__2node_32cpu_with_misses.txt", 2),
    ("numastat_numactl__e5-2695v4_2node_36cpu.txt", 2),
]


def test_every_numactl_output_in_the_corpus_is_covered(corpus: Path) -> None:
    with_block = sorted(p.name for p in (corpus / "numa_outputs").glob("*.txt")
                        if "available:" in p.read_text())
    covered = {name for name, _ in NUMACTL_FILES}
    assert set(with_block) == covered | {"numactl_-H__amd_cxl_cpuless_node_email_wrapped.txt"}


@pytest.mark.parametrize(("name", "count"), NUMACTL_FILES)
def test_node_counts_and_symmetric_distances(corpus: Path, name: str, count: int) -> None:
    hw = load(corpus, name)
    assert len(hw.nodes) == count
    if hw.distances is not None:
        assert hw.distance_node_ids == hw.node_ids
        for a in hw.node_ids:
            assert hw.distance(a, a) == 10


def test_new_numactl_column_width_and_cpu_compress() -> None:
    # numactl >= 2.0.19 prints "% 4d" columns; --cpu-compress prints ranges and a count.
    text = ("available: 2 nodes (0,2)\n"
            "node 0 cpus: 0-13 (14)\nnode 0 size: 63565 MB\nnode 0 free: 61356 MB\n"
            "node 2 cpus:\nnode 2 size: <not available>\nnode 2 free: <not available>\n"
            "node distances:\nnode     0    2 \n   0:   10  160 \n   2:  160   10 \n")
    hw = parse_numactl_hardware(text)
    assert cpus_per_node(hw) == {0: tuple(range(14)), 2: ()}
    assert memory(hw) == [(0, 63565, 61356), (2, None, None)]
    assert hw.distance(0, 2) == 160


@pytest.mark.parametrize(("text", "line"), [
    ("available: 1 nodes (0)\nnode 0 cpus: 0 1\nnode 0 size: 5 MB\n", 3),
    ("available: 1 nodes (0)\nnode 0 cpus: 0 x\nnode 0 size: 5 MB\nnode 0 free: 1 MB\n", 2),
    ("available: 1 nodes (0)\nnode 1 cpus: 0\n", 2),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 5 MB\nnode 0 free: 1 MB\n"
     "node 1 cpus: 1\nnode 1 size: 5 MB\nnode 1 free: 1 MB\nnode distances:\n"
     "node   0   1\n  0:  10  21\n  1:  21\n", 11),
    ("available: 1 nodes (0)\nnode 0 cpus: 0-1 (3)\nnode 0 size: 5 MB\nnode 0 free: 1 MB\n", 2),
])
def test_malformed_blocks_name_the_line(text: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_numactl_hardware(text, source="h: numactl -H")
    assert info.value.where == f"h: numactl -H:{line}"


def test_text_without_a_block_is_an_error() -> None:
    with pytest.raises(ParseError):
        parse_numactl_hardware("numactl: command not found\n")
