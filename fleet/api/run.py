"""What `fleet run`, `fleet run --resume`, `fleet runs` and `fleet show` call.

A new run: validate the suite and the inventory, gather facts (stored), plan, and only then
record the run (so bad input writes nothing), then execute. A resumed run re-plans nothing:
it reads the suite text and plan JSON from the store and runs the jobs without a completed
attempt, numbering new attempts after the old ones.

Each run has one live controller (fleet.store.owner): a new run is owned from the transaction
that records it, a resume takes it (refused while its owner lives), the controller beats
while it runs and releases it at the end. Hosts the run could not use (unreachable, changed
host key, not in the inventory) are recorded with the run and counted in its summary.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleet import __version__
from fleet.api.plan import (
    check_seed,
    check_suite_size,
    kernel_releases,
    plan_suite,
    plan_summary,
)
from fleet.api.provisioners import run_provisioners
from fleet.api.tags import with_defaults
from fleet.codec import plan_from_data, plan_to_json
from fleet.config.inventory import Inventory, load_inventory
from fleet.config.suite import Suite, parse_suite
from fleet.errors import StoreError, TransportError
from fleet.execute.events import (
    AttemptStarted,
    HostProvisioned,
    RunEvent,
    RunFinished,
    RunStarted,
    RunSummary,
    final_status,
    summarize,
)
from fleet.execute.executor import ExecuteOptions, Execution, execute
from fleet.execute.hosts import Connections, agent_opener
from fleet.execute.plan import (
    case_runtimes,
    eligible_hosts,
    host_queues,
    next_attempt_numbers,
    plan_jobs,
    plan_queues,
)
from fleet.execute.policy import new_run_id
from fleet.facts.gather import gather_facts
from fleet.hosts import Host
from fleet.model import Facts
from fleet.plan.matrix import DEFAULT_MAX_JOBS
from fleet.plan.schedule import Candidate
from fleet.runs import Attempt, Claim, RunInfo, StoredPlan
from fleet.store import OperationalError, Store
from fleet.store.owner import (
    HEARTBEAT_EVERY_SECONDS,
    Owner,
    claim_job,
    heartbeat,
    release_run,
    take_run,
    this_controller,
)
from fleet.store.runs import (
    create_run,
    load_run,
    record_attempt,
    run_plan,
    set_run_status,
    set_run_tags,
    set_unreachable,
)
from fleet.yamlnode import read_suite_text

EventSink = Callable[[RunEvent], None]
WarningSink = Callable[[str], None]


@dataclass(frozen=True)
class RunRequest:
    suite_path: Path
    inventory_sources: tuple[Path, ...]
    limit: str | None
    seed: int | None
    store_path: Path
    accept_new_host_keys: bool = False
    max_jobs: int = DEFAULT_MAX_JOBS  # cases x repetitions (x hosts, once planned)
    tags: Mapping[str, str] = field(default_factory=dict)  # --tag; the defaults are added
    suite_text: str | None = None  # the suite file's text when already read (fleet gate)


@dataclass(frozen=True)
class ResumeRequest:
    run_id: str
    store_path: Path
    inventory_sources: tuple[Path, ...] | None  # None: the run's recorded inventory
    limit: str | None  # None: the run's recorded limit
    accept_new_host_keys: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)  # --tag: added (no defaults)


@dataclass(frozen=True)
class RunReport:
    run_id: str
    summary: RunSummary
    interrupted: bool
    store_path: Path


@dataclass(frozen=True)
class _Prepared:
    """A recorded run, ready to execute: its suite, plan, hosts and their facts."""

    info: RunInfo
    suite: Suite
    plan: StoredPlan
    hosts: tuple[Host, ...]
    facts: Mapping[str, Facts]
    connections: Connections
    resumed: bool
    owner: Owner
    # host -> its declared kernel variants -> the release each runs (fleet_variants)
    kernel_releases: Mapping[str, Mapping[str, str]]
    inventory: Inventory  # its hosts' declared variants are provisioned between groups


# ---- a new run --------------------------------------------------------------------------------


def start_run(request: RunRequest, *, on_event: EventSink, on_warning: WarningSink,
              options: ExecuteOptions | None = None) -> RunReport:
    """Validate, gather, plan, record, execute. FleetError before anything is recorded on bad
    input (suite, inventory, no reachable host, nothing to run). The suite file is read once
    (or not at all when the request carries its text): the plan and the recorded suite text
    come from that one reading. The run is recorded with its tags (request.tags over the
    defaults of fleet.api.tags) in the transaction that creates it."""
    if request.seed is not None:
        check_seed(request.seed)
    text = request.suite_text if request.suite_text is not None else \
        read_suite_text(request.suite_path)
    suite = parse_suite(text, source=str(request.suite_path))
    check_suite_size(suite, request.max_jobs)  # before any host is touched
    inventory = load_inventory(list(request.inventory_sources), limit=request.limit)
    for warning in inventory.warnings:
        on_warning(warning)
    connections = Connections(accept_new_host_keys=request.accept_new_host_keys)
    try:
        facts, unreachable = _gather(inventory.hosts, connections, on_warning, require_one=True)
        with Store.open(request.store_path) as store:
            store.save_snapshots(inventory.hosts, list(facts.values()))
            owner = this_controller(time.time())
            info, stored_plan = _record_new_run(store, request, suite, text,
                                              hosts=inventory.hosts, facts=facts,
                                              owner=owner, unreachable=unreachable,
                                              host_variants=inventory.host_variants())
            with _owning(store, info.run_id, owner):
                prepared = _Prepared(info, suite, stored_plan, inventory.hosts, facts,
                                     connections, resumed=False, owner=owner,
                                     kernel_releases=kernel_releases(inventory),
                                     inventory=inventory)
                return _execute(store, prepared, on_event=on_event, options=options)
    finally:
        connections.close_unused()


def _record_new_run(store: Store, request: RunRequest, suite: Suite, text: str, *,
                    hosts: Sequence[Host], facts: Mapping[str, Facts], owner: Owner,
                    unreachable: Sequence[tuple[str, str]],
                    host_variants: Mapping[str, tuple[str, ...]]) -> tuple[RunInfo, StoredPlan]:
    """Plan (ConfigError when nothing can run), then record the run with its jobs, skips,
    unreachable hosts and owner."""
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    plan = plan_suite(suite, list(facts.values()), hosts, seed=seed,
                      where=str(request.suite_path), max_jobs=request.max_jobs,
                      host_variants=host_variants)
    stored_plan = plan_from_data(plan_summary(plan))
    now = time.time()
    info = RunInfo(
        run_id=new_run_id(now, secrets.token_hex(2)), suite=suite.name,
        suite_path=str(request.suite_path), suite_sha256=_sha256(text), seed=seed,
        inventory=tuple(str(p.resolve()) for p in request.inventory_sources),
        limit_pattern=request.limit, fleet_version=__version__,
        created_at_unix_seconds=now, finished_at_unix_seconds=None, status="running")
    create_run(store, info, suite_text=text, plan_json=plan_to_json(stored_plan),
               cases=[(c.case_id, c.workload, json.dumps(dict(c.params), sort_keys=True))
                      for c in plan.cases],
               jobs=plan_jobs(stored_plan, {c.case_id: c for c in plan.cases}),
               skipped=[(s.case_id, s.reason) for s in plan.skipped], owner=owner,
               unreachable=unreachable,
               tags=with_defaults(request.tags, request.suite_path, now_unix_seconds=now))
    return info, stored_plan


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _gather(hosts: Sequence[Host], connections: Connections, on_warning: WarningSink, *,
            require_one: bool) -> tuple[dict[str, Facts], list[tuple[str, str]]]:
    """Facts of the reachable hosts, over connections the executor then keeps using, and
    (host, reason) of the others."""
    outcomes = gather_facts(hosts, connector=connections.connector)
    unreachable = [(o.host, o.error or "no facts") for o in outcomes if o.facts is None]
    for outcome in outcomes:
        if outcome.error is not None:
            on_warning(f"unreachable, not used: {outcome.error}")
    facts = {o.host: o.facts for o in outcomes if o.facts is not None}
    if require_one and not facts:
        reasons = "; ".join(o.error or o.host for o in outcomes) or "the inventory selects none"
        raise TransportError(f"no host is reachable ({reasons})", where="inventory",
                             hint="check the inventory, --limit and the hosts; nothing was "
                                  "recorded")
    return facts, unreachable


@contextmanager
def _owning(store: Store, run_id: str, owner: Owner) -> Iterator[None]:
    """The run is ``owner``'s until the block ends, however it ends."""
    try:
        yield
    finally:
        release_run(store, run_id, owner)


