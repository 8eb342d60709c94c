"""`fleet export import` without Prometheus: host series naming, the remote-write encoder
(against hand-encoded protobuf bytes and its own decoder), batching, OpenMetrics text, the
HTTP adapter's retries (a loopback stub server) and the store -> series path."""

from __future__ import annotations

import http.server
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet import catalogue as cat
from fleet.errors import ConfigError, FleetError, StoreError
from fleet.export.host_series import TimeSeries, host_series, openmetrics
from fleet.export.importer import import_run, load_host_series
from fleet.export.remote_write import HEADERS, RetryPolicy, compress, post, send_batches
from fleet.export.remote_write_codec import (
    decode_write_request,
    encode_labels,
    encode_timeseries,
    varint,
    write_requests,
)
from fleet.runs import Attempt, JobKey, RunInfo, SeriesPoint, StoredSeries
from fleet.sampling.collect import VMSTAT_SERIES
from fleet.store import Store
from fleet.store.runs import create_run, record_attempt

SAMPLER_SERIES = {"tlb_shootdowns", *VMSTAT_SERIES, "sec_page_tables_bytes",
                  "page_tables_bytes", "workload_resident_bytes", "kvm_remote_tlb_flush",
                  "agent_cpu_seconds"}
TLB = cat.host_entry("tlb_shootdowns")


# ---- the catalogue's host families ---------------------------------------------------------


def test_every_sampler_series_has_one_conventional_host_family() -> None:
    assert {e.stored[0] for e in cat.HOST_SAMPLES if e.stored} == SAMPLER_SERIES
    names = [e.name for e in cat.EVERY]
    assert len(names) == len(set(names))
    for entry in cat.HOST_SAMPLES:
        assert entry.source == "host" and entry.name.startswith("fleet_host_")
        assert entry.name.endswith("_total") == (entry.type == "counter")
        base = entry.name.removesuffix("_total")
        assert base.endswith({"bytes": "_bytes", "seconds": "_seconds"}.get(entry.unit, ""))
        assert entry.labels[:5] == cat.RESULT_LABELS
        assert cat.by_name(entry.name) is entry
    sec = cat.host_entry("sec_page_tables_bytes")
    assert sec is not None and sec.name == "fleet_host_secondary_page_tables_bytes"
    assert "node" in sec.labels
    assert TLB is not None and TLB.name == "fleet_host_tlb_shootdowns_total"
    assert TLB.optional_labels == ("node",)
    assert cat.host_entry("no_such_series") is None
    assert not set(cat.HOST_SAMPLES) & set(cat.CATALOGUE)  # the exporter's families stay


def stored(series: str, points: list[tuple[float, float | None]], *, node: str | None = None,
           case_id: str = "c1", repetition: int = 1, host: str = "h1") -> StoredSeries:
    labels = () if node is None else (("node", node),)
    return StoredSeries(case_id, repetition, host, series, labels, tuple(points))


def test_host_series_are_named_labelled_merged_and_cleaned() -> None:
    found = host_series("r1", "s", [
        stored("tlb_shootdowns", [(1.0, 0.0), (1.2, 5.0)]),
        stored("tlb_shootdowns", [(1.0, 0.0), (1.2, 3.0)], node="0"),
        stored("numa_hint_faults", [(1.0, 7.0), (1.0004, 8.0), (1.2, None), (1.4, 9.0)]),
        stored("tlb_shootdowns", [(5.0, 0.0), (5.2, 2.0)]),  # a retry of the same job
        stored("sec_page_tables_bytes", [(1.0, 4096.0)], node="1", case_id="c2"),
        stored("brand_new_series", [(1.0, 1.0)]),
        stored("numa_pages_migrated", [(1.0, None)]),  # nothing with a value: no series
    ])
    assert found.skipped == ("brand_new_series",)
    by_key = {(s.entry.name, dict(s.labels).get("node"), dict(s.labels)["case_id"]): s
              for s in found.series}
    assert list(by_key) == [  # catalogue order, then sorted labels (node < repetition)
        ("fleet_host_tlb_shootdowns_total", "0", "c1"),
        ("fleet_host_tlb_shootdowns_total", None, "c1"),
        ("fleet_host_numa_hint_faults_total", None, "c1"),
        ("fleet_host_secondary_page_tables_bytes", "1", "c2")]
    total = by_key[("fleet_host_tlb_shootdowns_total", None, "c1")]
    assert total.labels == (("case_id", "c1"), ("host", "h1"), ("repetition", "1"),
                            ("run_id", "r1"), ("suite", "s"))
    assert total.points == ((1000, 0.0), (1200, 5.0), (5000, 0.0), (5200, 2.0))
    # the same millisecond: the later-stored point; None: left out
    assert by_key[("fleet_host_numa_hint_faults_total", None, "c1")].points == \
        ((1000, 8.0), (1400, 9.0))
    assert found.samples == 9 and found.first_ms == 1000 and found.last_ms == 5200


