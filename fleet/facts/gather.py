"""Gather facts from many hosts in parallel: one connection and one probe command per host."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from fleet.errors import FleetError, TransportError
from fleet.facts.build import build_facts
from fleet.facts.probe import PROBE_SCRIPT
from fleet.facts.tree import parse_dump
from fleet.hosts import Host
from fleet.model import Facts, HostOutcome
from fleet.transport import Transport, connect
from fleet.transport.base import BECOME_HINT, become_failure, become_input, with_become

Connector = Callable[[Host], Transport]

PROBE_TIMEOUT_SECONDS = 60.0


def probe_host(transport: Transport, host: Host) -> Facts:
    """Run the probe once on an open transport and parse what it printed."""
    collected_at = time.time()
    result = transport.run(with_become(["sh", "-c", PROBE_SCRIPT], host.become),
                           stdin=become_input(host.become) or None,
                           timeout_seconds=PROBE_TIMEOUT_SECONDS)
    if not result.ok:
        refused = become_failure(result.stderr)
        if refused is not None:
            raise TransportError(f"sudo refused the fact probe: {refused}", where=host.name,
                                 hint=BECOME_HINT)
        detail = result.stderr.strip().splitlines()[-1:] or ["no stderr"]
        raise TransportError(f"fact probe exited {result.exit_code}: {detail[0]}",
                             where=host.name, hint="check that the host has a POSIX sh")
    tree = parse_dump(result.stdout, source=host.name)
    facts = build_facts(host.name, tree, collected_at_unix_seconds=collected_at)
    return replace(facts, probe_seconds=result.duration_seconds)


def gather_one(host: Host, connector: Connector) -> HostOutcome:
    """Facts or the one-line reason this host could not give them. Never raises FleetError."""
    try:
        with connector(host) as transport:
            facts = probe_host(transport, host)
    except FleetError as exc:
        line = exc.line()
        if not line.startswith(host.name):
            line = f"{host.name}: {line}"
        return HostOutcome(host=host.name, facts=None, error=line)
    return HostOutcome(host=host.name, facts=facts, error=None)


def gather_facts(hosts: Sequence[Host], *, accept_new_host_keys: bool = False,
                 connector: Connector | None = None, max_workers: int = 32,
                 ) -> tuple[HostOutcome, ...]:
    """Probe every host concurrently; the result keeps the hosts' order."""
    def default_connector(host: Host) -> Transport:
        return connect(host, accept_new_host_keys=accept_new_host_keys)

    chosen = connector or default_connector
    if not hosts:
        return ()
    with ThreadPoolExecutor(max_workers=min(max_workers, len(hosts))) as pool:
        return tuple(pool.map(lambda h: gather_one(h, chosen), hosts))
