"""The Prometheus adapter (the only prometheus_client import): a collector over the store and
a loopback HTTP server for /metrics.

One ``StoreCollector`` per exporter, registered in its own ``CollectorRegistry`` (never the
global one). Each scrape asks SQLite for ``data_version``; while no one has committed to the
store since, the text rendered then is served again, otherwise only what is new is read
(see StoreCollector). ``fleet_exporter_scrape_duration_seconds`` is always fresh.

The HTTP server serves ``StoreCollector.exposition()``, lines rendered once per stored result:
prometheus_client's ``generate_latest`` re-renders every sample on every scrape (~1.5 s for
200,000 series here). ``collect()`` (prometheus_client families) gives the same series; a
test checks both parse to the same samples.

Background rendering (``fleet export serve``): ``start_background()`` re-renders in a thread
whenever the store changed (checked every ``interval_seconds``), and scrapes are served the
last COMPLETE rendering without waiting: a scrape never pays for reading the store (a new run
of 10,000 cases takes seconds to read and render), at the price of being up to one render
behind the store. The first rendering is made before the server listens.
"""

from __future__ import annotations

import gc
import http.client
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    push_to_gateway,
)
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from fleet import catalogue as cat
from fleet.errors import FleetError
from fleet.export.series import LiveExport, Series, attempt_series, sample_line
from fleet.export.store_reader import select_runs
from fleet.runs import Attempt
from fleet.store import DatabaseError, Store
from fleet.store.export_reads import (
    data_version,
    read_increment,
    read_static,
    runs_by_status,
)


@dataclass(frozen=True)
class Selection:
    """Which runs to export: the named ones, else the ``last`` newest (None: all)."""

    run_ids: tuple[str, ...] = ()
    last: int | None = None
    axis_labels: tuple[str, ...] = ()


class StoreCollector(Collector):
    """The catalogue's families for the selected runs, kept in step with the store.

    Thread-safe (one lock). A refresh asks SQLite for ``data_version``: unchanged, nothing is
    read; changed, only attempts (and results) above the watermark are read, and all of a run
    that is new to the selection (runs are created before their attempts, so a run new to the
    selection has none read yet); a run leaving the selection (``--last N`` with N runs
    already) starts over.
    """

    def __init__(self, store: Store, selection: Selection) -> None:
        self._store = store
        self._selection = selection
        self._lock = threading.Lock()
        self._live = LiveExport(selection.axis_labels)
        self._version: int | None = None
        self._counts: list[Series] = []
        self._body = b""
        self.reads = 0  # refreshes that read the store (the rest found it unchanged)
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.background_error: str | None = None  # the last failed background refresh

    def refresh(self) -> None:
        """Bring the series up to date (FleetError on an unknown run id)."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        store = self._store
        version = data_version(store)
        if version == self._version:
            return
        with store.read_snapshot():  # one consistent view of the store
            try:
                runs = select_runs(store, self._selection.run_ids, self._selection.last)
                known = self._live.run_ids
                if tuple(r.run_id for r in runs[:len(known)]) != known:  # a run left: start over
                    self._live, known = LiveExport(self._selection.axis_labels), ()
                mark = self._live.last_attempt_id
                added = runs[len(known):]  # new runs: every attempt of theirs is new
                for info in added:
                    self._live.add_run(info, read_static(store, info.run_id))
                for info in runs:
                    self._live.update_info(info)
                self._live.apply(read_increment(store, known, mark))
                self._live.apply(read_increment(store, tuple(r.run_id for r in added), 0))
                self._counts = self._live.counts(runs_by_status(store), store.schema_version())
            except BaseException:  # half-applied: start over next time (scrapes keep the last)
                self._live = LiveExport(self._selection.axis_labels)
                raise
        # one bytes object: a scrape then sends it with a few send() calls, each of which has
        # to win the GIL back from a busy render thread (thousands of pieces would stall it)
        self._body = b"".join(self._live.chunks(self._counts))
        self._version = version
        self.reads += 1

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        with self._lock:
            self._refresh()
            families = to_families(self._live.series(self._counts))
        yield from families
        yield _duration(time.perf_counter() - started)

    def start_background(self, interval_seconds: float = 1.0) -> None:
        """Render now, then keep re-rendering in a thread when the store changes; from now on
        ``exposition()`` serves the last complete rendering without touching the store.

        A rendering creates up to millions of long-lived objects; the cyclic garbage
        collector would scan them over and over, each full collection holding the GIL (so
        stalling scrapes) for 100-200 ms. So it is off while rendering, and what exists
        afterwards is frozen (``gc.freeze``: never scanned again). The series objects are
        acyclic, so reference counting still frees them when a rendering is replaced; only
        a reference cycle that became garbage while a rendering ran is never collected."""
        self._refresh_frozen()
        stop = threading.Event()
        thread = threading.Thread(target=self._loop, args=(stop, interval_seconds),
                                  name="fleet-exporter-render", daemon=True)
        self._stop, self._thread = stop, thread
        thread.start()

    def stop_background(self) -> None:
        if self._stop is not None and self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30.0)
            self._stop = self._thread = None

    def _loop(self, stop: threading.Event, interval_seconds: float) -> None:
        while not stop.wait(interval_seconds):
            try:
                self._refresh_frozen()
                self.background_error = None
            except (FleetError, DatabaseError) as exc:  # keep serving the last rendering
                self.background_error = str(exc)

    def _refresh_frozen(self) -> None:
        """refresh() with the cyclic garbage collector off; what it built is then frozen."""
        gc.disable()
        try:
            self.refresh()
        finally:
            gc.freeze()
            gc.enable()

    def exposition(self) -> bytes:
        """The text format of every family, as fast as the store allows (no prometheus_client
        rendering: the lines of stored results are rendered once, when first read). With
        background rendering on: the last complete rendering, the store is not read."""
        return b"".join(self.exposition_chunks())

    def exposition_chunks(self) -> tuple[bytes, ...]:
        """:meth:`exposition` in two pieces, the rendering and the scrape duration (what the
        HTTP server sends, without copying the ~30 MiB rendering again)."""
        started = time.perf_counter()
        if self._thread is not None:
            body = self._body  # replaced whole by the render thread, never mutated
        else:
            with self._lock:
                self._refresh()
                body = self._body
        series = Series(cat.SCRAPE_DURATION, (), time.perf_counter() - started)
        return (body, f"# HELP {cat.SCRAPE_DURATION.name} {cat.SCRAPE_DURATION.help}\n"
                         f"# TYPE {cat.SCRAPE_DURATION.name} gauge\n"
                         f"{sample_line(series)}".encode())


def _duration(seconds: float) -> Metric:
    metric = Metric(cat.SCRAPE_DURATION.name, cat.SCRAPE_DURATION.help, "gauge")
    metric.add_sample(cat.SCRAPE_DURATION.name, {}, seconds)
    return metric


def to_families(series: Iterable[Series]) -> tuple[Metric, ...]:
    """Series (grouped by family) as prometheus_client families."""
    families: dict[str, Metric] = {}
    for item in series:
        entry = item.entry
        family = families.get(entry.name)
        if family is None:
            base = entry.name.removesuffix("_total") if entry.type == "counter" else entry.name
            family = families[entry.name] = Metric(base, entry.help, entry.type)
        family.add_sample(entry.name, dict(item.labels), item.value)
    return tuple(families.values())


def registry_for(collector: StoreCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition_text(store: Store, selection: Selection) -> str:
    """The selection rendered by prometheus_client (the reference for ``exposition()``)."""
    collector = StoreCollector(store, selection)
    collector.refresh()
    return generate_latest(registry_for(collector)).decode()


# ---- the HTTP server -------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on stderr: Prometheus scrapes every few seconds."""