def test_openmetrics_text_groups_families_with_timestamps_in_seconds() -> None:
    assert TLB is not None
    series = [TimeSeries(TLB, (("host", 'a"b'), ("run_id", "r")), ((1700000000123, 1.0),
                                                                  (1700000001000, 2.5))),
              TimeSeries(TLB, (("host", "h2"),), ((5, 0.0),)),
              TimeSeries(cat.by_name("fleet_host_page_tables_bytes"), (("node", "0"),),
                         ((1000, 4096.0),))]
    text = "".join(openmetrics(series))
    assert text.splitlines() == [
        f"# HELP fleet_host_tlb_shootdowns {TLB.help}",
        "# TYPE fleet_host_tlb_shootdowns counter",
        'fleet_host_tlb_shootdowns_total{host="a\\"b",run_id="r"} 1.0 1700000000.123',
        'fleet_host_tlb_shootdowns_total{host="a\\"b",run_id="r"} 2.5 1700000001.000',
        'fleet_host_tlb_shootdowns_total{host="h2"} 0.0 0.005',
        f"# HELP fleet_host_page_tables_bytes {cat.by_name('fleet_host_page_tables_bytes').help}",
        "# TYPE fleet_host_page_tables_bytes gauge",
        'fleet_host_page_tables_bytes{node="0"} 4096.0 1.000',
        "# EOF"]


# ---- the remote-write encoder ----------------------------------------------------------------


def test_encoding_matches_hand_encoded_protobuf() -> None:
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"
    got = encode_timeseries(encode_labels("m", (("a", "b"),)), [(1000, 1.0)])
    label_name = b"\x0a\x0d" + b"\x0a\x08__name__" + b"\x12\x01m"
    label_a = b"\x0a\x06" + b"\x0a\x01a" + b"\x12\x01b"
    sample = b"\x12\x0c" + b"\x09" + b"\x00\x00\x00\x00\x00\x00\xf0\x3f" + b"\x10\xe8\x07"
    assert got == b"\x0a\x25" + label_name + label_a + sample
    # a current timestamp takes the fast path (14 low bits from a table)
    now_ms = 1_764_000_000_123
    assert encode_timeseries(b"", [(now_ms, 2.0)]) == (
        b"\x0a" + varint(12 + len(varint(now_ms))) + b"\x12" + bytes([10 + len(varint(now_ms))])
        + b"\x09" + b"\x00" * 7 + b"\x40" + b"\x10" + varint(now_ms))


label_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
points = st.lists(st.tuples(st.integers(-2**63, 2**63 - 1),
                            st.floats(allow_nan=False)), max_size=30)


@given(st.lists(st.tuples(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                                          label_text, max_size=4), points), max_size=6),
       st.integers(1, 40))
