"""Named NUMA topologies for lab guests (pure): a spec name -> the exact topology QEMU is given.

A spec fixes the SHAPE (how CPUs and memory are shared between nodes, the distance matrix);
the total CPU count and memory size are parameters. Every node holds whole sockets: the cores
per socket are the greatest common divisor of the nodes' CPU counts, so no socket is split
between nodes (the Linux scheduler warns about split packages).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from fleet.errors import LabError

DEFAULT_CPUS = 4
DEFAULT_MEMORY_MIB = 2048  # per guest: two or three guests fit a 2-core, 24 GiB machine easily
MIN_NODE_MEMORY_MIB = 128
LOCAL_DISTANCE = 10


@dataclass(frozen=True)
class TopologySpec:
    """The shape of a topology: per node a CPU weight and a memory weight, and distances."""

    name: str
    description: str
    cpu_weights: tuple[int, ...]
    memory_weights: tuple[int, ...]
    distances: tuple[tuple[int, ...], ...]  # row i = distances from node i, 10 on the diagonal

    @property
    def node_count(self) -> int:
        return len(self.cpu_weights)


@dataclass(frozen=True)
class GuestNumaNode:
    node_id: int
    cpus: tuple[int, ...]  # CPU indexes as QEMU numbers them (and Linux in the guest)
    memory_mib: int
    distances: tuple[int, ...]  # row of the distance matrix, ordered by node_id


@dataclass(frozen=True)
class GuestTopology:
    """A resolved topology: what QEMU is told and what the guest kernel must report."""

    spec: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    nodes: tuple[GuestNumaNode, ...]

    @property
    def cpu_count(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core

    @property
    def memory_mib(self) -> int:
        return sum(n.memory_mib for n in self.nodes)


def _chain_distances(count: int, step: int) -> tuple[tuple[int, ...], ...]:
    """Nodes on a line: 10 to itself, 10 + step * hops to the others (symmetric)."""
    return tuple(tuple(LOCAL_DISTANCE + step * abs(i - j) for j in range(count))
                 for i in range(count))


SPECS: dict[str, TopologySpec] = {
    "2n": TopologySpec(
        name="2n", description="2 sockets, 2 equal nodes, distance 20",
        cpu_weights=(1, 1), memory_weights=(1, 1), distances=_chain_distances(2, 10)),
    "4n": TopologySpec(
        name="4n", description="4 sockets, 4 equal nodes on a line: distances 10/16/22/28",
        cpu_weights=(1, 1, 1, 1), memory_weights=(1, 1, 1, 1),
        distances=_chain_distances(4, 6)),
    "2n-asym": TopologySpec(
        name="2n-asym", description="2 unequal nodes: CPUs and memory split 3:1, distance 24",
        cpu_weights=(3, 1), memory_weights=(3, 1), distances=_chain_distances(2, 14)),
}


def known_specs() -> tuple[str, ...]:
    return tuple(SPECS)


def lookup(name: str) -> TopologySpec:
    spec = SPECS.get(name)
    if spec is None:
        known = ", ".join(f"{s.name} ({s.description})" for s in SPECS.values())
        raise LabError(f"unknown NUMA spec {name!r}", where="fleet lab --numa",
                       hint=f"use one of: {known}")
    return spec


def resolve(name: str, *, cpus: int | None = None,
            memory_mib: int | None = None) -> GuestTopology:
    """The topology of spec ``name`` with ``cpus`` CPUs and ``memory_mib`` MiB in total."""
    spec = lookup(name)
    total_cpus = DEFAULT_CPUS if cpus is None else cpus
    total_mib = DEFAULT_MEMORY_MIB if memory_mib is None else memory_mib
    node_cpus = _split_exactly(spec, total_cpus)
    node_mib = _split_memory(spec, total_mib)
    cores = 0
    for count in node_cpus:
        cores = gcd(cores, count)
    nodes, first = [], 0
    for node_id, (count, mib) in enumerate(zip(node_cpus, node_mib, strict=True)):
        nodes.append(GuestNumaNode(node_id=node_id, cpus=tuple(range(first, first + count)),
                                   memory_mib=mib, distances=spec.distances[node_id]))
        first += count
    return GuestTopology(spec=spec.name, sockets=total_cpus // cores, cores_per_socket=cores,
                         threads_per_core=1, nodes=tuple(nodes))


def _split_exactly(spec: TopologySpec, total_cpus: int) -> tuple[int, ...]:
    weight = sum(spec.cpu_weights)
    if total_cpus < weight or total_cpus % weight:
        raise LabError(f"spec {spec.name} cannot share {total_cpus} CPUs between its nodes "
                       f"in the ratio {':'.join(map(str, spec.cpu_weights))}",
                       where="fleet lab --cpus", hint=f"use a multiple of {weight}")
    return tuple(total_cpus // weight * w for w in spec.cpu_weights)


def _split_memory(spec: TopologySpec, total_mib: int) -> tuple[int, ...]:
    """Shares by weight in whole MiB; the last node takes the rounding remainder."""
    weight = sum(spec.memory_weights)
    shares = [total_mib * w // weight for w in spec.memory_weights]
    shares[-1] += total_mib - sum(shares)
    if min(shares) < MIN_NODE_MEMORY_MIB:
        raise LabError(f"spec {spec.name} with {total_mib} MiB leaves a node under "
                       f"{MIN_NODE_MEMORY_MIB} MiB", where="fleet lab --memory",
                       hint=f"give at least {MIN_NODE_MEMORY_MIB * weight} MiB")
    return tuple(shares)


def expected_topology_vars(topology: GuestTopology) -> dict[str, object]:
    """The inventory host var ``fleet_expected_topology``: what facts must find in the guest."""
    return {
        "spec": topology.spec,
        "sockets": topology.sockets,
        "cores_per_socket": topology.cores_per_socket,
        "threads_per_core": topology.threads_per_core,
        "nodes": [{"node_id": n.node_id, "cpus": list(n.cpus), "memory_mib": n.memory_mib,
                   "distances": list(n.distances)} for n in topology.nodes],
    }
