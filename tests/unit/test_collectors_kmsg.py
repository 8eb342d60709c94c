"""/dev/kmsg records and WARN/BUG/Oops/KVM classification."""

from __future__ import annotations

import os

import pytest

from fleet.collectors.kmsg import classify, parse_kmsg, problems
from fleet.errors import ParseError

# Records read from /dev/kmsg on the Debian 12 / Linux 6.18 development VM (verbatim).
THIS_HOST = (
    "5,0,0,-;Linux version 6.18.44-fc-v669 (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld "
    "(GNU Binutils) 2.46) #1 SMP PREEMPT_DYNAMIC @0\n"
    "4,2,0,-;[Firmware Bug]: TSC doesn't count with P0 frequency!\n"
    "6,14,0,-;kvm-clock: Using msrs 4b564d01 and 4b564d00\n"
    "6,64,99696,-;kvm-guest: KVM setup pv remote TLB flush\n"
    "4,119,254936,-;Speculative Return Stack Overflow: WARNING: See https://kernel.org/doc/"
    "html/latest/admin-guide/hw-vuln/srso.html for mitigation options.\n"
    "6,193,299781,-;acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig ASPM ClockPM Segments "
    "MSI HPX-Type3]\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n"
)

# First lines of real splats quoted in public bug reports, as /dev/kmsg records.
SPLATS = (
    # github.com/gentoo-zh/overlay/issues/1172
    "4,8812,10942794979,-;WARNING: CPU: 22 PID: 416 at kvm_mmu_notifier_change_pte+0x1e4/0x200\n"
    # github.com/gem5/gem5/issues/2043
    "1,501,18522257,-;BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    "4,505,18523257,-;Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
    # github.com/bytedance/kvm-utils/issues/6
    "4,1702,1989380931,-;invalid opcode: 0000 [#1] SMP NOPTI\n"
    # github.com/autotest/virt-test/pull/487 (2.6/3.x "WARNING: at")
    "4,90,23009,-;WARNING: at arch/x86/kernel/cpu/amd.c:27 init_amd+0x10e/0x654()\n"
    "0,9001,99000000,-;Kernel panic - not syncing: Fatal exception\n"
    "3,7001,5000000,-;kvm [4242]: vcpu0, guest rIP: 0xffffffff8106f0a8 unhandled rdmsr: 0x64e\n"
    "4,7002,5000100,-;kvm_intel: L1TF CPU bug present and SMT on, data leak possible.\n"
    "6,7003,5000200,-;kvm: exiting hardware virtualization\n"
    "4,7004,5000300,-;Call Trace:\n"
)


def test_records_of_this_host() -> None:
    records = parse_kmsg(THIS_HOST)
    assert [r.sequence for r in records] == [0, 2, 14, 64, 119, 193]
    first = records[0]
    assert (first.facility, first.level, first.level_name, first.flags) == (0, 5, "notice", "-")
    assert records[5].monotonic_seconds == pytest.approx(0.299781)
    assert records[5].dictionary == (("SUBSYSTEM", "acpi"), ("DEVICE", "+acpi:PNP0A08:00"))
    # a firmware note, guest-side kvm-clock/kvm-guest lines, and an SRSO advisory that
    # contains "WARNING:" are not kernel problems
    assert problems(records) == ()


def test_classification() -> None:
    kinds = [classify(r) for r in parse_kmsg(SPLATS)]
    assert kinds == ["warn", "bug", "oops", "oops", "warn", "panic", "kvm", "kvm", None, None]


def test_facility_and_continuation() -> None:
    (record,) = parse_kmsg("30,8,1000,c;systemd[1]: Starting\n")
    assert (record.facility, record.level, record.flags) == (3, 6, "c")


@pytest.mark.parametrize("text", ["no prefix here\n", "6,x,0,-;msg\n", " KEY=v\n", "6,1;m\n"])
def test_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        parse_kmsg(text)


def test_live_kmsg() -> None:
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    chunks = []
    try:
        while True:
            try:
                chunks.append(os.read(fd, 8192).decode("utf-8", errors="replace"))
            except BlockingIOError:
                break
            except BrokenPipeError:  # the ring buffer overwrote the record: read on
                continue
    finally:
        os.close(fd)
    records = parse_kmsg("".join(chunks), where="/dev/kmsg")
    assert len(records) == len(chunks) > 0
    sequences = [r.sequence for r in records]
    assert sequences == sorted(sequences)