def test_batches_decode_to_what_was_encoded(raw: list[tuple[dict[str, str], list[tuple[
        int, float]]]], max_samples: int) -> None:
    assert TLB is not None
    series = [TimeSeries(TLB, tuple(sorted(labels.items())), tuple(pts)) for labels, pts in raw]
    batches = list(write_requests(series, max_samples))
    assert all(0 < n <= max_samples for _, n in batches)
    assert all(n == max_samples for _, n in batches[:-1])
    decoded = [item for body, _ in batches for item in decode_write_request(body)]
    merged: list[tuple[dict[str, str], list[tuple[int, float]]]] = []
    for labels, samples in decoded:  # a long series split across batches: join it again
        assert list(labels) == sorted(labels)
        if merged and merged[-1][0] == labels and len(merged[-1][1]) < max_samples:
            merged[-1][1].extend(samples)
        else:
            merged.append((labels, samples))
    want = [({"__name__": TLB.name, **labels}, pts) for labels, pts in raw if pts]
    assert [(dict(a), b) for a, b in merged] == want or _same(merged, want)


def _same(got: list[tuple[dict[str, str], list[tuple[int, float]]]],
          want: list[tuple[dict[str, str], list[tuple[int, float]]]]) -> bool:
    """Equal series and points, however batch boundaries split identical label sets."""
    flat = [(tuple(sorted(lbl.items())), p) for lbl, pts in got for p in pts]
    return flat == [(tuple(sorted(lbl.items())), p) for lbl, pts in want for p in pts]


def test_write_requests_rejects_an_empty_batch_size() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        list(write_requests([], 0))


# ---- the HTTP adapter, against a loopback stub --------------------------------------------------


class Stub(http.server.BaseHTTPRequestHandler):
    replies: ClassVar[list[tuple[int, bytes]]] = []
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Stub.received.append((dict(self.headers), body))
        code, text = Stub.replies.pop(0) if Stub.replies else (204, b"")
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: object) -> None:
        """quiet"""


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.replies, Stub.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    finally:
        server.shutdown()
        server.server_close()


FAST = RetryPolicy(attempts=3, first_backoff_seconds=0.0, timeout_seconds=5.0)


def test_transient_failures_are_retried_and_the_request_is_snappy_protobuf(stub: str) -> None:
    import cramjam

    Stub.replies = [(503, b"busy\n"), (429, b"slow down\n")]
    sleeps: list[float] = []
    body = encode_timeseries(encode_labels("m", ()), [(1, 1.0)])
    assert post(stub, compress(body), RetryPolicy(attempts=3, first_backoff_seconds=0.5),
                sleep=sleeps.append) == 2
    assert sleeps == [0.5, 1.0]
    headers, sent = Stub.received[-1]
    assert {k: headers[k] for k in HEADERS} == HEADERS
    assert bytes(cramjam.snappy.decompress_raw(sent)) == body


def test_a_refusal_is_final_and_says_why(stub: str) -> None:
    Stub.replies = [(400, b"out of bounds\n")]
    with pytest.raises(FleetError, match=r"HTTP 400: out of bounds") as info:
        post(stub, b"", FAST)
    assert "out_of_order_time_window" in (info.value.hint or "")
    assert len(Stub.received) == 1
    Stub.replies = [(500, b"x")] * 3
    with pytest.raises(FleetError, match=r"HTTP 500: x \(3 tries\)"):
        post(stub, b"", FAST)


def test_send_batches_stops_at_the_first_refusal_and_counts_what_went_before(stub: str) -> None:
    Stub.replies = [(204, b""), (400, b"out of order sample\n")]
    batches = [(encode_timeseries(b"", [(i, 1.0)]), 1) for i in range(5)]
    with pytest.raises(FleetError, match="1 samples in 1 requests were written before"):
        send_batches(stub, iter(batches), FAST)
    assert len(Stub.received) == 2
    Stub.replies = []
    report = send_batches(stub, iter(batches), FAST)
    assert (report.requests, report.samples, report.retries) == (5, 5, 0)


