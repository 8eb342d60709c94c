"""Pure: the gate's decision. Fails closed: anything that keeps it from deciding is exit 2.

- 1 (regression): some gated metric x case x host is significantly worse (even if other parts
  could not be decided: a regression that was measured is reported as one): by the
  two-sample test at the row's effective threshold, or by its history (the newest run is a
  change point in the worse direction, at least the effective threshold; see
  fleet.compare.history_check);
- 2 (could not decide): problems found while running (unreachable or quarantined hosts,
  hosts without results, a fingerprint mismatch, an unusable baseline), a gated group with
  insufficient data (too few repetitions, missing on a side), or nothing gated at all;
- 0 (pass): every gated group decided, none worse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleet.compare.engine import Report, Row, case_text, metric_text

EXIT_PASS, EXIT_REGRESSION, EXIT_UNDECIDED = 0, 1, 2
GateStatus = Literal["pass", "regression", "undecided"]


@dataclass(frozen=True)
class Decision:
    exit_code: int
    status: GateStatus
    regressions: tuple[Row, ...]
    undecided: tuple[str, ...]  # one line per reason
    judged: int  # gated groups

    @property
    def headline(self) -> str:
        if self.status == "regression":
            return (f"FAIL: {len(self.regressions)} significant regression(s) in "
                    f"{self.judged} gated comparison(s)")
        if self.status == "undecided":
            return f"UNDECIDED: {len(self.undecided)} problem(s); the gate fails closed"
        return f"PASS: {self.judged} gated comparison(s), no significant regression"


def decide(report: Report | None, problems: Sequence[str] = ()) -> Decision:
    """``report`` None: no comparison could be made (``problems`` says why)."""
    undecided = list(problems)
    rows = () if report is None else tuple(r for r in report.rows if r.gate)
    regressions = tuple(r for r in rows if is_regression(r))
    undecided += [f"{row_title(r)}: {r.result.reason}" for r in rows
                  if r.result.verdict == "insufficient data" and not is_regression(r)]
    if report is not None and not rows:
        undecided.append("no gated metric: give workload metrics a direction in the suite's "
                         "compare.metrics (e.g. elapsed_seconds: {direction: lower_is_better})")
    if regressions:
        return Decision(EXIT_REGRESSION, "regression", regressions, tuple(undecided), len(rows))
    if undecided:
        return Decision(EXIT_UNDECIDED, "undecided", (), tuple(undecided), len(rows))
    return Decision(EXIT_PASS, "pass", (), (), len(rows))


def row_title(row: Row) -> str:
    g = row.group
    return (f"{metric_text(g.metric, g.labels)} {g.workload} [{case_text(g.case)}] on {g.host}"
            f" ({g.contrast})")


def is_regression(row: Row) -> bool:
    return row.gate and (row.result.verdict == "worse" or by_history(row) == "worse")


def by_history(row: Row) -> str | None:
    """The history's verdict when it found a change point (worse, better, changed)."""
    h = row.history
    return h.verdict if h is not None and h.verdict in ("worse", "better", "changed") else None


def failure_text(row: Row) -> str:
    """Why a row fails: the two-sample test, the history, or both."""
    parts = []
    if row.result.verdict == "worse":
        parts.append(f"worse: {row.result.reason}")
    if row.history is not None and row.history.verdict == "worse":
        parts.append(f"worse, found by history: {row.history.reason}")
    return "; ".join(parts) or f"{row.result.verdict}: {row.result.reason}"


def threshold_text(row: Row) -> str:
    return f"{row.threshold_ratio:.1%} ({row.threshold_source})"
