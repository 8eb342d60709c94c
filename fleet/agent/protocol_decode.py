"""The agent protocol, controller side: decoding replies, strictly. Pure: no I/O.

fleet/agent/protocol.py documents the messages and holds their dataclasses; this module turns
one line from the agent into one of them, or raises ProtocolError naming the field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fleet.agent.protocol import (
    AgentHeartbeat,
    Bye,
    ErrorReply,
    Fatal,
    FileContent,
    Hello,
    KnobRecovery,
    LockHolder,
    LockReply,
    LockWait,
    Pong,
    ProtocolError,
    ReadReply,
    Reply,
    RunOutcome,
    RunReply,
    SampleReply,
    WriteOutcome,
    WriteReply,
)

T = TypeVar("T")


def decode_hello(line: str) -> Hello | Fatal:
    message = _object(line)
    kind = message.get("type")
    if kind == "fatal":
        return _build(Fatal, message)
    if kind != "hello":
        raise ProtocolError(f"expected a hello, got {_excerpt(line)}")
    return _build(Hello, message)


def decode_reply(line: str) -> Reply | AgentHeartbeat:
    message = _object(line)
    kind = message.get("type")
    if kind == "heartbeat":
        return AgentHeartbeat(_float(message.get("monotonic_seconds"),
                                     "heartbeat.monotonic_seconds"))
    if kind == "error":
        rid = message.get("id")
        if rid is not None and not _is_int(rid):
            raise ProtocolError(f"error reply with a bad id: {_excerpt(line)}")
        return ErrorReply(rid, _checked(message.get("message"), str, "error.message"))
    rid = _int(message.get("id"), f"{kind}.id")
    build = _REPLY_BUILDERS.get(str(kind))
    if build is None:
        raise ProtocolError(f"unknown reply type in {_excerpt(line)}")
    return build(rid, message)


def _object(line: str) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except ValueError:
        raise ProtocolError(f"not a JSON line: {_excerpt(line)}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON object: {_excerpt(line)}")
    return message


def _excerpt(line: str, limit: int = 120) -> str:
    text = line.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


Convert = Callable[[Any, str], Any]  # (JSON value, "Class.field" for errors) -> checked value


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Convert], ...]:
    """Per dataclass, once: each field's name, its error label and its converter."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, f"{cls.__name__}.{f.name}", _converter(hints[f.name]))
                 for f in dataclasses.fields(cls))


def _build(cls: type[T], message: Mapping[str, Any]) -> T:
    kwargs = {}
    for name, where, convert in _fields(typing.cast(type, cls)):
        if name not in message:
            raise ProtocolError(f"{where} is missing")
        kwargs[name] = convert(message[name], where)
    return cls(**kwargs)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wrong(value: Any, where: str, expected: str) -> ProtocolError:
    return ProtocolError(f"{where} is {value!r:.80}, expected {expected}")


