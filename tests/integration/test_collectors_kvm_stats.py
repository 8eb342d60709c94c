"""A real VM on this machine: its KVM_GET_STATS_FD files read with fleet.collectors.kvm_stats.

Creates a VM and one vCPU through /dev/kvm, maps one page at the reset vector holding
``hlt``, runs the vCPU once (exit KVM_EXIT_HLT), and reads the VM and vCPU stats fds.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
from collections.abc import Iterator

import pytest

from fleet.collectors.kvm_stats import (
    KVM_CREATE_VM,
    KVM_GET_STATS_FD,
    parse_values,
    read_stats_fd,
)

KVM_CREATE_VCPU = 0xAE41  # _IO(KVMIO, 0x41)
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_RUN = 0xAE80
KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
KVM_EXIT_HLT = 5
RESET_PAGE_GPA = 0xFFFFF000  # real mode starts at 0xfffffff0: offset 0xff0 of this page

pytestmark = pytest.mark.integration


@pytest.fixture
def kvm_fd() -> Iterator[int]:
    if not os.path.exists("/dev/kvm"):
        pytest.fail("/dev/kvm is missing: this machine is expected to offer KVM")
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def run_halting_vcpu(vm: int, kvm: int) -> tuple[int, int]:
    """One vCPU executing ``hlt`` at the reset vector; returns (vcpu fd, exit reason)."""
    memory = mmap.mmap(-1, 4096)
    memory[0xFF0] = 0xF4  # hlt
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    region = struct.pack("=IIQQQ", 0, 0, RESET_PAGE_GPA, 4096, address)
    fcntl.ioctl(vm, KVM_SET_USER_MEMORY_REGION, region)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    run_size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
    run = mmap.mmap(vcpu, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    fcntl.ioctl(vcpu, KVM_RUN, 0)
    exit_reason = struct.unpack_from("=I", run, 8)[0]
    run.close()
    return vcpu, exit_reason


def test_real_vm_stats(kvm_fd: int) -> None:
    vm = fcntl.ioctl(kvm_fd, KVM_CREATE_VM, 0)
    fds = [vm]
    try:
        vm_stats_fd = fcntl.ioctl(vm, KVM_GET_STATS_FD, 0)
        fds.append(vm_stats_fd)
        before = read_stats_fd(vm_stats_fd, where="vm stats")
        assert before.id == f"kvm-{os.getpid()}"
        names = {s.name for s in before.stats}
        assert {"remote_tlb_flush", "remote_tlb_flush_requests"} <= names
        flush = before.get("remote_tlb_flush")
        assert flush is not None and flush.descriptor.type == "cumulative"
        if os.uname().machine == "x86_64":
            assert {"pages_4k", "pages_2m", "pages_1g", "nx_lpage_splits"} <= names

        vcpu, exit_reason = run_halting_vcpu(vm, kvm_fd)
        fds.append(vcpu)
        assert exit_reason == KVM_EXIT_HLT
        vcpu_stats_fd = fcntl.ioctl(vcpu, KVM_GET_STATS_FD, 0)
        fds.append(vcpu_stats_fd)
        vcpu_stats = read_stats_fd(vcpu_stats_fd, where="vcpu stats")
        assert vcpu_stats.id == f"kvm-{os.getpid()}/vcpu-0"
        exits = vcpu_stats.value("exits")
        assert exits is not None and exits >= 1
        wait_hist = vcpu_stats.get("halt_wait_hist")
        assert wait_hist is not None and wait_hist.descriptor.type == "log_hist"
        assert len(wait_hist.values) == wait_hist.descriptor.size == 32
        wait_ns = vcpu_stats.get("halt_wait_ns")
        assert wait_ns is not None and wait_ns.descriptor.unit == "seconds"
        assert wait_ns.descriptor.exponent == -9
        if os.uname().machine == "x86_64":
            assert (vcpu_stats.value("halt_exits") or 0) >= 1
            after = read_stats_fd(vm_stats_fd)
            assert [s.name for s in after.stats] == [s.name for s in before.stats]
            # the MMU did some work for the guest (which counter depends on TDP/shadow paging)
            assert sum(sum(s.values) for s in after.stats) > sum(sum(s.values)
                                                                 for s in before.stats)

        # a sampler re-reads only the data block with the first read's descriptors
        again = read_stats_fd(vcpu_stats_fd)
        descriptors = tuple(s.descriptor for s in again.stats)
        data_offset = struct.unpack_from("=6I", os.pread(vcpu_stats_fd, 24, 0))[5]
        size = max(d.offset + 8 * d.size for d in descriptors)
        resampled = parse_values(os.pread(vcpu_stats_fd, size, data_offset), descriptors)
        assert [s.name for s in resampled] == [s.name for s in again.stats]
    finally:
        for fd in reversed(fds):
            os.close(fd)
