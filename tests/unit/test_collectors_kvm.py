"""KVM statistics: a debugfs tree built from the corpus listing, and binary stats blobs."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.collectors.kvm_debugfs import KvmVmStats, _read_vm, read_kvm_debugfs, stat_files
from fleet.collectors.kvm_stats import DESC, HEADER, parse_stats, read_stats_fd
from fleet.errors import ParseError

TREE = "kvm_stats/debugfs_kvm_tree_x86_aarch64__martins3.txt"
NAME_SIZE = 48


def listing(corpus: Path) -> tuple[list[str], dict[str, int]]:
    """The x86 per-VM file names of the corpus tree, and the sample values it quotes."""
    names, values, section = [], {}, ""
    for line in (corpus / TREE).read_text().splitlines():
        if line.startswith("###"):
            section = line
            continue
        if "x86" in section and not section.startswith("### sample"):
            match = re.match(r"│   [├└]── (\S+)", line)
            if match:
                names.append(match.group(1))
        elif section.startswith("### sample") and (m := re.fullmatch(r"(\w+) (\d+)", line)):
            values[m.group(1)] = int(m.group(2))
    return names, values


def build_tree(root: Path, corpus: Path) -> dict[str, int]:
    names, values = listing(corpus)
    kvm = root / "sys/kernel/debug/kvm"
    vm = kvm / "475920-25"
    (vm / "vcpu0").mkdir(parents=True)
    for vcpu_file in ("guest_mode", "lapic_timer_advance_ns", "pid", "tsc-offset"):
        (vm / "vcpu0" / vcpu_file).write_text("0\n")
    (vm / "vcpu0" / "tsc-offset").write_text("-2819497234932\n")
    for name in names:
        if name.startswith("vcpu"):
            continue
        text = f"{values[name]}\n" if name in values else ""
        if name == "mmu_rmaps_stat":
            text = "Rmap_Count:\t0\t1\t2-3\t4-7\t8-15\n"
        (vm / name).write_text(text)
        if name in values:  # one VM: the global sum is the VM's value
            (kvm / name).write_text(f"{values[name]}\n")
    return values


def test_debugfs_tree_from_the_corpus_listing(tmp_path: Path, corpus: Path) -> None:
    values = build_tree(tmp_path, corpus)
    assert values["pf_taken"] == 1033470 and values["tlb_flush"] == 38863
    kvm = read_kvm_debugfs(tmp_path)
    assert kvm is not None
    assert kvm.get("pf_taken") == 1033470 and kvm.get("mmio_exits") == 32706
    assert kvm.get("remote_tlb_flush") is None  # not quoted in the note: unknown, not 0
    (vm,) = kvm.vms
    assert (vm.pid, vm.fd) == (475920, 25) and kvm.vm(475920) == (vm,)
    assert vm.get("tlb_flush") == 38863 and vm.get("pf_fixed") == 1033329
    assert vm.get("max_mmu_rmap_size") == 0
    assert "mmu_rmaps_stat" in vm.files.other_files
    assert "halt_wait_hist" in vm.files.other_files  # first bucket only through debugfs
    assert vm.remote_tlb_flush is None and vm.pages_bytes["pages_2m"] is None
    (vcpu,) = vm.vcpus
    assert vcpu.vcpu_id == 0 and vcpu.files.get("tsc-offset") == -2819497234932


def test_pages_in_bytes() -> None:
    files = stat_files({"pages_4k": "10\n", "pages_2m": "3\n", "pages_1g": "1\n"})
    assert files.stats == {"pages_1g": 1, "pages_2m": 3, "pages_4k": 10}
    vm = KvmVmStats(pid=1, fd=2, files=files, vcpus=())
    assert vm.pages_bytes == {"pages_4k": 40960, "pages_2m": 3 << 21, "pages_1g": 1 << 30}


def test_no_debugfs(tmp_path: Path) -> None:
    assert read_kvm_debugfs(tmp_path) is None


# --- binary stats -----------------------------------------------------------------------------

CUMULATIVE, INSTANT, PEAK, LINEAR, LOG = 0, 1, 2, 3, 4
NONE, BYTES, SECONDS, CYCLES, BOOLEAN = (u << 4 for u in range(5))
POW2 = 1 << 8
Stat = tuple[str, int, int, int, list[int]]  # name, flags, exponent, bucket_size, values


def build_blob(ident: str, stats: list[Stat], *, data_gap: int = 0) -> bytes:
    """A stats file laid out as include/uapi/linux/kvm.h documents it."""
    desc_offset = HEADER.size + NAME_SIZE
    data_offset = desc_offset + len(stats) * (DESC.size + NAME_SIZE) + data_gap
    blob = bytearray(HEADER.pack(0, NAME_SIZE, len(stats), HEADER.size, desc_offset, data_offset))
    blob += ident.encode().ljust(NAME_SIZE, b"\0")
    data, offset = bytearray(), 0
    for name, flags, exponent, bucket_size, values in stats:
        blob += DESC.pack(flags, exponent, len(values), offset, bucket_size)
        blob += name.encode().ljust(NAME_SIZE, b"\0")
        data += struct.pack(f"={len(values)}Q", *values)
        offset += 8 * len(values)
    return bytes(blob + b"\0" * data_gap + data)


X86_VM: list[Stat] = [
    ("remote_tlb_flush", CUMULATIVE | NONE, 0, 0, [38863]),
    ("remote_tlb_flush_requests", CUMULATIVE | NONE, 0, 0, [40001]),
    ("pages_4k", INSTANT | NONE, 0, 0, [1033470]),
    ("pages_2m", INSTANT | NONE, 0, 0, [512]),
    ("max_mmu_rmap_size", PEAK | NONE, 0, 0, [7]),
    ("halt_wait_ns", CUMULATIVE | SECONDS, -9, 0, [2_500_000_000]),
    ("blocking", INSTANT | BOOLEAN, 0, 0, [1]),
    ("guest_bytes_kib", INSTANT | BYTES | POW2, 10, 0, [3]),
    ("halt_poll_lin_hist", LINEAR | SECONDS, -9, 1000, [5, 4, 3, 2]),
    ("halt_wait_hist", LOG | SECONDS, -9, 0, list(range(32))),
]


def test_blob_read_back_exactly() -> None:
    stats = parse_stats(build_blob("kvm-475920", X86_VM))
    assert stats.id == "kvm-475920"
    assert [s.name for s in stats.stats] == [name for name, *_ in X86_VM]
    assert stats.value("remote_tlb_flush") == 38863 and stats.value("pages_4k") == 1033470
    assert stats.value("no_such_stat") is None
    flush = stats.get("remote_tlb_flush")
    assert flush is not None and flush.descriptor.type == "cumulative"
    peak = stats.get("max_mmu_rmap_size")
    assert peak is not None and peak.descriptor.type == "peak"
    wait = stats.get("halt_wait_ns")
    assert wait is not None and wait.descriptor.unit == "seconds" and wait.scaled == 2.5
    blocking = stats.get("blocking")
    assert blocking is not None and blocking.descriptor.unit == "boolean"
    kib = stats.get("guest_bytes_kib")
    assert kib is not None and kib.descriptor.base == 2 and kib.scaled == 3072.0


def test_histograms() -> None:
    stats = parse_stats(build_blob("kvm-1/vcpu-0", X86_VM))
    linear = stats.get("halt_poll_lin_hist")
    assert linear is not None and linear.value is None and linear.values == (5, 4, 3, 2)
    assert linear.descriptor.bucket_bounds() == ((0, 1000), (1000, 2000), (2000, 3000),
                                                 (3000, None))
    log = stats.get("halt_wait_hist")
    assert log is not None and log.values == tuple(range(32)) and log.descriptor.size == 32
    bounds = log.descriptor.bucket_bounds()
    assert bounds[:4] == ((0, 1), (1, 2), (2, 4), (4, 8)) and bounds[-1] == (1 << 30, None)


def test_unknown_type_and_base_are_kept_not_scaled() -> None:
    stats = parse_stats(build_blob("kvm-1", [("future", 5 | (6 << 4) | (3 << 8), 0, 0, [9])]))
    future = stats.get("future")
    assert future is not None and future.descriptor.type == "type5"
    assert future.descriptor.unit == "unit6" and future.scaled is None and future.value == 9


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b[:20], "header truncated"),
    (lambda b: b[:HEADER.size + 10], "id string .* runs past the end"),
    (lambda b: b[:HEADER.size] + b"k" * NAME_SIZE + b[HEADER.size + NAME_SIZE:],
     "id string .* not NUL-terminated"),
    (lambda b: b[:HEADER.size + NAME_SIZE + DESC.size] + b"n" * NAME_SIZE
     + b[HEADER.size + 2 * NAME_SIZE + DESC.size:], "descriptor 0 name .* not NUL-terminated"),
    (lambda b: b[:-8], "past the end of the"),
    (lambda b: struct.pack("=6I", 0, NAME_SIZE, 10, 24, 72, 100) + b[24:],
     "overlaps the descriptors"),
    (lambda b: struct.pack("=6I", 0, NAME_SIZE, 2, 24, 8, 1000) + b[24:],
     "offset points into the header"),
    (lambda b: b[:HEADER.size + NAME_SIZE] + DESC.pack(0, 0, 0, 0, 0) + b[HEADER.size + NAME_SIZE
                                                                       + DESC.size:], "size 0"),
])
def test_malformed_blobs(mutate: Callable[[bytes], bytes], message: str) -> None:
    blob = build_blob("kvm-7", X86_VM[:2])
    with pytest.raises(ParseError, match=message):
        parse_stats(mutate(blob))


def test_offsets_out_of_range() -> None:
    blob = bytearray(build_blob("kvm-7", X86_VM[:1]))
    at = HEADER.size + NAME_SIZE
    blob[at:at + DESC.size] = DESC.pack(0, 0, 1, 4096, 0)  # data offset far past the end
    with pytest.raises(ParseError, match=r"'remote_tlb_flush' data \[4096, 4104\) is past"):
        parse_stats(bytes(blob))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z_]{1,47}", fullmatch=True),
                          st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=8)),
                min_size=0, max_size=12, unique_by=lambda s: s[0]),
       st.integers(0, 64))
def test_round_trip(stats: list[tuple[str, list[int]]], gap: int) -> None:
    spec: list[Stat] = [(n, (LINEAR if len(v) > 1 else CUMULATIVE), 0, 1 if len(v) > 1 else 0, v)
                        for n, v in stats]
    parsed = parse_stats(build_blob("kvm-42/vcpu-3", spec, data_gap=gap))
    assert parsed.id == "kvm-42/vcpu-3"
    assert [(s.name, list(s.values)) for s in parsed.stats] == stats


def test_read_from_an_fd(tmp_path: Path) -> None:
    blob = build_blob("kvm-99", X86_VM, data_gap=16)
    path = tmp_path / "stats"
    path.write_bytes(blob)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 7, os.SEEK_SET)  # pread ignores the file position
        stats = read_stats_fd(fd)
    finally:
        os.close(fd)
    assert stats == parse_stats(blob)


def test_a_vm_that_exits_while_being_read_is_left_out(tmp_path: Path) -> None:
    kvm = tmp_path / "sys/kernel/debug/kvm"
    kvm.mkdir(parents=True)
    (kvm / "remote_tlb_flush").write_text("5\n")
    assert _read_vm(kvm / "1234-12", 1234, 12) is None  # directory already gone
    found = read_kvm_debugfs(tmp_path)
    assert found is not None and found.vms == () and found.get("remote_tlb_flush") == 5
