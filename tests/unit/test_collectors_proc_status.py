"""/proc/PID/status on the procfs fixtures (values of procfs proc_status_test.go)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.collectors.proc_status import parse_proc_status
from fleet.errors import ParseError

KB = 1024


def test_prometheus_process(corpus: Path) -> None:
    s = parse_proc_status((corpus / "procfs/fixtures/proc/26231/status").read_text())
    assert (s.pid, s.name, s.threads) == (26231, "prometheus", 1)
    assert s.vm_peak_bytes == 58472 * KB and s.vm_size_bytes == 58440 * KB
    assert s.vm_hwm_bytes == 8028 * KB and s.vm_rss_bytes == 6716 * KB
    assert s.rss_anon_bytes == 2092 * KB and s.rss_file_bytes == 4624 * KB
    assert s.vm_pte_bytes == 128 * KB and s.vm_pmd_bytes == 12 * KB
    assert s.vm_swap_bytes == 660 * KB and s.vm_pin_bytes == 0 and s.hugetlb_pages_bytes == 0
    assert s.voluntary_ctxt_switches == 4742839 and s.nonvoluntary_ctxt_switches == 1727500
    assert s.cpus_allowed == tuple(range(8)) and s.mems_allowed == (0,)


def test_kube_proxy_name_is_trimmed(corpus: Path) -> None:
    s = parse_proc_status((corpus / "procfs/fixtures/proc/26235/status").read_text())
    assert s.name == "kube-proxy" and s.pid == 26235
    assert s.vm_pmd_bytes is None  # that kernel printed no VmPMD: unknown, not 0


def test_kernel_thread_has_no_memory() -> None:
    s = parse_proc_status(Path("/proc/2/status").read_text())
    assert s.name == "kthreadd" and s.vm_rss_bytes is None and s.vm_pte_bytes is None


def test_this_process() -> None:
    s = parse_proc_status(Path("/proc/self/status").read_text())
    assert s.pid == os.getpid() and s.vm_rss_bytes is not None and s.vm_rss_bytes > 0


def test_malformed() -> None:
    with pytest.raises(ParseError, match="VmRSS"):
        parse_proc_status("Name:\tx\nVmRSS:\t12 MB\n")
    with pytest.raises(ParseError, match=r"<status>:2"):
        parse_proc_status("Name:\tx\nno colon here\n")
