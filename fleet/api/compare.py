"""What `fleet compare` and `fleet gate` call.

compare: stored runs -> a Report. gate: run the suite (the same run API as `fleet run`), then
compare with the baseline (a stored run or tag, or a variant of the same run) and decide;
problems that keep the gate from deciding become reasons (exit 2), never a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.api.run import RunRequest, start_run
from fleet.compare.decide import Decision, decide
from fleet.compare.engine import Report, build_report
from fleet.compare.fingerprint import MismatchError
from fleet.compare.history_check import HistoryKey
from fleet.compare.load import load_history, load_runs, resolve
from fleet.compare.select import Group, SelectionError, between_runs, within_run
from fleet.config.inventory import load_inventory
from fleet.config.suite import parse_suite
from fleet.errors import ConfigError, FleetError
from fleet.execute.events import HostQuarantined, RunEvent
from fleet.execute.executor import ExecuteOptions
from fleet.model import Case
from fleet.plan.matrix import DEFAULT_MAX_JOBS, expand
from fleet.workloads.base import format_param_value
from fleet.yamlnode import read_suite_text

AxisSpec = tuple[str, str, tuple[str, ...]]  # name, baseline value, candidate values


def parse_axis(text: str, *, option: str = "--axis", pair: bool = True) -> AxisSpec:
    """``NAME=A,B[,C]`` (A: baseline) or, with pair=False, ``NAME=VALUE``."""
    name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not items or (pair and len(items) < 2) \
            or (not pair and len(items) != 1):
        shape = "NAME=A,B (A: the baseline)" if pair else "NAME=VALUE"
        example = "kernel=A,B or kvm.eager_page_split=N,Y" if pair else "kernel=base"
        raise ConfigError(f"{option} {text!r} is not {shape}", where=option,
                          hint=f"e.g. {example}")
    return name.strip(), items[0], tuple(items[1:])


def compare_stored(store_path: Path, refs: Sequence[str], *, axis: AxisSpec | None = None,
                   allow_mismatch: frozenset[str] = frozenset()) -> Report:
    """Two runs (REF_A baseline, REF_B candidate), or one run's axis values."""
    if axis is not None and len(refs) != 1:
        raise ConfigError(f"--axis compares variants inside ONE run, {len(refs)} given",
                          where="fleet compare", hint="fleet compare RUN --axis NAME=A,B")
    if axis is None and len(refs) != 2:
        raise ConfigError(f"two runs are needed, {len(refs)} given", where="fleet compare",
                          hint="fleet compare RUN_A RUN_B, or fleet compare RUN --axis NAME=A,B")
    if axis is None:
        _two_runs(store_path, refs)
    runs = load_runs(store_path, refs)
    if axis is not None:
        name, base, cands = axis
        groups = within_run(runs[0], name, base, cands)
        return build_report(groups, baseline=f"{runs[0].run_id} {name}={base}",
                            candidate=f"{runs[0].run_id} {name}={','.join(cands)}",
                            axis=name, allow_mismatch=allow_mismatch)
    groups = between_runs(runs[0], runs[1])
    return build_report(groups, baseline=runs[0].run_id, candidate=runs[1].run_id,
                        allow_mismatch=allow_mismatch)


def _two_runs(store_path: Path, refs: Sequence[str]) -> None:
    """ConfigError when both REFs name the same run (it would compare equal to itself)."""
    first, second = (resolve(store_path, ref).run_id for ref in refs)
    if first == second:
        named = f"{refs[0]} and {refs[1]} both name run {first}" if refs[0] != refs[1] \
            else f"run {first} is given twice"
        raise ConfigError(f"{named}: a run compared with itself shows nothing",
                          where="fleet compare",
                          hint="name two runs, or compare variants inside one run: "
                               "fleet compare RUN --axis NAME=A,B")


@dataclass(frozen=True)
class GateRequest:
    suite_path: Path
    inventory_sources: tuple[Path, ...]
    limit: str | None
    store_path: Path
    baseline: str | None = None  # REF: run id, KEY=VALUE or tag name
    baseline_axis: tuple[str, str] | None = None  # NAME, VALUE inside the gate's own run
    allow_mismatch: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)  # --tag; defaults: fleet.api.tags
    seed: int | None = None
    accept_new_host_keys: bool = False
    history_runs: int | None = None  # --history N (0: off); None: the suite's compare.history
    max_jobs: int = DEFAULT_MAX_JOBS  # cases x repetitions (x hosts, once planned)


@dataclass(frozen=True)
class GateResult:
    run_id: str | None
    report: Report | None
    decision: Decision


