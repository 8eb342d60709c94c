"""What ``fleet plan`` calls: suite file + hosts' facts -> Plan, and a JSON-able summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleet.config.suite import Suite
from fleet.errors import ConfigError
from fleet.hosts import Host
from fleet.model import Case, Facts, Plan
from fleet.plan.matrix import DEFAULT_MAX_JOBS, expand
from fleet.plan.order import variant_text
from fleet.plan.provisioning import GroupProvisioning, plan_provisioning
from fleet.plan.schedule import Candidate, plan

if TYPE_CHECKING:
    from fleet.config.inventory import Inventory

_REASONS_SHOWN = 3
MAX_SEED = 2**63 - 1


def plan_suite(suite: Suite, hosts_facts: Sequence[Facts], hosts: Sequence[Host], *,
               seed: int, where: str, max_jobs: int = DEFAULT_MAX_JOBS,
               host_variants: Mapping[str, tuple[str, ...]] | None = None) -> Plan:
    """Expand the (already read and parsed) suite, plan it on the hosts that have facts;
    ``where`` (the suite's path) is named in errors. The file is not read again: what is
    planned is what was read.

    Hosts without facts are listed in ``Plan.hosts_without_facts``. ConfigError if the
    suite is invalid, a fact names no inventory host, no case can run on any host, or the
    plan has more than ``max_jobs`` jobs (cases x repetitions x hosts), or a ``kernel`` value
    names no variant of a host it is planned on that declares variants (``host_variants``:
    host -> its inventory's variant names; a host without any takes a kernel release).
    """
    check_seed(seed)
    cases = expand(suite, max_jobs=max_jobs)
    by_name = {f.host: f for f in hosts_facts}
    unknown = sorted(set(by_name) - {h.name for h in hosts})
    if unknown:
        raise ConfigError(f"facts for hosts not in the inventory: {', '.join(unknown)}",
                          where=where, hint="pass the inventory the facts came from")
    candidates = [Candidate(h, by_name[h.name]) for h in hosts if h.name in by_name]
    result = plan(suite.name, cases, candidates, seed=seed,
                  hosts_without_facts=[h.name for h in hosts if h.name not in by_name],
                  order=suite.variant_order)
    if len(result.skipped) == len(cases):
        raise ConfigError(
            f"no case of suite {suite.name} can run on the {len(candidates)} host(s) "
            f"given: {_reasons(result)}", where=where,
            hint="relax the suite's requires, or plan on hosts that meet them" if candidates
            else "gather the hosts' facts first (fleet facts, or fleet plan --gather); a host "
                 "that cannot be reached has none")
    if result.entry_count > max_jobs:
        raise ConfigError(
            f"the plan has {result.entry_count} jobs (cases x repetitions x hosts), more than "
            f"{max_jobs}", where=where,
            hint="narrow the suite, plan on fewer hosts (--limit), or allow more with "
                 "--max-jobs N")
    check_variant_names(suite, result, host_variants or {})
    return result


def check_variant_names(suite: Suite, result: Plan,
                        host_variants: Mapping[str, tuple[str, ...]]) -> None:
    """ConfigError (the suite's file:line) when a host that declares ``fleet_variants`` is
    planned a ``kernel`` value that is not one of them."""
    cases = {case.case_id: case for case in result.cases}
    for queue in result.queues:
        names = host_variants.get(queue.host)
        if not names:
            continue
        for group in queue.groups:
            kernel = dict(group.variant).get("kernel")
            if kernel is None or str(kernel) in names or not group.entries:
                continue
            case = cases[group.entries[0].case_id]
            raise ConfigError(
                f"kernel {kernel!r} is not a variant of host {queue.host} (its variants: "
                f"{', '.join(names)})", where=_kernel_where(suite, case.workload, case.source),
                hint="name one of the host's fleet_variants, or declare this one in the "
                     "inventory")


def _kernel_where(suite: Suite, workload: str, fallback: str) -> str:
    """file:line of the entry's kernel axis (else of the entry) that set this value."""
    for entry in suite.entries:
        if entry.name == workload:
            axis = next((a for a in entry.axes if a.name == "kernel"), None)
            return axis.where if axis is not None else entry.where
    return fallback or suite.source


def check_suite_size(suite: Suite, max_jobs: int) -> None:
    """ConfigError (file:line) when the suite alone has more than ``max_jobs`` cases x
    repetitions: checked before any host is touched."""
    expand(suite, max_jobs=max_jobs)


def check_seed(seed: int) -> None:
    """The seed is stored in SQLite (a signed 64-bit integer): 0 <= seed < 2**63."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed {seed} is out of range", where="--seed",
                          hint=f"give an integer from 0 to {MAX_SEED} (2**63 - 1)")


def _reasons(result: Plan) -> str:
    counts = Counter(skip.reason for skip in result.skipped)
    shown = [f"{reason} [{n} case{'s' if n != 1 else ''}]"
             for reason, n in counts.most_common(_REASONS_SHOWN)]
    more = len(counts) - len(shown)
    return "; ".join(shown) + (f"; and {more} more reason(s)" if more > 0 else "")


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "workload": case.workload, "kind": case.kind, "params": dict(case.params),
        "knobs": dict(case.knobs), "variant": dict(case.variant),
        "repetitions": case.repetitions, "timeout_seconds": case.timeout_seconds,
        "estimate_seconds": case.estimate_seconds, "spread": case.spread,
    }


def provisioning_needed(result: Plan, hosts_facts: Sequence[Facts], hosts: Sequence[Host],
                        releases: Mapping[str, Mapping[str, str]] | None = None,
                        declared: Mapping[str, Mapping[str, str]] | None = None
                        ) -> tuple[GroupProvisioning, ...]:
    """Per host, each variant group it is not in yet and how it would get there
    (fleet.plan.provisioning: knob, reload, kexec, reboot, unknown, impossible); ``releases``:
    kernel_releases() of the inventory; ``declared``: declared_variants() of it."""
    boot = {h.name: h.boot for h in hosts if h.boot is not None}
    return plan_provisioning(result.queues, {f.host: f for f in hosts_facts}, boot, releases,
                             declared)


def declared_variants(inventory: Inventory) -> dict[str, dict[str, str]]:
    """host -> its declared variants (fleet_variants) -> their kinds."""
    return {host: {v.name: v.kind for v in p.variants}
            for host, p in inventory.provisioning.items() if p.variants}


def kernel_releases(inventory: Inventory) -> dict[str, dict[str, str]]:
    """host -> its declared package/deb variants -> their kernel releases (none declared: {}),
    so a ``kernel`` value naming a variant is met on a host that runs its release."""
    if not any(p.variants for p in inventory.provisioning.values()):
        return {}
    from fleet.provision.variants.debs import variant_releases

    return variant_releases(inventory.provisioning)


def _provisioning_json(group: GroupProvisioning) -> dict[str, Any]:
    reach = group.provisioning
    return {"host": group.host, "group": group.group, "variant": dict(group.variant),
            "cases": list(group.case_ids),
            "how": reach.how, "runs_without_provisioning": reach.failure() is None,
            "reason": reach.failure(),
            "steps": [{"name": s.name, "wanted": s.wanted, "current": s.current, "how": s.how,
                       "why": s.why} for s in reach.steps]}


def plan_summary(result: Plan, provisioning: Sequence[GroupProvisioning] | None = None
                 ) -> dict[str, Any]:
    """The plan as JSON-able data: totals, cases by id, per-host queues, skip reasons (the
    stored plan's document, fleet.codec). With ``provisioning`` (``provisioning_needed``),
    as `fleet plan --json` shows it: each variant group also says ``how`` the host reaches it
    (None: it already is that variant), ``provisioning`` lists the groups needing a step,
    each host's ``order`` names its groups' variants in queue order (A B A B, or rotated, as
    the suite's variant_order asks), and ``notes`` say what the planner decided (e.g. fewer
    blocks than asked)."""
    data = _summary(result)
    if provisioning is not None:
        how = {(g.host, g.group): g.provisioning.how for g in provisioning}
        data["notes"] = list(result.notes)
        for host, queue in zip(data["hosts"], result.queues, strict=True):
            host["order"] = [variant_text(g.variant) for g in queue.groups]
            for number, group in enumerate(host["groups"]):
                group["how"] = how.get((host["host"], number))
        data["provisioning"] = [_provisioning_json(g) for g in provisioning]
    return data


def _summary(result: Plan) -> dict[str, Any]:
    return {
        "suite": result.suite,
        "seed": result.seed,
        "totals": {
            "cases": len(result.cases),
            "planned_cases": len(result.cases) - len(result.skipped),
            "skipped_cases": len(result.skipped),
            "runs": result.entry_count,
            "hosts": len(result.queues),
            "hosts_without_facts": len(result.hosts_without_facts),
            "estimate_seconds": result.estimate_seconds,
            "work_seconds": result.work_seconds,
        },
        "cases": {case.case_id: _case_json(case) for case in result.cases},
        "hosts": [
            {"host": q.host, "runs": sum(len(g.entries) for g in q.groups),
             "estimate_seconds": q.estimate_seconds,
             "groups": [{"variant": dict(g.variant),
                         "queue": [[e.case_id, e.repetition] for e in g.entries]}
                        for g in q.groups]}
            for q in result.queues],
        "skipped": [{"case_id": s.case_id, "reason": s.reason} for s in result.skipped],
        "hosts_without_facts": list(result.hosts_without_facts),
    }
