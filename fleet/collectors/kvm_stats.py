"""KVM binary statistics (``KVM_GET_STATS_FD``, Linux >= 5.14): header, descriptors, data.

Layout (include/uapi/linux/kvm.h, Documentation/virt/kvm/api.rst 4.133), native endianness::

    header  "=6I"   flags, name_size, num_desc, id_offset, desc_offset, data_offset
    id      name_size bytes at id_offset, NUL-terminated ("kvm-<pid>", "kvm-<pid>/vcpu-<n>")
    desc    num_desc x (16 + name_size) bytes at desc_offset:
            "=IhHII" flags, exponent, size, offset, bucket_size; then the NUL-padded name
    data    per descriptor, ``size`` u64 at data_offset + offset

flags: type (bits 0-3: cumulative, instant, peak, linear-hist, log-hist), unit (bits 4-7:
none, bytes, seconds, cycles, boolean), base (bits 8-11: pow10, pow2); real value =
raw x base**exponent. Header and descriptors are fixed for the fd's life; sampling re-reads
the data block. :func:`parse_stats` is pure; :func:`read_stats_fd` does the preads.
Stats are keyed by NAME (their order and number change between kernels).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from fleet.errors import ParseError

HEADER = struct.Struct("=6I")
DESC = struct.Struct("=IhHII")
KVMIO = 0xAE
KVM_CREATE_VM = 0xAE01  # _IO(KVMIO, 0x01)
KVM_GET_STATS_FD = 0xAECE  # _IO(KVMIO, 0xce)
TYPES = ("cumulative", "instant", "peak", "linear_hist", "log_hist")
UNITS = ("none", "bytes", "seconds", "cycles", "boolean")
BASES = (10, 2)
_HINT = "the blob must be the whole content of a KVM_GET_STATS_FD file descriptor"


def _error(what: str, where: str | None) -> ParseError:
    return ParseError(what, where=where or "<kvm stats>", hint=_HINT)


@dataclass(frozen=True)
class StatsHeader:
    flags: int
    name_size: int
    num_desc: int
    id_offset: int
    desc_offset: int
    data_offset: int


@dataclass(frozen=True)
class StatDescriptor:
    name: str
    flags: int
    exponent: int
    size: int  # number of u64 values: 1 for scalars, the bucket count for histograms
    offset: int  # byte offset of the values from data_offset
    bucket_size: int

    @property
    def type(self) -> str:
        code = self.flags & 0xF
        return TYPES[code] if code < len(TYPES) else f"type{code}"

    @property
    def unit(self) -> str:
        code = (self.flags >> 4) & 0xF
        return UNITS[code] if code < len(UNITS) else f"unit{code}"

    @property
    def base(self) -> int | None:
        """10 or 2; None for a base this reader does not know (then nothing is scaled)."""
        code = (self.flags >> 8) & 0xF
        return BASES[code] if code < len(BASES) else None

    @property
    def is_histogram(self) -> bool:
        return self.type in ("linear_hist", "log_hist")

    def scale(self, raw: int) -> float | None:
        """``raw x base**exponent`` (e.g. nanoseconds -> seconds), None if the base is unknown."""
        base = self.base
        return None if base is None else raw * float(base) ** self.exponent

    def bucket_bounds(self) -> tuple[tuple[int, int | None], ...]:
        """Raw lower/upper bound of each histogram bucket (upper None: +inf); () if scalar."""
        if self.type == "linear_hist":
            width = self.bucket_size
            return tuple((width * i, width * (i + 1) if i < self.size - 1 else None)
                         for i in range(self.size))
        if self.type == "log_hist":
            bounds: list[tuple[int, int | None]] = [(0, 1 if self.size > 1 else None)]
            bounds += [(1 << (i - 1), (1 << i) if i < self.size - 1 else None)
                       for i in range(1, self.size)]
            return tuple(bounds)
        return ()


@dataclass(frozen=True)
class KvmStat:
    descriptor: StatDescriptor
    values: tuple[int, ...]  # raw u64s: one for scalars, bucket counts for histograms

    @property
    def name(self) -> str:
        return self.descriptor.name

    @property
    def value(self) -> int | None:
        """The raw scalar; None for a histogram."""
        return None if self.descriptor.is_histogram else self.values[0]

    @property
    def scaled(self) -> float | None:
        value = self.value
        return None if value is None else self.descriptor.scale(value)


@dataclass(frozen=True)
class KvmStats:
    id: str
    stats: tuple[KvmStat, ...]

    def get(self, name: str) -> KvmStat | None:
        for stat in self.stats:
            if stat.name == name:
                return stat
        return None

    def value(self, name: str) -> int | None:
        stat = self.get(name)
        return None if stat is None else stat.value


def _cstring(blob: bytes, offset: int, size: int, what: str, where: str | None) -> str:
    raw = blob[offset:offset + size]
    if len(raw) < size:
        raise _error(f"{what} at byte {offset} runs past the end ({len(blob)} bytes)", where)
    end = raw.find(b"\0")
    if end < 0:
        raise _error(f"{what} at byte {offset} is not NUL-terminated within {size} bytes", where)
    return raw[:end].decode("ascii", errors="replace")


def parse_header(blob: bytes, *, where: str | None = None) -> StatsHeader:
    if len(blob) < HEADER.size:
        raise _error(f"header truncated: {len(blob)} of {HEADER.size} bytes", where)
    header = StatsHeader(*HEADER.unpack_from(blob, 0))
    desc_end = header.desc_offset + header.num_desc * (DESC.size + header.name_size)
    if header.name_size == 0:
        raise _error("name_size is 0", where)
    if min(header.id_offset, header.desc_offset, header.data_offset) < HEADER.size:
        raise _error("an offset points into the header", where)
    if header.desc_offset < header.data_offset < desc_end:
        raise _error("the data block overlaps the descriptors", where)
    return header


def parse_descriptors(blob: bytes, header: StatsHeader, *,
                      where: str | None = None) -> tuple[StatDescriptor, ...]:
    """The descriptors (``blob`` must reach at least the end of the descriptor block)."""
    record = DESC.size + header.name_size
    descriptors = []
    for i in range(header.num_desc):
        at = header.desc_offset + i * record
        if at + record > len(blob):
            raise _error(f"descriptor {i} at byte {at} runs past the end ({len(blob)} bytes)",
                         where)
        flags, exponent, size, offset, bucket_size = DESC.unpack_from(blob, at)
        name = _cstring(blob, at + DESC.size, header.name_size, f"descriptor {i} name", where)
        if size == 0:
            raise _error(f"stat {name!r} has size 0", where)
        descriptors.append(StatDescriptor(name, flags, exponent, size, offset, bucket_size))
    return tuple(descriptors)


def data_size(descriptors: tuple[StatDescriptor, ...]) -> int:
    """Bytes of the data block: the end of the furthest stat."""
    return max((d.offset + 8 * d.size for d in descriptors), default=0)


def parse_values(data: bytes, descriptors: tuple[StatDescriptor, ...], *,
                 where: str | None = None) -> tuple[KvmStat, ...]:
    """The stats from the data block alone (what a sampler re-reads)."""
    stats = []
    for d in descriptors:
        end = d.offset + 8 * d.size
        if end > len(data):
            raise _error(f"stat {d.name!r} data [{d.offset}, {end}) is past the end of the "
                         f"{len(data)}-byte data block", where)
        stats.append(KvmStat(d, struct.unpack_from(f"={d.size}Q", data, d.offset)))
    return tuple(stats)


def parse_stats(blob: bytes, *, where: str | None = None) -> KvmStats:
    """The whole stats file (header through data) -> KvmStats."""
    header = parse_header(blob, where=where)
    ident = _cstring(blob, header.id_offset, header.name_size, "id string", where)
    descriptors = parse_descriptors(blob, header, where=where)
    data = blob[header.data_offset:header.data_offset + data_size(descriptors)]
    return KvmStats(ident, parse_values(data, descriptors, where=where))


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def read_stats_fd(fd: int, *, where: str | None = None) -> KvmStats:
    """Read a whole KVM stats fd with pread (position-independent) and parse it.

    To sample again, pread ``data_size(descriptors)`` bytes at ``data_offset`` and call
    :func:`parse_values` with the descriptors of the first read.
    """
    header = parse_header(_pread_exact(fd, HEADER.size, 0), where=where)
    meta_end = max(header.desc_offset + header.num_desc * (DESC.size + header.name_size),
                   header.id_offset + header.name_size)
    descriptors = parse_descriptors(_pread_exact(fd, meta_end, 0), header, where=where)
    total = max(meta_end, header.data_offset + data_size(descriptors))
    return parse_stats(_pread_exact(fd, total, 0), where=where)
