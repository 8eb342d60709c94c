"""fleet-agent's sampler: reads /proc and /sys while a case runs and streams what changed.

HOST side, stdlib only, python3 >= 3.8, like runner.py: fleet/agent/session.py ships this text
after runner.py's (without the ``__future__`` line, which runner.py's covers). The agent's one
thread calls ``Sampler.sample`` when ``due`` has passed: samples fall on absolute deadlines
``start + k * interval`` (a late sample skips the deadlines it missed and counts them, it never
drifts). Each sample is one "sample" message (fleet/agent/protocol.py documents its fields).

Files are opened once and re-read with pread at offset 0 (procfs seq_file and sysfs regenerate
their text on a read at 0), one read per file. A file's text is sent whole the first
time, then only as ``[[line index, line], ...]`` for the lines that changed (whole again when
its line count changes), or not at all when nothing changed; ``null`` when it cannot be read
(its error is sent once, in ``errors``). Per-process files follow the workload's process tree
(``task/*/children``); ``numa_maps`` is reopened when its kept descriptor reads nothing, because
an exec (``numactl ... python3``) gives the process a new address space that an old descriptor
no longer shows.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

SAMPLE_MIN_INTERVAL_SECONDS = 0.1
KMSG_CAP_BYTES = 65536  # per sample; the rest is counted in kmsg_dropped_bytes
NODE_FILES = ("meminfo", "numastat", "vmstat")
READ_BYTES = 65536  # one pread per file; a bigger file (interrupts of many CPUs) grows it
_PROC_FILES = ("numa_maps", "status")


class SampleSpecError(ValueError):
    """A sample spec the agent cannot act on (answered like any bad request)."""


def check_spec(spec: Any) -> dict[str, Any]:
    """The validated ``sample`` field of a run request."""
    if not isinstance(spec, dict):
        raise SampleSpecError("field 'sample' must be an object or null")
    interval = spec.get("interval_seconds")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or interval < SAMPLE_MIN_INTERVAL_SECONDS:
        raise SampleSpecError(f"sample.interval_seconds must be a number >= "
                              f"{SAMPLE_MIN_INTERVAL_SECONDS}")
    root = spec.get("root", "/")
    names = spec.get("kvm_stats", [])
    if not isinstance(root, str) or not root.startswith("/"):
        raise SampleSpecError("sample.root must be an absolute path")
    if not isinstance(names, list) or not all(isinstance(n, str) and n and "/" not in n
                                              for n in names):
        raise SampleSpecError("sample.kvm_stats must be a list of file names")
    flags = {k: spec.get(k, True) for k in ("kmsg", "processes")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise SampleSpecError("sample.kmsg and sample.processes must be booleans")
    return dict(flags, interval_seconds=float(interval), root=root.rstrip("/") + "/",
                kvm_stats=list(names))


def _error_text(e: OSError) -> str:
    name = errno.errorcode.get(e.errno or 0, "EIO")
    return f"{name}: {e.strerror or e}"


class Sampler:
    """One run's sampling: open files, previous lines, the deadline clock."""

    def __init__(self, spec: dict[str, Any], pid: int, started: float) -> None:
        self.spec = spec
        self.root = spec["root"]
        self.pid = pid
        self.interval = spec["interval_seconds"]
        self.start = started
        self.due = started
        self.seq = 0
        self.missed = 0
        self.read_bytes = READ_BYTES
        self.fds: dict[str, int] = {}
        self.children: dict[str, int] = {}  # task/<tid>/children path -> kept descriptor
        self.failed: set[str] = set()  # system files that could not be read: not retried
        self.reopened: set[str] = set()  # not seekable (debugfs attributes): opened per read
        self.reported: set[str] = set()  # keys whose error was sent (once)
        self.prev: dict[str, Any] = {}  # key -> (raw bytes, lines) last sent; None: unreadable
        self.errors: dict[str, str] = {}
        self.children_scan = not os.path.exists(
            f"{self.root}proc/self/task/{os.getpid()}/children")  # no CONFIG_PROC_CHILDREN
        self.system = self._system_files()
        self.kmsg_fd = self._open_kmsg() if spec["kmsg"] else None

    # ---- what to read -------------------------------------------------------------------

    def _system_files(self) -> list[tuple[str, str]]:
        files = [("vmstat", "proc/vmstat"), ("interrupts", "proc/interrupts")]
        base = "sys/devices/system/node/"
        try:
            nodes = sorted(int(n[4:]) for n in os.listdir(self.root + base)
                           if n.startswith("node") and n[4:].isdigit())
        except OSError as e:
            self.errors["nodes"] = _error_text(e)
            nodes = []
        for node in nodes:
            files += [(f"node{node}/{name}", f"{base}node{node}/{name}")
                      for name in (*NODE_FILES, "cpulist")]
        files += [(f"kvm/{name}", f"sys/kernel/debug/kvm/{name}")
                  for name in self.spec["kvm_stats"]]
        return files

    def _open_kmsg(self) -> int | None:
        fd = None
        try:
            fd = os.open(self.root + "dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(fd, 0, os.SEEK_END)  # only records logged from now on
        except OSError as e:
            self.errors["kmsg"] = _error_text(e)
            if fd is not None:
                os.close(fd)
            return None
        return fd

    def tree(self) -> list[int]:
        """The workload's pid and its descendants' (processes, not threads), parents first.

        Each thread's ``children`` file stays open between samples (a path lookup in procfs
        costs more than the read); files of threads that are gone are closed.
        """
        if self.children_scan:
            return self._scan_tree()
        pids, i, seen = [self.pid], 0, set()
        while i < len(pids):
            task = f"{self.root}proc/{pids[i]}/task/"
            i += 1
            try:
                tids = os.listdir(task)
            except OSError:
                continue
            for tid in tids:
                path = task + tid + "/children"
                seen.add(path)
                try:
                    fd = self.children.get(path)
                    if fd is None:
                        fd = self.children[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    pids.extend(int(p) for p in self._read_fd(fd).split())
                except OSError:  # the thread ended meanwhile: a new one may reuse its tid
                    stale = self.children.pop(path, None)
                    if stale is not None:
                        os.close(stale)
        for path in [p for p in self.children if p not in seen]:
            os.close(self.children.pop(path))
        return pids

    def _scan_tree(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        try:
            names = os.listdir(self.root + "proc")
        except OSError:
            names = []
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"{self.root}proc/{name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(name))
        pids, i = [self.pid], 0
        while i < len(pids):
            pids.extend(sorted(parents.get(pids[i], ())))
            i += 1
        return pids

    # ---- reading ------------------------------------------------------------------------

    def _read_fd(self, fd: int) -> bytes:
        """The whole file at offset 0; a short read is its end (seq_file, sysfs, debugfs)."""
        data = os.pread(fd, self.read_bytes, 0)
        if len(data) < self.read_bytes:
            return data
        chunks = [data]  # it filled the read: go on (and ask for more next time)
        while len(data) == self.read_bytes:
            data = os.pread(fd, self.read_bytes, sum(map(len, chunks)))
            chunks.append(data)
        self.read_bytes = max(self.read_bytes, 2 * len(chunks[0]) * len(chunks))
        return b"".join(chunks)

    @staticmethod
    def _read_new(path: str) -> bytes:
        """The whole file through a new descriptor (files whose kept one cannot re-read)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks: list[bytes] = []
            while True:
                data = os.read(fd, READ_BYTES)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
        finally:
            os.close(fd)

    def _read(self, key: str, path: str, *, mm: bool = False) -> bytes | None:
        """The file's text through its kept descriptor (opened on first use). ``mm``: the file
        shows an address space (numa_maps): a kept descriptor reads nothing once the process
        exec'd a new one, so an empty read is retried once through a new descriptor."""
        fd = self.fds.get(key)
        fresh = fd is None
        try:
            if fd is None:
                if key in self.failed:
                    return None
                if key in self.reopened:
                    return self._read_new(self.root + path)
                fd = self.fds[key] = os.open(self.root + path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = self._read_fd(fd)
            except OSError as e:
                if e.errno != errno.ESPIPE:
                    raise
                # a debugfs attribute (KVM stats): not seekable, and it formats its value on
                # the first read of an open only, so it is read through a new descriptor
                os.close(self.fds.pop(key))
                fd = None
                self.reopened.add(key)
                return self._read_new(self.root + path)
            if mm and not data and not fresh:
                os.close(self.fds.pop(key))
                fd = None
                return self._read(key, path, mm=True)
            return data
        except OSError as e:
            gone = key.startswith("pid/") and e.errno in (errno.ESRCH, errno.ENOENT)
            if key not in self.reported and not gone:
                self.errors[key] = _error_text(e)
                self.reported.add(key)
            if not key.startswith("pid/"):
                self.failed.add(key)
            if fd is not None and self.fds.pop(key, None) is not None:
                os.close(fd)
            return None

    def _encode(self, key: str, data: bytes | None, out: dict[str, Any]) -> None:
        """Put the change of ``key`` (whole text, changed lines, null) in ``out``."""
        before = self.prev.get(key, ...)
        if data is None:
            if before is not None:
                out[key] = None
                self.prev[key] = None
            return
        if before is not ... and before is not None and before[0] == data:
            return
        lines = data.split(b"\n")
        if before is not ... and before is not None and len(before[1]) == len(lines):
            old = before[1]  # zip(strict=) is 3.10+; the lengths are equal here
            out[key] = [[i, lines[i].decode("utf-8", "replace")]
                        for i in range(len(lines)) if old[i] != lines[i]]
        else:
            out[key] = data.decode("utf-8", "replace")
        self.prev[key] = (data, lines)

    def _kmsg(self, record: dict[str, Any]) -> None:
        chunks, size, dropped = [], 0, 0
        while self.kmsg_fd is not None:
            try:
                data = os.read(self.kmsg_fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # records were overwritten before we read them
                record["kmsg_lost"] = True
                continue
            except OSError as e:
                self.errors["kmsg"] = _error_text(e)
                os.close(self.kmsg_fd)
                self.kmsg_fd = None
                break
            if not data:
                break
            if size + len(data) > KMSG_CAP_BYTES:
                dropped += len(data)
                continue
            chunks.append(data)
            size += len(data)
        if chunks:
            record["kmsg"] = b"".join(chunks).decode("utf-8", "replace")
        if dropped:
            record["kmsg_dropped_bytes"] = dropped

    # ---- one sample ---------------------------------------------------------------------

    def sample(self, now: float, request_id: int, *, final: bool = False) -> dict[str, Any]:
        """Read everything once; the "sample" message. Advances ``due`` past ``now``."""
        began = time.monotonic()
        wall = time.time()
        files: dict[str, Any] = {}
        for key, path in self.system:
            if key.endswith("/cpulist") and key in self.prev:
                continue  # static: read once
            self._encode(key, self._read(key, path), files)
        pids = self.tree() if self.spec["processes"] else []
        self._processes(pids, files)
        record: dict[str, Any] = {
            "type": "sample", "id": request_id, "seq": self.seq, "monotonic_seconds": began,
            "wall_seconds": wall, "pids": pids, "files": files, "missed": self.missed,
            "final": final}
        self._kmsg(record)
        if self.errors:
            record["errors"], self.errors = self.errors, {}
        record["sample_seconds"] = time.monotonic() - began
        record["agent_cpu_seconds"] = time.process_time()
        self.seq += 1
        self._advance(now)
        return record

    def _processes(self, pids: list[int], files: dict[str, Any]) -> None:
        live = set()
        for pid in pids:
            for name in _PROC_FILES:
                key = f"pid/{pid}/{name}"
                live.add(key)
                data = self._read(key, f"proc/{pid}/{name}", mm=name == "numa_maps")
                self._encode(key, data, files)
        for key in [k for k in self.prev if k.startswith("pid/") and k not in live]:
            del self.prev[key]  # left the tree: the controller goes by "pids"
            fd = self.fds.pop(key, None)
            if fd is not None:
                os.close(fd)

    def _advance(self, now: float) -> None:
        ticks = int((now - self.start) / self.interval) + 1
        next_due = self.start + ticks * self.interval
        skipped = ticks - round((self.due - self.start) / self.interval) - 1
        self.missed += max(0, skipped)
        self.due = next_due

    def wake_in(self, now: float) -> float:
        return max(0.0, self.due - now)

    def close(self) -> None:
        for fd in (*self.fds.values(), *self.children.values()):
            os.close(fd)
        self.fds.clear()
        self.children.clear()
        if self.kmsg_fd is not None:
            os.close(self.kmsg_fd)
            self.kmsg_fd = None
