"""The agent on real lab hosts over SSH: one channel per host, no exec per case.

The lab hosts share this machine's filesystem and /proc, so PIDs reported on a host can be
checked here.
"""

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

from fleet.agent import AgentSession, RunOutcome
from fleet.config.inventory import load_inventory
from fleet.errors import TransportError
from fleet.hosts import Host
from fleet.lab import LabState
from fleet.transport.ssh import SshTransport

pytestmark = pytest.mark.integration

HOSTILE = [
    "two words", "'single'", '"double"', "$(touch {canary})", "`touch {canary}`",
    "; touch {canary}", "a && b || c", "line1\nline2", "tab\there", "*", "~", "$HOME", "\\",
    "ünïcödé €", "emoji 😀", "-n", "", '{"type": "ping", "id": 1}\n',
]


@pytest.fixture
def host(lab: LabState) -> Host:
    (only,) = load_inventory([lab.inventory_path], limit=lab.hosts[1].name).hosts
    return only


@pytest.fixture
def ssh(host: Host) -> Iterator[SshTransport]:
    with SshTransport(host) as transport:
        yield transport


@pytest.fixture
def agent(ssh: SshTransport, host: Host) -> Iterator[AgentSession]:
    with AgentSession(ssh, host_name=host.name) as session:
        yield session


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or vanishing while read
        return False


def gone(pid: int, within_seconds: float = 10.0) -> bool:
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


def run_in_thread(agent: AgentSession, argv: list[str], **kwargs: float,
                  ) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def target() -> None:
        try:
            box.append(agent.run(argv, **kwargs))  # type: ignore[arg-type]
        except TransportError as e:
            box.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_one_agent_one_connection_many_cases(agent: AgentSession, ssh: SshTransport,
                                             host: Host) -> None:
    assert agent.hello is not None
    assert alive(agent.hello.pid)
    for _ in range(20):
        outcome = agent.run(["sh", "-c", "echo $PPID"], timeout_seconds=10)
        assert outcome.stdout == f"{agent.hello.pid}\n"  # all children of the one agent
    assert ssh.connect_count == 1
    assert 0 < agent.ping() < 1


def test_hostile_argv_reaches_the_child_unchanged(agent: AgentSession, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    args = [a.replace("{canary}", str(canary)) for a in HOSTILE]
    outcome = agent.run(["printf", r"%s\0", *args], timeout_seconds=10)
    assert outcome.ok, outcome
    assert outcome.stdout.split("\0")[:-1] == args
    assert not canary.exists()


def test_exit_code_signal_and_spawn_error(agent: AgentSession) -> None:
    failed = agent.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout_seconds=10)
    assert (failed.exit_code, failed.stdout, failed.stderr) == (7, "out\n", "err\n")
    killed = agent.run(["sh", "-c", "kill -ABRT $$"], timeout_seconds=10)
    assert (killed.exit_code, killed.signal) == (None, signal.SIGABRT)
    missing = agent.run(["/nonexistent/fleet-tool"], timeout_seconds=10)
    assert missing.exit_code is None and "No such file" in (missing.spawn_error or "")


def test_timeout_kills_the_tree_even_a_grandchild_ignoring_sigterm(agent: AgentSession) -> None:
    script = 'trap "" TERM; sleep 60 & echo $!; echo $$; wait; wait'
    started = time.monotonic()
    outcome = agent.run(["sh", "-c", script], timeout_seconds=0.5, kill_grace_seconds=0.5)
    assert time.monotonic() - started < 5
    assert outcome.timed_out and (outcome.exit_code, outcome.signal) == (None, signal.SIGKILL)
    pids = list(map(int, outcome.stdout.split()))
    assert len(pids) == 2
    for pid in pids:
        assert gone(pid), f"pid {pid} survived the timeout"