# ---- resume -----------------------------------------------------------------------------------


def resume_run(request: ResumeRequest, *, on_event: EventSink, on_warning: WarningSink,
               options: ExecuteOptions | None = None) -> RunReport:
    """Run the recorded run's jobs that have no completed attempt (unknown id: StoreError;
    a run whose controller is alive: StoreError naming it)."""
    with Store.open(request.store_path, create=False) as store:
        info = load_run(store, request.run_id).info
        owner = this_controller(time.time())
        holder = take_run(store, info.run_id, owner)
        if holder is not None:
            raise StoreError(f"run {info.run_id} is being run by {holder.line()}",
                             where=str(store.path),
                             hint=f"wait for it, or stop that controller (kill -TERM "
                                  f"{holder.pid} on {holder.host_name}); a crashed run "
                                  "can be resumed")
        with _owning(store, info.run_id, owner):
            if request.tags:
                set_run_tags(store, info.run_id, request.tags)
            return _resume_owned(store, request, info, owner, on_event=on_event,
                                 on_warning=on_warning, options=options)


def _resume_owned(store: Store, request: ResumeRequest, info: RunInfo, owner: Owner, *,
                  on_event: EventSink, on_warning: WarningSink,
                  options: ExecuteOptions | None) -> RunReport:
    suite_text, stored_plan = run_plan(store, info.run_id)
    suite = parse_suite(suite_text, source=f"{info.suite_path} (recorded in {info.run_id})")
    sources = request.inventory_sources or tuple(Path(p) for p in info.inventory)
    limit = request.limit if request.inventory_sources else info.limit_pattern
    inventory = load_inventory(list(sources), limit=limit)
    for warning in inventory.warnings:
        on_warning(warning)
    planned = set(plan_queues(stored_plan))
    hosts = tuple(h for h in inventory.hosts if h.name in planned)
    missing = [(name, "planned host not in the inventory")
               for name in sorted(planned - {h.name for h in hosts})]
    for name, _ in missing:
        on_warning(f"{name}: planned host not in the inventory; its jobs go elsewhere or "
                   "fail")
    connections = Connections(accept_new_host_keys=request.accept_new_host_keys)
    try:
        facts, unreachable = _gather(hosts, connections, on_warning, require_one=False)
        store.save_snapshots(hosts, list(facts.values()))
        set_unreachable(store, info.run_id, reachable=list(facts),
                        unreachable=unreachable + missing, now_unix_seconds=time.time())
        known = {s.host: s.facts for s in store.latest_snapshots() if s.host in planned}
        set_run_status(store, info.run_id, "running", None)
        prepared = _Prepared(info, suite, stored_plan, hosts, {**known, **facts}, connections,
                             resumed=True, owner=owner, kernel_releases=kernel_releases(inventory),
                             inventory=inventory)
        return _execute(store, prepared, on_event=on_event, options=options)
    finally:
        connections.close_unused()