# ---- from the store ---------------------------------------------------------------------------


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.sqlite"
    info = RunInfo("r1", "suite1", "s.yml", "0" * 64, 1, ("s.yml",), None, "0.1.0", 1.7e9,
                   None, "completed")
    job = JobKey("c1", 1, "h1")
    with Store.open(path) as store:
        create_run(store, info, suite_text="", plan_json="{}",
                   cases=[("c1", "w", json.dumps({}))], jobs=[job], skipped=[])
        for attempt_no, base in ((1, 1.7e9), (2, 1.7e9 + 10)):
            record_attempt(store, Attempt(
                run_id="r1", job=job, host="h1", attempt_no=attempt_no,
                status="failed" if attempt_no == 1 else "completed",
                started_at_unix_seconds=base, ended_at_unix_seconds=base + 1, exit_code=0,
                signal=None, stdout="", stderr="", stdout_truncated=False,
                stderr_truncated=False, fingerprint=None, samples=tuple(
                    SeriesPoint(name, labels, 5.0 + t, base + t, float(t * 10))
                    for name, labels in (("tlb_shootdowns", ()),
                                         ("tlb_shootdowns", (("node", "0"),)))
                    for t in (0.0, 0.5, 1.0))))
        create_run(store, RunInfo("r2", "suite1", "s.yml", "0" * 64, 1, ("s.yml",), None,
                                  "0.1.0", 1.7e9, None, "completed"), suite_text="",
                   plan_json="{}", cases=[], jobs=[], skipped=[])
        job3 = JobKey("c3", 1, "h1")  # r3 stored only a series this fleet does not know
        create_run(store, RunInfo("r3", "suite1", "s.yml", "0" * 64, 1, ("s.yml",), None,
                                  "0.1.0", 1.7e9, None, "completed"), suite_text="",
                   plan_json="{}", cases=[("c3", "w", "{}")], jobs=[job3], skipped=[])
        record_attempt(store, Attempt(
            run_id="r3", job=job3, host="h1", attempt_no=1, status="completed",
            started_at_unix_seconds=1.7e9, ended_at_unix_seconds=1.7e9 + 1, exit_code=0,
            signal=None, stdout="", stderr="", stdout_truncated=False, stderr_truncated=False,
            fingerprint=None, samples=(SeriesPoint("future_series", (), 1.0, 1.7e9, 1.0),)))
    return path


def test_a_run_is_read_from_the_store_with_every_attempt(store_path: Path,
                                                         tmp_path: Path) -> None:
    found = load_host_series(store_path, "r1")
    assert [(s.entry.name, dict(s.labels).get("node"), len(s.points)) for s in found.series] \
        == [("fleet_host_tlb_shootdowns_total", "0", 6), ("fleet_host_tlb_shootdowns_total",
                                                          None, 6)]
    assert dict(found.series[0].labels)["suite"] == "suite1"
    out = tmp_path / "run.om"
    report = import_run(store_path, "r1", openmetrics_path=out)
    assert (report.series, report.samples, report.requests) == (2, 12, 0)
    assert report.first_unix_seconds == 1.7e9 and report.last_unix_seconds == 1.7e9 + 11
    assert out.read_text().count("\n") == 2 + 12 + 1 and out.stat().st_mode & 0o777 == 0o644
    assert not math.isnan(report.seconds)


def test_bad_requests_are_one_line_errors(store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no run 'r9'"):
        import_run(store_path, "r9", openmetrics_path=tmp_path / "x.om")
    with pytest.raises(FleetError, match="run r2 has no stored host samples"):
        import_run(store_path, "r2", openmetrics_path=tmp_path / "x.om")
    assert not list(tmp_path.glob("*x.om*"))
    with pytest.raises(FleetError, match="run r3 has no stored host samples"):
        import_run(store_path, "r3", openmetrics_path=tmp_path / "x.om")
    assert load_host_series(store_path, "r3").skipped == ("future_series",)
    assert not list(tmp_path.glob("*x.om*"))
    with pytest.raises(ConfigError, match="exactly one"):
        import_run(store_path, "r1")
    with pytest.raises(ConfigError, match="not an http"):
        import_run(store_path, "r1", remote_write_url="127.0.0.1:9090")
    with pytest.raises(ConfigError, match="cannot write the OpenMetrics file"):
        import_run(store_path, "r1", openmetrics_path=tmp_path / "no" / "dir" / "x.om")
