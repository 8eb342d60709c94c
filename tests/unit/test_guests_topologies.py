"""Named NUMA specs -> exact guest topologies (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import LabError
from fleet.lab.vm.topologies import (
    DEFAULT_MEMORY_MIB,
    expected_topology_vars,
    known_specs,
    lookup,
    resolve,
)


def test_known_specs() -> None:
    assert known_specs() == ("2n", "4n", "2n-asym")


def test_2n_is_two_sockets_two_equal_nodes() -> None:
    topo = resolve("2n")
    assert (topo.sockets, topo.cores_per_socket, topo.threads_per_core) == (2, 2, 1)
    assert [(n.node_id, n.cpus, n.memory_mib) for n in topo.nodes] == [
        (0, (0, 1), 1024), (1, (2, 3), 1024)]
    assert [n.distances for n in topo.nodes] == [(10, 20), (20, 10)]
    assert topo.cpu_count == 4
    assert topo.memory_mib == DEFAULT_MEMORY_MIB == 2048


def test_4n_has_four_sockets_and_a_non_uniform_distance_matrix() -> None:
    topo = resolve("4n")
    assert (topo.sockets, topo.cores_per_socket) == (4, 1)
    assert [n.cpus for n in topo.nodes] == [(0,), (1,), (2,), (3,)]
    assert [n.memory_mib for n in topo.nodes] == [512] * 4
    assert [n.distances for n in topo.nodes] == [
        (10, 16, 22, 28), (16, 10, 16, 22), (22, 16, 10, 16), (28, 22, 16, 10)]


def test_2n_asym_splits_cpus_and_memory_three_to_one() -> None:
    topo = resolve("2n-asym")
    assert [n.cpus for n in topo.nodes] == [(0, 1, 2), (3,)]
    assert [n.memory_mib for n in topo.nodes] == [1536, 512]
    # no socket is split between nodes: one core per socket
    assert (topo.sockets, topo.cores_per_socket) == (4, 1)


def test_cpus_and_memory_are_per_guest_parameters() -> None:
    topo = resolve("2n", cpus=8, memory_mib=4096)
    assert (topo.sockets, topo.cores_per_socket) == (2, 4)
    assert [n.cpus for n in topo.nodes] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert [n.memory_mib for n in topo.nodes] == [2048, 2048]


def test_memory_remainder_goes_to_the_last_node() -> None:
    assert [n.memory_mib for n in resolve("4n", memory_mib=2050).nodes] == [512, 512, 512, 514]


def test_unknown_spec_lists_the_known_ones() -> None:
    with pytest.raises(LabError) as info:
        resolve("8n")
    line = str(info.value)
    assert "unknown NUMA spec '8n'" in line
    for name in ("2n", "4n", "2n-asym"):
        assert name in line
    assert "\n" not in line


@pytest.mark.parametrize(("spec", "cpus"), [("4n", 6), ("2n-asym", 2), ("2n", 3), ("2n", 0)])
def test_cpu_counts_that_cannot_be_shared_are_refused(spec: str, cpus: int) -> None:
    with pytest.raises(LabError, match="cannot share"):
        resolve(spec, cpus=cpus)


def test_too_little_memory_is_refused() -> None:
    with pytest.raises(LabError, match="under 128 MiB"):
        resolve("4n", memory_mib=256)


@given(spec=st.sampled_from(known_specs()), factor=st.integers(1, 8),
       memory_mib=st.integers(1024, 65536))
def test_every_topology_is_consistent(spec: str, factor: int, memory_mib: int) -> None:
    weights = sum(lookup(spec).cpu_weights)
    topo = resolve(spec, cpus=weights * factor, memory_mib=memory_mib)
    cpus = [c for n in topo.nodes for c in n.cpus]
    assert cpus == list(range(topo.cpu_count))
    assert topo.memory_mib == memory_mib
    for node in topo.nodes:
        assert len(node.cpus) % topo.cores_per_socket == 0  # whole sockets per node
    matrix = [n.distances for n in topo.nodes]
    for i, row in enumerate(matrix):
        assert row[i] == 10
        for j, value in enumerate(row):
            assert value == matrix[j][i]
            assert i == j or value > 10


def test_expected_topology_vars() -> None:
    assert expected_topology_vars(resolve("2n-asym")) == {
        "spec": "2n-asym", "sockets": 4, "cores_per_socket": 1, "threads_per_core": 1,
        "nodes": [
            {"node_id": 0, "cpus": [0, 1, 2], "memory_mib": 1536, "distances": [10, 24]},
            {"node_id": 1, "cpus": [3], "memory_mib": 512, "distances": [24, 10]},
        ],
    }