# ---- the shared part: execute and summarise -----------------------------------------------


def _execute(store: Store, run: _Prepared, *, on_event: EventSink,
             options: ExecuteOptions | None) -> RunReport:
    info = run.info
    detail = load_run(store, info.run_id)
    queued = {cid for entries in plan_queues(run.plan).values() for cid, _ in entries}
    runtimes = case_runtimes(run.suite, queued, where=info.suite_path)
    cases = {cid: rt.case for cid, rt in runtimes.items()}
    pending = detail.pending_jobs()
    by_name = {h.name: h for h in run.hosts}
    candidates = [Candidate(by_name[n], f) for n, f in run.facts.items() if n in by_name]
    execution = Execution(
        run_id=info.run_id, cases=runtimes, queues=host_queues(run.plan, cases, pending),
        facts=run.facts, eligible=eligible_hosts(list(cases.values()), candidates),
        next_attempt_no=next_attempt_numbers(detail),
        boot={h.name: h.boot for h in run.hosts if h.boot is not None},
        kernel_releases=run.kernel_releases,
        variants=run_provisioners(run.inventory, _regatherer(run)))
    openers = {h: agent_opener(by_name.get(h), h, run.connections) for h in execution.queues}
    on_event(RunStarted(info.run_id, info.suite, info.seed,
                        tuple((h, len(q)) for h, q in execution.queues.items()),
                        len(detail.jobs), len(pending), run.resumed, str(store.path)))
    def sink(event: RunEvent) -> None:
        if isinstance(event, HostProvisioned) and event.switched.facts is not None \
                and event.host in by_name:  # the host's newest facts: its new kernel's
            store.save_snapshots([by_name[event.host]], [event.switched.facts])
        on_event(event)

    result = execute(execution, openers, record=lambda a: _record(store, a),
                     on_event=sink, options=options,
                     claim=lambda e: _claim(store, e),
                     tick=_Heartbeat(store, info.run_id, run.owner).tick)
    done = load_run(store, info.run_id)
    status = final_status(len(done.completed_jobs()), len(done.jobs),
                          interrupted=result.interrupted)
    set_run_status(store, info.run_id, status, time.time())
    summary = summarize(load_run(store, info.run_id))
    on_event(RunFinished(summary, result.interrupted))
    return RunReport(info.run_id, summary, result.interrupted, store.path)


def _regatherer(run: _Prepared) -> Callable[[str], Facts | None]:
    """A host's facts gathered again (after a variant switch), over a new connection and
    agent that the host's next session then takes."""
    by_name = {h.name: h for h in run.hosts}

    def regather(name: str) -> Facts | None:
        host = by_name.get(name)
        if host is None:
            return None
        (outcome,) = gather_facts([host], connector=run.connections.connector)
        return outcome.facts

    return regather


def _record(store: Store, attempt: Attempt) -> None:
    record_attempt(store, attempt)


def _claim(store: Store, started: AttemptStarted) -> None:
    claim_job(store, started.run_id, Claim(started.job, started.host, started.attempt_no,
                                           time.time()))


class _Heartbeat:
    """The owner's heartbeat, refreshed at most every HEARTBEAT_EVERY_SECONDS from the
    executor's loop; a busy store only delays it (the next tick tries again)."""

    def __init__(self, store: Store, run_id: str, owner: Owner) -> None:
        self._store, self._run_id, self._owner = store, run_id, owner
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last < HEARTBEAT_EVERY_SECONDS:
            return
        self._last = time.monotonic()
        try:
            heartbeat(self._store, self._run_id, self._owner, time.time())
        except OperationalError:
            return
