"""Pure conversion of model dataclasses to JSON-able data and back (for --json and the store)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from fleet.errors import StoreError
from fleet.model import Facts, Secret

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