class MetricsServer:
    """/metrics served by a background thread until ``close()``."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def metrics_app(collector: StoreCollector) -> WSGIApplication:
    """GET /metrics (or /): the exposition, uncompressed; anything else: 404."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"fleet exporter: see /metrics\n"]
        chunks = collector.exposition_chunks()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(sum(map(len, chunks))))])
        return list(chunks)

    return app


def start_server(collector: StoreCollector, host: str, port: int) -> MetricsServer:
    """Listen on host:port (port 0: any free port); FleetError, one line, when it cannot."""
    app = metrics_app(collector)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    except OSError as exc:
        raise FleetError(f"cannot listen: {exc.strerror or exc}", where=f"{host}:{port}",
                         hint="pick another address with --listen HOST:PORT, or stop what "
                              "holds this one") from exc
    thread = threading.Thread(target=server.serve_forever, name="fleet-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


def scrape_once(collector: StoreCollector) -> bytes:
    """One scrape through prometheus_client's renderer, without HTTP (tests, benchmarks)."""
    return generate_latest(registry_for(collector))


# ---- pushing live results to a Pushgateway -----------------------------------------------------

PUSH_JOB = "fleet"
PUSH_TIMEOUT_SECONDS = 5.0


class _Fixed(Collector):
    def __init__(self, families: tuple[Metric, ...]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _push_handler(credentials: tuple[str, str] | None) -> Callable[..., Callable[[], None]]:
    if credentials is None:
        return default_handler
    username, password = credentials

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def push_attempt(url: str, run_id: str, suite: str, attempt: Attempt, workload: str, *,
                 timeout_seconds: float = PUSH_TIMEOUT_SECONDS,
                 credentials: tuple[str, str] | None = None) -> int:
    """PUT one completed attempt's result series (the catalogue's families, as the exporter
    gives them) to the Pushgateway at ``url``, in the group job=fleet, run_id, case_id, host,
    repetition: a later attempt of the same job replaces it, no other group is touched.
    ``url`` has no userinfo (it is shown in errors); ``credentials`` (user, password) are sent
    as HTTP basic auth. Returns the number of series pushed (0: nothing to push, nothing
    sent); FleetError, one line, when the gateway cannot be reached or refuses them."""
    series = attempt_series(run_id, suite, attempt, workload)
    if not series:
        return 0
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(to_families(series)))
    key = {"run_id": run_id, "case_id": attempt.job.case_id, "host": attempt.host,
           "repetition": str(attempt.job.repetition)}
    try:
        push_to_gateway(url, job=PUSH_JOB, registry=registry, grouping_key=key,
                        timeout=timeout_seconds, handler=_push_handler(credentials))
    except urllib.error.HTTPError as exc:
        raise FleetError(f"pushgateway refused the results: HTTP {exc.code} {exc.reason}",
                         where=url, hint="check the gateway's log; the results are in the "
                                         "store - `fleet export serve` exports them") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FleetError(f"cannot push to the pushgateway: {reason}", where=url,
                         hint="check --pushgateway URL and that the gateway runs; the results "
                              "are in the store - `fleet export serve` exports them") from exc
    return len(series)
