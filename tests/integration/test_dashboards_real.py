"""Every query of every committed dashboard returns data from a real Prometheus.

One small real suite runs on two netns lab hosts (a TLB-shootdown workload bound to node 0,
axis ``kernel_variant: [a, b]``). Its results reach one real Prometheus by every path (see
tests/integration/dashboards_proof.py). Then each dashboards/*.json is walked: its variables
are asked for their values, its template variables are substituted with real ones, and each
target runs through the HTTP API (instant at now, or over the run's time range). A target that
returns nothing fails, unless the only families it reads are ones this machine cannot produce
(checked here, not assumed: no KVM debugfs; no secondary page-table growth without a KVM VM):
exactly those targets are proven with data by test_kvm_guest_metrics.py, whose case runs a
real KVM VM in a QEMU lab guest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboards_proof import (
    GUEST_ONLY,
    Proven,
    check_variables,
    empty_targets,
    proven_run,
    stored_values,
    suite_yaml,
    targets,
)
from test_sampling_lab import PRIORITY, SHOOTDOWNS

from fleet.export.grafana.panels import KVM_FLUSHES, LOCALITY
from fleet.export.grafana.series import KVM_FLUSHES as HOST_KVM_FLUSHES
from fleet.lab import LabState

pytestmark = pytest.mark.integration
HOSTS = ("lab1", "lab2")
KVM_DEBUGFS = Path("/sys/kernel/debug/kvm")


def suite_text() -> str:
    argv = ["env", "KERNEL_VARIANT={kernel_variant}", *PRIORITY, "numactl", "--membind={membind}",
            "--cpunodebind={membind}", "python3", "-c",
            SHOOTDOWNS.replace("{", "{{").replace("}", "}}"), "1.5", "32", "1"]
    return suite_yaml("dashboards", argv, r"^flips=(?P<flips>\d+)$", ("flips",))


@pytest.fixture(scope="module")
def proven(lab: LabState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proven]:
    home = tmp_path_factory.mktemp("dashboards")
    with proven_run(home, suite_text(), lab.inventory_path, HOSTS) as p:
        yield p


def not_on_this_machine(shown: dict[str, Any]) -> dict[str, str]:
    """Families this machine cannot produce, each checked against the machine and the store."""
    absent = {}
    if not KVM_DEBUGFS.exists() and not any(stored_values(shown, KVM_FLUSHES)):
        reason = f"no KVM debugfs ({KVM_DEBUGFS}) on this machine"
        absent.update({KVM_FLUSHES.name: reason, HOST_KVM_FLUSHES.name: reason})
    locality = stored_values(shown, LOCALITY)
    if locality and all(v is None for v in locality):
        absent[LOCALITY.name] = "no secondary page-table growth without a KVM VM"
    assert set(absent) <= GUEST_ONLY  # what test_kvm_guest_metrics.py proves instead
    return absent


def test_every_variable_has_values(proven: Proven) -> None:
    check_variables(proven)


def test_every_panel_query_returns_data(proven: Proven) -> None:
    absent = not_on_this_machine(proven.shown)
    proved, empty = empty_targets(proven)
    for target in empty:
        assert target.families and target.families <= set(absent), \
            f"{target.where} returned nothing: {target.expr}"
    excused = sorted(f"{t.where}: {absent[sorted(t.families)[0]]}" for t in empty)
    print(f"{proved} targets returned data; {len(excused)} cannot here:", *excused, sep="\n  ")
    # exactly the targets reading only families this machine cannot produce are empty (on
    # this machine: KVM remote TLB flushes per case, imported and A/B; page-table locality
    # per case, recorded and A/B); test_kvm_guest_metrics.py proves each of them with data
    assert {t.where for t in empty} == {t.where for t in targets()
                                        if t.families and t.families <= set(absent)}
    assert proved >= 50
