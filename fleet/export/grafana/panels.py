"""The five dashboards: Fleet overview, NUMA locality, Memory overhead, TLB shootdowns, A/B
compare. Pure: specs only (:mod:`fleet.export.grafana.build` renders them)."""

from __future__ import annotations

from fleet import catalogue as cat
from fleet.export.grafana.series import locality_section, memory_section, tlb_section
from fleet.export.grafana.spec import (
    ALL,
    HOST_SEL,
    PER_NODE,
    RUN_SEL,
    STANDARD,
    TOTAL,
    VARIANT_LABEL,
    Dashboard,
    Panel,
    Query,
    Section,
    Variable,
    avg_by,
    per_case,
    per_host,
    run_level,
    unit,
    worst_table,
)

_BY_NAME = {e.name: e for e in cat.SAMPLER}
TLB = _BY_NAME["fleet_tlb_shootdowns_per_second"]
KVM_FLUSHES = _BY_NAME["fleet_kvm_remote_tlb_flushes_per_second"]
HINT_FAULTS = _BY_NAME["fleet_numa_hint_faults_per_second"]
MIGRATED = _BY_NAME["fleet_numa_pages_migrated_per_second"]
SPT_GROWTH = _BY_NAME["fleet_secondary_page_tables_growth_bytes"]
LOCALITY = _BY_NAME["fleet_page_table_locality_ratio"]
SPT_PER_GIB = _BY_NAME["fleet_secondary_page_tables_bytes_per_gib"]
PLACEMENT = _BY_NAME["fleet_placement_ratio"]


def _stat(entry: cat.CatalogueEntry, title: str, description: str) -> Panel:
    return Panel(title, "stat", unit(entry), (Query(run_level(entry)),),
                 f"{description} ({entry.name}, summed over the selected runs)", 4, 4)


def overview() -> Dashboard:
    hosts = f"count(count by (host) ({cat.ATTEMPTS.name}{{{HOST_SEL}}}))"
    attempts = ("sum by (host, status) (max by (run_id, host, status) "
                f"({cat.ATTEMPTS.name}{{{HOST_SEL}}}))")
    runs = f"max by (suite, run_id, status) ({cat.RUN_INFO.name}{{{RUN_SEL}}})"
    progress = tuple(Query(run_level(e), label, instant=False) for e, label in (
        (cat.JOBS_COMPLETED, "completed"), (cat.JOBS_FAILED, "failed"),
        (cat.JOBS_NOT_RUN, "not run")))
    return Dashboard("fleet-overview", "fleet: overview",
                     "Runs, hosts, jobs completed and failed, quarantined hosts.", STANDARD, (
        Section("Runs and hosts", (
            Panel("Runs in the store", "stat", unit(cat.RUNS),
                  (Query(f"sum by (status) ({cat.RUNS.name})", "{{status}}"),),
                  f"Runs in the exported store by status ({cat.RUNS.name}).", 6, 4),
            Panel("Hosts", "stat", "short", (Query(hosts),),
                  f"Hosts with attempts in the selected runs ({cat.ATTEMPTS.name}).", 6, 4),
            _stat(cat.QUARANTINES, "Quarantined hosts",
                  "Hosts quarantined during the runs (attempts failed for 'host quarantined')."),
            _stat(cat.CASES_SKIPPED, "Cases skipped", "Cases no host was eligible for."),
            _stat(cat.RESULTS_MISSING, "Results without value",
                  "Results of completed attempts stored as missing (never exported as 0)."),
            Panel("Runs", "table", "short", (Query(runs, "{{run_id}}"),),
                  f"The selected runs and their status ({cat.RUN_INFO.name}).", 12, 7),
            Panel("Attempts by host and status", "bargauge", unit(cat.ATTEMPTS),
                  (Query(attempts, "{{host}} {{status}}"),),
                  f"Attempts of the selected runs per host and status ({cat.ATTEMPTS.name}).",
                  12, 7),
        )),
        Section("Jobs", (
            _stat(cat.JOBS, "Jobs planned", "Jobs planned (case x repetition x host)."),
            _stat(cat.JOBS_COMPLETED, "Jobs completed", "Jobs with a completed attempt."),
            _stat(cat.JOBS_FAILED, "Jobs failed", "Jobs tried and never completed."),
            _stat(cat.JOBS_NOT_RUN, "Jobs not run", "Jobs never tried, or only interrupted."),
            Panel("Exporter scrape duration", "stat", unit(cat.SCRAPE_DURATION),
                  (Query(f"max({cat.SCRAPE_DURATION.name})"),),
                  f"Seconds the exporter took to read the store ({cat.SCRAPE_DURATION.name}).",
                  4, 4),
            Panel("Jobs over time", "timeseries", unit(cat.JOBS_COMPLETED), progress,
                  "Completed, failed and not-run jobs of the selected runs as scraped "
                  "(a live run climbs).", 24, 8),
        )),
    ))


def numa_locality() -> Dashboard:
    return Dashboard("fleet-numa-locality", "fleet: NUMA locality",
                     "Page-table locality, workload memory placement per host and node, NUMA "
                     "hinting faults and migrations.", STANDARD, (
        Section("Per host and kernel variant (per-case results)", (
            per_host(LOCALITY, title="Page-table locality", description="Share of new "
                     "secondary page-table memory on the nodes holding the workload's memory."),
            per_host(PLACEMENT, title="Workload memory placement", description="Fraction of "
                     "the workload's resident memory on its intended NUMA nodes."),
            per_host(HINT_FAULTS, title="NUMA hinting faults per second",
                     description="NUMA balancing hinting faults."),
            per_host(MIGRATED, title="NUMA pages migrated per second",
                     description="Pages NUMA balancing migrated."),
            worst_table("Worst case per host (recording rules)",
                        ((LOCALITY, "run_host"), (PLACEMENT, "run_host")),
                        "Worst and average over each run's cases, per host, as the recording "
                        "rules of `fleet export rules` record them."),
        )),
        locality_section(),
    ))


