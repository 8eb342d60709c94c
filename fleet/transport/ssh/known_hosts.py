"""known_hosts files, read as OpenSSH reads them, and the policy for unknown host keys.

Plain and hashed (``|1|...``) entries are host keys. ``@revoked`` keys are never accepted,
for any host (as in OpenSSH), even with accept-new. ``@cert-authority`` lines are skipped:
host certificates are not supported, which the refusal of an unknown key then says. Lines
that are not entries (bad base64, unknown key types) are skipped as OpenSSH skips them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

from fleet.errors import HostKeyError, TransportError
from fleet.hosts import Host

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
_ENTRY_ERRORS = (paramiko.SSHException, InvalidHostKey, ValueError, TypeError, IndexError)


def known_hosts_paths(host: Host) -> tuple[Path, ...]:
    """The files to check, in order; the first one is where accepted keys are appended."""
    if host.known_hosts_files:
        return tuple(Path(p).expanduser() for p in host.known_hosts_files)
    defaults = tuple(Path(p).expanduser() for p in DEFAULT_KNOWN_HOSTS)
    existing = tuple(p for p in defaults if p.exists())
    return existing or defaults[:1]


def entry_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


@dataclass
class KnownHosts:
    """What the files say: host keys, revoked keys (type, base64), cert-authority files."""

    files: tuple[Path, ...]
    keys: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    revoked: set[tuple[str, str]] = field(default_factory=set)
    cert_authority_files: list[Path] = field(default_factory=list)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked


def load_known_hosts(host: Host, files: tuple[Path, ...]) -> KnownHosts:
    known = KnownHosts(files)
    entries: list[HostKeyEntry] = []
    for path in files:
        entries += _read(host, path, known)
    for entry in entries:
        if entry.key is not None and not known.is_revoked(entry.key):
            for name in entry.hostnames:
                already = known.keys.lookup(name)
                if already is None or entry.key.get_name() not in already:  # first one wins
                    known.keys.add(name, entry.key.get_name(), entry.key)
    return known


def _read(host: Host, path: Path, known: KnownHosts) -> list[HostKeyEntry]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise TransportError(f"cannot read known_hosts file {path}: {e.strerror}",
                             where=host.name,
                             hint="check UserKnownHostsFile in the inventory") from None
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        marker, _, rest = line.partition(" ") if line.startswith("@") else ("", "", line)
        if marker == "@cert-authority":
            if path not in known.cert_authority_files:
                known.cert_authority_files.append(path)
            continue
        entry = _entry(rest.strip())
        if entry is None or marker not in ("", "@revoked"):
            continue
        if marker == "@revoked":
            known.revoked.add((entry.key.get_name(), entry.key.get_base64()))
        else:
            entries.append(entry)
    return entries


def _entry(line: str) -> HostKeyEntry | None:
    try:
        entry = HostKeyEntry.from_line(line)
    except _ENTRY_ERRORS:
        return None
    return entry if entry is not None and entry.key is not None else None


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only when no key at all is known for the name: refuse or append."""

    def __init__(self, host: Host, known: KnownHosts, accept_new: bool,
                 address: str, port: int) -> None:
        self._host = host
        self._known = known
        self._accept_new = accept_new
        self._target = f"{address}:{port}"

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        files = ", ".join(map(str, self._known.files))
        if self._known.is_revoked(key):
            raise revoked_error(self._host, self._target, key, files)
        if not self._accept_new:
            certs = ""
            if self._known.cert_authority_files:
                certs = ("; its @cert-authority lines were skipped: fleet does not support host "
                         "certificates")
            raise HostKeyError(
                f"host key for {self._target} is not in {files}{certs}", where=self._host.name,
                hint="verify it, then add it with ssh-keyscan or rerun with "
                     "--accept-new-host-keys")
        self._append(hostname, key)

    def _append(self, hostname: str, key: paramiko.PKey) -> None:
        path = self._known.files[0]
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                if f.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                    f.write("\n")
                f.write(line)
        except OSError as e:
            raise TransportError(f"cannot add the new host key to {path}: {e.strerror}",
                                 where=self._host.name,
                                 hint="check that the known_hosts file is writable") from e


def revoked_error(host: Host, target: str, key: paramiko.PKey, files: str) -> HostKeyError:
    return HostKeyError(
        f"host key for {target} ({key.get_name()} {key.fingerprint}) is marked @revoked in "
        f"{files}", where=host.name,
        hint="do not connect: the host must get a new key, verified and added to known_hosts")


def changed_key_error(host: Host, known: KnownHosts, target: tuple[str, int],
                      e: paramiko.BadHostKeyException) -> HostKeyError:
    files = ", ".join(map(str, known.files))
    address, port = target
    if known.is_revoked(e.key):
        return revoked_error(host, f"{address}:{port}", e.key, files)
    return HostKeyError(
        f"host key for {address}:{port} has CHANGED: the server sent "
        f"{e.key.get_name()} {e.key.fingerprint} but {files} has "
        f"{e.expected_key.get_name()} {e.expected_key.fingerprint}; this may be a "
        "man-in-the-middle attack",
        where=host.name,
        hint="do not connect until the new key is verified; if the host was reinstalled, remove "
             f"the old entry with ssh-keygen -R '{entry_name(address, port)}'")
