"""Time-series sections of the dashboards: the host samples `fleet export import` writes into
Prometheus with the time each was taken (catalogue ``HOST_SAMPLES``, ``fleet_host_*``). Pure.

These series lie at the run's own time: pick the run's time range in Grafana. They carry the
run/case/host labels but not the case parameters (the exporter's ``fleet_case_info`` lives at
scrape time, not at the samples' time), so the ``kernel_variant`` variable does not filter
them. Counters are read with ``rate(...[$__rate_interval])`` and summed per host (and node):
each job's series covers its own attempt's time, so the sum is the host's rate.
"""

from __future__ import annotations

from fleet import catalogue as cat
from fleet.export.grafana.spec import HOST_SEL, PER_NODE, TOTAL, Panel, Query, Section, unit

_BY_SERIES = {e.stored[0]: e for e in cat.HOST_SAMPLES if e.stored is not None}
SHOOTDOWNS = _BY_SERIES["tlb_shootdowns"]
KVM_FLUSHES = _BY_SERIES["kvm_remote_tlb_flush"]
HINT_FAULTS = _BY_SERIES["numa_hint_faults"]
MIGRATED = _BY_SERIES["numa_pages_migrated"]
SEC_PAGE_TABLES = _BY_SERIES["sec_page_tables_bytes"]
PAGE_TABLES = _BY_SERIES["page_tables_bytes"]
RESIDENT = _BY_SERIES["workload_resident_bytes"]
GIB = 2 ** 30
RATE_UNIT = "cps"  # counts per second: the unit of every rate() panel here
JOB = "run_id, case_id, host, repetition"


def _rate(entry: cat.CatalogueEntry, by: str, extra: str = "") -> str:
    return f"sum by ({by}) (rate({entry.name}{{{HOST_SEL}{extra}}}[$__rate_interval]))"


def _series(title: str, unit_id: str, queries: tuple[Query, ...], description: str,
            width: int = 12) -> Panel:
    return Panel(title, "timeseries", unit_id, queries, description, width, 8)


def _per_gib(entry: cat.CatalogueEntry) -> str:
    """Bytes of ``entry`` per GiB of the workload's resident memory, per job and host."""
    return (f"sum by ({JOB}) ({entry.name}{{{HOST_SEL}}}) / on ({JOB}) "
            f"(sum by ({JOB}) ({RESIDENT.name}{{{HOST_SEL}}}) / {GIB})")


def tlb_section() -> Section:
    return Section("Over time (imported host samples)", (
        _series("TLB shootdowns per second per host", RATE_UNIT,
                (Query(_rate(SHOOTDOWNS, "host", TOTAL), "{{host}}", instant=False),),
                f"rate() of {SHOOTDOWNS.name} (all CPUs of the host)."),
        _series("TLB shootdowns per second per NUMA node", RATE_UNIT,
                (Query(_rate(SHOOTDOWNS, "host, node", PER_NODE), "{{host}} node {{node}}",
                       instant=False),),
                f"rate() of {SHOOTDOWNS.name} per node (the CPUs of each node)."),
        _series("KVM remote TLB flushes per second", RATE_UNIT,
                (Query(_rate(KVM_FLUSHES, "host"), "{{host}}", instant=False),),
                f"rate() of {KVM_FLUSHES.name} (hosts with KVM debugfs only).", 24),
    ))


def memory_section() -> Section:
    per_node = tuple(
        _series(f"{label} per NUMA node", unit(entry),
                (Query(f"max by (host, node) ({entry.name}{{{HOST_SEL}}})",
                       "{{host}} node {{node}}", instant=False),),
                f"{entry.name}: {entry.help}.")
        for entry, label in ((SEC_PAGE_TABLES, "SecPageTables"), (PAGE_TABLES, "PageTables")))
    per_gib = tuple(
        _series(f"{label} per GiB of workload memory", "bytes",
                (Query(_per_gib(entry), "{{host}} {{case_id}}", instant=False),),
                f"{entry.name} of the host over {RESIDENT.name} (GiB) of the case's workload.")
        for entry, label in ((SEC_PAGE_TABLES, "SecPageTables"), (PAGE_TABLES, "PageTables")))
    return Section("Over time (imported host samples)", (*per_node, *per_gib))


def locality_section() -> Section:
    resident = f"max by (host, node, case_id) ({RESIDENT.name}{{{HOST_SEL}}})"
    return Section("Over time (imported host samples)", (
        _series("Workload memory per NUMA node", unit(RESIDENT),
                (Query(resident, "{{host}} node {{node}} {{case_id}}", instant=False),),
                f"{RESIDENT.name}: {RESIDENT.help}.", 24),
        _series("NUMA hinting faults per second", RATE_UNIT,
                (Query(_rate(HINT_FAULTS, "host"), "{{host}}", instant=False),),
                f"rate() of {HINT_FAULTS.name}."),
        _series("NUMA pages migrated per second", RATE_UNIT,
                (Query(_rate(MIGRATED, "host"), "{{host}}", instant=False),),
                f"rate() of {MIGRATED.name}."),
    ))
