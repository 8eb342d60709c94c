"""The real agent (fleet/agent/remote/runner.py) driven through LocalTransport.open_stream."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.agent import PROTOCOL_VERSION, AgentSession, RunOutcome
from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.transport.local import LocalTransport

HOSTILE = [
    "two words", "'single'", '"double"', "$(touch {canary})", "`touch {canary}`",
    "; touch {canary}", "a && b || c", "line1\nline2", "tab\there", "*", "~", "$HOME", "\\",
    "ünïcödé €", "emoji 😀", "-n", "", '{"type": "ping", "id": 1}\n',
]
ARGUMENT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                   max_size=40)


def local() -> LocalTransport:
    return LocalTransport(Host(name="me", address="localhost", connection="local"))


@pytest.fixture
def agent() -> Iterator[AgentSession]:
    with AgentSession(local(), host_name="me") as session:
        yield session


@pytest.fixture(scope="module")
def shared_agent() -> Iterator[AgentSession]:
    with AgentSession(local(), host_name="me") as session:
        yield session


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or vanishing while read
        return False


def gone(pid: int, within_seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + within_seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def wait_for_file(path: Path, within_seconds: float = 10.0) -> str:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.005)
    raise AssertionError(f"{path} was not written")


def in_thread(fn: object) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def target() -> None:
        try:
            box.append(fn())  # type: ignore[operator]
        except Exception as e:  # handed to the test, which asserts on it
            box.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


# ---- start ----------------------------------------------------------------------------------


def test_hello_describes_the_agent(agent: AgentSession) -> None:
    hello = agent.hello
    assert hello is not None
    assert hello.protocol_version == PROTOCOL_VERSION and hello.agent == "fleet-agent"
    assert hello.python_version == ".".join(map(str, sys.version_info[:3]))
    assert alive(hello.pid) and hello.pid != os.getpid()
    assert abs(hello.wall_seconds - time.time()) < 60
    assert hello.monotonic_seconds <= time.monotonic()
    parent = agent.run(["sh", "-c", "echo $PPID"], timeout_seconds=10)
    assert parent.stdout == f"{hello.pid}\n"  # every case is a child of the ONE agent


def test_python3_missing_names_host_and_says_install(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a real lookup that finds no python3
    with pytest.raises(TransportError) as err:
        AgentSession(local(), host_name="me").start()
    assert str(err.value) == ("me: python3 not found (python3: command not found) "
                              "(install python3 (3.8 or newer) on the host)")


def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")


HELLO = ('{"type":"hello","protocol_version":%d,"agent":"fleet-agent","python_version":"3.8.0",'
         '"pid":1,"hostname":"h","monotonic_seconds":1,"wall_seconds":2}')


def test_not_an_agent_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, "echo 'Python 2.7 says hi'; cat >/dev/null")
    with pytest.raises(TransportError, match=r"^me: the agent did not start: not a JSON line: "
                                             r"'Python 2.7 says hi'"):
        AgentSession(local(), host_name="me").start()


def test_other_protocol_version_is_refused(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, f"echo '{HELLO % 99}'; cat >/dev/null")
    with pytest.raises(TransportError, match=r"^me: the agent speaks protocol 99, this fleet "
                                             r"speaks 4 \(use the same fleet version"):
        AgentSession(local(), host_name="me").start()


def test_too_old_python_is_reported_by_the_bootstrap(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fatal = '{"type": "fatal", "message": "python3 on the host is 3.6.8; needs 3.8 or newer"}'
    fake_python(tmp_path, monkeypatch, f"echo '{fatal}'")
    with pytest.raises(TransportError, match=r"^me: python3 on the host is 3.6.8; needs 3.8 or "
                                             r"newer \(install python3 >= 3.8 on the host\)$"):
        AgentSession(local(), host_name="me").start()


def test_agent_death_names_host_with_its_stderr(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch,
                f"echo '{HELLO % PROTOCOL_VERSION}'; read x; echo 'Traceback: boom' >&2; exit 1")
    session = AgentSession(local(), host_name="me")
    session.start()
    with pytest.raises(TransportError) as err:
        session.ping()
    assert str(err.value) == ("me: the agent ended (exit 1); agent stderr: Traceback: boom "
                              "(check the host and rerun)")
    with pytest.raises(TransportError, match=r"^me: the agent ended"):  # and it stays dead
        session.read(["/etc/hostname"])
    session.close()


def test_stuck_agent_hits_the_controller_deadline(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_python(tmp_path, monkeypatch, f"echo '{HELLO % PROTOCOL_VERSION}'; exec sleep 60")
    session = AgentSession(local(), host_name="me", request_timeout_seconds=0.3)
    session.start()
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"^me: no reply from the agent within 0.3s"):
        session.ping()
    assert time.monotonic() - started < 3
    session.close()


# ---- runs -----------------------------------------------------------------------------------


def test_hostile_argv_reaches_the_child_unchanged(agent: AgentSession, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    args = [a.replace("{canary}", str(canary)) for a in HOSTILE]
    outcome = agent.run(["printf", r"%s\0", *args], timeout_seconds=10)
    assert outcome.ok, outcome
    assert outcome.stdout.split("\0")[:-1] == args
    assert not canary.exists()


@settings(max_examples=60, deadline=None)
@given(args=st.lists(ARGUMENT, max_size=6))
def test_any_argv_reaches_the_child_unchanged(shared_agent: AgentSession,
                                              args: list[str]) -> None:
    outcome = shared_agent.run(["printf", r"%s\0", "argv:", *args], timeout_seconds=10)
    assert outcome.exit_code == 0, outcome
    assert outcome.stdout.split("\0")[:-1] == ["argv:", *args]


def test_exit_code_stdout_stderr_and_clocks(agent: AgentSession) -> None:
    before = time.time()
    outcome = agent.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout_seconds=10)
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (7, None, False)
    assert (outcome.stdout, outcome.stderr) == ("out\n", "err\n")
    assert (outcome.stdout_total_bytes, outcome.stderr_total_bytes) == (4, 4)
    assert not outcome.ok
    assert before <= outcome.started_wall_seconds <= outcome.ended_wall_seconds <= time.time()
    assert outcome.duration_seconds == pytest.approx(
        outcome.ended_monotonic_seconds - outcome.started_monotonic_seconds)
    assert outcome.child_max_rss_bytes is not None and outcome.child_max_rss_bytes > 0
    assert outcome.child_user_cpu_seconds is not None
    assert outcome.spawn_error is None


def test_a_signal_is_reported_without_an_exit_code(agent: AgentSession) -> None:
    outcome = agent.run(["sh", "-c", "kill -SEGV $$"], timeout_seconds=10)
    assert (outcome.exit_code, outcome.signal, outcome.timed_out) == (None, signal.SIGSEGV, False)


def test_env_additions_and_cwd(agent: AgentSession, tmp_path: Path) -> None:
    outcome = agent.run(["sh", "-c", 'printf "%s|%s|" "$FLEET_X" "$HOME"; pwd'],
                        env={"FLEET_X": "a b $(c)"}, cwd=str(tmp_path), timeout_seconds=10)
    assert outcome.stdout == f"a b $(c)|{os.environ['HOME']}|{tmp_path}\n"


def test_cannot_start_is_a_spawn_error_not_an_exit_code(agent: AgentSession,
                                                        tmp_path: Path) -> None:
    missing = agent.run(["/nonexistent/fleet-tool"], timeout_seconds=10)
    assert (missing.exit_code, missing.signal, missing.ok) == (None, None, False)
    assert missing.spawn_error == "[Errno 2] No such file or directory: '/nonexistent/fleet-tool'"
    bad_cwd = agent.run(["true"], cwd=str(tmp_path / "nope"), timeout_seconds=10)
    assert bad_cwd.spawn_error is not None and "nope" in bad_cwd.spawn_error
    assert agent.run(["true"], timeout_seconds=10).ok  # the agent carries on


def test_timeout_kills_the_tree_even_a_grandchild_ignoring_sigterm(agent: AgentSession) -> None:
    script = 'trap "" TERM; sleep 60 & echo $!; echo $$; wait; wait'
    started = time.monotonic()
    outcome = agent.run(["sh", "-c", script], timeout_seconds=0.3, kill_grace_seconds=0.3)
    assert time.monotonic() - started < 5
    assert outcome.timed_out and not outcome.ok
    assert (outcome.exit_code, outcome.signal) == (None, signal.SIGKILL)  # TERM was ignored
    assert outcome.duration_seconds == pytest.approx(0.6, abs=0.25)
    for pid in map(int, outcome.stdout.split()):
        assert gone(pid), f"pid {pid} survived the timeout"


def test_group_leftovers_are_killed_when_the_child_exits(agent: AgentSession) -> None:
    script = '(trap "" TERM; exec sleep 60) & echo $!'  # exits at once, leaves sleep behind
    started = time.monotonic()
    outcome = agent.run(["sh", "-c", script], timeout_seconds=30)
    assert time.monotonic() - started < 3  # not held up by the leftover holding the pipes
    assert outcome.exit_code == 0
    assert gone(int(outcome.stdout))


def test_leftovers_not_holding_the_pipes_are_killed_before_the_next_request(
        agent: AgentSession) -> None:
    script = '(trap "" TERM; exec sleep 60 >/dev/null 2>&1) & echo $!'
    outcome = agent.run(["sh", "-c", script], timeout_seconds=30)
    assert outcome.exit_code == 0
    agent.ping()  # answered only after the agent killed the group
    assert gone(int(outcome.stdout))  # (reaping it is init's job, hence a short wait)


def test_stdout_cap_keeps_head_and_tail(agent: AgentSession) -> None:
    script = "printf HEAD; head -c 100000 /dev/zero | tr '\\0' x; printf TAIL; echo e >&2"
    outcome = agent.run(["sh", "-c", script], timeout_seconds=10, stdout_cap_bytes=100)
    assert outcome.stdout_truncated and not outcome.stderr_truncated
    assert outcome.stdout_total_bytes == 100_008
    assert outcome.stdout == ("HEAD" + "x" * 46 + "\n[fleet-agent: 99908 bytes omitted]\n"
                              + "x" * 46 + "TAIL")
    assert outcome.stderr == "e\n"


def test_ping_and_read_answer_while_a_run_is_in_flight(agent: AgentSession,
                                                       tmp_path: Path) -> None:
    fifo, started = tmp_path / "fifo", tmp_path / "started"
    os.mkfifo(fifo)
    script = f'echo $$ > {started}; read line < {fifo}; echo "got $line"'
    thread, box = in_thread(lambda: agent.run(["sh", "-c", script], timeout_seconds=30))
    wait_for_file(started)
    for _ in range(3):
        assert 0 < agent.ping() < 5
    (pid_max,) = agent.read(["/proc/sys/kernel/pid_max"])
    assert pid_max.text == Path("/proc/sys/kernel/pid_max").read_text()
    assert thread.is_alive()  # all of that happened during the run
    with open(fifo, "w") as f:
        f.write("go\n")
    thread.join(10)
    (outcome,) = box
    assert isinstance(outcome, RunOutcome) and outcome.stdout == "got go\n"


def test_runs_from_two_threads_are_serialised(agent: AgentSession) -> None:
    results = [in_thread(lambda: agent.run(["sh", "-c", "echo $$"], timeout_seconds=10))
               for _ in range(4)]
    for thread, _ in results:
        thread.join(20)
    outcomes = [box[0] for _, box in results]
    assert all(isinstance(o, RunOutcome) and o.ok for o in outcomes), outcomes


def test_close_mid_run_cancels_the_child(agent: AgentSession, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    thread, box = in_thread(lambda: agent.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
                                              timeout_seconds=60))
    pid = int(wait_for_file(pidfile))
    agent.close()
    thread.join(10)
    (outcome,) = box
    assert isinstance(outcome, RunOutcome)
    assert outcome.cancelled and not outcome.timed_out and outcome.signal == signal.SIGTERM
    assert gone(pid)
    with pytest.raises(TransportError, match=r"^me: the agent session is closed"):
        agent.ping()
    agent.close()  # idempotent


# ---- the end of the controller --------------------------------------------------------------


def test_stdin_eof_kills_the_running_child_and_the_agent_exits(agent: AgentSession,
                                                               tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f'trap "" TERM; echo $$ > {pidfile}; sleep 60; sleep 60'
    thread, box = in_thread(lambda: agent.run(["sh", "-c", script], timeout_seconds=60,
                                              kill_grace_seconds=0.2))
    child = int(wait_for_file(pidfile))
    assert agent.hello is not None
    stream = agent._stream
    assert stream is not None
    stream.close_stdin()  # what the agent sees when the controller or the connection is gone
    assert gone(child), "the child outlived the controller"
    assert gone(agent.hello.pid), "the agent outlived the controller"
    thread.join(10)
    (outcome,) = box  # stdout is still open here, so the agent could say what it did
    assert isinstance(outcome, RunOutcome)
    assert outcome.cancelled and outcome.signal == signal.SIGKILL  # TERM was ignored
    with pytest.raises(TransportError, match=r"^me: the agent ended \(exit 0\)"):
        agent.ping()


CONTROLLER = """
import sys
from fleet.agent import AgentSession
from fleet.hosts import Host
from fleet.transport.local import LocalTransport
host = Host(name="me", address="localhost", connection="local")
session = AgentSession(LocalTransport(host), host_name="me")
print(session.start().pid, flush=True)
session.run(["sh", "-c", "echo $$ > " + sys.argv[1] + "; exec sleep 60"], timeout_seconds=60)
"""


def test_a_sigkilled_controller_leaves_nothing_running(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    controller = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(pidfile)],
                                  stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert controller.stdout is not None
    agent_pid = int(controller.stdout.readline())
    child = int(wait_for_file(pidfile))
    controller.kill()
    controller.wait()
    controller.stdout.close()
    assert gone(child), "the child outlived the controller"
    assert gone(agent_pid), "the agent outlived the controller"


# ---- files ----------------------------------------------------------------------------------


def test_read_and_write_files(agent: AgentSession, tmp_path: Path) -> None:
    knob = tmp_path / "knob"
    knob.write_text("old value\n")
    written = agent.write(str(knob), "new")
    assert (written.ok, written.errno, written.error) == (True, None, None)
    assert knob.read_text() == "new"  # truncated, exactly the value
    text, missing, big = agent.read([str(knob), str(tmp_path / "nope"), "/proc/self/status"],
                                    max_bytes=10)
    assert (text.text, text.truncated, text.ok) == ("new", False, True)
    assert (missing.text, missing.errno, missing.error) == (None, errno.ENOENT,
                                                            "No such file or directory")
    assert big.text == "Name:\tpyth" and big.truncated
    assert agent.read([]) == ()


def test_write_errors_carry_errno(agent: AgentSession, tmp_path: Path) -> None:
    absent = agent.write(str(tmp_path / "absent"), "1")
    assert (absent.ok, absent.errno) == (False, errno.ENOENT)
    assert not (tmp_path / "absent").exists()  # knobs are never created
    directory = agent.write(str(tmp_path), "1")
    assert (directory.errno, directory.error) == (errno.EISDIR, "Is a directory")
    invalid = agent.write("/proc/sys/kernel/pid_max", "not a number\n")  # a real kernel knob
    assert (invalid.errno, invalid.error) == (errno.EINVAL, "Invalid argument")
