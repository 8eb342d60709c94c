"""The host lock and the knob journal on real lab hosts (sshd in network namespaces).

Lab hosts share this machine's /run and kernel: their agents keep lock and journal in the real
/run/fleet-agent, keyed by network namespace, so each lab host is its own host. A knob written
on a lab host is THIS machine's value: every test puts it back in a finally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from fleet.agent import AgentSession
from fleet.config.inventory import load_inventory
from fleet.errors import HostBusyError, TransportError
from fleet.hosts import Host
from fleet.lab import LabState
from fleet.store import Store
from fleet.store.runs import list_runs, load_run
from fleet.transport.ssh import SshTransport

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
KNOB = Path("/proc/sys/vm/compaction_proactiveness")


def lab_host(lab: LabState, index: int) -> Host:
    (only,) = load_inventory([lab.inventory_path], limit=lab.hosts[index].name).hosts
    return only


@pytest.fixture
def sessions() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def agent_on(stack: ExitStack, host: Host) -> AgentSession:
    transport = stack.enter_context(SshTransport(host))
    return stack.enter_context(AgentSession(transport, host_name=host.name))


def lock(session: AgentSession, wait_seconds: float) -> None:
    session.lock(controller="itest@here", controller_pid=1, run_id=f"r-{session.host_name}",
                 wait_seconds=wait_seconds)


def test_two_lab_hosts_lock_at_once_but_one_host_only_once(lab: LabState,
                                                           sessions: ExitStack) -> None:
    first = agent_on(sessions, lab_host(lab, 0))
    other_host = agent_on(sessions, lab_host(lab, 1))
    lock(first, 0)
    lock(other_host, 0)  # another network namespace: another host, not blocked
    same_host = agent_on(sessions, lab_host(lab, 0))
    with pytest.raises(HostBusyError, match=rf"^{first.host_name}: host busy: held by itest@here "
                                            rf"\(controller pid 1, run r-{first.host_name}"):
        lock(same_host, 0.5)


def test_a_sigkilled_fleet_run_leaves_the_knob_at_its_original(lab: LabState,
                                                               tmp_path: Path) -> None:
    original = KNOB.read_text().strip()
    wanted = "19" if original != "19" else "21"
    marker = f"m-{uuid.uuid4().hex}"
    suite = tmp_path / "suite.yml"
    suite.write_text(f"""\
schema_version: 1
name: itest
workloads:
  - name: hold
    type: command
    knobs: {{compaction_proactiveness: {wanted}}}
    timeout_seconds: 60
    argv: [sh, -c, 'sleep 60', {marker}]
""")
    proc = subprocess.Popen([sys.executable, "-m", "fleet", "run", str(suite), "-i",
                             str(lab.inventory_path), "--limit", lab.hosts[0].name, "--store",
                             str(tmp_path / "fleet.sqlite")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while KNOB.read_text().strip() != wanted:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.kill()  # mid-case: nothing on the controller side restores anything
        _, stderr = proc.communicate()
        deadline = time.monotonic() + 15
        while KNOB.read_text().strip() != original and time.monotonic() < deadline:
            time.sleep(0.05)
        assert KNOB.read_text().strip() == original, f"the knob stayed changed: {stderr}"
    finally:
        proc.kill()
        proc.wait()
        KNOB.write_text(original)


def intervals(store: Path) -> list[tuple[float, float]]:
    with Store.open(store) as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        detail = load_run(s, str(run_id))
    return [(a.attempt.started_at_unix_seconds, a.attempt.ended_at_unix_seconds)
            for a in detail.attempts if a.attempt.status == "completed"]


def test_two_controllers_on_one_host_never_overlap(lab: LabState, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text("""\
schema_version: 1
name: itest
workloads:
  - name: nap
    type: sleep
    repetitions: 4
    params: {seconds: 0.3}
""")
    procs = [subprocess.Popen([sys.executable, "-m", "fleet", "run", str(suite), "-i",
                               str(lab.inventory_path), "--limit", lab.hosts[2].name, "--store",
                               str(tmp_path / f"{n}.sqlite")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for n in (1, 2)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    first, second = (intervals(tmp_path / f"{n}.sqlite") for n in (1, 2))
    assert len(first) == len(second) == 4
    assert max(e for _, e in first) <= min(s for s, _ in second) or \
        max(e for _, e in second) <= min(s for s, _ in first), (first, second)


def test_a_run_on_a_held_host_names_the_holder_and_gives_up_after_host_lock_wait(
        lab: LabState, tmp_path: Path, sessions: ExitStack) -> None:
    holder = agent_on(sessions, lab_host(lab, 1))
    lock(holder, 0)
    suite = tmp_path / "suite.yml"
    suite.write_text("schema_version: 1\nname: itest\nworkloads:\n  - name: nap\n"
                     "    type: sleep\n    params: {seconds: 0.1}\n")
    proc = subprocess.run([sys.executable, "-m", "fleet", "run", str(suite), "-i",
                           str(lab.inventory_path), "--limit", lab.hosts[1].name,
                           "--store", str(tmp_path / "fleet.sqlite"), "--host-lock-wait", "1"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stderr
    name = lab.hosts[1].name
    assert f"{name}: waiting 0 s of 1 s for the host lock, held by itest@here" in proc.stderr
    assert f"{name} quarantined: {name}: host busy: held by itest@here" in proc.stderr
    with Store.open_read(tmp_path / "fleet.sqlite") as s:
        (run_id,) = [r.run_id for r in list_runs(s)]
        detail = load_run(s, str(run_id))
    assert not [a for a in detail.attempts if a.attempt.status == "completed"]


def _links(namespace: str) -> list[str]:
    out = subprocess.run(["ip", "-n", namespace, "-j", "link", "show"], check=True,
                         capture_output=True, text=True).stdout
    return [str(link["ifname"]) for link in json.loads(out) if link["ifname"] != "lo"]


def _set_links(namespace: str, links: list[str], state: str) -> None:
    for link in links:
        subprocess.run(["ip", "-n", namespace, "link", "set", link, state], check=True)


def test_a_lost_link_during_a_knob_case_puts_the_knob_back(lab: LabState,
                                                           sessions: ExitStack) -> None:
    """The host's link goes down while a knob holds the case's value: the agent hears nothing
    from its controller for its silence limit and writes the original back itself."""
    host, namespace = lab_host(lab, 2), lab.hosts[2].namespace
    assert namespace is not None
    transport = sessions.enter_context(SshTransport(host))
    session = sessions.enter_context(AgentSession(transport, host_name=host.name,
                                                  heartbeat_seconds=0.5, silence_seconds=3))
    lock(session, 0)
    original = KNOB.read_text().strip()
    wanted = "19" if original != "19" else "21"
    links = _links(namespace)
    try:
        assert session.write(str(KNOB), wanted, knob="set").ok
        assert KNOB.read_text().strip() == wanted
        _set_links(namespace, links, "down")
        deadline = time.monotonic() + 30
        while KNOB.read_text().strip() != original and time.monotonic() < deadline:
            time.sleep(0.1)
        assert KNOB.read_text().strip() == original, "the knob stayed changed after the link went"
    finally:
        _set_links(namespace, links, "up")
        KNOB.write_text(original)
    deadline = time.monotonic() + 30  # the host answers again once its link is back
    while True:
        try:
            with ExitStack() as again:
                assert agent_on(again, host).ping() < 10
            break
        except TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
