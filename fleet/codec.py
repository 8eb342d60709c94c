"""Pure conversion of model dataclasses to JSON-able data and back (for --json and the store).

The stored plan (fleet.runs.StoredPlan) has one codec here: ``plan_to_json`` writes it,
``plan_from_json`` is how every reader (resume, report, history, compare) reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from fleet.errors import StoreError
from fleet.hosts import Secret
from fleet.model import Facts, ParamValue
from fleet.runs import (
    PLAN_FORMAT_VERSION,
    PlannedCase,
    PlannedGroup,
    PlannedHost,
    Settings,
    StoredPlan,
)

T = TypeVar("T")

FACTS_FORMAT_VERSION = 1


def to_jsonable(value: object) -> Any:
    """Dataclasses -> dicts, tuples -> lists; a Secret is never emitted."""
    if isinstance(value, Secret):
        return None
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr
        }
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def from_jsonable(cls: type[T], data: Any) -> T:
    """Rebuild a (nested, frozen) dataclass from to_jsonable() output."""
    return typing.cast(T, _decode(cls, data))


def _decode(tp: Any, data: Any) -> Any:
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        if data is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return _decode(inner[0], data)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = get_type_hints(tp)
        kwargs = {
            f.name: _decode(hints[f.name], data[f.name])
            for f in dataclasses.fields(tp)
            if f.name in data
        }
        return tp(**kwargs)
    return data


def facts_to_json_data(facts: Facts) -> dict[str, Any]:
    data = to_jsonable(facts)
    data["format_version"] = FACTS_FORMAT_VERSION
    return typing.cast(dict[str, Any], data)


def facts_from_json_data(data: Mapping[str, Any]) -> Facts:
    version = data.get("format_version")
    if version != FACTS_FORMAT_VERSION:
        raise StoreError(
            f"facts snapshot has format_version {version!r},"
            f" this fleet reads {FACTS_FORMAT_VERSION}",
            where="store", hint="upgrade fleet or re-gather facts")
    body = {k: v for k, v in data.items() if k != "format_version"}
    return from_jsonable(Facts, body)


# ---- the stored plan --------------------------------------------------------------------------


def plan_to_json(plan: StoredPlan) -> str:
    """The plan as stored with its run: plan_summary's document plus its format_version."""
    data = {
        "format_version": plan.format_version, "suite": plan.suite, "seed": plan.seed,
        "totals": dict(plan.totals),
        "cases": {cid: _case_data(c) for cid, c in plan.cases.items()},
        "hosts": [{"host": h.host, "runs": h.runs, "estimate_seconds": h.estimate_seconds,
                   "groups": [{"variant": dict(g.variant), "queue": [list(e) for e in g.queue]}
                              for g in h.groups]}
                  for h in plan.hosts],
        "skipped": [{"case_id": cid, "reason": why} for cid, why in plan.skipped],
        "hosts_without_facts": list(plan.hosts_without_facts),
    }
    return json.dumps(data, sort_keys=True)


def _case_data(case: PlannedCase) -> dict[str, Any]:
    return {"workload": case.workload, "kind": case.kind, "params": dict(case.params),
            "knobs": dict(case.knobs), "variant": dict(case.variant),
            "repetitions": case.repetitions, "timeout_seconds": case.timeout_seconds,
            "estimate_seconds": case.estimate_seconds, "spread": case.spread}


def plan_from_json(text: str, *, where: str = "store") -> StoredPlan:
    """A stored plan, of this format version or of the unversioned one before it (the same
    shape); a part the JSON lacks takes the record's default. StoreError (one line) when the
    text is not a JSON object or has a newer format version."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise StoreError("a run's stored plan is not a JSON object", where=where,
                         hint="the store is damaged; record the run again")
    return plan_from_data(data, where=where)


def plan_from_data(data: Mapping[str, Any], *, where: str = "store") -> StoredPlan:
    """A stored plan from its decoded JSON (see plan_from_json)."""
    version = data.get("format_version", PLAN_FORMAT_VERSION)
    if version != PLAN_FORMAT_VERSION:
        raise StoreError(f"a run's stored plan has format_version {version!r}, this fleet "
                         f"reads {PLAN_FORMAT_VERSION}", where=where,
                         hint="read it with the fleet version that recorded the run")
    return StoredPlan(
        suite=_opt(str, data.get("suite")), seed=_opt(int, data.get("seed")),
        totals=tuple((str(k), v) for k, v in _dict(data.get("totals")).items()),
        cases={str(cid): _case(c) for cid, c in _dict(data.get("cases")).items()
               if isinstance(c, dict)},
        hosts=tuple(_host(h) for h in data.get("hosts") or ()),
        skipped=tuple((str(s["case_id"]), str(s["reason"])) for s in data.get("skipped") or ()),
        hosts_without_facts=tuple(str(h) for h in data.get("hosts_without_facts") or ()))


def _case(data: Mapping[str, Any]) -> PlannedCase:
    return PlannedCase(
        workload=str(data.get("workload", "")), kind=str(data.get("kind", "")),
        params=_settings(data.get("params")), knobs=_settings(data.get("knobs")),
        variant=_settings(data.get("variant")),
        repetitions=_opt(int, data.get("repetitions")),
        timeout_seconds=_opt(float, data.get("timeout_seconds")),
        estimate_seconds=_opt(float, data.get("estimate_seconds")),
        spread=_opt(str, data.get("spread")))


def _host(data: Mapping[str, Any]) -> PlannedHost:
    groups = tuple(PlannedGroup(_settings(g.get("variant")),
                                tuple((str(cid), int(rep)) for cid, rep in g["queue"]))
                   for g in data["groups"])
    return PlannedHost(str(data["host"]), _opt(int, data.get("runs")),
                       _opt(float, data.get("estimate_seconds")), groups)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _settings(value: Any) -> Settings:
    return tuple((str(k), v) for k, v in _dict(value).items())


def _opt(kind: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else kind(value)


def case_settings(plan: StoredPlan, case_id: str, params_json: str) -> dict[str, ParamValue]:
    """A case's every setting (params, knobs, variant) from the run's plan; a case the plan
    does not record has the params recorded with the run's case (``params_json``)."""
    case = plan.cases.get(case_id)
    if case is not None:
        return case.settings()
    return typing.cast(dict[str, ParamValue], json.loads(params_json))
