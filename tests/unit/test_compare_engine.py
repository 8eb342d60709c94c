"""fleet.compare select/engine/decide/output on synthetic runs with known answers."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest

from fleet.api.compare import parse_axis
from fleet.compare.decide import decide
from fleet.compare.engine import build_report, cross_machine
from fleet.compare.fingerprint import MismatchError, validate_allowed
from fleet.compare.output import junit, markdown, report_json
from fleet.compare.select import LoadedRun, SelectionError, between_runs, within_run
from fleet.config.compare import DEFAULT_COMPARE
from fleet.errors import ConfigError, FleetError
from fleet.model import CpuInfo, Facts, IommuInfo, KvmInfo, NumaNode, Topology
from fleet.runs import CompletedAttempt, KnobState, PlannedCase, RunInfo

SUITE = """\
schema_version: 1
name: t
compare:
  min_repetitions: 3
  threshold: 5%
  metrics:
    elapsed: {direction: lower_is_better}
workloads:
  - name: w
    type: sleep
    params: {seconds: 0.1}
"""


def facts(host: str, **changes: Any) -> Facts:
    base = Facts(host=host, collected_at_unix_seconds=1.0, hostname=host,
                 kernel_release="6.1.0", kernel_cmdline="quiet",
                 cpu=CpuInfo("GenuineIntel", "Xeon", "0x2b", 4),
                 topology=Topology((NumaNode(0, (0, 1, 2, 3), 8 << 30, None, (10,)),), (0,)),
                 mem_total_bytes=8 << 30, hugepages=(), thp_enabled="madvise",
                 thp_defrag="madvise", numa_balancing=1, kvm=KvmInfo(False, ()),
                 iommu=IommuInfo(False, ()), fingerprint=f"fp-{host}")
    return dataclasses.replace(base, **changes)


def run(run_id: str, values: dict[tuple[str, str], list[float]], *,
        host_facts: dict[str, Facts] | None = None, axis: str = "v",
        knobs: tuple[KnobState, ...] = ()) -> LoadedRun:
    """values: (axis value, host) -> elapsed values, one attempt each."""
    cases = {f"c{v}": PlannedCase("w", params=(("seconds", 0.1),), variant=((axis, v),))
             for v, _ in values}
    attempts: list[CompletedAttempt] = []
    for (v, host), samples in values.items():
        fp = (host_facts or {}).get(host, facts(host)).fingerprint
        for rep, value in enumerate(samples, 1):
            attempts.append(CompletedAttempt(
                len(attempts) + 1, f"c{v}", rep, host, fp, knobs,
                (("elapsed", value, "seconds", ()), ("missing", None, "seconds", ()))))
    info = RunInfo(run_id, "t", "t.yml", "0", 1, (), None, "0.1.0", 1.0, 2.0, "completed")
    known = host_facts or {h: facts(h) for _, h in values}
    return LoadedRun(info, tuple(attempts), cases, SUITE, {},
                     {(h, f.fingerprint): f for h, f in known.items()})


def normal(mean: float, n: int, seed: int) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(mean, mean * 0.01, n)]


def test_two_runs_regression_is_worse_and_fails_the_gate() -> None:
    base = run("r1", {("A", "h1"): normal(1.0, 8, 1), ("A", "h2"): normal(2.0, 8, 2)})
    cand = run("r2", {("A", "h1"): normal(1.2, 8, 3), ("A", "h2"): normal(2.0, 8, 4)})
    report = build_report(between_runs(base, cand), baseline="r1", candidate="r2")
    verdicts = {r.group.host: r.result.verdict for r in report.rows}
    assert verdicts == {"h1": "worse", "h2": "no significant change"}
    assert all(r.gate and r.group.metric == "elapsed" for r in report.rows)  # None: left out
    decision = decide(report)
    assert decision.exit_code == 1 and [r.group.host for r in decision.regressions] == ["h1"]
    xml = ET.fromstring(junit(report, decision))
    (failure,) = xml.iter("failure")
    assert "on h1" in failure.text and "+20" in failure.get("message", "")  # type: ignore[operator]
    text = markdown(report, decision)
    assert "FAIL: 1 significant regression" in text and "**worse**" in text
    (cross,) = cross_machine(report)
    assert [h for h, _ in cross.cells] == ["h1", "h2"]
    data = report_json(report, decision)
    assert data["gate"]["status"] == "regression" and len(data["rows"]) == 2


def test_identical_runs_pass_and_too_few_repetitions_are_undecided() -> None:
    same = normal(1.0, 6, 5)
    report = build_report(between_runs(run("r1", {("A", "h1"): same}),
                                       run("r2", {("A", "h1"): list(same)})),
                          baseline="r1", candidate="r2")
    assert decide(report).exit_code == 0
    short = build_report(between_runs(run("r1", {("A", "h1"): [1.0, 1.1]}),
                                      run("r2", {("A", "h1"): [2.0, 2.1]})),
                         baseline="r1", candidate="r2")
    decision = decide(short)
    assert decision.exit_code == 2 and "at least 3 per side" in decision.undecided[0]
    assert len(list(ET.fromstring(junit(short, decision)).iter("error"))) == 1


def test_axis_inside_one_run() -> None:
    one = run("r1", {("N", "h1"): normal(1.0, 6, 6), ("Y", "h1"): normal(0.8, 6, 7)},
              axis="kvm.eager_page_split")
    groups = within_run(one, "kvm.eager_page_split", "N", ("Y",))
    (row,) = build_report(groups, baseline="N", candidate="Y", axis="kvm.eager_page_split").rows
    assert row.result.verdict == "better" and row.group.case == (("seconds", "0.1"),)
    assert row.group.contrast == "kvm.eager_page_split=Y vs kvm.eager_page_split=N"
    with pytest.raises(SelectionError, match="no value 'Q'"):
        within_run(one, "kvm.eager_page_split", "N", ("Q",))
    with pytest.raises(SelectionError, match="axis 'kernel' is not in run r1"):
        within_run(one, "kernel", "a", ("b",))


def test_no_overlap_is_refused() -> None:
    a = run("r1", {("A", "h1"): [1.0, 1.0, 1.0]})
    b = run("r2", {("A", "h2"): [1.0, 1.0, 1.0]})
    with pytest.raises(SelectionError, match="no case, metric and host has values on both"):
        between_runs(a, b)


def test_mismatched_fingerprints_are_refused_unless_allowed() -> None:
    newer = facts("h1", cpu=CpuInfo("GenuineIntel", "Xeon", "0x2c", 4), kernel_release="6.2.0",
                  fingerprint="other")
    base = run("r1", {("A", "h1"): normal(1.0, 5, 8)})
    cand = run("r2", {("A", "h1"): normal(1.0, 5, 9)}, host_facts={"h1": newer})
    groups = between_runs(base, cand)
    with pytest.raises(MismatchError) as caught:
        build_report(groups, baseline="r1", candidate="r2")
    assert "h1 kernel_release: 6.1.0 vs 6.2.0" in str(caught.value)
    assert "--allow-mismatch kernel_release microcode" in str(caught.value)
    with pytest.raises(MismatchError, match="microcode"):
        build_report(groups, baseline="r1", candidate="r2", allow_mismatch={"kernel_release"})
    report = build_report(groups, baseline="r1", candidate="r2",
                          allow_mismatch={"kernel_release", "microcode"})
    assert sorted(d.field for d in report.mismatches) == ["kernel_release", "microcode"]
    assert "Allowed fingerprint differences" in markdown(report)
    # the axis under test is not a mismatch: comparing kernels ignores the kernel release
    assert build_report(groups, baseline="r1", candidate="r2", axis="kernel",
                        allow_mismatch={"microcode"}).mismatches[0].field == "microcode"
    with pytest.raises(FleetError, match="not a fingerprint field"):
        validate_allowed(["cpu"])


def test_unknown_facts_are_a_mismatch() -> None:
    base = run("r1", {("A", "h1"): [1.0] * 3})
    cand = dataclasses.replace(run("r2", {("A", "h1"): [1.0] * 3}), facts={})
    with pytest.raises(MismatchError, match="h1 facts: known vs unknown"):
        build_report(between_runs(base, cand), baseline="r1", candidate="r2")
    assert build_report(between_runs(base, cand), baseline="r1", candidate="r2",
                        allow_mismatch={"facts"}).rows


def test_the_gate_fails_closed() -> None:
    same = normal(1.0, 6, 10)
    groups = between_runs(run("r1", {("A", "h1"): same}), run("r2", {("A", "h1"): same}))
    passed = build_report(groups, baseline="r1", candidate="r2")
    assert decide(passed).status == "pass"
    down = decide(passed, ["host h2 unreachable, not used: connection refused"])
    assert (down.exit_code, down.status) == (2, "undecided")
    assert decide(None, ["fingerprint: not like for like"]).exit_code == 2
    neutral = [dataclasses.replace(g, config=DEFAULT_COMPARE) for g in groups]
    nothing = decide(build_report(neutral, baseline="r1", candidate="r2"))
    assert nothing.exit_code == 2 and "no gated metric" in nothing.undecided[0]
    xml = ET.fromstring(junit(None, down))
    error = xml.find(".//error")
    assert xml.get("errors") == "1" and error is not None
    assert "h2 unreachable" in (error.get("message") or "")


def test_parse_axis() -> None:
    assert parse_axis("kvm.eager_page_split=N,Y") == ("kvm.eager_page_split", "N", ("Y",))
    assert parse_axis("k=a, b, c") == ("k", "a", ("b", "c"))
    assert parse_axis("kernel=base", pair=False) == ("kernel", "base", ())
    for bad in ("k", "k=a", "=a,b"):
        with pytest.raises(ConfigError):
            parse_axis(bad)
