"""A run's stored host samples -> the catalogue's ``fleet_host_*`` time series. Pure.

Each stored series of an attempt (fleet.sampling.collect) becomes the series of its catalogue family
(:data:`fleet.catalogue.HOST_SAMPLES`) labelled run_id, suite, case_id, host,
repetition (and node where stored). The attempts of one job share a series: their points are
merged in time order. Timestamps are the samples' wall-clock times in integer milliseconds
(Prometheus' resolution); two points in the same millisecond keep the later-stored one;
points without a value are left out (a missing value is never written as 0). Series the
catalogue does not know (a newer sampler's) are skipped and named in ``skipped``.

:func:`openmetrics` renders them as OpenMetrics text with timestamps, the input of
``promtool tsdb create-blocks-from openmetrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from fleet import catalogue as cat
from fleet.export.series import escape_value, format_metric_value
from fleet.runs import StoredSeries

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TimeSeries:
    """One series to write: its family, its labels (sorted, without ``__name__``) and its
    (unix milliseconds, value) points, strictly increasing in time."""

    entry: cat.CatalogueEntry
    labels: Labels
    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class HostSeries:
    series: tuple[TimeSeries, ...]
    skipped: tuple[str, ...]  # stored series names the catalogue does not know

    @property
    def samples(self) -> int:
        return sum(len(s.points) for s in self.series)

    @property
    def first_ms(self) -> int | None:
        return min((s.points[0][0] for s in self.series if s.points), default=None)

    @property
    def last_ms(self) -> int | None:
        return max((s.points[-1][0] for s in self.series if s.points), default=None)


def host_series(run_id: str, suite: str, stored: Iterable[StoredSeries]) -> HostSeries:
    """The series per the catalogue, in catalogue order, then by labels."""
    merged: dict[tuple[str, Labels], dict[int, float]] = {}
    entries: dict[str, cat.CatalogueEntry] = {}
    skipped: set[str] = set()
    for item in stored:
        entry = cat.host_entry(item.series)
        if entry is None:
            skipped.add(item.series)
            continue
        entries[entry.name] = entry
        labels = tuple(sorted((
            ("run_id", run_id), ("suite", suite), ("case_id", item.case_id),
            ("host", item.host), ("repetition", str(item.repetition)),
            *((k, cat.label_value(v)) for k, v in item.labels if k == "node"))))
        points = merged.setdefault((entry.name, labels), {})
        for wall, value in item.points:
            if value is not None:
                points[round(wall * 1000.0)] = float(value)
    order = {e.name: i for i, e in enumerate(cat.HOST_SAMPLES)}
    out = [TimeSeries(entries[name], labels, tuple(sorted(points.items())))
           for (name, labels), points in sorted(merged.items(), key=lambda kv: (
               order[kv[0][0]], kv[0][1]))
           if points]
    return HostSeries(tuple(out), tuple(sorted(skipped)))


# ---- OpenMetrics text with timestamps --------------------------------------------------------


def openmetrics_family(entry: cat.CatalogueEntry,
                       series: Iterable[TimeSeries]) -> Iterator[str]:
    """One family's OpenMetrics text (HELP and TYPE, then each series' points in time order,
    timestamps in seconds with millisecond precision); nothing if it has no series."""
    family = entry.name.removesuffix("_total") if entry.type == "counter" else entry.name
    header = (f"# HELP {family} {escape_value(entry.help)}\n"
              f"# TYPE {family} {entry.type}\n")
    for item in series:
        if header:
            yield header
            header = ""
        labels = ",".join(f'{k}="{escape_value(v)}"' for k, v in item.labels)
        head = f"{entry.name}{{{labels}}} " if labels else f"{entry.name} "
        yield "".join(f"{head}{format_metric_value(v)} {_seconds(ms)}\n" for ms, v in item.points)


def openmetrics(series: Sequence[TimeSeries]) -> Iterator[str]:
    """OpenMetrics 1.0 text of these series, family by family (each family's series
    contiguous, in catalogue order), ending ``# EOF``."""
    for entry in cat.HOST_SAMPLES:
        yield from openmetrics_family(entry, (s for s in series if s.entry is entry))
    yield "# EOF\n"


def _seconds(ms: int) -> str:
    whole, frac = divmod(ms, 1000)
    return f"{whole}.{frac:03d}"


