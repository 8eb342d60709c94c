"""Every metric fleet exports, in one catalogue: the exporter and the dashboards both read it.

Pure. Names follow Prometheus conventions: base units in the name (``_seconds``, ``_bytes``,
``_ratio``), ``_total`` on counters. Three sources:

- **sampler**: host-sampling metrics derived per attempt (stored with labels
  ``{"source": "sampler"}``, some also per NUMA node with ``{"node": "N"}``). One family per
  stored (metric, unit); the per-node series carry a ``node`` label, the total has none
  (select it with ``{node=""}``).
- **workload**: whatever a suite's parser reports (``copied_bytes``, ``elapsed_seconds``...).
  These are user-chosen names, so they are NOT turned into metric names (that would put an
  unbounded, suite-defined set of names into fleet's namespace and no dashboard could be
  generated for them). Instead one gauge, ``fleet_workload_result``, carries them with the
  labels ``metric`` (the stored name, sanitised to ``[a-z0-9_]``) and ``unit`` (the base unit
  the value was normalised to: ``ms`` -> ``seconds`` x 1e-3, ``MiB`` -> ``bytes`` x 2**20,
  ``percent`` -> ``ratio`` / 100, ``GB/s`` -> ``bytes_per_second``...; unknown units are
  kept, sanitised, with the value as stored). The suite's own parse labels become
  ``label_<name>``; the case's axis values that the user marks (``--axis-label NAME``, at
  most :data:`MAX_AXIS_LABELS`) become ``axis_<name>``. Every parameter of a case is in
  ``fleet_case_info`` (one series per case) as ``param_<name>``, for PromQL joins on
  ``case_id``.
- **fleet**: operational counts of runs, jobs, attempts and the exporter itself.
- **host** (:data:`HOST_SAMPLES`, ``fleet_host_*``): the sampler's per-sample host series,
  not served by the exporter but imported with their sample times by ``fleet export import``
  (remote write or OpenMetrics); :data:`EVERY` is every family of all four sources.

The vocabulary of metrics lives here for every layer: :data:`Direction` (whether lower or
higher is better, or neither), the one type fleet.compare judges changes by.

Only completed attempts export results; a missing value (None) is never exported as 0: the
series is absent and ``fleet_results_missing`` counts it.

Series budget (the promise a test checks): one run of C cases, R repetitions, on H hosts
(spread ``every``: J = C x R x H jobs), M workload metrics per case and N NUMA nodes exports
at most ``J x (M + S_scalar + S_node x (N + 1)) + C + RUN_SERIES + H x HOST_SERIES``
series, with S_scalar = 11 sampler metrics per attempt, S_node = 2 sampler metrics that also
come per node, RUN_SERIES = 8 per-run series and HOST_SERIES = 5 attempt statuses; plus
STORE_SERIES = 7 for the whole store (runs by status, schema version, scrape duration).
For 1,000 cases x 1 repetition x 3 hosts x 2 nodes with 3 workload metrics:
3,000 x (3 + 11 + 2 x 3) + 1,000 + 8 + 15 + 7 = 61,030 series (:func:`series_budget`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter"]
Direction = Literal["lower_is_better", "higher_is_better", "neutral"]
DIRECTIONS: tuple[Direction, ...] = ("lower_is_better", "higher_is_better", "neutral")
Source = Literal["sampler", "workload", "fleet", "host"]

RESULT_LABELS = ("run_id", "suite", "case_id", "host", "repetition")
RUN_LABELS = ("run_id", "suite")
MAX_AXIS_LABELS = 4
MAX_LABEL_VALUE_CHARS = 64
SAMPLER_SOURCE = "sampler"


@dataclass(frozen=True)
class CatalogueEntry:
    """One exported metric family. ``name`` is the exposition name (counters end ``_total``);
    ``stored`` is the (metric, unit) it comes from in the results table, if any."""

    name: str
    type: MetricType
    help: str
    unit: str
    labels: tuple[str, ...]
    direction: Direction
    source: Source
    stored: tuple[str, str] | None = None
    optional_labels: tuple[str, ...] = ()  # present on some series only (node, axis_*...)


def _sampler(stored: tuple[str, str], name: str, unit: str, direction: Direction,
             help_text: str, *, per_node: bool = False) -> CatalogueEntry:
    return CatalogueEntry(f"fleet_{name}", "gauge", help_text, unit, RESULT_LABELS, direction,
                          "sampler", stored, ("node",) if per_node else ())


SAMPLER: tuple[CatalogueEntry, ...] = (
    _sampler(("tlb_shootdowns_per_second", "per_second"), "tlb_shootdowns_per_second",
             "per_second", "lower_is_better", "TLB shootdown IPIs per second during the "
             "attempt (/proc/interrupts TLB row); per NUMA node with node, total without",
             per_node=True),
    _sampler(("kvm_remote_tlb_flushes_per_second", "per_second"),
             "kvm_remote_tlb_flushes_per_second", "per_second", "lower_is_better",
             "KVM remote TLB flushes per second during the attempt"),
    _sampler(("numa_hint_faults_per_second", "per_second"), "numa_hint_faults_per_second",
             "per_second", "lower_is_better",
             "NUMA hinting faults per second during the attempt (vmstat numa_hint_faults)"),
    _sampler(("numa_pages_migrated_per_second", "per_second"), "numa_pages_migrated_per_second",
             "per_second", "lower_is_better",
             "pages migrated by NUMA balancing per second (vmstat numa_pages_migrated)"),
    _sampler(("sec_page_tables_growth_bytes", "bytes"), "secondary_page_tables_growth_bytes",
             "bytes", "lower_is_better", "growth of secondary (KVM/IOMMU) page-table memory "
             "(SecPageTables) over the attempt; per NUMA node with node, total without",
             per_node=True),
    _sampler(("page_table_locality", "ratio"), "page_table_locality_ratio", "ratio",
             "higher_is_better", "share of new secondary page-table memory on the nodes "
             "holding the workload's memory, weighted by that memory (0..1)"),
    _sampler(("sec_page_tables_bytes_per_gib", "ratio"), "secondary_page_tables_bytes_per_gib",
             "bytes_per_gib", "lower_is_better",
             "secondary page-table growth in bytes per GiB of workload memory"),
    _sampler(("placement_ratio", "ratio"), "placement_ratio", "ratio", "higher_is_better",
             "fraction of the workload's resident memory on its intended NUMA nodes (0..1)"),
    _sampler(("sampler_samples", "count"), "sampler_samples", "count", "neutral",
             "samples the host sampler took during the attempt"),
    _sampler(("sampler_interval_seconds", "seconds"), "sampler_interval_seconds", "seconds",
             "neutral", "median time between the host sampler's periodic samples"),
    _sampler(("sampler_max_gap_seconds", "seconds"), "sampler_max_gap_seconds", "seconds",
             "lower_is_better", "longest gap between two consecutive samples"),
    _sampler(("sampler_agent_cpu_ratio", "ratio"), "sampler_agent_cpu_ratio", "ratio",
             "lower_is_better", "CPU time of fleet's host agent / wall time (its overhead)"),
    _sampler(("kernel_log_problems", "count"), "kernel_log_problems", "count",
             "lower_is_better", "kernel log lines flagged as problems during the attempt "
             "(oops, warnings, hung tasks, OOM...)"),
)

WORKLOAD_RESULT = CatalogueEntry(
    "fleet_workload_result", "gauge", "a workload result of a completed attempt, value "
    "normalised to the base unit in the unit label; metric is the suite's name for it",
    "label:unit", (*RESULT_LABELS, "workload", "metric", "unit"), "neutral", "workload",
    None, ("label_*", "axis_*"))
CASE_INFO = CatalogueEntry(
    "fleet_case_info", "gauge", "1 per case of a run; its parameters as param_<name> labels",
    "info", ("run_id", "suite", "case_id", "workload"), "neutral", "workload", None,
    ("param_*",))


def _fleet(name: str, type_: MetricType, help_text: str, labels: tuple[str, ...], *,
           unit: str = "count", direction: Direction = "neutral") -> CatalogueEntry:
    return CatalogueEntry(name, type_, help_text, unit, labels, direction, "fleet")


RUN_INFO = _fleet("fleet_run_info", "gauge", "1 per exported run; its status as a label",
                  (*RUN_LABELS, "status"), unit="info")
JOBS = _fleet("fleet_jobs", "gauge", "jobs planned in the run (case x repetition x host)",
              RUN_LABELS)
JOBS_COMPLETED = _fleet("fleet_jobs_completed_total", "counter",
                        "jobs of the run with a completed attempt", RUN_LABELS,
                        direction="higher_is_better")
JOBS_FAILED = _fleet("fleet_jobs_failed_total", "counter",
                     "jobs of the run tried and never completed (interruptions aside)",
                     RUN_LABELS, direction="lower_is_better")
JOBS_NOT_RUN = _fleet("fleet_jobs_not_run", "gauge",
                      "jobs of the run never tried, or only interrupted", RUN_LABELS)
CASES_SKIPPED = _fleet("fleet_cases_skipped_total", "counter",
                       "cases of the run the planner skipped (no eligible host)", RUN_LABELS,
                       direction="lower_is_better")
QUARANTINES = _fleet("fleet_host_quarantines_total", "counter",
                     "hosts quarantined during the run, as the store shows them (hosts with "
                     "an attempt failed for 'host quarantined')", RUN_LABELS,
                     direction="lower_is_better")
RESULTS_MISSING = _fleet("fleet_results_missing", "gauge",
                         "results of completed attempts stored without a value (not exported)",
                         RUN_LABELS, direction="lower_is_better")
ATTEMPTS = _fleet("fleet_attempts_total", "counter", "attempts of the run by host and status",
                  (*RUN_LABELS, "host", "status"))
RUNS = _fleet("fleet_runs", "gauge", "runs in the store by status", ("status",))
SCHEMA_VERSION = _fleet("fleet_store_schema_version", "gauge",
                        "schema version of the SQLite store", (), unit="version")
SCRAPE_DURATION = _fleet("fleet_exporter_scrape_duration_seconds", "gauge",
                         "seconds this scrape took to read the store and build the series",
                         (), unit="seconds", direction="lower_is_better")

RUN_ENTRIES = (RUN_INFO, JOBS, JOBS_COMPLETED, JOBS_FAILED, JOBS_NOT_RUN, CASES_SKIPPED,
               QUARANTINES, RESULTS_MISSING)
CATALOGUE: tuple[CatalogueEntry, ...] = (
    *SAMPLER, WORKLOAD_RESULT, CASE_INFO, *RUN_ENTRIES, ATTEMPTS, RUNS, SCHEMA_VERSION,
    SCRAPE_DURATION)

_SAMPLER_BY_STORED = {e.stored: e for e in SAMPLER if e.stored is not None}
RUN_SERIES = len(RUN_ENTRIES)
HOST_SERIES = 5  # attempt statuses: completed, failed, timeout, error, interrupted
RUN_STATUSES = 5  # running, completed, incomplete, interrupted, failed
STORE_SERIES = RUN_STATUSES + 2


def lookup(metric: str, unit: str, labels: tuple[tuple[str, str], ...] = ()) -> CatalogueEntry:
    """The family a stored result goes to: a sampler entry when the result comes from the
    sampler (``source=sampler``) and its (metric, unit) is catalogued, else the generic
    workload gauge."""
    if (SAMPLER_SOURCE in (v for k, v in labels if k == "source")
            and (metric, unit) in _SAMPLER_BY_STORED):
        return _SAMPLER_BY_STORED[(metric, unit)]
    return WORKLOAD_RESULT


def by_name(name: str) -> CatalogueEntry:
    for entry in EVERY:
        if entry.name == name:
            return entry
    raise KeyError(name)


def series_budget(*, cases: int, repetitions: int, hosts: int, nodes: int,
                  workload_metrics: int) -> int:
    """The most series one run of this shape exports, plus the store-wide ones."""
    jobs = cases * repetitions * hosts
    per_node = sum(1 for e in SAMPLER if "node" in e.optional_labels)
    scalar = len(SAMPLER) - per_node
    per_job = workload_metrics + scalar + per_node * (nodes + 1)
    return jobs * per_job + cases + RUN_SERIES + hosts * HOST_SERIES + STORE_SERIES


# ---- host time series (`fleet export import`) ----------------------------------------------
# The sampler's per-sample series (fleet.sampling.collect, table ``samples``), written into
# Prometheus
# with the time each sample was taken (source "host"; ``stored`` = (samples.series, unit)).
# Labels: RESULT_LABELS (one series per job: the attempts of a job follow one another in
# time), plus ``node`` on per-node series (tlb_shootdowns has both: the host total has no
# node label). Not in CATALOGUE (the exporter's families): see EVERY. At most 7 + 4 x N
# series per job on an N-node host, at most 600 points each (fleet.sampling.collect.thin).


def _host(series: str, name: str, type_: MetricType, unit: str,  # noqa: PLR0917
          direction: Direction, help_text: str, *, node: str = "") -> CatalogueEntry:
    labels = (*RESULT_LABELS, "node") if node == "always" else RESULT_LABELS
    return CatalogueEntry(f"fleet_host_{name}", type_, help_text, unit, labels, direction,
                          "host", (series, unit), ("node",) if node == "optional" else ())


HOST_SAMPLES: tuple[CatalogueEntry, ...] = (
    _host("tlb_shootdowns", "tlb_shootdowns_total", "counter", "count", "lower_is_better",
          "TLB shootdown IPIs received since the attempt's first sample (/proc/interrupts "
          "TLB row); per NUMA node with node, all CPUs without", node="optional"),
    _host("nr_tlb_remote_flush", "tlb_remote_flushes_total", "counter", "count",
          "lower_is_better", "remote TLB flushes requested (/proc/vmstat nr_tlb_remote_flush;"
          " CONFIG_DEBUG_TLBFLUSH kernels only)"),
    _host("nr_tlb_remote_flush_received", "tlb_remote_flushes_received_total", "counter",
          "count", "lower_is_better", "remote TLB flushes received "
          "(/proc/vmstat nr_tlb_remote_flush_received; CONFIG_DEBUG_TLBFLUSH kernels only)"),
    _host("numa_hint_faults", "numa_hint_faults_total", "counter", "count", "lower_is_better",
          "NUMA hinting faults since boot (/proc/vmstat numa_hint_faults)"),
    _host("numa_pages_migrated", "numa_pages_migrated_total", "counter", "count",
          "lower_is_better", "pages migrated by NUMA balancing since boot "
          "(/proc/vmstat numa_pages_migrated)"),
    _host("kvm_remote_tlb_flush", "kvm_remote_tlb_flushes_total", "counter", "count",
          "lower_is_better", "KVM remote TLB flushes, all VMs (debugfs kvm/remote_tlb_flush)"),
    _host("agent_cpu_seconds", "agent_cpu_seconds_total", "counter", "seconds",
          "lower_is_better", "CPU time of fleet's host agent (its sampling overhead)"),
    _host("sec_page_tables_bytes", "secondary_page_tables_bytes", "gauge", "bytes",
          "lower_is_better", "secondary (KVM/IOMMU) page-table memory on the NUMA node "
          "(nodeN/meminfo SecPageTables; Linux >= 6.1)", node="always"),
    _host("page_tables_bytes", "page_tables_bytes", "gauge", "bytes", "lower_is_better",
          "page-table memory on the NUMA node (nodeN/meminfo PageTables)", node="always"),
    _host("workload_resident_bytes", "workload_resident_bytes", "gauge", "bytes", "neutral",
          "resident memory of the workload's process tree on the NUMA node "
          "(/proc/PID/numa_maps)", node="always"),
)
EVERY: tuple[CatalogueEntry, ...] = (*CATALOGUE, *HOST_SAMPLES)
_HOST_BY_SERIES = {e.stored[0]: e for e in HOST_SAMPLES if e.stored is not None}


def host_entry(series: str) -> CatalogueEntry | None:
    """The family a stored sample series (samples.series) is imported as; None: not
    catalogued (a newer sampler's series: skipped, and counted, by the importer)."""
    return _HOST_BY_SERIES.get(series)


# ---- units and names ---------------------------------------------------------------------

_UNITS: dict[str, tuple[str, float]] = {
    **{u: ("seconds", 1.0) for u in ("s", "sec", "secs", "second", "seconds")},
    **{u: ("seconds", 1e-3) for u in ("ms", "msec", "millisecond", "milliseconds")},
    **{u: ("seconds", 1e-6) for u in ("us", "usec", "microsecond", "microseconds")},
    **{u: ("seconds", 1e-9) for u in ("ns", "nsec", "nanosecond", "nanoseconds")},
    **{u: ("seconds", 60.0) for u in ("min", "minute", "minutes")},
    **{u: ("bytes", 1.0) for u in ("b", "byte", "bytes")},
    "kb": ("bytes", 1e3), "mb": ("bytes", 1e6), "gb": ("bytes", 1e9), "tb": ("bytes", 1e12),
    "kib": ("bytes", 2.0 ** 10), "mib": ("bytes", 2.0 ** 20), "gib": ("bytes", 2.0 ** 30),
    "tib": ("bytes", 2.0 ** 40),
    "b/s": ("bytes_per_second", 1.0), "kb/s": ("bytes_per_second", 1e3),
    "mb/s": ("bytes_per_second", 1e6), "gb/s": ("bytes_per_second", 1e9),
    "kib/s": ("bytes_per_second", 2.0 ** 10), "mib/s": ("bytes_per_second", 2.0 ** 20),
    "gib/s": ("bytes_per_second", 2.0 ** 30),
    **{u: ("per_second", 1.0) for u in ("per_second", "/s", "hz", "ops/s")},
    "ratio": ("ratio", 1.0), "percent": ("ratio", 0.01), "%": ("ratio", 0.01),
}
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


def sanitise(text: str) -> str:
    """``"dirty memory time"`` -> ``dirty_memory_time``: lower case, [a-z0-9_], no leading
    digit, never empty."""
    name = _NOT_NAME.sub("_", text.strip().lower()).strip("_")
    if not name:
        return "unnamed"
    return f"_{name}" if name[0].isdigit() else name


def normalise(value: float, unit: str) -> tuple[float, str]:
    """(value in the base unit, base unit); unknown units keep the value, sanitised unit.
    Units are matched case-insensitively (``MiB`` = ``mib``; ``Mb`` is read as ``MB``)."""
    known = _UNITS.get(unit.strip().lower())
    if known is None:
        return value, sanitise(unit)
    base, factor = known
    return (value if factor == 1.0 else value * factor), base


def label_value(text: str) -> str:
    """Label values are bounded: at most MAX_LABEL_VALUE_CHARS characters."""
    return text if len(text) <= MAX_LABEL_VALUE_CHARS else text[:MAX_LABEL_VALUE_CHARS - 1] + "~"