def test_stdout_cap_keeps_head_and_tail(agent: AgentSession) -> None:
    script = "printf HEAD; head -c 5000000 /dev/zero | tr '\\0' x; printf TAIL"
    outcome = agent.run(["sh", "-c", script], timeout_seconds=30, stdout_cap_bytes=1000)
    assert outcome.stdout_truncated and outcome.stdout_total_bytes == 5_000_008
    assert outcome.stdout.startswith("HEAD" + "x" * 496 + "\n[fleet-agent: 4999008 bytes")
    assert outcome.stdout.endswith("]\n" + "x" * 496 + "TAIL")


def test_ping_read_write_answer_while_a_run_is_in_flight(agent: AgentSession,
                                                         tmp_path: Path) -> None:
    fifo, started, knob = tmp_path / "fifo", tmp_path / "started", tmp_path / "knob"
    os.mkfifo(fifo)
    knob.write_text("0\n")
    script = f'echo $$ > {started}; read line < {fifo}; echo "got $line"'
    thread, box = run_in_thread(agent, ["sh", "-c", script], timeout_seconds=30)
    wait_for_file(started)
    assert 0 < agent.ping() < 5
    thp = "/sys/kernel/mm/transparent_hugepage/enabled"
    files = agent.read([thp, "/proc/sys/vm/overcommit_memory", str(tmp_path / "nope")])
    assert [f.text for f in files[:2]] == [Path(p).read_text() for p in (
        thp, "/proc/sys/vm/overcommit_memory")]
    assert (files[2].text, files[2].errno) == (None, errno.ENOENT)
    assert agent.write(str(knob), "1\n").ok
    assert knob.read_text() == "1\n"
    assert thread.is_alive()  # all of the above happened during the run
    with open(fifo, "w") as f:
        f.write("go\n")
    thread.join(10)
    (outcome,) = box
    assert isinstance(outcome, RunOutcome) and outcome.stdout == "got go\n"


def test_write_error_carries_errno(agent: AgentSession, tmp_path: Path) -> None:
    invalid = agent.write("/proc/sys/kernel/pid_max", "not a number\n")
    assert (invalid.ok, invalid.errno) == (False, errno.EINVAL)
    absent = agent.write(str(tmp_path / "absent"), "1")
    assert absent.errno == errno.ENOENT and not (tmp_path / "absent").exists()


def test_dropped_connection_mid_run_leaves_nothing_on_the_host(agent: AgentSession,
                                                               ssh: SshTransport,
                                                               tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f'trap "" TERM; echo $$ > {pidfile}; sleep 60; sleep 60'
    thread, box = run_in_thread(agent, ["sh", "-c", script], timeout_seconds=60,
                                kill_grace_seconds=0.5)
    child = int(wait_for_file(pidfile))
    assert agent.hello is not None and alive(agent.hello.pid)
    ssh.close()  # the TCP connection goes away under the running case
    assert gone(child), "the child outlived the connection"
    assert gone(agent.hello.pid), "the agent outlived the connection"
    thread.join(10)
    (error,) = box
    assert isinstance(error, TransportError)
    assert str(error).startswith(f"{agent.host_name}: the agent ended")


CONTROLLER = """
import sys
from pathlib import Path
from fleet.agent import AgentSession
from fleet.config.inventory import load_inventory
from fleet.transport.ssh import SshTransport
(host,) = load_inventory([Path(sys.argv[1])], limit=sys.argv[2]).hosts
session = AgentSession(SshTransport(host), host_name=host.name)
print(session.start().pid, flush=True)
session.run(["sh", "-c", "echo $$ > " + sys.argv[3] + "; exec sleep 60"], timeout_seconds=60)
"""


def test_sigkilled_controller_leaves_nothing_on_the_host(lab: LabState, host: Host,
                                                         tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, str(lab.inventory_path), host.name, str(pidfile)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert controller.stdout is not None
    agent_pid = int(controller.stdout.readline())
    child = int(wait_for_file(pidfile))
    controller.kill()
    controller.wait()
    controller.stdout.close()
    assert gone(child), "the child outlived the controller"
    assert gone(agent_pid), "the agent outlived the controller"