def run_gate(request: GateRequest, *, on_event: Callable[[RunEvent], None],
             on_warning: Callable[[str], None],
             options: ExecuteOptions | None = None) -> GateResult:
    """Bad input (suite, inventory, unknown baseline): FleetError before anything runs.
    Everything after that is a decision."""
    if (request.baseline is None) == (request.baseline_axis is None):
        raise ConfigError("give exactly one of --baseline REF and --baseline-axis NAME=VALUE",
                          where="fleet gate", hint="e.g. --baseline main")
    text = read_suite_text(request.suite_path)  # once: the run plans and records this text
    suite = parse_suite(text, source=str(request.suite_path))
    cases = expand(suite, max_jobs=request.max_jobs)
    if request.baseline_axis is not None:
        check_baseline_axis(cases, *request.baseline_axis, where=str(request.suite_path))
    baseline_id = None if request.baseline is None else \
        resolve(request.store_path, request.baseline, suite=suite.name).run_id
    expected = {h.name for h in load_inventory(list(request.inventory_sources),
                                               limit=request.limit).hosts}
    problems: list[str] = []

    def watch(event: RunEvent) -> None:
        if isinstance(event, HostQuarantined):
            problems.append(f"host {event.host} quarantined: {event.reason}")
        on_event(event)

    def warn(text: str) -> None:
        if text.startswith("unreachable"):
            problems.append(f"host {text}")
        on_warning(text)

    try:
        run = start_run(RunRequest(request.suite_path, request.inventory_sources,
                                   request.limit, request.seed, request.store_path,
                                   request.accept_new_host_keys, request.max_jobs,
                                   tags=request.tags, suite_text=text),
                        on_event=watch, on_warning=warn,
                        options=options)
    except FleetError as exc:
        problems.append(f"the suite could not run: {exc.line()}")
        return GateResult(None, None, decide(None, problems))
    report = _gate_report(request, run.run_id, baseline_id, expected, problems)
    return GateResult(run.run_id, report, decide(report, problems))


def check_baseline_axis(cases: Sequence[Case], name: str, value: str, *, where: str) -> None:
    """ConfigError unless some of the suite's cases have NAME=VALUE and others a different
    value (values as their text, as the comparison matches them)."""
    values: dict[str, set[str]] = {}
    for case in cases:
        for key, v in (*case.params, *case.knobs, *case.variant):
            values.setdefault(key, set()).add(format_param_value(v))
    axes = sorted(k for k, vs in values.items() if len(vs) > 1)
    option = f"--baseline-axis {name}={value}"
    if name not in axes:
        raise ConfigError(f"{option}: {name} is not an axis of the suite"
                          + (f" (every case has {name}={next(iter(values[name]))})"
                             if name in values else ""), where=where,
                          hint=f"its axes: {', '.join(axes) or 'none'}")
    if value not in values[name]:
        raise ConfigError(f"{option}: axis {name} has no value {value!r}", where=where,
                          hint=f"its values: {', '.join(sorted(values[name]))}")


def _gate_report(request: GateRequest, run_id: str, baseline_id: str | None,
                 expected: set[str], problems: list[str]) -> Report | None:
    refs = [run_id] if baseline_id is None else [baseline_id, run_id]
    runs = load_runs(request.store_path, refs)
    candidate = runs[-1]
    ran = {a.host for a in candidate.attempts}
    problems.extend(f"host {h}: no completed attempt in run {run_id}"
                    for h in sorted(expected - ran))
    try:
        if request.baseline_axis is not None:
            name, value = request.baseline_axis
            groups = within_run(candidate, name, value, None, hosts=expected)
            return build_report(groups, baseline=f"{run_id} {name}={value}",
                                candidate=f"{run_id} {name}!={value}", axis=name,
                                allow_mismatch=request.allow_mismatch,
                                history=_history(request, run_id, groups, expected),
                                history_runs=request.history_runs)
        groups = between_runs(runs[0], candidate, hosts=expected)
        return build_report(groups, baseline=runs[0].run_id, candidate=run_id,
                            allow_mismatch=request.allow_mismatch,
                            history=_history(request, run_id, groups, expected),
                            history_runs=request.history_runs)
    except (MismatchError, SelectionError) as exc:
        problems.append(exc.line())
        return None


def _history(request: GateRequest, run_id: str, groups: Sequence[Group],
             hosts: set[str]) -> dict[HistoryKey, tuple[float, ...]]:
    """The earlier runs' medians for the gated rows (the most runs any row asks for)."""
    runs = request.history_runs if request.history_runs is not None else \
        max((g.config.history_runs for g in groups), default=0)
    return load_history(request.store_path, run_id, runs=runs, hosts=hosts)
