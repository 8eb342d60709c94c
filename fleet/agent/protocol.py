"""The agent protocol, controller side: message dataclasses, encode/decode. Pure: no I/O.

Transport: newline-delimited JSON over the agent's stdin (requests) and stdout (replies), one
object per line, each with a "type". Both sides emit ASCII JSON (``ensure_ascii``), so every
line is valid UTF-8 whatever a child printed: the agent decodes child output as UTF-8 with
errors="replace" (invalid bytes become U+FFFD; no base64). Every request carries an integer
"id" chosen by the controller; its reply carries the same id. fleet/agent/runner.py is the
host side; PROTOCOL_VERSION must be equal in both (the controller refuses any other).

    agent -> hello      {protocol_version, agent, python_version, pid, hostname,
                         monotonic_seconds, wall_seconds}          first line, unasked
    agent -> fatal      {message}                                  bootstrap refused to start
    ping                {id}                        -> pong        {id, monotonic_seconds,
                                                                    wall_seconds}
    run                 {id, argv, env|null, cwd|null, timeout_seconds, kill_grace_seconds,
                         stdout_cap_bytes, stderr_cap_bytes, sample: SampleSpec|null}
                                                    -> sample*     {id, seq, monotonic_seconds,
                                                                    wall_seconds, pids, files,
                                                                    missed, final, errors?,
                                                                    kmsg?, sample_seconds,
                                                                    agent_cpu_seconds}
                                                    -> run_result  {id, RunOutcome fields,
                                                                    compact: see below}
    read                {id, paths, max_bytes}      -> read_result {id, files: [FileContent]}
    write               {id, path, value}           -> write_result {id, WriteOutcome fields}
    shutdown            {id}                        -> bye         {id} (a running child is
                                                                    killed first, and its
                                                                    run_result sent first)
    any bad request                                 -> error       {id|null, message}

With a ``sample`` spec (version 2) the agent samples while the child runs, unasked: one
"sample" (same id as the run) as the child starts, one per ``interval_seconds`` at absolute
deadlines (``missed`` counts the deadlines it could not keep), and a ``final`` one when the
child's exit is seen, all before the run_result. fleet/agent/sampler.py says what a sample
holds (``files``: per key the whole text, the changed lines, or null); fleet/sampling_decode.py
reads it back. ``agent_cpu_seconds`` is the agent's own CPU time so far (user + system).

A run_result is compact (version 3): a field whose value would be null, false, "" or a zero
byte count is left out and decodes to that value; ``duration_seconds`` is not sent (it is
ended minus started monotonic); the four clock readings are always there. Every case pays for
this message on its critical path, so it stays small.

One run at a time per agent (a second one is refused with "busy"); ping, read and write are
answered while a run is in progress. What the agent guarantees on the host: argv goes to exec
as a list (no shell); the child leads its own session (setsid) with stdin from /dev/null; a
timeout sends SIGTERM to its whole process group, then SIGKILL after kill_grace_seconds; when
the child exits, whatever it left in its group is SIGKILLed (before its run_result is sent when
something still holds the child's pipes, right after it otherwise, always before the next
request is read); when stdin reaches EOF (controller gone, connection dropped) or the agent
gets SIGTERM/SIGHUP, the running group is killed and the agent exits. A process that left the
group (its own setsid) escapes all of this: there are no cgroups here. Unknown reply fields are
ignored (additive changes keep the version); a missing or mistyped field is a ProtocolError.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

PROTOCOL_VERSION = 3
AGENT_NAME = "fleet-agent"

T = TypeVar("T")


class ProtocolError(ValueError):
    """A line from the agent is not a valid message of this protocol version."""


# ---- requests (controller -> agent) -------------------------------------------------------


@dataclass(frozen=True)
class SampleSpec:
    """What to sample while a child runs (host paths are under ``root``)."""

    interval_seconds: float  # >= 0.1
    kvm_stats: tuple[str, ...] = ()  # file names in <root>/sys/kernel/debug/kvm
    kmsg: bool = True  # new /dev/kmsg records
    processes: bool = True  # numa_maps and status of the child's process tree
    root: str = "/"


@dataclass(frozen=True)
class RunRequest:
    argv: tuple[str, ...]
    timeout_seconds: float
    kill_grace_seconds: float
    stdout_cap_bytes: int
    stderr_cap_bytes: int
    env: Mapping[str, str] | None = None  # added to the agent's environment
    cwd: str | None = None
    sample: SampleSpec | None = None


@dataclass(frozen=True)
class ReadRequest:
    paths: tuple[str, ...]
    max_bytes: int


@dataclass(frozen=True)
class WriteRequest:
    path: str
    value: str


@dataclass(frozen=True)
class PingRequest:
    pass


@dataclass(frozen=True)
class ShutdownRequest:
    pass


Request = RunRequest | ReadRequest | WriteRequest | PingRequest | ShutdownRequest

_REQUEST_TYPES: dict[type, str] = {RunRequest: "run", ReadRequest: "read", WriteRequest: "write",
                                   PingRequest: "ping", ShutdownRequest: "shutdown"}


# ---- replies (agent -> controller) --------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    protocol_version: int
    agent: str
    python_version: str
    pid: int
    hostname: str
    monotonic_seconds: float  # the host's clocks when it said hello
    wall_seconds: float


@dataclass(frozen=True)
class Fatal:
    message: str


@dataclass(frozen=True)
class RunOutcome:
    """What one child did, measured on the host (host clocks; durations by its monotonic clock).

    ``exit_code`` is None when a signal ended the child (``signal`` says which) or when it could
    not be started (``spawn_error`` says why). ``duration_seconds`` spans fork to observed exit.
    A truncated stream keeps its first and last halves of the cap around a marker line;
    ``*_total_bytes`` counts everything the child wrote. ``child_max_rss_bytes`` comes from
    wait4(2) for the child and the descendants it reaped; Linux counts the agent's own RSS at
    fork time into it, so values below the agent's RSS mean "at most that".
    """

    exit_code: int | None
    signal: int | None
    timed_out: bool
    cancelled: bool  # killed because the agent was shut down mid-run
    spawn_error: str | None
    started_monotonic_seconds: float
    ended_monotonic_seconds: float
    started_wall_seconds: float
    ended_wall_seconds: float
    duration_seconds: float
    stdout: str
    stdout_truncated: bool
    stdout_total_bytes: int
    stderr: str
    stderr_truncated: bool
    stderr_total_bytes: int
    child_max_rss_bytes: int | None
    child_user_cpu_seconds: float | None
    child_system_cpu_seconds: float | None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


@dataclass(frozen=True)
class FileContent:
    path: str
    text: str | None  # None: not readable, see errno/error
    truncated: bool
    errno: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class WriteOutcome:
    path: str
    errno: int | None
    error: str | None  # None: written

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Pong:
    request_id: int
    monotonic_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class RunReply:
    request_id: int
    outcome: RunOutcome


@dataclass(frozen=True)
class ReadReply:
    request_id: int
    files: tuple[FileContent, ...]


@dataclass(frozen=True)
class WriteReply:
    request_id: int
    outcome: WriteOutcome


@dataclass(frozen=True)
class Bye:
    request_id: int


@dataclass(frozen=True)
class ErrorReply:
    request_id: int | None  # None: the agent could not even read the request's id
    message: str


@dataclass(frozen=True)
class SampleReply:
    """One sample of a running child; ``body`` is the message as sent (see sampling_decode)."""

    request_id: int
    body: Mapping[str, Any]


Reply = Pong | RunReply | ReadReply | WriteReply | Bye | ErrorReply | SampleReply


# ---- encoding -----------------------------------------------------------------------------


def encode_request(request_id: int, request: Request) -> str:
    """One line (with its newline) of ASCII JSON."""
    if type(request) is RunRequest and request.sample is None:  # every case: kept short
        encode = _encoder().encode
        return (f'{{"type":"run","id":{request_id},"argv":{encode(list(request.argv))},'
                f'"timeout_seconds":{encode(request.timeout_seconds)},'
                f'"kill_grace_seconds":{encode(request.kill_grace_seconds)},'
                f'"stdout_cap_bytes":{encode(request.stdout_cap_bytes)},'
                f'"stderr_cap_bytes":{encode(request.stderr_cap_bytes)},'
                f'"env":{encode(None if request.env is None else dict(request.env))},'
                f'"cwd":{encode(request.cwd)}}}\n')
    body: dict[str, Any] = {"type": _REQUEST_TYPES[type(request)], "id": request_id}
    for name in _field_names(typing.cast(type, type(request))):
        value = getattr(request, name)
        if value is None and name in _OMITTED_WHEN_NONE:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        body[name] = dict(value) if isinstance(value, Mapping) else (
            list(value) if isinstance(value, tuple) else value)
    return _encoder().encode(body) + "\n"


_OMITTED_WHEN_NONE = frozenset({"sample"})  # added in version 2: absent means none


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _encoder() -> json.JSONEncoder:
    return json.JSONEncoder(separators=(",", ":"))


def decode_hello(line: str) -> Hello | Fatal:
    message = _object(line)
    kind = message.get("type")
    if kind == "fatal":
        return _build(Fatal, message)
    if kind != "hello":
        raise ProtocolError(f"expected a hello, got {_excerpt(line)}")
    return _build(Hello, message)


def decode_reply(line: str) -> Reply:
    message = _object(line)
    kind = message.get("type")
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


_REPLY_BUILDERS: dict[str, Callable[[int, dict[str, Any]], Reply]] = {
    "pong": lambda rid, m: Pong(rid, _float(m.get("monotonic_seconds"), "pong.monotonic_seconds"),
                                _float(m.get("wall_seconds"), "pong.wall_seconds")),
    "run_result": lambda rid, m: RunReply(rid, _run_outcome(m)),
    "read_result": lambda rid, m: ReadReply(
        rid, _converter(tuple[FileContent, ...])(m.get("files"), "read_result.files")),
    "write_result": lambda rid, m: WriteReply(rid, _build(WriteOutcome, m)),
    "sample": SampleReply,
    "bye": lambda rid, m: Bye(rid),
}
