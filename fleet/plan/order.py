"""Pure: the order of one host's queue (the third stage of ``fleet.plan.schedule``).

The host's entries are grouped by variant (a host is provisioned once per group), groups in
case order. A suite's ``variant_order`` (fleet.model.VariantOrder) may reorder them:

* ``across_hosts: rotate``: the i-th planned host starts with its (i mod n)-th variant, so
  hosts do not all run the variants in the same order (counterbalanced);
* ``blocks: k``: each variant's runs on the host split into k blocks, every case's
  repetitions spread evenly over them (a case with r runs: r // k per block, the first
  r % k blocks one more), and the blocks cycled A B A B: drift (time of day, heat, other
  tenants) then falls on every variant alike. A variant whose cases run fewer than k times
  here has one block per run (said in a plan note). Each extra block costs one more switch.

Within a block, entries run in rounds (every case once before any case runs again), each
round shuffled with a seed derived from ``seed`` and the host name, never starting with the
case that ended the previous round. The default order (same, 1 block) is the plan as it was
before ``variant_order`` existed, entry for entry.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from fleet.model import Assignment, Case, HostQueue, PlanEntry, VariantGroup, VariantOrder

Entry = tuple[int, int]  # (case index, repetition)


def variant_text(variant: Assignment) -> str:
    """``kernel=a kvm.eager_page_split=N``; no variant: ``-``."""
    return " ".join(f"{k}={v}" for k, v in variant) or "-"


def order_queue(cases: Sequence[Case], host: str, entries: Sequence[Entry], *, position: int,
                load_seconds: float, seed: int, order: VariantOrder
                ) -> tuple[HostQueue, tuple[str, ...]]:
    """The host's queue (``position``: its index among the planned hosts), and plan notes."""
    rng = random.Random(f"{seed}:{host}")
    by_variant: dict[Assignment, list[Entry]] = {}
    for index, rep in sorted(entries):
        by_variant.setdefault(cases[index].variant, []).append((index, rep))
    variants = list(by_variant)
    if order.across_hosts == "rotate" and variants:
        start = position % len(variants)
        variants = variants[start:] + variants[:start]
    blocks = {v: split_blocks(by_variant[v], order.blocks) for v in variants}
    notes = tuple(
        f"{host}: variant {variant_text(v)} runs each case at most {len(blocks[v])} time(s) "
        f"here, fewer than variant_order blocks {order.blocks}: {len(blocks[v])} block(s)"
        for v in variants if len(variants) > 1 and len(blocks[v]) < order.blocks)
    groups = tuple(
        VariantGroup(variant, tuple(PlanEntry(cases[i].case_id, rep, host,
                                              cases[i].planned_seconds)
                                    for i, rep in interleave(sorted(block), rng)))
        for variant, block in cycle_blocks(variants, blocks))
    return HostQueue(host=host, groups=groups, estimate_seconds=load_seconds), notes


def split_blocks(entries: Sequence[Entry], blocks: int) -> list[list[Entry]]:
    """``entries`` (sorted) in at most ``blocks`` blocks, each case's repetitions spread
    evenly (the earlier blocks one more); as many blocks as the most runs of any case."""
    by_case: dict[int, list[Entry]] = {}
    for entry in entries:
        by_case.setdefault(entry[0], []).append(entry)
    count = min(blocks, max((len(runs) for runs in by_case.values()), default=0))
    out: list[list[Entry]] = [[] for _ in range(count)]
    for runs in by_case.values():
        start = 0
        for k in range(count):
            size = len(runs) // count + (1 if k < len(runs) % count else 0)
            out[k].extend(runs[start:start + size])
            start += size
    return out


def cycle_blocks(variants: Sequence[Assignment], blocks: dict[Assignment, list[list[Entry]]]
                 ) -> list[tuple[Assignment, list[Entry]]]:
    """The first block of each variant, then the second of each, ...: A B A B. Two blocks of
    one variant that would follow each other (the other variants have run out) are one."""
    out: list[tuple[Assignment, list[Entry]]] = []
    for k in range(max((len(b) for b in blocks.values()), default=0)):
        for variant in variants:
            if k >= len(blocks[variant]):
                continue
            if out and out[-1][0] == variant:
                out[-1][1].extend(blocks[variant][k])
            else:
                out.append((variant, list(blocks[variant][k])))
    return out


def interleave(entries: Sequence[Entry], rng: random.Random) -> list[Entry]:
    """Rounds (the n-th run of every case), each shuffled; no case twice in a row at a seam."""
    rounds: list[list[Entry]] = []
    occurrence: dict[int, int] = {}
    for index, rep in entries:  # sorted by (case index, rep)
        n = occurrence.get(index, 0)
        occurrence[index] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append((index, rep))
    order: list[Entry] = []
    for current in rounds:
        rng.shuffle(current)
        if order and len(current) > 1 and current[0][0] == order[-1][0]:
            swap = rng.randrange(1, len(current))
            current[0], current[swap] = current[swap], current[0]
        order.extend(current)
    return order
