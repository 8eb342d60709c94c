"""known_hosts as OpenSSH reads it (fleet/transport/ssh/known_hosts.py), on real key files:
plain and hashed entries, @revoked keys refused for any host, @cert-authority lines skipped."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import paramiko
import pytest

from fleet.errors import HostKeyError
from fleet.hosts import Host
from fleet.transport.ssh.known_hosts import HostKeyPolicy, load_known_hosts

HOST = Host(name="web1", address="10.0.0.5", port=2222)


def public_key(tmp_path: Path, name: str) -> paramiko.PKey:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    kind, data = (tmp_path / f"{name}.pub").read_text().split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def line(names: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker + ' ' if marker else ''}{names} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, paramiko.PKey]:
    return {name: public_key(tmp_path, name) for name in ("good", "hashed", "revoked", "ca")}


def test_revoked_and_cert_authority_lines_no_longer_break_every_host(
        tmp_path: Path, keys: dict[str, paramiko.PKey]) -> None:
    hashed_name = paramiko.HostKeys.hash_host("[10.0.0.6]:2222")
    known_hosts = tmp_path / "ssh_known_hosts"
    known_hosts.write_text(
        "# a typical /etc/ssh/ssh_known_hosts\n"
        + line("*.example.com", keys["ca"], "@cert-authority")
        + line("*", keys["revoked"], "@revoked")
        + line("[10.0.0.5]:2222,web1", keys["good"])
        + line(hashed_name, keys["hashed"])
        + line("[10.0.0.7]:2222", keys["revoked"])  # revoked wins over a plain entry
        + "not a key line\n")
    known = load_known_hosts(HOST, (known_hosts,))
    assert dict(known.keys.lookup("[10.0.0.5]:2222") or {}) == {"ssh-ed25519": keys["good"]}
    assert dict(known.keys.lookup("[10.0.0.6]:2222") or {}) == {"ssh-ed25519": keys["hashed"]}
    assert known.keys.lookup("[10.0.0.7]:2222") is None
    assert known.is_revoked(keys["revoked"]) and not known.is_revoked(keys["good"])
    assert known.cert_authority_files == [known_hosts]


def test_a_revoked_key_is_refused_even_with_accept_new(tmp_path: Path,
                                                       keys: dict[str, paramiko.PKey]) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(line("*", keys["revoked"], "@revoked"))
    known = load_known_hosts(HOST, (known_hosts,))
    policy = HostKeyPolicy(HOST, known, True, HOST.address, HOST.port)
    with pytest.raises(HostKeyError) as err:
        policy.missing_host_key(paramiko.SSHClient(), "[10.0.0.5]:2222", keys["revoked"])
    assert str(err.value).startswith("web1: host key for 10.0.0.5:2222 (ssh-ed25519 SHA256:")
    assert "is marked @revoked in" in str(err.value)
    assert known_hosts.read_text().count("\n") == 1  # nothing appended


def test_unknown_key_names_skipped_cert_authority_lines(tmp_path: Path,
                                                        keys: dict[str, paramiko.PKey]) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(line("*", keys["ca"], "@cert-authority"))
    policy = HostKeyPolicy(HOST, load_known_hosts(HOST, (known_hosts,)), False, HOST.address,
                           HOST.port)
    with pytest.raises(HostKeyError, match="@cert-authority lines were skipped: fleet does not "
                                           "support host certificates"):
        policy.missing_host_key(paramiko.SSHClient(), "[10.0.0.5]:2222", keys["good"])
