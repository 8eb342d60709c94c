"""`fleet export serve` renders in the background: a scrape serves the last complete rendering
at once (never waits for the store or a render), and a write to the store shows up after the
next render; the pieces the HTTP server sends join into exactly ``exposition()``."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from test_export_catalogue import load_benchmark

from fleet.export.prometheus import Selection, StoreCollector, start_server
from fleet.export.store_reader import open_read_only
from fleet.store import Store


def strip(body: bytes) -> bytes:
    return body[:body.index(b"# HELP fleet_exporter_scrape_duration_seconds")]


def test_scrapes_serve_the_last_rendering_and_follow_the_store(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    with Store.open(path) as store:
        load_benchmark().write_synthetic_run(store, "r-one", cases=20)
    with open_read_only(path) as store:
        collector = StoreCollector(store, Selection())
        collector.start_background(0.05)
        try:
            first = collector.exposition()
            assert b'run_id="r-one"' in first and collector.reads == 1
            with collector._lock:  # a render in progress does not hold up a scrape
                started = time.perf_counter()
                assert strip(collector.exposition()) == strip(first)
                assert time.perf_counter() - started < 0.5
            with Store.open(path) as writer:  # another connection, as `fleet run`
                load_benchmark().write_synthetic_run(writer, "r-two", cases=5,
                                                     started_unix_seconds=1.8e9)
            deadline = time.monotonic() + 10
            while b'run_id="r-two"' not in collector.exposition():
                assert time.monotonic() < deadline, "the new run was never rendered"
                time.sleep(0.02)
            server = start_server(collector, "127.0.0.1", 0)
            try:
                with urllib.request.urlopen(server.url) as response:
                    served = response.read()
            finally:
                server.close()
            assert strip(served) == strip(collector.exposition())
            assert collector.background_error is None
        finally:
            collector.stop_background()
    with open_read_only(path) as store:  # a fresh synchronous rendering: the same text
        assert strip(StoreCollector(store, Selection()).exposition()) == strip(served)
