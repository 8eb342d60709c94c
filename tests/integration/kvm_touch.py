"""kvm_touch: a tiny real KVM guest that writes to every 4 KiB page of its memory (stdlib only).

Usage: ``python3 kvm_touch.py SIZE_MIB VCPUS TOUCH_SECONDS HOLD_SECONDS`` (or ``python3 -c
SOURCE ...``). Run on a host whose /dev/kvm works (the lab's QEMU guests: TCG emulates SVM
with nested paging, so KVM runs a nested guest there). It

1. creates a VM with one memslot of SIZE_MIB MiB of private anonymous memory at guest physical
   0 (its placement follows the process's NUMA policy, e.g. ``numactl --membind=0``), with
   dirty logging on (KVM_MEM_LOG_DIRTY_PAGES: KVM then maps it with 4 KiB pages only);
2. starts VCPUS vCPUs in 32-bit flat protected mode (no guest paging), each running a loop
   over its share of the slot that writes one word to every page, then ``out 0x10`` (an exit
   to this program, which re-enters it until TOUCH_SECONDS have passed): KVM builds secondary
   (nested) page tables for every page, counted in SecPageTables of the node they sit on;
3. meanwhile calls KVM_GET_DIRTY_LOG in rounds: each write-protects the pages written since
   the last one and flushes the TLBs of the vCPUs running on other CPUs (a KVM remote TLB
   flush, /sys/kernel/debug/kvm/remote_tlb_flush), and the vCPUs' next pass faults them in
   writable again;
4. stops the vCPUs, keeps the VM (and its page tables) for HOLD_SECONDS, then prints one line
   ``kvm_touch pages=P passes=N dirty_rounds=R dirty_pages=D restarts=X seconds=S`` and exits 0.

Nested under TCG, a vCPU now and then exits with an access no instruction of the loop makes
(seen once in many runs: an MMIO read at 0xfffffffc); its registers are set to the start of the
loop again, counted as a restart (each is told on stderr), up to MAX_RESTARTS per vCPU.

On an error it prints ``kvm_touch error=WHAT errno=N`` and exits 1.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import sys
import threading
import time

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_GET_DIRTY_LOG = 0x4010AE42
KVM_SET_USER_MEMORY_REGION = 0x4020AE46
KVM_RUN = 0xAE80
KVM_GET_REGS, KVM_SET_REGS = 0x8090AE81, 0x4090AE82
KVM_GET_SREGS, KVM_SET_SREGS = 0x8138AE83, 0x4138AE84
KVM_MEM_LOG_DIRTY_PAGES = 1
KVM_EXIT_IO = 2
REGS_BYTES, SREGS_BYTES = 144, 312
PAGE = 4096
CODE_ADDRESS = 0x1000  # page 1; pages 0 and 1 are not touched (the code must stay intact)
FIRST_TOUCHED = 0x2000
MAX_RESTARTS = 5
# start: mov eax, esi / again: mov [eax], eax / add eax, 4096 / cmp eax, edi / jb again /
#        out 0x10, al / jmp start
CODE = bytes.fromhex("89f0" "8900" "0500100000" "39f8" "72f5" "e610" "ebef")

libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.ioctl.restype = ctypes.c_int


class KvmError(Exception):
    def __init__(self, what: str, errno: int = 0) -> None:
        super().__init__(what)
        self.what, self.errno = what, errno


def ioctl(fd: int, request: int, arg: int | ctypes.Array[ctypes.c_char] | None = None,
          what: str = "") -> int:
    """The ioctl's result; KvmError(what, errno) when it fails. Releases the GIL."""
    pointer = ctypes.cast(arg, ctypes.c_void_p) if isinstance(arg, ctypes.Array) else arg
    result = int(libc.ioctl(fd, request, pointer))
    if result < 0:
        raise KvmError(what or hex(request), ctypes.get_errno())
    return result


