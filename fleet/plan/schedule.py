"""Pure planning: Cases x hosts (with their facts) -> Plan.

1. Eligibility: a host runs a case if it meets every requirement (unknown facts never do).
   A case no host meets is a Skip whose reason names each failing requirement and how many
   hosts meet it ("needs >= 2 NUMA nodes (0 of 3 hosts); eligible hosts: none of 3").
2. Assignment: ``every`` puts each repetition on every eligible host; ``any`` puts each
   (case, repetition) on one host, longest first onto the least-loaded eligible host (LPT).
3. Order (``fleet.plan.order``): per host, entries are grouped by variant (provisioned once
   per group, groups in case order, or rotated across hosts and cycled in blocks as the
   suite's ``variant_order`` asks); within a group they run in rounds (every case once before
   any case runs again), each round shuffled with a seed derived from ``seed`` and the host
   name, never starting with the case that ended the previous round: A B A B, not A A B B, so
   drift cannot masquerade as a difference. Same inputs and seed, same plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from fleet.hosts import Host
from fleet.model import DEFAULT_VARIANT_ORDER, Case, Facts, Plan, Requirements, Skip, VariantOrder
from fleet.plan.order import order_queue

GIB = 1 << 30
ONE_GIB_PAGE_BYTES = 1 << 30


@dataclass(frozen=True)
class Candidate:
    host: Host
    facts: Facts


Check = tuple[str, Callable[[Candidate], bool]]


def requirement_checks(req: Requirements) -> list[Check]:
    """One (label, predicate) per requirement that is set; None facts fail every check."""
    checks: list[Check] = []

    def at_least(label: str, minimum: int | None, value: Callable[[Facts], int | None]) -> None:
        if minimum is not None:
            checks.append((label, lambda c: (v := value(c.facts)) is not None and v >= minimum))

    at_least(f">= {req.min_numa_nodes} NUMA nodes", req.min_numa_nodes,
             lambda f: len(f.topology.nodes))
    at_least(f">= {req.min_cpus} CPUs", req.min_cpus, lambda f: f.cpu.logical_cpus)
    if req.min_memory_bytes is not None:
        at_least(f">= {req.min_memory_bytes / GIB:g} GiB memory", req.min_memory_bytes,
                 lambda f: f.mem_total_bytes)
    if req.kvm:
        checks.append(("KVM (/dev/kvm)", lambda c: c.facts.kvm.available))
    if req.iommu:
        checks.append(("an IOMMU", lambda c: c.facts.iommu.present))
    if req.hugepages_1g:
        checks.append(("1 GiB huge pages", lambda c: any(
            p.page_size_bytes == ONE_GIB_PAGE_BYTES for p in c.facts.hugepages)))
    for group in req.groups:
        checks.append((f"inventory group {group}", _in_group(group)))
    if req.host_patterns:
        patterns = req.host_patterns
        checks.append((f"a host name matching {' or '.join(patterns)}",
                       lambda c: any(fnmatchcase(c.host.name, p) for p in patterns)))
    return checks


def _in_group(group: str) -> Callable[[Candidate], bool]:
    return lambda c: group in c.host.groups


def eligibility(req: Requirements, candidates: Sequence[Candidate]
                ) -> tuple[tuple[int, ...], str | None]:
    """Indices of the hosts that meet ``req``, and the skip reason when there are none."""
    checks = requirement_checks(req)
    passed = [[check(c) for c in candidates] for _, check in checks]
    eligible = tuple(i for i in range(len(candidates)) if all(row[i] for row in passed))
    if eligible:
        return eligible, None
    total = len(candidates)
    if total == 0:
        return (), "no host has facts to plan on"
    failing = [f"{label} ({sum(row)} of {total} hosts)"
               for (label, _), row in zip(checks, passed, strict=True) if not all(row)]
    return (), f"needs {', '.join(failing)}; eligible hosts: none of {total}"


def plan(suite: str, cases: Sequence[Case], candidates: Sequence[Candidate], *, seed: int,
         hosts_without_facts: Sequence[str] = (), order: VariantOrder = DEFAULT_VARIANT_ORDER
         ) -> Plan:
    """Assign every (case, repetition) and order each host's queue (``order``: the suite's
    variant_order). Pure and deterministic."""
    cache: dict[Requirements, tuple[tuple[int, ...], str | None]] = {}
    assigned: list[list[tuple[int, int]]] = [[] for _ in candidates]  # (case index, rep)
    loads = [0.0] * len(candidates)
    skipped: list[Skip] = []
    spread_any: list[tuple[int, tuple[int, ...]]] = []
    by_identity: dict[int, tuple[tuple[int, ...], str | None]] = {}  # cases share objects
    for index, case in enumerate(cases):
        found = by_identity.get(id(case.requirements))
        if found is None:
            if case.requirements not in cache:
                cache[case.requirements] = eligibility(case.requirements, candidates)
            found = by_identity[id(case.requirements)] = cache[case.requirements]
        eligible, reason = found
        if reason is not None:
            skipped.append(Skip(case.case_id, reason))
        elif case.spread == "any":
            spread_any.append((index, eligible))
        else:
            for host in eligible:
                assigned[host].extend((index, rep) for rep in range(1, case.repetitions + 1))
                loads[host] += case.planned_seconds * case.repetitions
    _balance(cases, spread_any, assigned, loads)
    ordered = [order_queue(cases, c.host.name, assigned[i], position=i, load_seconds=loads[i],
                           seed=seed, order=order) for i, c in enumerate(candidates)]
    return Plan(suite=suite, seed=seed, cases=tuple(cases), queues=tuple(q for q, _ in ordered),
                skipped=tuple(skipped), hosts_without_facts=tuple(hosts_without_facts),
                notes=tuple(note for _, notes in ordered for note in notes))


def _balance(cases: Sequence[Case], spread_any: Sequence[tuple[int, tuple[int, ...]]],
             assigned: list[list[tuple[int, int]]], loads: list[float]) -> None:
    """Longest processing time first (of equal ones, the fewest eligible hosts first), each
    onto its least-loaded eligible host. Lazy heaps: one per eligible set, fixed on pop."""
    units = sorted(((-cases[i].planned_seconds, i, rep, eligible)
                    for i, eligible in spread_any
                    for rep in range(1, cases[i].repetitions + 1)),
                   key=lambda u: (u[0], len(u[3]), u[1], u[2]))
    heaps: dict[tuple[int, ...], list[tuple[float, int]]] = {}
    for negative_seconds, index, rep, eligible in units:
        heap = heaps.get(eligible)
        if heap is None:
            heap = heaps[eligible] = [(loads[h], h) for h in eligible]
            heapq.heapify(heap)
        while heap[0][0] != loads[heap[0][1]]:  # stale: that host got work via another heap
            heapq.heapreplace(heap, (loads[heap[0][1]], heap[0][1]))
        host = heap[0][1]
        loads[host] -= negative_seconds
        heapq.heapreplace(heap, (loads[host], host))
        assigned[host].append((index, rep))