def memory_overhead() -> Dashboard:
    return Dashboard("fleet-memory-overhead", "fleet: memory overhead",
                     "SecPageTables and PageTables per GiB of guest memory, by host and kernel "
                     "variant, with the per-node split.", STANDARD, (
        Section("Per host and kernel variant (per-case results)", (
            per_host(SPT_PER_GIB, title="SecPageTables per GiB of guest memory",
                     description="Secondary (KVM/IOMMU) page-table growth per GiB of workload "
                     "memory, in bytes."),
            per_host(SPT_GROWTH, extra=TOTAL, title="SecPageTables growth per host",
                     description="Growth of secondary page-table memory over the case."),
            per_host(SPT_GROWTH, extra=PER_NODE, node=True,
                     title="SecPageTables growth per NUMA node",
                     description="The same growth split by the node the page tables are on."),
            worst_table("Worst case per host (recording rules)", ((SPT_PER_GIB, "run_host"),),
                        "Worst and average SecPageTables per GiB over each run's cases."),
        )),
        memory_section(),
    ))


def tlb_shootdowns() -> Dashboard:
    return Dashboard("fleet-tlb-shootdowns", "fleet: TLB shootdowns",
                     "TLB shootdown IPIs per second per host and per NUMA node; KVM remote "
                     "TLB flushes.", STANDARD, (
        Section("Per host and kernel variant (per-case results)", (
            per_host(TLB, extra=TOTAL, title="TLB shootdowns per second per host",
                     description="TLB shootdown IPIs received by all the host's CPUs."),
            per_host(TLB, extra=PER_NODE, node=True,
                     title="TLB shootdowns per second per NUMA node",
                     description="TLB shootdown IPIs received by each node's CPUs."),
            per_host(KVM_FLUSHES, title="KVM remote TLB flushes per second",
                     description="KVM remote TLB flushes (all VMs on the host)."),
            worst_table("Worst case per host and node (recording rules)",
                        ((TLB, "run_host"), (TLB, "run_host_node")),
                        "Worst and average shootdowns per second over each run's cases."),
        )),
        tlb_section(),
    ))


AB_VARIABLES = (
    STANDARD[0],
    Variable("run_a", "run A", f'{cat.RUN_INFO.name}{{suite=~"$suite"}}', "run_id", False),
    Variable("variant_a", "kernel variant A", f'{cat.CASE_INFO.name}{{run_id=~"$run_a"}}',
             VARIANT_LABEL, False),
    Variable("run_b", "run B", f'{cat.RUN_INFO.name}{{suite=~"$suite"}}', "run_id", False),
    Variable("variant_b", "kernel variant B", f'{cat.CASE_INFO.name}{{run_id=~"$run_b"}}',
             VARIANT_LABEL, False),
    Variable("host", "host", f'{cat.ATTEMPTS.name}{{suite=~"$suite", run_id=~"$run_a|$run_b"}}',
             "host"),
)
AB_FAMILIES = ((TLB, TOTAL), (SPT_PER_GIB, ""), (PLACEMENT, ""), (LOCALITY, ""),
               (HINT_FAULTS, ""), (KVM_FLUSHES, ""))


def _side(entry: cat.CatalogueEntry, extra: str, side: str, by: str = "host") -> str:
    return avg_by(by, per_case(entry, extra=extra, run=f"$run_{side}",
                               variant=f"$variant_{side}"))


def _ab_panels(entry: cat.CatalogueEntry, extra: str) -> tuple[Panel, Panel]:
    bars = Panel(f"{entry.name}: A and B per host", "bargauge", unit(entry),
                 (Query(_side(entry, extra, "a"), "{{host}} A"),
                  Query(_side(entry, extra, "b"), "{{host}} B")),
                 f"{entry.help}. A = run $run_a variant $variant_a, B = run $run_b variant "
                 f"$variant_b; average over the cases, per host ({entry.direction}).", 16, 7)
    ratio = Panel(f"{entry.name}: B / A per host", "table", "percentunit",
                  (Query(f"{_side(entry, extra, 'b')} / {_side(entry, extra, 'a')}",
                         "{{host}}"),),
                  f"B relative to A per host (1 = equal; {entry.direction.replace('_', ' ')})."
                  " A host that ran only one side has no row.", 8, 7)
    return bars, ratio


def ab_compare() -> Dashboard:
    workload = cat.WORKLOAD_RESULT
    by = "host, metric, unit"
    results = Panel("Workload results: A and B per host", "table", unit(workload),
                    (Query(_side(workload, "", "a", by), "{{host}} {{metric}} ({{unit}}) A"),
                     Query(_side(workload, "", "b", by), "{{host}} {{metric}} ({{unit}}) B")),
                    "Every workload result of the two sides, averaged over the cases, in the "
                    "base unit named in its unit label.", 24, 8)
    return Dashboard("fleet-ab-compare", "fleet: A/B compare",
                     "Two kernel variants (or two runs) side by side across machines.",
                     AB_VARIABLES, (
        *(Section(entry.name, _ab_panels(entry, extra)) for entry, extra in AB_FAMILIES),
        Section("Workload results", (results,)),
    ))


def all_dashboards() -> tuple[Dashboard, ...]:
    return overview(), numa_locality(), memory_overhead(), tlb_shootdowns(), ab_compare()


__all__ = ["ALL", "all_dashboards"]
