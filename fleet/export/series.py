"""From stored runs to exported series, per the catalogue, kept up to date incrementally. Pure.

A series is (catalogue entry, labels, value). ``LiveExport`` holds the exported runs: results
and case infos only ever grow (the store is append-only), so each is turned into a series and
rendered into its exposition line once; the per-run counts are recomputed on every change.
Results of one attempt that would give the same series twice (a parser matching twice) keep
the first value; the rest are counted in ``duplicates`` instead of exported as conflicts.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fleet import catalogue as cat
from fleet.runs import (
    Attempt,
    Increment,
    ResultRow,
    RunDetail,
    RunInfo,
    RunStatic,
    StoredAttempt,
    summarize,
)

Labels = tuple[tuple[str, str], ...]
MAX_BLOCKS = 64  # encoded blocks kept per family before they are merged into one
RUN_STATUSES = ("running", "completed", "incomplete", "interrupted", "failed")
QUARANTINE_PREFIX = "host quarantined:"


@dataclass(frozen=True)
class Series:
    entry: cat.CatalogueEntry
    labels: Labels
    value: float


@dataclass
class _Run:
    info: RunInfo
    static: RunStatic
    attempts: list[StoredAttempt] = field(default_factory=list)
    missing: int = 0
    axes: dict[str, tuple[str, Labels]] = field(default_factory=dict)


class LiveExport:
    """The exported runs' series; feed it runs, then increments read from the store."""

    def __init__(self, axis_labels: Sequence[str] = ()) -> None:
        if len(axis_labels) > cat.MAX_AXIS_LABELS:
            raise ValueError(f"at most {cat.MAX_AXIS_LABELS} axis labels")
        self._axis_labels = tuple(axis_labels)
        self._runs: dict[str, _Run] = {}
        self._growing: dict[str, list[Series]] = {}  # family name -> results, case infos
        self._blocks: dict[str, list[bytes]] = {}  # family name -> its rendered lines, encoded
        self._pending: dict[str, list[str]] = {}  # lines rendered since the last flush
        self._label_texts: dict[Labels, str] = {}  # sampler series' labels, rendered
        self._entries: dict[tuple[str, str, Labels], cat.CatalogueEntry] = {}
        self._extras: dict[Labels, Labels] = {}  # stored sampler labels -> exported ones
        self._seen: set[tuple[str, Labels]] = set()
        self.duplicates = 0
        self.last_attempt_id = 0

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(self._runs)

    def add_run(self, info: RunInfo, static: RunStatic) -> None:
        run = _Run(info, static)
        self._runs[info.run_id] = run
        base = (("run_id", info.run_id), ("suite", info.suite))
        for case_id, workload, params_json in static.cases:
            params = json.loads(params_json)
            run.axes[case_id] = (workload, tuple(
                (f"axis_{cat.sanitise(a)}", cat.label_value(_text(params[a])))
                for a in self._axis_labels if a in params))
            self._grow(Series(cat.CASE_INFO, (
                *base, ("case_id", case_id), ("workload", workload),
                *((f"param_{cat.sanitise(k)}", cat.label_value(_text(v)))
                  for k, v in sorted(params.items()))), 1.0))
        self._flush()

    def update_info(self, info: RunInfo) -> None:
        self._runs[info.run_id].info = info

    def apply(self, increment: Increment) -> None:
        for run_id, attempt in increment.attempts:
            self._runs[run_id].attempts.append(attempt)
        bases: dict[tuple[str, str, int, str], Labels] = {}
        for run_id, row in increment.results:
            run = self._runs[run_id]
            if row.value is None:
                run.missing += 1
                continue
            key = (run_id, row.case_id, row.repetition, row.host)
            base = bases.get(key)
            if base is None:
                base = bases[key] = (
                    ("run_id", run_id), ("suite", run.info.suite), ("case_id", row.case_id),
                    ("host", row.host), ("repetition", str(row.repetition)))
            entry = self._entries.get((row.metric, row.unit, row.labels))
            if entry is None:
                entry = self._entries[(row.metric, row.unit, row.labels)] = cat.lookup(
                    row.metric, row.unit, row.labels)
            self._grow(_sampler(entry, base, row, self._extras) if entry.source == "sampler"
                       else _workload(base, row, *run.axes.get(row.case_id, ("", ()))))
        self.last_attempt_id = max(self.last_attempt_id, increment.last_attempt_id)
        self._flush()

    def _grow(self, series: Series) -> None:
        ident = (series.entry.name, series.labels)
        if ident in self._seen:
            self.duplicates += 1
            return
        self._seen.add(ident)
        self._growing.setdefault(series.entry.name, []).append(series)
        if series.entry.source != "sampler" or not series.labels:  # labels all its own
            line = sample_line(series)
        else:  # an attempt's sampler results share their labels: render those once
            text = self._label_texts.get(series.labels)
            if text is None:
                text = self._label_texts[series.labels] = _label_text(series.labels)
            line = f"{series.entry.name}{{{text}}} {format_metric_value(series.value)}\n"
        self._pending.setdefault(series.entry.name, []).append(line)

    def _flush(self) -> None:
        """Pending lines -> one encoded block per family (merged when there are many), so a
        rendering joins a few blocks instead of every line."""
        for name, lines in self._pending.items():
            blocks = self._blocks.setdefault(name, [])
            blocks.append("".join(lines).encode())
            if len(blocks) > MAX_BLOCKS:
                blocks[:] = [b"".join(blocks)]
        self._pending.clear()

    def counts(self, runs_by_status: Iterable[tuple[str, int]],
               schema_version: int) -> list[Series]:
        """The per-run and store-wide counts, computed now."""
        out: list[Series] = []
        for run in self._runs.values():
            out.extend(_run_counts(run))
        by_status = dict(runs_by_status)
        for status in sorted({*RUN_STATUSES, *by_status}):
            out.append(Series(cat.RUNS, (("status", status),), float(by_status.get(status, 0))))
        out.append(Series(cat.SCHEMA_VERSION, (), float(schema_version)))
        return out

    def series(self, counts: Iterable[Series]) -> list[Series]:
        """Every series, grouped by family in catalogue order."""
        grouped: dict[str, list[Series]] = {n: list(s) for n, s in self._growing.items()}
        for item in counts:
            grouped.setdefault(item.entry.name, []).append(item)
        return [s for e in cat.CATALOGUE for s in grouped.get(e.name, ())]

    def exposition(self, counts: Iterable[Series]) -> str:
        """The text exposition format (0.0.4) of every series, families in catalogue order."""
        return b"".join(self.chunks(counts)).decode()

    def chunks(self, counts: Iterable[Series]) -> tuple[bytes, ...]:
        """:meth:`exposition` as encoded pieces (joined, they are the text): the stored
        results' blocks are shared, not copied, so this costs little however many series."""
        extra: dict[str, list[str]] = {}
        for item in counts:
            extra.setdefault(item.entry.name, []).append(sample_line(item))
        parts: list[bytes] = []
        for entry in cat.CATALOGUE:
            blocks = self._blocks.get(entry.name, ())
            if not blocks and entry.name not in extra:
                continue
            parts.append(_header(entry))
            parts.extend(blocks)
            if entry.name in extra:
                parts.append("".join(extra[entry.name]).encode())
        return tuple(parts)


