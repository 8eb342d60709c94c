"""The host owns what it changes: the host lock, the knob journal and heartbeats, with the real
agent (fleet/agent/remote/runner.py) through LocalTransport.

Each test gives its agents a private state directory ($FLEET_AGENT_STATE_DIR, inherited by a
local agent), so they lock and journal there, not in /run/fleet-agent. A "knob" is a file in a
temp dir: the agent writes any existing file, and these paths hold hostile characters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.agent import AgentSession
from fleet.agent.protocol import KnobRecovery, LockWait
from fleet.agent.session import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_SILENCE_SECONDS
from fleet.errors import HostBusyError, TransportError
from fleet.hosts import Host
from fleet.transport.local import LocalTransport

REPO = Path(__file__).resolve().parents[2]
HOSTILE_NAME = "knob $(touch canary) `id` ; \"q\" 'x'"


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("FLEET_AGENT_STATE_DIR", str(directory))
    return directory


@pytest.fixture
def knob(tmp_path: Path) -> Path:
    path = tmp_path / HOSTILE_NAME
    path.write_text("20\n")
    return path


def session(*, heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
            silence_seconds: float = DEFAULT_SILENCE_SECONDS) -> AgentSession:
    host = Host(name="me", address="localhost", connection="local")
    return AgentSession(LocalTransport(host), host_name="me",
                        heartbeat_seconds=heartbeat_seconds, silence_seconds=silence_seconds)


@pytest.fixture
def agent(state: Path) -> Iterator[AgentSession]:
    with session() as s:
        yield s


def lock(s: AgentSession, run_id: str = "run-a", wait_seconds: float = 5.0,
         on_wait: list[LockWait] | None = None) -> tuple[KnobRecovery, ...]:
    return s.lock(controller="ctl@box", controller_pid=4242, run_id=run_id,
                  wait_seconds=wait_seconds, on_wait=None if on_wait is None else on_wait.append)


def journal(state: Path) -> dict[str, str]:
    found = list(state.glob("host-*.journal"))
    if not found:
        return {}
    (path,) = found
    return {k["path"]: k["value"] for k in json.loads(path.read_text())["knobs"]}


def eventually(check: object, within_seconds: float = 15.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + within_seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(check())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def sigkill_after_setting(knob: Path, value: str) -> None:
    """An agent takes the lock, sets ``knob`` to ``value`` (journaled) and is SIGKILLed."""
    with session() as first:
        lock(first)
        assert first.write(str(knob), value, knob="set").ok
        assert first.hello is not None
        os.kill(first.hello.pid, signal.SIGKILL)
        assert eventually(lambda: not alive(first.hello.pid))


# ---- the journal ----------------------------------------------------------------------------


def test_a_knob_set_needs_the_host_lock(agent: AgentSession, knob: Path, state: Path) -> None:
    refused = agent.write(str(knob), "19", knob="set")
    assert refused.error == "knob writes need the host lock: send a lock request first"
    assert knob.read_text() == "20\n" and journal(state) == {}
    assert agent.write(str(knob), "18").ok  # a plain write is not a knob's: not journaled
    assert journal(state) == {}


def test_the_first_original_is_journaled_before_the_write_and_leaves_on_restore(
        agent: AgentSession, knob: Path, state: Path) -> None:
    assert lock(agent) == ()
    assert agent.write(str(knob), "19", knob="set").ok
    assert journal(state) == {str(knob): "20"} and knob.read_text() == "19"
    assert agent.write(str(knob), "21", knob="set").ok  # a later write keeps the first original
    assert journal(state) == {str(knob): "20"}
    assert agent.write(str(knob), "20", knob="restore").ok
    assert journal(state) == {} and knob.read_text() == "20"
    assert (state.stat().st_mode & 0o777) == 0o700


def test_an_agent_whose_controller_closes_its_pipe_restores_the_knob(
        agent: AgentSession, knob: Path) -> None:
    lock(agent)
    assert agent.write(str(knob), "19", knob="set").ok
    stream = agent._stream
    assert stream is not None and agent.hello is not None
    stream.close_stdin()  # as a controller that is gone: EOF, no shutdown request
    assert eventually(lambda: knob.read_text() == "20")
    assert eventually(lambda: not alive(agent.hello.pid))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_an_agent_told_to_stop_by_a_signal_restores_the_knob(agent: AgentSession, knob: Path,
                                                             signum: int) -> None:
    lock(agent)
    assert agent.write(str(knob), "19", knob="set").ok
    assert agent.hello is not None
    os.kill(agent.hello.pid, signum)
    assert eventually(lambda: knob.read_text() == "20")
    assert eventually(lambda: not alive(agent.hello.pid))


CONTROLLER = """
import sys, time
from fleet.agent import AgentSession
from fleet.hosts import Host
from fleet.transport.local import LocalTransport
host = Host(name="me", address="localhost", connection="local")
s = AgentSession(LocalTransport(host), host_name="me", heartbeat_seconds=0.3,
                 silence_seconds=float(sys.argv[2]))