@functools.cache
def _converter(hint: Any) -> Convert:
    """A checker for a flat type hint: scalars, X | None, tuple[X, ...], a nested dataclass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType or origin is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        convert = _converter(inner)
        return lambda v, where: None if v is None else convert(v, where)
    if origin is tuple:
        item = _converter(args[0])
        return lambda v, where: tuple(item(x, where) for x in _checked(v, list, where))
    if dataclasses.is_dataclass(hint):
        return lambda v, where: _build(typing.cast(type, hint), _checked(v, dict, where))
    if hint is float:
        return _float
    if hint is int:
        return _int
    if hint in (str, bool):
        return lambda v, where: v if isinstance(v, hint) else _checked(v, hint, where)
    raise TypeError(f"no converter for {hint!r}")


def _checked(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, kind):
        return value
    raise _wrong(value, where, kind.__name__)


def _int(value: Any, where: str) -> int:
    if _is_int(value):
        return int(value)
    raise _wrong(value, where, "int")


def _float(value: Any, where: str) -> float:
    if isinstance(value, float) or _is_int(value):
        return float(value)
    raise _wrong(value, where, "float")


def _optional(m: Mapping[str, Any], key: str, convert: Convert) -> Any:
    value = m.get(key)
    return None if value is None else convert(value, f"run_result.{key}")


def _required(m: Mapping[str, Any], key: str) -> float:
    if key not in m:
        raise ProtocolError(f"run_result.{key} is missing")
    return _float(m[key], f"run_result.{key}")


def _flag(m: Mapping[str, Any], key: str) -> bool:
    value = m.get(key, False)
    return value if value is True or value is False else _checked(value, bool, f"run_result.{key}")


def _text(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key, "")
    return value if isinstance(value, str) else _checked(value, str, f"run_result.{key}")


def _run_outcome(m: Mapping[str, Any]) -> RunOutcome:
    """A compact run_result (version 3): absent = null, false, "" or 0 bytes; every field that
    is there is type-checked, the four clock readings are required. Written out (not through
    the generic _build): this is on every case's critical path."""
    started, ended, started_wall, ended_wall = (_required(m, k) for k in (
        "started_monotonic_seconds", "ended_monotonic_seconds", "started_wall_seconds",
        "ended_wall_seconds"))
    return RunOutcome(
        exit_code=_optional(m, "exit_code", _int), signal=_optional(m, "signal", _int),
        timed_out=_flag(m, "timed_out"), cancelled=_flag(m, "cancelled"),
        spawn_error=_optional(m, "spawn_error", lambda v, w: _checked(v, str, w)),
        started_monotonic_seconds=started, ended_monotonic_seconds=ended,
        started_wall_seconds=started_wall, ended_wall_seconds=ended_wall,
        duration_seconds=ended - started,
        stdout=_text(m, "stdout"), stdout_truncated=_flag(m, "stdout_truncated"),
        stdout_total_bytes=_int(m.get("stdout_total_bytes", 0), "run_result.stdout_total_bytes"),
        stderr=_text(m, "stderr"), stderr_truncated=_flag(m, "stderr_truncated"),
        stderr_total_bytes=_int(m.get("stderr_total_bytes", 0), "run_result.stderr_total_bytes"),
        child_max_rss_bytes=_optional(m, "child_max_rss_bytes", _int),
        child_user_cpu_seconds=_optional(m, "child_user_cpu_seconds", _float),
        child_system_cpu_seconds=_optional(m, "child_system_cpu_seconds", _float))


def _holder(m: Mapping[str, Any]) -> LockHolder | None:
    """The holder as another agent wrote it into the lock file: None when absent or garbled
    (it is only ever shown to the user)."""
    value = m.get("holder")
    if not isinstance(value, dict):
        return None
    try:
        return _build(LockHolder, value)
    except ProtocolError:
        return None


def _lock_reply(rid: int, m: Mapping[str, Any]) -> LockReply:
    error = m.get("error")
    return LockReply(
        rid, _checked(m.get("acquired"), bool, "lock_result.acquired"),
        _float(m.get("waited_seconds"), "lock_result.waited_seconds"), _holder(m),
        _converter(tuple[KnobRecovery, ...])(m.get("recovered", []), "lock_result.recovered"),
        None if error is None else _checked(error, str, "lock_result.error"))


_REPLY_BUILDERS: dict[str, Callable[[int, dict[str, Any]], Reply]] = {
    "pong": lambda rid, m: Pong(rid, _float(m.get("monotonic_seconds"), "pong.monotonic_seconds"),
                                _float(m.get("wall_seconds"), "pong.wall_seconds")),
    "run_result": lambda rid, m: RunReply(rid, _run_outcome(m)),
    "read_result": lambda rid, m: ReadReply(
        rid, _converter(tuple[FileContent, ...])(m.get("files"), "read_result.files")),
    "write_result": lambda rid, m: WriteReply(rid, _build(WriteOutcome, m)),
    "lock_result": _lock_reply,
    "lock_wait": lambda rid, m: LockWait(
        rid, _float(m.get("waited_seconds"), "lock_wait.waited_seconds"), _holder(m)),
    "sample": SampleReply,
    "bye": lambda rid, m: Bye(rid),
}