@functools.cache
def _header(entry: cat.CatalogueEntry) -> bytes:
    return (f"# HELP {entry.name} {_escape_help(entry.help)}\n"
            f"# TYPE {entry.name} {entry.type}\n").encode()


def attempt_series(run_id: str, suite: str, attempt: Attempt, workload: str) -> list[Series]:
    """The result series of one attempt, as the exporter gives them once it is stored: none
    unless it completed, none for a missing value, the first of two identical series."""
    if attempt.status != "completed":
        return []
    job = attempt.job
    base = (("run_id", run_id), ("suite", suite), ("case_id", job.case_id),
            ("host", attempt.host), ("repetition", str(job.repetition)))
    out: dict[tuple[str, Labels], Series] = {}
    for m in attempt.measurements:
        if m.value is None:
            continue
        labels = tuple(sorted(m.labels))  # as the store gives them back
        row = ResultRow(job.case_id, job.repetition, attempt.host, m.metric, m.value, m.unit,
                        labels)
        entry = cat.lookup(m.metric, m.unit, labels)
        series = (_sampler(entry, base, row) if entry.source == "sampler"
                  else _workload(base, row, workload, ()))
        out.setdefault((entry.name, series.labels), series)
    return list(out.values())


def _sampler(entry: cat.CatalogueEntry, base: Labels, row: ResultRow,
             extras: dict[Labels, Labels] | None = None) -> Series:
    """The series of a sampler result; ``extras`` caches its labels' exported form."""
    extra = None if extras is None else extras.get(row.labels)
    if extra is None:
        extra = tuple(("node" if k == "node" else f"label_{cat.sanitise(k)}",
                       cat.label_value(v)) for k, v in row.labels if k != "source")
        if extras is not None:
            extras[row.labels] = extra
    assert row.value is not None
    return Series(entry, base + extra, row.value)


