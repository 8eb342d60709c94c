"""One live controller per run: the run's owner, its heartbeat, and the jobs it has claimed.

A controller takes a run (``take_run``, one transaction) when it creates or resumes it, beats
(``heartbeat``) while it runs, and releases it at the end. The owner is alive when, on the
same host name, its pid still exists with the same process start (boot id + start time), or,
on another host, its heartbeat is fresh (STALE_AFTER_SECONDS). A run whose status is
``running`` but whose owner is gone shows as ``crashed`` (derived when read, never stored).

A job is claimed (``claim_job``) before it starts and the claim goes when its attempt is
recorded (fleet.store.runs.record_attempt, same transaction), so a crash leaves its in-flight
jobs visible; the next ``take_run`` turns them into ``interrupted`` attempts.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.runs import Claim, JobKey
from fleet.store.db import Store

STALE_AFTER_SECONDS = 60.0  # a controller on another host is gone after this much silence
HEARTBEAT_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class Owner:
    pid: int
    host_name: str
    process_start: str  # "<boot id>:<start ticks>"; "" when unknown (no /proc)
    since_unix_seconds: float
    heartbeat_unix_seconds: float

    def line(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since_unix_seconds))
        return f"pid {self.pid} on {self.host_name} since {since}"


# ---- who is alive (I/O at the edge: /proc and the host name) ----------------------------


def process_start(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The boot id and start time (clock ticks) of ``pid``; None when it does not exist."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def this_controller(now_unix_seconds: float) -> Owner:
    pid = os.getpid()
    return Owner(pid, socket.gethostname(), process_start(pid) or "", now_unix_seconds,
                 now_unix_seconds)


def owner_alive(owner: Owner, *, now_unix_seconds: float, host_name: str,
                start_of: Callable[[int], str | None]) -> bool:
    if owner.host_name == host_name and owner.process_start:
        return start_of(owner.pid) == owner.process_start
    return now_unix_seconds - owner.heartbeat_unix_seconds < STALE_AFTER_SECONDS


def alive_here(owner: Owner) -> bool:
    """``owner_alive`` as seen from this process."""
    return owner_alive(owner, now_unix_seconds=time.time(), host_name=socket.gethostname(),
                       start_of=process_start)


def shown_status(status: str, owner: Owner | None, alive: Callable[[Owner], bool]) -> str:
    """A stored status as users see it: ``running`` without a live owner is ``crashed``."""
    if status == "running" and (owner is None or not alive(owner)):
        return "crashed"
    return status


# ---- the store ----------------------------------------------------------------------------


def insert_owner(conn: sqlite3.Connection, run_id: str, owner: Owner) -> None:
    """Inside the caller's transaction (create_run): ``owner`` holds the run."""
    conn.execute("INSERT OR REPLACE INTO run_owners VALUES (?, ?, ?, ?, ?, ?)",
                 (run_id, owner.pid, owner.host_name, owner.process_start,
                  owner.since_unix_seconds, owner.heartbeat_unix_seconds))


def take_run(store: Store, run_id: str, me: Owner, *,
             alive: Callable[[Owner], bool] = alive_here) -> Owner | None:
    """In one transaction: None and ``me`` holds the run, or the live owner that holds it.
    Jobs a dead owner left claimed become ``interrupted`` attempts ("controller died")."""
    with store.transaction() as conn:
        row = conn.execute("SELECT pid, host_name, process_start, since_unix_seconds,"
                           " heartbeat_unix_seconds FROM run_owners WHERE run_id = ?",
                           (run_id,)).fetchone()
        previous = None if row is None else Owner(int(row[0]), str(row[1]), str(row[2]),
                                                  float(row[3]), float(row[4]))
        if previous is not None and alive(previous):
            return previous
        _reap_claims(conn, run_id, previous)
        insert_owner(conn, run_id, me)
    return None


def heartbeat(store: Store, run_id: str, me: Owner, now_unix_seconds: float) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE run_owners SET heartbeat_unix_seconds = ? WHERE run_id = ?"
                     " AND pid = ? AND host_name = ?",
                     (now_unix_seconds, run_id, me.pid, me.host_name))


def release_run(store: Store, run_id: str, me: Owner) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM run_owners WHERE run_id = ? AND pid = ? AND host_name = ?",
                     (run_id, me.pid, me.host_name))


def run_owners(store: Store) -> dict[str, Owner]:
    return {str(r[0]): Owner(int(r[1]), str(r[2]), str(r[3]), float(r[4]), float(r[5]))
            for r in store._connection.execute("SELECT * FROM run_owners")}


def claim_job(store: Store, run_id: str, claim: Claim) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO job_claims VALUES (?, ?, ?, ?, ?)",
                     (run_id, claim.job.text, claim.host, claim.attempt_no,
                      claim.started_at_unix_seconds))


def unclaim(conn: sqlite3.Connection, run_id: str, job: JobKey, attempt_no: int) -> None:
    """Inside the transaction that records the attempt."""
    conn.execute("DELETE FROM job_claims WHERE run_id = ? AND job_key = ? AND attempt_no = ?",
                 (run_id, job.text, attempt_no))


def claims(conn: sqlite3.Connection, run_id: str) -> tuple[Claim, ...]:
    return tuple(Claim(JobKey.parse(r[0]), str(r[1]), int(r[2]), float(r[3]))
                 for r in conn.execute(
                     "SELECT job_key, host, attempt_no, started_at_unix_seconds FROM job_claims"
                     " WHERE run_id = ? ORDER BY started_at_unix_seconds, job_key", (run_id,)))


def _reap_claims(conn: sqlite3.Connection, run_id: str, previous: Owner | None) -> None:
    who = "the controller" if previous is None else f"the controller ({previous.line()})"
    error = f"controller died: {who} stopped while this attempt ran; no result was recorded"
    for claim in claims(conn, run_id):
        ended = claim.started_at_unix_seconds if previous is None else max(
            claim.started_at_unix_seconds, previous.heartbeat_unix_seconds)
        conn.execute(
            "INSERT INTO attempts (run_id, job_key, host, attempt_no, status,"
            " started_at_unix_seconds, ended_at_unix_seconds, stdout, stderr,"
            " stdout_truncated, stderr_truncated, knobs_json, error)"
            " VALUES (?, ?, ?, ?, 'interrupted', ?, ?, '', '', 0, 0, ?, ?)",
            (run_id, claim.job.text, claim.host, claim.attempt_no,
             claim.started_at_unix_seconds, ended, json.dumps([]), error))
    conn.execute("DELETE FROM job_claims WHERE run_id = ?", (run_id,))
