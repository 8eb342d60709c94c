"""OpenSSH for lab hosts: keys, one sshd_config per host, start, readiness, verified stop."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from fleet.errors import LabError
from fleet.lab.command import run
from fleet.lab.state import HostRecord

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
PRIVSEP_DIR = Path("/run/sshd")
BANNER_PREFIX = b"SSH-2.0-"
POLL_INTERVAL_SECONDS = 0.01
STOP_TIMEOUT_SECONDS = 3.0


def generate_key(path: Path, comment: str) -> None:
    """An ed25519 key pair without passphrase: ``path`` (0600) and ``path``.pub."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        where=str(path), hint="ssh-keygen comes with openssh-client")
    path.chmod(0o600)


def public_key(path: Path) -> str:
    """'ssh-ed25519 AAAA...' (type and base64, no comment) from ``path``.pub."""
    fields = Path(f"{path}.pub").read_text(encoding="ascii").split()
    if len(fields) < 2 or not fields[0].startswith("ssh-"):
        raise LabError("not an OpenSSH public key", where=f"{path}.pub")
    return f"{fields[0]} {fields[1]}"


def render_config(host: HostRecord, authorized_keys: Path) -> str:
    """Pure: the sshd_config of one lab host."""
    lines = [
        f"# fleet lab host {host.name} (namespace {host.namespace}); generated, do not edit",
        f"ListenAddress {host.address}",
        f"Port {host.port}",
        f"HostKey {host.host_key_path}",
        f"PidFile {host.pid_file}",
        # the lab's key for root; a normal user's own ~/.ssh/authorized_keys (sshd reads it as
        # that user: the lab's file is root's only)
        f"AuthorizedKeysFile {authorized_keys} .ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "PrintMotd no",
        "LogLevel INFO",
        f"Subsystem sftp {SFTP_SERVER}",
    ]
    return "\n".join(lines) + "\n"


def root_account_locked(shadow_text: str) -> bool:
    """Pure: whether /etc/shadow marks root's password as locked ('!...').

    With ``UsePAM no`` sshd refuses every login, key-based too, to a locked account.
    """
    for line in shadow_text.splitlines():
        fields = line.split(":")
        if fields[0] == "root" and len(fields) > 1:
            return fields[1].startswith("!")
    return False


def require_root_login_possible(shadow: Path = Path("/etc/shadow")) -> None:
    try:
        text = shadow.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # unreadable: let sshd decide; its log is named in any readiness error
    if root_account_locked(text):
        raise LabError("root's password is locked ('!' in /etc/shadow), so sshd refuses root "
                       "logins even by key", where="fleet lab",
                       hint="unlock key logins with: usermod -p '*' root")


def ensure_privsep_dir(path: Path = PRIVSEP_DIR) -> None:
    """sshd (``-t`` too) needs its privilege separation directory, root-owned 0755; /run is a
    tmpfs, so after a boot it is missing until the distribution's sshd service first ran."""
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o755)
        path.chmod(0o755)  # whatever the umask: sshd refuses a group- or world-writable one
    except FileExistsError:
        return  # made by someone else meanwhile
    except OSError as exc:
        raise LabError(f"cannot create sshd's directory {path}: {exc.strerror}",
                       where="fleet lab", hint="run fleet lab up as root") from None


def validate(host: HostRecord) -> None:
    ensure_privsep_dir(PRIVSEP_DIR)  # before `sshd -t`, which checks that it exists
    run([str(SSHD), "-t", "-f", host.config_path], where=f"{host.name} ({host.config_path})",
        hint="fix the sshd config; `sshd -t -f FILE` shows the problem")


def start(host: HostRecord) -> None:
    """Start sshd inside the host's namespace; it daemonises and writes its PidFile."""
    ensure_privsep_dir(PRIVSEP_DIR)
    Path(host.pid_file).unlink(missing_ok=True)
    run(["ip", "netns", "exec", host.namespace, str(SSHD), "-f", host.config_path,
         "-E", host.log_path], where=host.name, hint=f"see {host.log_path}")


def read_pid_file(path: str) -> int | None:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def is_lab_sshd(pid: int, config_path: str) -> bool:
    """True when ``pid`` is alive and is the sshd started with ``config_path``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace")
    # the listener rewrites its title: "sshd: /usr/sbin/sshd -f CONFIG ... [listener] ..."
    return "sshd" in cmdline and f"-f {config_path} " in f"{cmdline} "


def banner_ok(address: str, port: int, timeout_seconds: float) -> bool:
    """Connect from this namespace and read the SSH identification string."""
    return banner(address, port, timeout_seconds) == "ok"


def banner(address: str, port: int, timeout_seconds: float) -> str:
    """"ok" (an SSH identification string came), "closed" (refused, reset or closed without
    one) or "silent" (connected, but nothing came within ``timeout_seconds``)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_seconds) as conn:
            conn.settimeout(timeout_seconds)
            return "ok" if conn.recv(len(BANNER_PREFIX)).startswith(BANNER_PREFIX) else "closed"
    except TimeoutError:
        return "silent"
    except OSError:
        return "closed"


def last_log_line(log_path: str) -> str | None:
    """The last line sshd logged (its reason when it exits), if any."""
    try:
        lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    stripped = [line.strip() for line in lines if line.strip()]
    return stripped[-1] if stripped else None


def stop(pid: int) -> None:
    """SIGTERM, wait until gone (zombies count as gone), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not _running(pid):
                return
            time.sleep(POLL_INTERVAL_SECONDS)
    if _running(pid):
        raise LabError(f"process {pid} survived SIGKILL", where="lab")


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()
    return bool(state) and state[0] not in {"Z", "X"}