def _workload(base: Labels, row: ResultRow, workload: str, axes: Labels) -> Series:
    assert row.value is not None
    value, unit = cat.normalise(row.value, row.unit)
    labels = (*base, ("workload", workload), ("metric", cat.sanitise(row.metric)),
              ("unit", unit), *axes,
              *((f"label_{cat.sanitise(k)}", cat.label_value(v)) for k, v in row.labels))
    return Series(cat.WORKLOAD_RESULT, labels, value)


def _run_counts(run: _Run) -> list[Series]:
    info = run.info
    s = summarize(RunDetail(info, run.static.jobs, tuple(run.attempts), run.static.skipped,
                            run.static.cases))
    quarantined = {a.attempt.host for a in run.attempts
                   if (a.attempt.error or "").startswith(QUARANTINE_PREFIX)}
    base = (("run_id", info.run_id), ("suite", info.suite))
    out = [Series(cat.RUN_INFO, (*base, ("status", info.status)), 1.0)]
    for entry, value in ((cat.JOBS, s.jobs_total), (cat.JOBS_COMPLETED, s.jobs_completed),
                         (cat.JOBS_FAILED, s.jobs_failed), (cat.JOBS_NOT_RUN, s.jobs_not_run),
                         (cat.CASES_SKIPPED, len(s.skipped)),
                         (cat.QUARANTINES, len(quarantined)),
                         (cat.RESULTS_MISSING, run.missing)):
        out.append(Series(entry, base, float(value)))
    for tally in s.hosts:
        for status, count in sorted(tally.attempts.items()):
            out.append(Series(cat.ATTEMPTS, (*base, ("host", tally.host), ("status", status)),
                              float(count)))
    return out


# ---- the text format ---------------------------------------------------------------------


def sample_line(series: Series) -> str:
    """``name{label="value",...} value`` (labels sorted, values escaped) and a newline."""
    labels = _label_text(series.labels)
    return (f"{series.entry.name}{{{labels}}} {format_metric_value(series.value)}\n" if labels
            else f"{series.entry.name} {format_metric_value(series.value)}\n")


def _label_text(labels: Labels) -> str:
    return ",".join([f'{k}="{escape_value(v)}"' for k, v in sorted(labels)])


def format_metric_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_value(text: str) -> str:
    """A label value (or OpenMetrics HELP text): backslash, double quote and newline escaped."""
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _text(value: object) -> str:
    """A parameter value as a label: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
