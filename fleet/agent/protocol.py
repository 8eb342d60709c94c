"""The agent protocol, controller side: message dataclasses and encoding (decoding:
protocol_decode.py). Pure: no I/O.

Transport: newline-delimited JSON over the agent's stdin (requests) and stdout (replies), one
object per line, each with a "type". Both sides emit ASCII JSON (``ensure_ascii``), so every
line is valid UTF-8 whatever a child printed: the agent decodes child output as UTF-8 with
errors="replace" (invalid bytes become U+FFFD; no base64). Every request carries an integer
"id" chosen by the controller; its reply carries the same id. fleet/agent/remote/runner.py is the
host side; PROTOCOL_VERSION, defined once in fleet/agent/remote/version.py, is what both speak
(the controller refuses any other).

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
    write               {id, path, value, knob?}    -> write_result {id, WriteOutcome fields}
    lock                {id, controller, controller_pid, run_id, wait_seconds}
                                                    -> lock_wait*  {id, waited_seconds,
                                                                    holder: LockHolder|null}
                                                    -> lock_result {id, acquired,
                                                                    waited_seconds, holder?,
                                                                    recovered?, error?}
    heartbeat           {interval_seconds, silence_seconds}   one way: no id, no reply
    agent -> heartbeat  {monotonic_seconds}         unasked, no id: every interval_seconds
                                                    of silence while a run is in progress
    shutdown            {id}                        -> bye         {id} (a running child is
                                                                    killed first, and its
                                                                    run_result sent first)
    any bad request                                 -> error       {id|null, message}

With a ``sample`` spec (version 2) the agent samples while the child runs, unasked: one
"sample" (same id as the run) as the child starts, one per ``interval_seconds`` at absolute
deadlines (``missed`` counts the deadlines it could not keep), and a ``final`` one when the
child's exit is seen, all before the run_result. fleet/agent/remote/sampler.py says what a sample
holds (``files``: per key the whole text, the changed lines, or null); fleet/sampling/decode.py
reads it back. ``agent_cpu_seconds`` is the agent's own CPU time so far (user + system).

A run_result is compact (version 3): a field whose value would be null, false, "" or a zero
byte count is left out and decodes to that value; ``duration_seconds`` is not sent (it is
ended minus started monotonic); the four clock readings are always there. Every case pays for
this message on its critical path, so it stays small.

Version 4: the host owns what it changes.
- ``lock`` takes the host lock (flock under /run, keyed by boot id and network namespace:
  fleet/agent/remote/host_state.py) and holds it until the agent exits; the executor sends it before
  its first case (``fleet facts`` never does, so it is never blocked). While another agent holds
  it, a ``lock_wait`` naming the holder comes at once and every interval_seconds; after
  ``wait_seconds`` the ``lock_result`` says ``acquired: false`` with the holder. ``error``: the
  lock could not be used at all (state directory, or shutdown while waiting). Once taken, the
  knob journal a dead (SIGKILLed) agent left is written back first; ``recovered`` lists each
  knob as {path, value (the original, written back), error|null}. A journal that cannot be
  read is moved aside (``.unreadable-<unix time>``) and listed as one entry: its own path,
  value "", and the error naming where it was kept (its knobs are not written back).
- ``write`` with ``knob: "set"`` journals the file's original value (bracketed choice or
  stripped text, as execute/policy.current_value) durably BEFORE the first write of that path
  in this session (later sets keep it); refused (write_result error) without the host lock.
  ``knob: "restore"`` writes, then drops the path from the journal. A plain write (no ``knob``)
  is not journaled. The agent writes back every journaled knob when it goes away (shutdown,
  stdin EOF, broken stdout, silence, SIGTERM, SIGHUP).
- ``heartbeat``: the controller sends one every ``interval_seconds`` (the first right after
  hello); the agent takes ``silence_seconds`` without any input as its controller gone (as stdin
  EOF). While a run is in progress, the agent sends its own heartbeat after interval_seconds
  without any other message, so the controller can tell a lost link from a long case.

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
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleet.agent.remote import version

PROTOCOL_VERSION = version.PROTOCOL_VERSION  # defined once, in the shipped version.py
AGENT_NAME = version.AGENT_NAME


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


KnobWrite = Literal["set", "restore"]


@dataclass(frozen=True)
class WriteRequest:
    path: str
    value: str
    knob: KnobWrite | None = None  # a knob's write: journaled ("set") or restored


@dataclass(frozen=True)
class LockRequest:
    """Take the host lock (held until the agent exits), waiting up to ``wait_seconds``."""

    controller: str  # user@host of the controller
    controller_pid: int
    run_id: str
    wait_seconds: float


@dataclass(frozen=True)
class HeartbeatRequest:
    """One way (no id, no reply): the controller is alive; see the module doc."""

    interval_seconds: float
    silence_seconds: float


@dataclass(frozen=True)
class PingRequest:
    """No fields: a round trip, answered with a pong."""


@dataclass(frozen=True)
class ShutdownRequest:
    """No fields: stop the running child (if any), answer bye and exit."""


Request = (RunRequest | ReadRequest | WriteRequest | LockRequest | PingRequest
           | ShutdownRequest)

_REQUEST_TYPES: dict[type, str] = {RunRequest: "run", ReadRequest: "read", WriteRequest: "write",
                                   LockRequest: "lock", PingRequest: "ping",
                                   ShutdownRequest: "shutdown"}


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
class LockHolder:
    """Who holds a host lock, as its agent wrote it (see LockRequest)."""

    controller: str
    controller_pid: int
    run_id: str
    agent_pid: int
    since_wall_seconds: float


@dataclass(frozen=True)
class KnobRecovery:
    """A knob a dead agent left changed, written back to its original ``value``."""

    path: str
    value: str
    error: str | None  # None: written back


@dataclass(frozen=True)
class LockReply:
    request_id: int
    acquired: bool
    waited_seconds: float
    holder: LockHolder | None  # not acquired: who held it at the end (None: unknown)
    recovered: tuple[KnobRecovery, ...]
    error: str | None  # the lock could not be used at all


@dataclass(frozen=True)
class LockWait:
    """Still waiting for the host lock (at once, then every heartbeat interval)."""

    request_id: int
    waited_seconds: float
    holder: LockHolder | None


@dataclass(frozen=True)
class AgentHeartbeat:
    """Unasked, no id: the agent is alive while a run is in progress."""

    monotonic_seconds: float


@dataclass(frozen=True)
class SampleReply:
    """One sample of a running child; ``body`` is the message as sent (see sampling_decode)."""

    request_id: int
    body: Mapping[str, Any]


Reply = (Pong | RunReply | ReadReply | WriteReply | LockReply | LockWait | Bye | ErrorReply
         | SampleReply)


# ---- encoding -----------------------------------------------------------------------------


def encode_heartbeat(request: HeartbeatRequest) -> str:
    return _encoder().encode({"type": "heartbeat", **dataclasses.asdict(request)}) + "\n"


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


_OMITTED_WHEN_NONE = frozenset({"sample", "knob"})  # added later: absent means none


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _encoder() -> json.JSONEncoder:
    return json.JSONEncoder(separators=(",", ":"))
