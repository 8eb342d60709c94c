"""Prometheus remote-write 1.0 messages, encoded by hand (no protobuf package). Pure.

The wire format of ``prometheus.WriteRequest`` (prompb/remote.proto, types.proto)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp: unix ms

A WriteRequest is therefore the concatenation of its encoded ``timeseries`` fields, so a batch
is built by joining per-series byte strings. Labels are sorted by name, ``__name__`` included
(the protocol asks for sorted labels). Snappy compression and HTTP are the adapter's
(fleet.export.remote_write). :func:`decode_write_request` reads what :func:`write_requests`
writes back (tests, debugging); it understands only these messages.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fleet.export.host_series import Labels, TimeSeries

DEFAULT_BATCH_SAMPLES = 10_000
_SAMPLE = struct.Struct("<BBBdB")  # field 2 (LEN), length, value tag, double, timestamp tag
_LOW14 = tuple(bytes(((x & 0x7F) | 0x80, ((x >> 7) & 0x7F) | 0x80)) for x in range(1 << 14))
_U64 = 1 << 64


def varint(n: int) -> bytes:
    """Base-128 varint; negative int64 values as their 64-bit two's complement (10 bytes)."""
    if n < 0:
        n += _U64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def encode_labels(name: str, labels: Labels) -> bytes:
    """The ``labels`` fields of a TimeSeries: ``__name__`` and the labels, sorted by name."""
    pairs = sorted((("__name__", name), *labels))
    return b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in pairs)


def encode_samples(points: Sequence[tuple[int, float]]) -> bytes:
    """The ``samples`` fields of a TimeSeries for (unix ms, value) points."""
    pack, low14 = _SAMPLE.pack, _LOW14
    cache: dict[int, bytes] = {}
    parts = []
    for ms, value in points:
        if ms >= 1 << 14:
            high = ms >> 14
            rest = cache.get(high)
            if rest is None:
                rest = cache[high] = varint(high)
            stamp = low14[ms & 0x3FFF] + rest
        else:
            stamp = varint(ms)
        parts.append(pack(0x12, 10 + len(stamp), 0x09, value, 0x10))
        parts.append(stamp)
    return b"".join(parts)


def encode_timeseries(labels: bytes, points: Sequence[tuple[int, float]]) -> bytes:
    """One ``timeseries`` field of a WriteRequest (``labels`` from :func:`encode_labels`)."""
    body = labels + encode_samples(points)
    return b"\x0a" + varint(len(body)) + body


def write_requests(series: Iterable[TimeSeries],
                   max_samples: int = DEFAULT_BATCH_SAMPLES) -> Iterator[tuple[bytes, int]]:
    """(uncompressed WriteRequest, samples in it) batches of at most ``max_samples`` samples,
    series in order; a longer series is split across consecutive batches in time order (so
    the batches must be sent one after another). Encoded lazily, one batch at a time."""
    if max_samples < 1:
        raise ValueError("max_samples must be >= 1")
    parts: list[bytes] = []
    count = 0
    for item in series:
        labels = encode_labels(item.entry.name, item.labels)
        points, start = item.points, 0
        while start < len(points):
            take = min(len(points) - start, max_samples - count)
            parts.append(encode_timeseries(labels, points[start:start + take]))
            count += take
            start += take
            if count == max_samples:
                yield b"".join(parts), count
                parts, count = [], 0
    if parts:
        yield b"".join(parts), count


# ---- decoding (tests, debugging) ---------------------------------------------------------------


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited
    fields, 8-byte values as little-endian doubles."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            yield number, value
        elif wire == 1:
            yield number, struct.unpack_from("<d", data, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            yield number, data[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")


def decode_write_request(data: bytes) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    """[(labels with __name__, [(unix ms, value)...])...] of a WriteRequest."""
    out = []
    for number, ts in fields(data):
        if number != 1:
            continue
        labels: dict[str, str] = {}
        samples: list[tuple[int, float]] = []
        for field, payload in fields(ts):
            inner = dict(fields(payload))
            if field == 1:
                labels[inner.get(1, b"").decode()] = inner.get(2, b"").decode()
            elif field == 2:
                stamp = int(inner.get(2, 0))
                samples.append((stamp - _U64 if stamp >= 1 << 63 else stamp,
                                float(inner.get(1, 0.0))))
        out.append((labels, samples))
    return out
