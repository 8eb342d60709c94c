"""SSH transport (the only paramiko user): one persistent connection per host.

Stages: ``known_hosts`` (files, revoked keys, the unknown-key policy), ``connect`` (key files,
ProxyJump / ProxyCommand relays, login, keepalive), ``session`` (SshTransport: commands, SFTP
reads, streams) and ``stream`` (SshStream). Host keys are checked by our own policy: an unknown
key is refused unless ``accept_new_host_keys`` (then it is appended to the first file); a
changed or revoked key is always refused.
"""

from __future__ import annotations

from fleet.transport.ssh.connect import DEFAULT_KEEPALIVE_SECONDS, check_key_files
from fleet.transport.ssh.known_hosts import DEFAULT_KNOWN_HOSTS, known_hosts_paths
from fleet.transport.ssh.session import SshTransport
from fleet.transport.ssh.stream import SshStream

__all__ = ["DEFAULT_KEEPALIVE_SECONDS", "DEFAULT_KNOWN_HOSTS", "SshStream", "SshTransport",
           "check_key_files", "known_hosts_paths"]
