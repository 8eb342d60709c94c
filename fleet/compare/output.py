"""Pure: a comparison report (and a gate decision) as JSON data, Markdown and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict
from typing import Any

from fleet.compare.decide import (
    Decision,
    by_history,
    failure_text,
    is_regression,
    row_title,
    threshold_text,
)
from fleet.compare.engine import Report, Row, case_text, cross_machine, metric_text
from fleet.compare.history_check import HistoryCheck
from fleet.compare.stats import Summary
from fleet.model import MISSING_TEXT, p_value_text, percent_text

_MD_ROWS_MAX = 500


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return MISSING_TEXT
    return f"{value:.4g} {unit}".rstrip()


def change_text(row: Row) -> str:
    r = row.result
    if r.relative_change is None:
        return MISSING_TEXT if r.hodges_lehmann is None else f"shift {r.hodges_lehmann:+.4g}"
    ci = "" if r.ci_low is None or r.ci_high is None else \
        f" [{percent_text(r.ci_low)}, {percent_text(r.ci_high)}]"
    return f"{percent_text(r.relative_change)}{ci}"


# ---- JSON ---------------------------------------------------------------------------------


def report_json(report: Report, decision: Decision | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "baseline": report.baseline, "candidate": report.candidate, "axis": report.axis,
        "mismatches_allowed": [asdict(d) for d in report.mismatches],
        "rows": [row_json(r) for r in report.rows],
        "cross_machine": [
            {"metric": c.metric, "unit": c.unit, "labels": dict(c.labels),
             "workload": c.workload, "case": dict(c.case), "contrast": c.contrast,
             "hosts": {host: {"baseline_median": r.result.baseline.median,
                              "candidate_median": r.result.candidate.median,
                              "relative_change": r.result.relative_change,
                              "verdict": r.result.verdict} for host, r in c.cells}}
            for c in cross_machine(report)],
    }
    if decision is not None:
        data["gate"] = decision_json(decision)
    return data


def row_json(row: Row) -> dict[str, Any]:
    g, r = row.group, row.result
    return {
        "metric": g.metric, "unit": g.unit, "labels": dict(g.labels), "workload": g.workload,
        "case": dict(g.case), "host": g.host, "contrast": g.contrast, "gate": row.gate,
        "verdict": r.verdict, "significant": r.significant, "reason": r.reason,
        "baseline": _summary(r.baseline), "candidate": _summary(r.candidate),
        "relative_change": r.relative_change, "ci_low": r.ci_low, "ci_high": r.ci_high,
        "p_value": r.p_value, "cliffs_delta": r.cliffs_delta,
        "hodges_lehmann": r.hodges_lehmann, "threshold_ratio": row.threshold_ratio,
        "threshold_source": row.threshold_source, "history": _history(row.history)}


def _history(h: HistoryCheck | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"points": h.points, "noise_cv": h.noise_cv,
            "suite_threshold_ratio": h.suite_threshold_ratio,
            "threshold_ratio": h.threshold_ratio, "threshold_source": h.threshold_source,
            "verdict": h.verdict, "reason": h.reason,
            "change_point": None if h.change is None else asdict(h.change)}


def history_text(row: Row) -> str:
    h = row.history
    if h is None:
        return MISSING_TEXT
    if h.verdict in ("too short", "not checked"):
        return f"{h.verdict} ({h.points} runs)"
    pct = "" if h.change is None else f" {percent_text(h.change.relative_change)}"
    return f"{h.verdict}{pct} ({h.points} runs)"


def _summary(s: Summary) -> dict[str, Any]:
    return asdict(s)


def decision_json(decision: Decision) -> dict[str, Any]:
    return {"status": decision.status, "exit_code": decision.exit_code,
            "headline": decision.headline, "judged": decision.judged,
            "regressions": [row_title(r) for r in decision.regressions],
            "regression_reasons": [failure_text(r) for r in decision.regressions],
            "undecided": list(decision.undecided)}


# ---- Markdown -----------------------------------------------------------------------------


def markdown(report: Report | None, decision: Decision | None = None, *,
             title: str = "fleet compare") -> str:
    lines = [f"## {title}", ""]
    if report is not None:
        lines += [f"Candidate **{_md(report.candidate)}** vs baseline "
                  f"**{_md(report.baseline)}**.", ""]
    if decision is not None:
        lines += [f"**{decision.headline}**", ""]
        lines += [f"- regression: {_md(row_title(r))}: {_md(failure_text(r))}"
                  for r in decision.regressions]
        lines += [f"- could not decide: {_md(u)}" for u in decision.undecided]
        lines += [""] if decision.regressions or decision.undecided else []
    if report is None:
        return "\n".join(lines)
    found = [r for r in report.rows if by_history(r) in ("better", "changed")]
    lines += [f"- found by history ({r.history.verdict}, not failing): {_md(row_title(r))}: "
              f"{_md(r.history.reason)}" for r in found if r.history is not None]
    lines += [""] if found else []
    if report.mismatches:
        lines += ["Allowed fingerprint differences:", ""]
        lines += [f"- {_md(d.text())}" for d in report.mismatches] + [""]
    history = any(row.history is not None for row in report.rows)
    lines += ["| verdict | metric | workload | case | host | baseline median (n) | "
              "candidate median (n) | change [95% CI] | p | Cliff's δ | threshold |"
              + (" history |" if history else ""),
              "|---|---|---|---|---|---:|---:|---:|---:|---:|---|" + ("---|" if history else "")]
    for row in report.rows[:_MD_ROWS_MAX]:
        g, r = row.group, row.result
        verdict = f"**{r.verdict}**" if r.verdict == "worse" else r.verdict
        past = history_text(row)
        past = f"**{past}**" if by_history(row) == "worse" else past
        extra = f" {_md(threshold_text(row))} |" + (f" {_md(past)} |" if history else "")
        lines.append(
            f"| {verdict}{'' if row.gate else ' (not gated)'} | "
            f"{_md(metric_text(g.metric, g.labels))} | {_md(g.workload)} | "
            f"{_md(case_text(g.case))} | {_md(g.host)} | "
            f"{number(r.baseline.median, g.unit)} ({r.baseline.n}) | "
            f"{number(r.candidate.median, g.unit)} ({r.candidate.n}) | {change_text(row)} | "
            f"{p_value_text(r.p_value)} | {number(r.cliffs_delta)} |{extra}")
    if len(report.rows) > _MD_ROWS_MAX:
        lines.append(f"\n({len(report.rows) - _MD_ROWS_MAX} more rows: see --json)")
    return "\n".join([*lines, "", *_cross_markdown(report)])


def _cross_markdown(report: Report) -> list[str]:
    cross = [c for c in cross_machine(report) if len(c.cells) > 1]
    if not cross:
        return []
    hosts = sorted({h for c in cross for h, _ in c.cells})
    lines = ["### Across machines (candidate median, change)", "",
             "| metric | workload | case | " + " | ".join(map(_md, hosts)) + " |",
             "|---|---|---|" + "---:|" * len(hosts)]
    for c in cross[:_MD_ROWS_MAX]:
        cells = dict(c.cells)
        shown = [f"{number(cells[h].result.candidate.median, c.unit)} "
                 f"({percent_text(cells[h].result.relative_change)})" if h in cells
                 else MISSING_TEXT for h in hosts]
        lines.append(f"| {_md(metric_text(c.metric, c.labels))} | {_md(c.workload)} | "
                     f"{_md(case_text(c.case))} | " + " | ".join(shown) + " |")
    return [*lines, ""]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---- JUnit XML ----------------------------------------------------------------------------


def junit(report: Report | None, decision: Decision, *, name: str = "fleet gate") -> str:
    """One testcase per metric x case x host (failure: regression; error: undecided; skipped:
    not gated), plus one error testcase per problem found outside the comparison."""
    suite = ET.Element("testsuite", name=name)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    in_rows = set()
    for row in () if report is None else report.rows:
        g, r = row.group, row.result
        case = ET.SubElement(suite, "testcase", classname=f"fleet.gate.{g.workload}",
                             name=f"{metric_text(g.metric, g.labels)} [{case_text(g.case)}] "
                                  f"on {g.host}", time="0")
        counts["tests"] += 1
        text = _numbers(row)
        if not row.gate:
            ET.SubElement(case, "skipped", message=f"not gated: {r.verdict}").text = text
            counts["skipped"] += 1
        elif is_regression(row):
            kind = "regression" if r.verdict == "worse" else "regression found by history"
            ET.SubElement(case, "failure", type=kind, message=failure_text(row)).text = text
            counts["failures"] += 1
        elif r.verdict == "insufficient data":
            in_rows.add(f"{row_title(row)}: {r.reason}")
            ET.SubElement(case, "error", type="undecided",
                          message=f"insufficient data: {r.reason}").text = text
            counts["errors"] += 1
        else:
            ET.SubElement(case, "system-out").text = text
    for problem in (u for u in decision.undecided if u not in in_rows):
        case = ET.SubElement(suite, "testcase", classname="fleet.gate", name=problem[:200],
                             time="0")
        ET.SubElement(case, "error", type="undecided", message=problem)
        counts["tests"] += 1
        counts["errors"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites", name=name, tests=str(counts["tests"]),
                      failures=str(counts["failures"]), errors=str(counts["errors"]))
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _numbers(row: Row) -> str:
    g, r = row.group, row.result
    return (f"{metric_text(g.metric, g.labels)} {g.workload} [{case_text(g.case)}] on {g.host}"
            f" ({g.contrast}): baseline median {number(r.baseline.median, g.unit)} "
            f"(n={r.baseline.n}, IQR {number(r.baseline.iqr)}), candidate median "
            f"{number(r.candidate.median, g.unit)} (n={r.candidate.n}, IQR "
            f"{number(r.candidate.iqr)}), change {change_text(row)}, p={p_value_text(r.p_value)}, "
            f"Cliff's delta {number(r.cliffs_delta)}, threshold {threshold_text(row)}; "
            f"{r.verdict}: {r.reason}" + _history_numbers(row))


def _history_numbers(row: Row) -> str:
    h = row.history
    if h is None:
        return ""
    cv = "unknown" if h.noise_cv is None else f"{h.noise_cv:.1%}"
    return (f"; history ({h.points} earlier runs, host noise CV {cv}): {h.verdict}: "
            f"{h.reason}")