def flat_protected_mode(vcpu: int) -> None:
    """CR0.PE with flat 4 GiB code and data segments (KVM loads the hidden parts as given)."""
    sregs = ctypes.create_string_buffer(SREGS_BYTES)
    ioctl(vcpu, KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
    for index in range(6):  # cs, ds, es, fs, gs, ss: kvm_segment is 24 bytes
        kind = 11 if index == 0 else 3  # code execute/read accessed; data read/write accessed
        # base, limit, selector, type, present, dpl, db, s, l, g, avl, unusable, padding
        struct.pack_into("<QIHBBBBBBBBBB", sregs, index * 24, 0, 0xFFFFFFFF,
                         8 if index == 0 else 16, kind, 1, 0, 1, 1, 0, 1, 0, 0, 0)
    (cr0,) = struct.unpack_from("<Q", sregs, 224)
    struct.pack_into("<Q", sregs, 224, cr0 | 1)
    ioctl(vcpu, KVM_SET_SREGS, sregs, "KVM_SET_SREGS")


def start_registers(vcpu: int, first: int, end: int) -> None:
    """rip at the code; esi/edi: the vCPU's share of the slot [first, end)."""
    regs = ctypes.create_string_buffer(REGS_BYTES)
    ioctl(vcpu, KVM_GET_REGS, regs, "KVM_GET_REGS")
    struct.pack_into("<QQ", regs, 32, first, end)  # rsi, rdi
    struct.pack_into("<QQ", regs, 128, CODE_ADDRESS, 0x2)  # rip, rflags (bit 1 is fixed)
    ioctl(vcpu, KVM_SET_REGS, regs, "KVM_SET_REGS")


class Vcpu(threading.Thread):
    """One vCPU re-entered after every pass over its pages until ``stop`` is set."""

    def __init__(self, vm: int, index: int, run_bytes: int, share: tuple[int, int],
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.fd = ioctl(vm, KVM_CREATE_VCPU, index, "KVM_CREATE_VCPU")
        self.run_area = mmap.mmap(self.fd, run_bytes, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        self.share = share
        self._restart()
        self.stop, self.passes, self.restarts = stop, 0, 0
        self.failure: KvmError | None = None

    def _restart(self) -> None:
        flat_protected_mode(self.fd)
        start_registers(self.fd, *self.share)

    def _complete_pending_exit(self) -> None:
        """KVM finishes an MMIO (or PIO) exit at the next KVM_RUN; with immediate_exit set it
        does only that and returns EINTR, so the registers set after it are not overwritten."""
        self.run_area[1] = 1  # struct kvm_run: request_interrupt_window, immediate_exit
        try:
            ioctl(self.fd, KVM_RUN, None, "KVM_RUN")
        except KvmError as exc:
            if exc.errno != errno.EINTR:
                raise
        finally:
            self.run_area[1] = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                ioctl(self.fd, KVM_RUN, None, "KVM_RUN")
                (reason,) = struct.unpack_from("<I", self.run_area, 8)
                if reason == KVM_EXIT_IO:
                    self.passes += 1
                    continue
                detail = struct.unpack_from("<Q", self.run_area, 32)[0]
                what = f"KVM_RUN exit_reason={reason} detail={detail:#x}"
                if self.restarts >= MAX_RESTARTS:
                    raise KvmError(what)
                print(f"kvm_touch restart {what}", file=sys.stderr, flush=True)
                self.restarts += 1
                self._complete_pending_exit()
                self._restart()
        except KvmError as exc:
            self.failure = exc
            self.stop.set()


def create_vm(size_bytes: int) -> tuple[int, int, mmap.mmap]:
    """(/dev/kvm fd, VM fd, guest memory) with the code in place and dirty logging on."""
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    if ioctl(kvm, KVM_GET_API_VERSION, None, "KVM_GET_API_VERSION") != 12:
        raise KvmError("KVM API version is not 12")
    vm = ioctl(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM")
    memory = mmap.mmap(-1, size_bytes, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory[CODE_ADDRESS:CODE_ADDRESS + len(CODE)] = CODE
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    region = ctypes.create_string_buffer(
        struct.pack("<IIQQQ", 0, KVM_MEM_LOG_DIRTY_PAGES, 0, size_bytes, address))
    ioctl(vm, KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")
    return kvm, vm, memory


def dirty_rounds(vm: int, pages: int, until: float, stop: threading.Event) -> tuple[int, int]:
    """KVM_GET_DIRTY_LOG every 50 ms until ``until``: (rounds, dirty pages seen)."""
    bitmap = ctypes.create_string_buffer((pages + 63) // 64 * 8)
    request = ctypes.create_string_buffer(
        struct.pack("<IIQ", 0, 0, ctypes.addressof(bitmap)))
    rounds = dirty = 0
    while time.monotonic() < until and not stop.is_set():
        time.sleep(0.05)
        ioctl(vm, KVM_GET_DIRTY_LOG, request, "KVM_GET_DIRTY_LOG")
        rounds += 1
        dirty += sum(bin(b).count("1") for b in bitmap.raw)
    return rounds, dirty


def main(argv: list[str]) -> int:
    size_mib, vcpus = int(argv[0]), int(argv[1])
    touch_seconds, hold_seconds = float(argv[2]), float(argv[3])
    started = time.monotonic()
    size = size_mib << 20
    try:
        kvm, vm, _memory = create_vm(size)
        run_bytes = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, None, "KVM_GET_VCPU_MMAP_SIZE")
        stop = threading.Event()
        step = (size - FIRST_TOUCHED) // vcpus // PAGE * PAGE
        shares = [(FIRST_TOUCHED + i * step,
                   size if i == vcpus - 1 else FIRST_TOUCHED + (i + 1) * step)
                  for i in range(vcpus)]
        threads = [Vcpu(vm, i, run_bytes, share, stop) for i, share in enumerate(shares)]
        for thread in threads:
            thread.start()
        rounds, dirty = dirty_rounds(vm, size // PAGE, started + touch_seconds, stop)
        stop.set()
        for thread in threads:
            thread.join()
        failed = [t.failure for t in threads if t.failure is not None]
        if failed:
            raise failed[0]
        time.sleep(hold_seconds)  # the VM and its page tables stay for the last samples
    except KvmError as exc:
        print(f"kvm_touch error={exc.what.replace(' ', '_')} errno={exc.errno}", flush=True)
        return 1
    passes = min(t.passes for t in threads)
    print(f"kvm_touch pages={(size - FIRST_TOUCHED) // PAGE} passes={passes} "
          f"dirty_rounds={rounds} dirty_pages={dirty} restarts={sum(t.restarts for t in threads)} "
          f"seconds={time.monotonic() - started:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
