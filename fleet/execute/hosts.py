"""The executor's hosts: ONE connection and ONE agent per host for the whole run.

``Connections.connector`` is what gather_facts connects with: it opens the host's connection,
starts its agent, and hands the facts probe a transport that runs through that agent, so the
probe costs no extra exec channel and the agent is up before the first case. The executor then
``take``s the same connection and agent; only a reconnect after a failure opens new ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType

from fleet.agent.protocol import (
    FileContent,
    KnobRecovery,
    KnobWrite,
    RunOutcome,
    SampleSpec,
    WriteOutcome,
)
from fleet.agent.session import AgentSession, LockWaitSink, SampleSink
from fleet.errors import TransportError
from fleet.execute.worker import SessionOpener
from fleet.hosts import Host
from fleet.transport import connect
from fleet.transport.base import Result, StreamTransport, Transport

PROBE_CAP_BYTES = 64 << 20  # a facts dump is never truncated


class _ThroughAgent:
    """The Transport the facts probe sees: commands and reads go through the host's agent;
    closing it leaves the connection and the agent to the executor."""

    def __init__(self, host_name: str, session: AgentSession) -> None:
        self.host_name = host_name
        self._session = session

    def run(self, argv: Sequence[str], *, stdin: str | None = None,
            timeout_seconds: float = 60.0) -> Result:
        if stdin is not None:
            raise TransportError("the agent runs commands without stdin", where=self.host_name,
                                 hint="this is a bug in fleet; report it")
        started = time.monotonic()
        out = self._session.run(argv, timeout_seconds=timeout_seconds,
                                stdout_cap_bytes=PROBE_CAP_BYTES,
                                stderr_cap_bytes=PROBE_CAP_BYTES)
        if out.spawn_error is not None or out.timed_out:
            raise TransportError(f"{argv[0]}: {out.spawn_error or 'timed out'}",
                                 where=self.host_name, hint="check the host")
        code = -1 if out.exit_code is None else out.exit_code
        return Result(self.host_name, tuple(argv), code, out.stdout, out.stderr,
                      time.monotonic() - started)

    def read_file(self, path: str) -> str:
        (file,) = self._session.read([path])
        if file.text is None:
            raise TransportError(f"cannot read {path}: {file.error}", where=self.host_name,
                                 hint="check the path and permissions")
        return str(file.text)

    def close(self) -> None:
        """Kept for the executor: Connections.close_unused() closes what it did not take."""

    def __enter__(self) -> _ThroughAgent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Connections:
    """Each host's connection and agent, opened for the facts probe, kept for the executor."""

    def __init__(self, *, accept_new_host_keys: bool) -> None:
        self.accept_new_host_keys = accept_new_host_keys
        self._lock = threading.Lock()
        self._open: dict[str, AgentHost] = {}

    def connector(self, host: Host) -> _ThroughAgent:
        """For gather_facts: connect, start the agent, keep both for the executor."""
        agent = self.open(host)
        with self._lock:
            previous = self._open.pop(host.name, None)
            self._open[host.name] = agent
        if previous is not None:
            previous.close()
        return _ThroughAgent(host.name, agent.session)

    def take(self, host: Host) -> AgentHost:
        """The kept connection and agent of ``host`` (once), else new ones."""
        with self._lock:
            kept = self._open.pop(host.name, None)
        return kept or self.open(host)

    def open(self, host: Host) -> AgentHost:
        transport = connect(host, accept_new_host_keys=self.accept_new_host_keys)
        if not isinstance(transport, StreamTransport):
            transport.close()
            raise TransportError("this transport cannot run the agent", where=host.name,
                                 hint="use an ssh or local connection")
        session = AgentSession(transport, host_name=host.name, become=host.become)
        try:
            session.start()
        except TransportError:
            transport.close()
            raise
        return AgentHost(transport, session)

    def close_unused(self) -> None:
        with self._lock:
            unused, self._open = list(self._open.values()), {}
        for agent in unused:
            agent.close()


class AgentHost:
    """A host's connection and its one agent, closed together (a HostSession)."""

    def __init__(self, transport: Transport, session: AgentSession) -> None:
        self._transport = transport
        self.session = session

    def run(self, argv: Sequence[str], *, timeout_seconds: float, stdout_cap_bytes: int,
            stderr_cap_bytes: int) -> RunOutcome:
        return self.session.run(argv, timeout_seconds=timeout_seconds,
                                 stdout_cap_bytes=stdout_cap_bytes,
                                 stderr_cap_bytes=stderr_cap_bytes)

    def run_sampled(self, argv: Sequence[str], *, timeout_seconds: float,
                    stdout_cap_bytes: int, stderr_cap_bytes: int, sample: SampleSpec,
                    on_sample: SampleSink) -> RunOutcome:
        return self.session.run(argv, timeout_seconds=timeout_seconds,
                                stdout_cap_bytes=stdout_cap_bytes,
                                stderr_cap_bytes=stderr_cap_bytes, sample=sample,
                                on_sample=on_sample)

    def read(self, paths: Sequence[str]) -> tuple[FileContent, ...]:
        return self.session.read(paths)

    def write(self, path: str, value: str, *, knob: KnobWrite | None = None) -> WriteOutcome:
        return self.session.write(path, value, knob=knob)

    def lock(self, *, controller: str, controller_pid: int, run_id: str, wait_seconds: float,
             on_wait: LockWaitSink | None = None) -> tuple[KnobRecovery, ...]:
        return self.session.lock(controller=controller, controller_pid=controller_pid,
                                 run_id=run_id, wait_seconds=wait_seconds, on_wait=on_wait)

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            self._transport.close()


def agent_opener(host: Host | None, name: str, connections: Connections) -> SessionOpener:
    """The host's kept agent, or a new one; an unreachable host fails like any other
    (TransportError -> retries -> quarantine)."""
    def open_session() -> AgentHost:
        if host is None:
            raise TransportError("the host is not in the inventory", where=name,
                                 hint="resume with the inventory the run was planned on (-i)")
        return connections.take(host)

    return open_session
