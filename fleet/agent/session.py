"""AgentSession: the controller's end of one host's agent (one stream, one process, one host).

``start`` opens ONE stream running a constant bootstrap (fleet/agent/shipping.py: nothing in
it comes from user values), sends the agent's source text through the stream's stdin, and checks
the agent's hello and protocol version. Every later request is one JSON line on the same
stream, so a case costs a round trip on an open channel, not a new SSH exec.

Threads may share a session: requests are written under a lock and replies are matched by id.
Whoever waits reads for everyone (one reader at a time; replies for others are handed over).
The one background thread per session sends a one-way heartbeat every ``heartbeat_seconds``
from hello to close (the agent takes ``silence_seconds`` without input as its controller gone,
and restores its knobs); a caller waiting for a reply declares the link lost after
``silence_seconds`` without a line from the agent (a running agent sends its own heartbeats),
whatever the request's own timeout. Runs are serialised (the agent runs one child at a time);
``ping``/``read``/``write`` from another thread are answered while a run is in progress.
A sampled run hands each "sample" message to its ``on_sample`` callback, in order, in the
thread that reads the stream (one at a time), all before ``run`` returns.
A dead agent, a broken line or a stuck reply makes the session unusable: every call then
raises TransportError naming the host, with the tail of the agent's stderr.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from fleet.agent.protocol import (
    PROTOCOL_VERSION,
    AgentHeartbeat,
    Bye,
    ErrorReply,
    Fatal,
    FileContent,
    HeartbeatRequest,
    Hello,
    KnobRecovery,
    KnobWrite,
    LockHolder,
    LockReply,
    LockRequest,
    LockWait,
    PingRequest,
    Pong,
    ProtocolError,
    ReadReply,
    ReadRequest,
    Reply,
    Request,
    RunOutcome,
    RunReply,
    RunRequest,
    SampleReply,
    SampleSpec,
    ShutdownRequest,
    WriteOutcome,
    WriteReply,
    WriteRequest,
    encode_heartbeat,
    encode_request,
)
from fleet.agent.protocol_decode import decode_hello, decode_reply
from fleet.agent.shipping import AGENT_ARGV, agent_source, start_failure
from fleet.errors import HostBusyError, TransportError
from fleet.hosts import Become
from fleet.transport.base import Stream, StreamTransport, become_input, with_become

R = TypeVar("R", bound=Reply)

SampleSink = Callable[[Mapping[str, Any]], None]
LockWaitSink = Callable[[LockWait], None]

DEFAULT_KILL_GRACE_SECONDS = 2.0
DEFAULT_CAP_BYTES = 1 << 20  # per stream: 512 KiB head + 512 KiB tail
DEFAULT_READ_MAX_BYTES = 1 << 20
STUCK_MARGIN_SECONDS = 5.0  # beyond timeout + grace + the agent's drain time, the agent is stuck
_EXIT_WAIT_SECONDS = 2.0
_STDERR_TAIL_CHARS = 400
DEFAULT_HEARTBEAT_SECONDS = 5.0
DEFAULT_SILENCE_SECONDS = 30.0  # no word for this long while waiting: the link is lost


class AgentSession:
    """One long-lived fleet-agent on one host, started over one stream of ``transport``."""

    def __init__(self, transport: StreamTransport, *, host_name: str,
                 request_timeout_seconds: float = 30.0,
                 start_timeout_seconds: float = 30.0,
                 heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
                 silence_seconds: float = DEFAULT_SILENCE_SECONDS,
                 become: Become | None = None) -> None:
        self.host_name = host_name
        self._become = become
        self.hello: Hello | None = None
        self._transport = transport
        self._request_timeout = request_timeout_seconds
        self._start_timeout = start_timeout_seconds
        self._stream: Stream | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, Reply] = {}
        self._sinks: dict[int, Callable[[Any], None]] = {}  # request id -> its messages
        self._reading = False
        self._dead: TransportError | None = None
        self._heartbeat = HeartbeatRequest(heartbeat_seconds, silence_seconds)
        self._last_heard = time.monotonic()  # when the last line came from the agent
        self._stopped = threading.Event()  # the heartbeat thread's end

    def __repr__(self) -> str:
        return f"AgentSession({self.host_name})"

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> Hello:
        """Ship and start the agent; raises TransportError (python3 missing, wrong version)."""
        if self.hello is not None:
            return self.hello
        if self._dead is not None:
            raise TransportError(self._dead.what, where=self.host_name, hint=self._dead.hint)
        source = agent_source()
        stream = self._transport.open_stream(with_become(AGENT_ARGV, self._become))
        self._stream = stream
        with contextlib.suppress(TransportError):  # it ended at once: the readline says why
            stream.write(f"{become_input(self._become)}{len(source)}\n{source.decode('utf-8')}")
        try:
            line = stream.readline(timeout_seconds=self._start_timeout)
        except TransportError:
            raise self._die(f"the agent did not say hello within {self._start_timeout:g}s",
                            "check python3 on the host") from None
        if not line:
            raise self._start_failure(stream)
        self.hello = self._check_hello(line)
        threading.Thread(target=self._beat, args=(stream,), daemon=True,
                         name=f"fleet-heartbeat-{self.host_name}").start()
        return self.hello

    def _beat(self, stream: Stream) -> None:
        """Until the session closes or dies: one heartbeat now, then one per interval."""
        line = encode_heartbeat(self._heartbeat)
        while not self._stopped.is_set():
            with self._write_lock:
                if self._stopped.is_set():
                    return
                try:
                    stream.write(line)
                except TransportError:
                    return  # the caller of the next request finds out why
            self._stopped.wait(self._heartbeat.interval_seconds)

    def _check_hello(self, line: str) -> Hello:
        try:
            hello = decode_hello(line)
        except ProtocolError as e:
            raise self._die(f"the agent did not start: {e}", "check python3 on the host") from None
        if isinstance(hello, Fatal):
            raise self._die(hello.message, "install python3 >= 3.8 on the host")
        if hello.protocol_version != PROTOCOL_VERSION:
            raise self._die(f"the agent speaks protocol {hello.protocol_version}, this fleet "
                            f"speaks {PROTOCOL_VERSION}", "use the same fleet version everywhere")
        return hello

    def _start_failure(self, stream: Stream) -> TransportError:
        what, hint = start_failure(_exit_code(stream), stream.stderr, _tail(stream.stderr),
                                   self._become)
        return self._die(what, hint, with_stderr=False)

    def close(self) -> None:
        """Shut the agent down (a running child is killed) and wait for it; idempotent."""
        stream = self._stream
        if stream is None:
            return
        if self._dead is None and self.hello is not None:
            try:
                self._call(ShutdownRequest(), Bye, DEFAULT_KILL_GRACE_SECONDS + 10)
                stream.close_stdin()
                _exit_code(stream)
            except TransportError:
                pass  # already dead: the stream is closed below either way
        self._dead = self._dead or TransportError("the agent session is closed",
                                                  where=self.host_name, hint="start a new one")
        self._stopped.set()
        self._stream = None
        stream.close()

    def __enter__(self) -> AgentSession:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ---- requests ---------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, timeout_seconds: float,
            env: Mapping[str, str] | None = None, cwd: str | None = None,
            kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS,
            stdout_cap_bytes: int = DEFAULT_CAP_BYTES,
            stderr_cap_bytes: int = DEFAULT_CAP_BYTES, sample: SampleSpec | None = None,
            on_sample: SampleSink | None = None) -> RunOutcome:
        """Run argv (no shell) in its own session on the host; one run at a time per agent.

        The child's failure (exit code, signal, timeout, cannot start) is in the RunOutcome;
        TransportError means the agent or the connection failed. With ``sample``, every
        sample message goes to ``on_sample`` (required then) before this returns.
        """
        if (sample is None) != (on_sample is None):
            raise TransportError("sample and on_sample go together", where=self.host_name,
                                 hint="this is a bug in fleet; report it")
        argv = tuple(argv)
        if not argv:
            raise TransportError("cannot run an empty command", where=self.host_name,
                                 hint="pass at least the program name")
        request = RunRequest(argv, float(timeout_seconds), float(kill_grace_seconds),
                             stdout_cap_bytes, stderr_cap_bytes,
                             dict(env) if env is not None else None, cwd, sample)
        limit = timeout_seconds + kill_grace_seconds + 1.0 + STUCK_MARGIN_SECONDS
        with self._run_lock:
            return self._call(request, RunReply, limit, on_sample).outcome

    def read(self, paths: Sequence[str], *,
             max_bytes: int = DEFAULT_READ_MAX_BYTES) -> tuple[FileContent, ...]:
        """Each file's text (UTF-8, errors replaced) or its error, in the order asked."""
        if not paths:
            return ()
        request = ReadRequest(tuple(paths), max_bytes)
        return self._call(request, ReadReply, self._request_timeout).files

    def write(self, path: str, value: str, *, knob: KnobWrite | None = None) -> WriteOutcome:
        """Write ``value`` (exactly; add a newline yourself) to an existing file. A knob's
        write says so: "set" (the agent journals the original first; needs the host lock) or
        "restore" (the controller writes the original back; the journal forgets it)."""
        request = WriteRequest(path, value, knob)
        return self._call(request, WriteReply, self._request_timeout).outcome

    def lock(self, *, controller: str, controller_pid: int, run_id: str, wait_seconds: float,
             on_wait: LockWaitSink | None = None) -> tuple[KnobRecovery, ...]:
        """Take the host lock (held until the agent exits), waiting up to ``wait_seconds``;
        ``on_wait`` hears who holds it meanwhile. Returns the knobs a dead agent left changed,
        now written back. Raises HostBusyError when another controller kept it."""
        request = LockRequest(controller, controller_pid, run_id, float(wait_seconds))
        reply = self._call(request, LockReply, wait_seconds + self._request_timeout,
                           on_wait or (lambda wait: None))
        if reply.acquired:
            return reply.recovered
        if reply.error is not None:
            raise TransportError(f"cannot take the host lock: {reply.error}",
                                 where=self.host_name, hint="check the agent's state directory "
                                 "on the host (/run/fleet-agent for root)")
        raise HostBusyError(f"host busy: held by {describe_holder(reply.holder)}; gave up after "
                            f"{reply.waited_seconds:.0f} s", where=self.host_name,
                            hint="wait for that run to end or stop it, or wait longer for the "
                            "host lock")

    def ping(self) -> float:
        """Seconds for one round trip on the open channel."""
        started = time.perf_counter()
        self._call(PingRequest(), Pong, self._request_timeout)
        return time.perf_counter() - started

    # ---- the conversation -------------------------------------------------------------------

    def _call(self, request: Request, expected: type[R], timeout_seconds: float,
              on_message: Callable[[Any], None] | None = None) -> R:
        stream = self._live_stream()
        request_id = next(self._ids)
        if on_message is not None:
            self._sinks[request_id] = on_message
        try:
            with self._write_lock:
                try:
                    stream.write(encode_request(request_id, request))
                except TransportError:
                    raise self._ended(stream) from None
            sent = time.monotonic()
            reply = self._await(request_id, sent, sent + timeout_seconds, timeout_seconds)
        finally:
            self._sinks.pop(request_id, None)
        if isinstance(reply, ErrorReply):
            raise TransportError(f"the agent refused a request: {reply.message}",
                                 where=self.host_name, hint="this is a bug in fleet; report it")
        if not isinstance(reply, expected):
            raise self._die(f"expected {expected.__name__} for request {request_id}, got "
                            f"{type(reply).__name__}", "this is a bug in fleet; report it")
        return reply

    def _live_stream(self) -> Stream:
        if self._dead is not None:
            raise TransportError(self._dead.what, where=self.host_name, hint=self._dead.hint)
        if self._stream is None or self.hello is None:
            raise TransportError("the agent is not started", where=self.host_name,
                                 hint="call start() or use the session as a context manager")
        return self._stream

    def _await(self, request_id: int, sent: float, deadline: float,
               timeout_seconds: float) -> Reply:
        """Wait for our reply; read the stream ourselves while nobody else does."""
        silence = self._heartbeat.silence_seconds
        while True:
            with self._cond:
                while True:
                    if request_id in self._replies:
                        return self._replies.pop(request_id)
                    self._live_stream()
                    now = time.monotonic()
                    remaining = deadline - now
                    if remaining <= 0:
                        raise self._die(f"no reply from the agent within {timeout_seconds:g}s",
                                        "the agent or the host is stuck; check it and rerun")
                    quiet = silence - (now - max(self._last_heard, sent))
                    if quiet <= 0:
                        raise self._die(f"no word from the agent for {silence:g} s: link lost",
                                        "check the host and the network, then rerun")
                    remaining = min(remaining, quiet)
                    if not self._reading:
                        self._reading = True
                        break
                    self._cond.wait(remaining)
            try:
                self._read_one(remaining)
            finally:
                with self._cond:
                    self._reading = False
                    self._cond.notify_all()

    def _read_one(self, timeout_seconds: float) -> None:
        stream = self._live_stream()
        try:
            line = stream.readline(timeout_seconds=timeout_seconds)
        except TransportError:
            return  # no line yet; the caller's loop checks its deadline
        if not line:
            raise self._ended(stream)
        self._last_heard = time.monotonic()
        try:
            reply = decode_reply(line)
        except ProtocolError as e:
            raise self._die(f"broken reply from the agent: {e}", "check the host") from None
        if isinstance(reply, AgentHeartbeat):
            return
        if reply.request_id is None:
            raise self._die(f"the agent could not read a request: {reply}",
                            "this is a bug in fleet; report it")
        if isinstance(reply, SampleReply | LockWait):
            sink = self._sinks.get(reply.request_id)
            if sink is None:
                raise self._die(f"a {type(reply).__name__} for request {reply.request_id}, "
                                "which asked for none", "this is a bug in fleet; report it")
            sink(reply.body if isinstance(reply, SampleReply) else reply)
            return
        with self._cond:
            self._replies[reply.request_id] = reply

    def _ended(self, stream: Stream) -> TransportError:
        return self._die(f"the agent ended (exit {_exit_code(stream)})", "check the host and rerun")

    def _die(self, what: str, hint: str, *, with_stderr: bool = True) -> TransportError:
        """Mark the session dead (closing its stream) and return the error to raise."""
        stream = self._stream
        tail = _tail(stream.stderr) if stream is not None and with_stderr else ""
        if tail:
            what = f"{what}; agent stderr: {tail}"
        with self._cond:
            if self._dead is None:
                self._dead = TransportError(what, where=self.host_name, hint=hint)
            self._cond.notify_all()
        self._stopped.set()
        if stream is not None:
            stream.close()
        return TransportError(what, where=self.host_name, hint=hint)


def describe_holder(holder: LockHolder | None) -> str:
    """One phrase for a lock holder: who, which run, since when (UTC)."""
    if holder is None:
        return "another agent (its lock file says nothing readable)"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.since_wall_seconds))
    return (f"{holder.controller} (controller pid {holder.controller_pid}, run "
            f"{holder.run_id}, agent pid {holder.agent_pid}) since {since}")


def _exit_code(stream: Stream) -> int | None:
    """The stream's exit code, polled for a moment after its output ended (None: still none)."""
    deadline = time.monotonic() + _EXIT_WAIT_SECONDS
    while stream.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return stream.exit_code


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _STDERR_TAIL_CHARS else "..." + text[-_STDERR_TAIL_CHARS:]
