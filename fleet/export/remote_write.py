"""The remote-write adapter: snappy (cramjam, the only module importing it) and HTTP POSTs
(urllib) of encoded WriteRequests (fleet.export.remote_write_codec) to a Prometheus
``/api/v1/write`` endpoint (``--web.enable-remote-write-receiver``).

Remote write 1.0: body = snappy *block* format of the protobuf WriteRequest, headers
``Content-Encoding: snappy``, ``Content-Type: application/x-protobuf``,
``X-Prometheus-Remote-Write-Version: 0.1.0``. Batches go one at a time, in order (a long
series is split across consecutive batches, and Prometheus rejects a series' samples older
than the newest it holds unless its out-of-order window allows them), but the next batch is
encoded and compressed while the previous one is in flight.

Retries: connection errors, timeouts, HTTP 5xx and 429 are retried with exponential backoff
(the same batch again: Prometheus accepts a sample identical to one it holds). Any other
4xx (400 "out of bounds", "out of order sample", 404 without the receiver...) is final and
reported in one line with Prometheus' own reason.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import cramjam

from fleet import __version__
from fleet.errors import FleetError

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": f"fleet/{__version__}",
}
HISTORY_HINT = ("samples older than about 1 h before the newest one Prometheus holds, or a "
                "re-import, need `storage: {tsdb: {out_of_order_time_window: 30d}}` in "
                "prometheus.yml; or import history with --openmetrics FILE and `promtool tsdb "
                "create-blocks-from openmetrics FILE DATA_DIR`")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries per batch
    first_backoff_seconds: float = 0.25  # doubled after each failed try
    max_backoff_seconds: float = 5.0
    timeout_seconds: float = 30.0  # per request


@dataclass(frozen=True)
class SendReport:
    requests: int
    samples: int
    retries: int
    compressed_bytes: int


def compress(body: bytes) -> bytes:
    """Snappy block format (what remote write 1.0 uses, not the framed format)."""
    return bytes(cramjam.snappy.compress_raw(body))


class _Transient(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _post_once(url: str, body: bytes, timeout_seconds: float) -> None:
    # the importer checked the scheme (http/https only)
    request = urllib.request.Request(url, data=body, headers=HEADERS, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace").strip().splitlines()
        reason = f"HTTP {exc.code}" + (f": {text[0][:200]}" if text else f" {exc.reason}")
        if exc.code >= 500 or exc.code == 429:
            raise _Transient(reason) from exc
        raise FleetError(f"prometheus refused the remote write ({reason})", where=url,
                         hint=_hint(exc.code, reason)) from exc
    except (OSError, ValueError) as exc:  # URLError, refused, reset, timeout
        raise _Transient(str(getattr(exc, "reason", None) or exc)) from exc


def _hint(code: int, reason: str) -> str:
    if code == 404:
        return ("start Prometheus with --web.enable-remote-write-receiver, and give the "
                "write endpoint: --remote-write http://HOST:9090/api/v1/write")
    if any(word in reason for word in ("out of bounds", "out of order", "too old")):
        return HISTORY_HINT
    return "check Prometheus' log; the store is untouched, re-run the import when fixed"


def post(url: str, compressed: bytes, policy: RetryPolicy,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """POST one compressed WriteRequest, retrying transient failures; returns the retries
    used. FleetError (one line) when refused or still failing after ``policy.attempts``."""
    backoff = policy.first_backoff_seconds
    for attempt in range(1, policy.attempts + 1):
        try:
            _post_once(url, compressed, policy.timeout_seconds)
            return attempt - 1
        except _Transient as exc:
            if attempt == policy.attempts:
                raise FleetError(
                    f"cannot remote-write to prometheus: {exc.reason} "
                    f"({policy.attempts} tries)", where=url,
                    hint="check the URL and that Prometheus runs with "
                         "--web.enable-remote-write-receiver; the store is untouched") from exc
            sleep(backoff)
            backoff = min(backoff * 2, policy.max_backoff_seconds)
    raise AssertionError("unreachable")


def send_batches(url: str, batches: Iterable[tuple[bytes, int]],
                 policy: RetryPolicy) -> SendReport:
    """Compress and POST each (WriteRequest, samples) batch in order; the next batch is
    encoded while the previous one is sent. A failure says how much was written before."""
    requests = samples = retries = size = 0
    pending: tuple[Future[int], int] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-remote-write") as pool:
        try:
            for body, count in batches:
                compressed = compress(body)
                if pending is not None:
                    retries += pending[0].result()
                    requests, samples = requests + 1, samples + pending[1]
                size += len(compressed)
                pending = (pool.submit(post, url, compressed, policy), count)
            if pending is not None:
                retries += pending[0].result()
                requests, samples = requests + 1, samples + pending[1]
        except FleetError as exc:
            raise FleetError(f"{exc.what}; {samples} samples in {requests} requests were "
                             "written before", where=exc.where, hint=exc.hint) from exc
    return SendReport(requests, samples, retries, size)
