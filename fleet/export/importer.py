"""`fleet export import`: a run's stored host samples into Prometheus, with their own times.

Two routes, both reading the store read-only (an import never changes it, and can be re-run):

- **remote write** (:func:`import_run` with ``remote_write_url``): batches of at most
  ``batch_samples`` samples POSTed to ``/api/v1/write`` of a Prometheus started with
  ``--web.enable-remote-write-receiver`` (fleet.export.remote_write). Prometheus appends to
  its head block only samples newer than about 1 h before the newest sample it holds (per
  series, newer than the series' last one): older runs, and re-imports, need
  ``out_of_order_time_window`` in its ``storage.tsdb`` config; identical samples are then
  dropped, so a re-import is idempotent. Without it such a batch is refused (HTTP 400) and
  the import stops there, saying how much was written.
- **OpenMetrics** (``openmetrics_path``): the same series as OpenMetrics text with timestamps
  (written to a temporary file, then renamed), for ``promtool tsdb create-blocks-from
  openmetrics FILE DATA_DIR``: blocks for any past time, the route for history.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet import catalogue as cat
from fleet.errors import ConfigError, FleetError
from fleet.export.host_series import HostSeries, TimeSeries, host_series, openmetrics_family
from fleet.export.remote_write import RetryPolicy, send_batches
from fleet.export.remote_write_codec import DEFAULT_BATCH_SAMPLES, write_requests
from fleet.export.store_reader import open_read_only, select_runs
from fleet.runs import RunInfo
from fleet.store import Store
from fleet.store.export_reads import iter_job_samples, stored_series_names

DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class ImportReport:
    run_id: str
    target: str  # the remote-write URL or the OpenMetrics file
    series: int
    samples: int
    requests: int  # remote-write requests sent (0 for OpenMetrics)
    retries: int
    skipped_series: tuple[str, ...]  # stored series the catalogue does not know
    first_unix_seconds: float | None
    last_unix_seconds: float | None
    seconds: float  # wall time of the import


class _Tally:
    """What went out so far (the series are streamed job by job, never all in memory)."""

    def __init__(self) -> None:
        self.series = self.samples = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def take(self, found: HostSeries) -> tuple[TimeSeries, ...]:
        self.series += len(found.series)
        self.samples += found.samples
        first, last = found.first_ms, found.last_ms
        if first is not None:
            self.first_ms = first if self.first_ms is None else min(self.first_ms, first)
        if last is not None:
            self.last_ms = last if self.last_ms is None else max(self.last_ms, last)
        return found.series


def _stream(store: Store, info: RunInfo, tally: _Tally,
            series: str | None = None) -> Iterator[TimeSeries]:
    for stored in iter_job_samples(store, info.run_id, series):
        yield from tally.take(host_series(info.run_id, info.suite, stored))


def _no_samples(store_path: Path, run_id: str) -> FleetError:
    return FleetError(f"run {run_id} has no stored host samples to import",
                      where=str(store_path),
                      hint="runs sample their hosts unless the suite sets sampling off; "
                           "`fleet show RUN_ID` shows what a run stored")


@contextmanager
def _run_snapshot(store_path: Path, run_id: str) -> Iterator[tuple[Store, RunInfo,
                                                                   tuple[str, ...]]]:
    """The read-only store in one read transaction, the run, and the names of its stored
    series the catalogue does not know (skipped); StoreError for an unknown run, FleetError
    when it stored no samples."""
    with open_read_only(store_path) as store, store.read_snapshot():
        (info,) = select_runs(store, (run_id,), None)
        names = stored_series_names(store, run_id)
        if not names:
            raise _no_samples(store_path, run_id)
        yield store, info, tuple(n for n in names if cat.host_entry(n) is None)


def load_host_series(store_path: Path, run_id: str) -> HostSeries:
    """The whole run's host series in memory (tests, benchmarks; the importer streams)."""
    with _run_snapshot(store_path, run_id) as (store, info, skipped):
        series = tuple(_stream(store, info, _Tally()))
    return HostSeries(series, skipped)


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--remote-write {url!r} is not an http(s) URL",
                          where="fleet export import",
                          hint="e.g. --remote-write http://127.0.0.1:9090/api/v1/write")
    return url


def import_run(store_path: Path, run_id: str, *, remote_write_url: str | None = None,
               openmetrics_path: Path | None = None,
               batch_samples: int = DEFAULT_BATCH_SAMPLES,
               policy: RetryPolicy = DEFAULT_POLICY) -> ImportReport:
    """Import one run by exactly one route; FleetError (one line) on any failure."""
    if (remote_write_url is None) == (openmetrics_path is None):
        raise ConfigError("give exactly one of --remote-write URL and --openmetrics FILE",
                          where="fleet export import")
    if batch_samples < 1:
        raise ConfigError("--batch-samples must be >= 1", where="fleet export import")
    url = None if remote_write_url is None else check_url(remote_write_url)
    started = time.perf_counter()
    tally = _Tally()
    requests = retries = 0
    with _run_snapshot(store_path, run_id) as (store, info, skipped):
        if url is not None:
            sent = send_batches(url, write_requests(_stream(store, info, tally),
                                                    batch_samples), policy)
            requests, retries = sent.requests, sent.retries
        else:
            assert openmetrics_path is not None
            write_openmetrics(openmetrics_path, store, info, tally)
    if tally.samples == 0:
        raise _no_samples(store_path, run_id)
    first, last = tally.first_ms, tally.last_ms
    return ImportReport(run_id, url or str(openmetrics_path), tally.series, tally.samples,
                        requests, retries, skipped,
                        None if first is None else first / 1000.0,
                        None if last is None else last / 1000.0,
                        time.perf_counter() - started)


def write_openmetrics(path: Path, store: Store, info: RunInfo, tally: _Tally) -> None:
    """The run's OpenMetrics text, family by family (one streamed pass over the store per
    family), written whole or not at all (temporary file, then rename)."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write the OpenMetrics file: {exc.strerror or exc}",
                          where=str(path), hint="pick a writable path") from exc
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for entry in cat.HOST_SAMPLES:
                assert entry.stored is not None
                for chunk in openmetrics_family(entry, _stream(store, info, tally,
                                                               entry.stored[0])):
                    out.write(chunk)
            out.write("# EOF\n")
        if tally.samples == 0:  # every stored series unknown or without values
            raise _no_samples(Path(str(store.path)), info.run_id)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the OpenMetrics file: {exc.strerror or exc}",
                          where=str(path), hint="pick a writable path") from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