pid = s.start().pid
s.lock(controller="ctl@box", controller_pid=1, run_id="r", wait_seconds=5)
assert s.write(sys.argv[1], "19", knob="set").ok
print(pid, flush=True)
s.run(["sleep", "60"], timeout_seconds=60)
"""


def controller(knob: Path, silence_seconds: float = 30.0) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(knob), str(silence_seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_a_sigkilled_controller_leaves_the_knob_at_its_original(state: Path,
                                                                 knob: Path) -> None:
    proc, agent_pid = controller(knob)
    assert knob.read_text() == "19" and journal(state) == {str(knob): "20"}
    proc.kill()
    proc.wait()
    assert eventually(lambda: knob.read_text() == "20"), "the knob stayed changed"
    assert eventually(lambda: not alive(agent_pid))
    assert journal(state) == {}


def test_a_silent_controller_is_taken_for_gone(state: Path, knob: Path) -> None:
    proc, agent_pid = controller(knob, silence_seconds=2.0)
    os.kill(proc.pid, signal.SIGSTOP)  # it sends nothing more, its pipes stay open
    try:
        assert eventually(lambda: knob.read_text() == "20"), "the knob stayed changed"
        assert eventually(lambda: not alive(agent_pid)), "the agent outlived its controller"
    finally:
        proc.kill()
        os.kill(proc.pid, signal.SIGCONT)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_sigkilled_agent_s_journal_is_replayed_by_the_next_lock(state: Path, knob: Path,
                                                                  tmp_path: Path) -> None:
    sigkill_after_setting(knob, "19")
    assert knob.read_text() == "19" and journal(state) == {str(knob): "20"}
    with session() as second:
        assert lock(second) == (KnobRecovery(str(knob), "20", None),)
        assert knob.read_text() == "20" and journal(state) == {}
    assert not (tmp_path / "canary").exists() and not (REPO / "canary").exists()


def test_an_unreadable_journal_is_kept_aside_and_reported_never_dropped(state: Path,
                                                                         knob: Path) -> None:
    """A journal a dead agent left half-written (or otherwise unreadable) cannot be replayed:
    the next lock says so, naming where the file was kept, and the knob is left as it is."""
    sigkill_after_setting(knob, "19")
    (path,) = state.glob("host-*.journal")
    path.write_text('{"knobs": [{"path": "/proc/sys/vm/compaction_proact')  # torn
    with session() as second:
        (recovery,) = lock(second)
    (kept,) = state.glob("host-*.journal.unreadable-*")
    assert recovery.path == str(path) and recovery.value == ""
    assert recovery.error is not None and recovery.error.startswith(
        "the knob journal a dead agent left cannot be read (JSONDecodeError: ")
    assert recovery.error.endswith(f"kept as {kept}: the knobs it held were not written back, "
                                   "check them by hand")
    assert kept.read_text().endswith("compaction_proact") and not path.exists()
    assert knob.read_text() == "19"


# ---- the host lock --------------------------------------------------------------------------


def test_a_second_session_waits_naming_the_holder_then_gives_up(agent: AgentSession) -> None:
    lock(agent, run_id="run-a")
    waits: list[LockWait] = []
    with session() as second:
        started = time.monotonic()
        with pytest.raises(HostBusyError) as err:
            lock(second, run_id="run-b", wait_seconds=1.0, on_wait=waits)
        assert time.monotonic() - started < 10
    assert agent.hello is not None
    assert str(err.value).startswith(
        f"me: host busy: held by ctl@box (controller pid 4242, run run-a, agent pid "
        f"{agent.hello.pid}) since ")
    assert waits and waits[0].holder is not None and waits[0].holder.run_id == "run-a"
    assert lock(agent) == ()  # the holder keeps it (a second lock of its own is a no-op)


def test_the_lock_is_free_once_its_agent_is_gone(state: Path) -> None:
    with session() as first:
        lock(first)
    with session() as second:
        assert lock(second, wait_seconds=0) == ()


# ---- heartbeats -----------------------------------------------------------------------------


def test_a_long_quiet_run_is_kept_alive_by_heartbeats(state: Path) -> None:
    with session(heartbeat_seconds=0.2, silence_seconds=1.0) as s:
        outcome = s.run(["sleep", "2.5"], timeout_seconds=30)
        assert outcome.ok and s._replies == {}
        assert [t for t in threading.enumerate() if t.name == "fleet-heartbeat-me"]
    assert eventually(lambda: not [t for t in threading.enumerate()
                                   if t.name == "fleet-heartbeat-me"], 5)


def test_a_stalled_agent_is_lost_within_the_silence_limit(state: Path) -> None:
    s = session(heartbeat_seconds=0.3, silence_seconds=2.0)
    hello = s.start()
    box: list[BaseException] = []

    def run() -> None:
        try:
            s.run(["sleep", "60"], timeout_seconds=60)
        except TransportError as e:
            box.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    os.kill(hello.pid, signal.SIGSTOP)
    started = time.monotonic()
    try:
        thread.join(20)
        assert time.monotonic() - started < 20 and not thread.is_alive()
    finally:
        os.kill(hello.pid, signal.SIGKILL)
        os.kill(hello.pid, signal.SIGCONT)
    (error,) = box
    assert str(error).startswith("me: no word from the agent for 2 s: link lost")
    s.close()
