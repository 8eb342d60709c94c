"""Transports: run commands on and read files from one host. ``connect`` picks one per host."""

from __future__ import annotations

from fleet.hosts import Host
from fleet.transport.base import Result, Transport

__all__ = ["Result", "Transport", "connect"]


def connect(host: Host, *, accept_new_host_keys: bool = False) -> Transport:
    """A transport for ``host``; SSH connects lazily, on the first command."""
    if host.connection == "local":
        from fleet.transport.local import LocalTransport

        return LocalTransport(host)
    from fleet.transport.ssh import SshTransport

    return SshTransport(host, accept_new_host_keys=accept_new_host_keys)
