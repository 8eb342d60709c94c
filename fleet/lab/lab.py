"""lab_up / lab_down / lab_status: N SSH hosts in network namespaces on this machine.

Each host is a network namespace joined to the root namespace by a veth pair (a /30 of a
free /24 in 198.18.0.0/15) running its own OpenSSH sshd. The hosts share this machine's
filesystem, so facts read on them are this machine's. Everything started is recorded in
state.json first; ``lab_down`` removes exactly that.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from fleet.errors import LabError
from fleet.lab import netns, sshd
from fleet.lab.cleanup import build_or_clean
from fleet.lab.files import render_inventory, render_known_hosts
from fleet.lab.state import (
    AUTHORIZED_KEYS_FILE,
    CLIENT_KEY_FILE,
    HOSTS_DIR,
    INVENTORY_FILE,
    KNOWN_HOSTS_FILE,
    HostRecord,
    HostStatus,
    LabHost,
    LabRecord,
    LabState,
    LabStatus,
    atomic_write,
    read_record,
    recorded_kind,
    state_path,
    write_record,
)
from fleet.lab.teardown import remove_lab
from fleet.lab.vm.lab import vm_lab_down, vm_lab_status

ConfigHook = Callable[[str, str], str]  # (host name, sshd_config text) -> sshd_config text

LOCK_PATH = Path("/run/fleet-lab.lock")
LAB_ID_PATTERN = re.compile(r"[a-z0-9]{1,8}")
SSH_PORT = 22
PYTHON = Path("/usr/bin/python3")
STATUS_CONNECT_TIMEOUT_SECONDS = 1.0
READY_CONNECT_TIMEOUT_SECONDS = 0.5
UNSAFE_PATH_CHARS = re.compile(r"[\s\"'\\#]")


def lab_up(count: int, state_dir: Path, *, lab_id: str | None = None,
           ready_timeout_seconds: float = 20, sshd_config_hook: ConfigHook | None = None,
           ) -> LabState:
    """Create ``count`` lab hosts recorded in ``state_dir``, or return the healthy lab there.

    ``sshd_config_hook`` (for tests) may rewrite each host's sshd_config before validation.
    A failure tears down everything this call created and raises LabError.
    """
    state_dir = _check_arguments(count, lab_id, state_dir)
    _require_root()
    with _lock():
        if recorded_kind(state_dir) == "vm":
            raise LabError("this state directory already holds a vm lab", where=str(state_dir),
                           hint="run `fleet lab down` first, or use another --dir")
        existing = read_record(state_dir)
        if existing is not None:
            healthy = _reuse_or_clear(existing, count, lab_id, state_dir)
            if healthy is not None:
                return _lab_state(healthy, state_dir)
        _preflight()
        if lab_id is not None and _names_in_use(lab_id):
            raise LabError(f"names of lab {lab_id} are already in use", where="fleet lab",
                           hint="choose another lab id or remove them (ip netns list, ip link)")
        lab_id = lab_id or _new_lab_id()
        record = _plan(count, state_dir, lab_id, _free_subnet(lab_id),
                       create_state_dir=not state_dir.exists())
        record = _build_or_clean(record, state_dir, ready_timeout_seconds, sshd_config_hook)
    return _lab_state(record, state_dir)


def lab_down(state_dir: Path) -> tuple[str, ...]:
    """Stop and delete what the lab (netns or vm) in ``state_dir`` started; () when none."""
    state_dir = Path(state_dir).resolve()
    if recorded_kind(state_dir) == "vm":
        return vm_lab_down(state_dir)
    record = read_record(state_dir)
    if record is None:
        return ()
    _require_root()
    with _lock():
        return remove_lab(read_record(state_dir) or record, state_dir)


def lab_status(state_dir: Path) -> LabStatus:
    """Per host: namespace exists, recorded sshd alive, SSH banner on its port (a vm lab:
    QEMU alive, SSH banner, console log; see vm_lab_status)."""
    state_dir = Path(state_dir).resolve()
    if recorded_kind(state_dir) == "vm":
        return vm_lab_status(state_dir)
    record = read_record(state_dir)
    if record is None:
        return LabStatus(state_dir=state_dir, lab_id=None, complete=False)
    hosts = tuple(_host_status(h) for h in record.hosts)
    return LabStatus(state_dir=state_dir, lab_id=record.lab_id, complete=record.complete,
                     hosts=hosts, kind="netns")


def _host_status(host: HostRecord) -> HostStatus:
    ns_exists = netns.namespace_exists(host.namespace)
    alive = host.sshd_pid is not None and sshd.is_lab_sshd(host.sshd_pid, host.config_path)
    # only probe while the veth route exists: otherwise the SYN would follow the default route
    reachable = ns_exists and netns.link_exists(host.veth_root)
    port_open = reachable and sshd.banner_ok(host.address, host.port,
                                             STATUS_CONNECT_TIMEOUT_SECONDS)
    return HostStatus(name=host.name, namespace=host.namespace, address=host.address,
                      port=host.port, sshd_pid=host.sshd_pid, namespace_exists=ns_exists,
                      sshd_alive=alive, port_open=port_open)


def _check_arguments(count: int, lab_id: str | None, state_dir: Path) -> Path:
    if not 1 <= count <= netns.MAX_HOSTS:
        raise LabError(f"cannot create {count} lab hosts", where="fleet lab",
                       hint=f"ask for 1 to {netns.MAX_HOSTS}")
    if lab_id is not None and not LAB_ID_PATTERN.fullmatch(lab_id):
        raise LabError(f"lab id {lab_id!r} is not 1-8 of [a-z0-9]", where="fleet lab",
                       hint="it becomes part of interface names (15 chars at most)")
    resolved = Path(state_dir).resolve()
    if UNSAFE_PATH_CHARS.search(str(resolved)):
        raise LabError("state directory path has whitespace, quotes or '#'",
                       where=str(resolved), hint="choose a plain path for the lab state")
    return resolved


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(f"the lab must run as root (euid is {os.geteuid()})", where="fleet lab",
                       hint="run it with sudo: it creates network namespaces and sshd")


def _preflight() -> None:
    if not sshd.SSHD.is_file():
        raise LabError(f"{sshd.SSHD} is missing", where="fleet lab",
                       hint="apt-get install openssh-server")
    netns.probe(f"fleet-probe-{os.getpid()}")
    sshd.require_root_login_possible()


@contextmanager
def _lock() -> Iterator[None]:
    """One lab_up at a time on this machine, so two labs never pick the same /24."""
    with LOCK_PATH.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reuse_or_clear(existing: LabRecord, count: int, lab_id: str | None,
                    state_dir: Path) -> LabRecord | None:
    """The existing lab when healthy and as asked; else clear a broken one and return None."""
    status = lab_status(state_dir)
    if status.healthy:
        if len(existing.hosts) == count and lab_id in (None, existing.lab_id):
            return existing
        raise LabError(f"lab {existing.lab_id} with {len(existing.hosts)} hosts is already up",
                       where=str(state_dir), hint="run `fleet lab down` first")
    remove_lab(existing, state_dir)
    return None


def _new_lab_id() -> str:
    for _ in range(100):
        candidate = secrets.token_hex(3)
        if not _names_in_use(candidate):
            return candidate
    raise LabError("no unused lab id found", where="fleet lab", hint="run `ip netns list`")


def _names_in_use(lab_id: str) -> bool:
    prefix_ns, prefix_link = f"fleet-{lab_id}-", f"fl-{lab_id}-"
    names = [p.name for p in netns.NETNS_DIR.iterdir()] if netns.NETNS_DIR.is_dir() else []
    links = [p.name for p in Path("/sys/class/net").iterdir()]
    return any(n.startswith(prefix_ns) for n in names) or \
        any(n.startswith(prefix_link) for n in links)


def _free_subnet(lab_id: str) -> ipaddress.IPv4Network:
    """A /24 no route or address uses, searched from a start that differs between labs."""
    return netns.pick_subnet(netns.used_networks(), int(lab_id, 36))


def _plan(count: int, state_dir: Path, lab_id: str, subnet: ipaddress.IPv4Network, *,
          create_state_dir: bool) -> LabRecord:
    """Pure: the names, addresses and files of every host of the lab."""
    hosts, files, dirs = [], [], []
    for index in range(count):
        name = f"lab{index + 1}"
        host_dir = state_dir / HOSTS_DIR / name
        root_address, address = netns.host_link(subnet, index)
        host = HostRecord(
            name=name, namespace=f"fleet-{lab_id}-{name}", veth_root=f"fl-{lab_id}-{index + 1}",
            veth_peer="eth0", root_address=root_address, address=address,
            prefix_len=netns.HOST_PREFIX_LEN, port=SSH_PORT,
            config_path=str(host_dir / "sshd_config"),
            host_key_path=str(host_dir / "ssh_host_ed25519_key"),
            pid_file=str(host_dir / "sshd.pid"), log_path=str(host_dir / "sshd.log"))
        hosts.append(host)
        files += [host.config_path, host.host_key_path, f"{host.host_key_path}.pub",
                  host.pid_file, host.log_path]
        dirs.append(str(host_dir))
    dirs.append(str(state_dir / HOSTS_DIR))
    if create_state_dir:
        dirs.append(str(state_dir))
    client_key = state_dir / CLIENT_KEY_FILE
    files += [str(client_key), f"{client_key}.pub", str(state_dir / AUTHORIZED_KEYS_FILE),
              str(state_dir / KNOWN_HOSTS_FILE), str(state_dir / INVENTORY_FILE)]
    return LabRecord(lab_id=lab_id, subnet=str(subnet), hosts=tuple(hosts),
                     files=tuple(files), dirs=tuple(dirs))


def _build_or_clean(record: LabRecord, state_dir: Path, ready_timeout_seconds: float,
                    hook: ConfigHook | None) -> LabRecord:
    state_dir.mkdir(parents=True, exist_ok=True)
    write_record(state_dir, record)
    return build_or_clean("lab", state_dir,
                          partial(_build, record, state_dir, ready_timeout_seconds, hook),
                          partial(_clean_after_failure, record, state_dir))


def _clean_after_failure(record: LabRecord, state_dir: Path, cause: BaseException) -> None:
    latest = read_record(state_dir) or record  # carries the sshd PIDs recorded so far
    try:
        remove_lab(latest, state_dir)
    except LabError as cleanup:
        raise LabError(f"{cause}; cleanup also failed: {cleanup.what}", where=str(state_dir),
                       hint=cleanup.hint) from cause


def _build(record: LabRecord, state_dir: Path, ready_timeout_seconds: float,
           hook: ConfigHook | None) -> LabRecord:
    for directory in reversed(record.dirs):
        Path(directory).mkdir(mode=0o700, exist_ok=True)
    client_key = state_dir / CLIENT_KEY_FILE
    sshd.generate_key(client_key, f"fleet-lab-{record.lab_id}")
    atomic_write(state_dir / AUTHORIZED_KEYS_FILE, f"{sshd.public_key(client_key)}\n",
                 mode=0o600)
    netns.create(record.hosts)
    for host in record.hosts:
        _configure_sshd(host, state_dir, hook)
    for host in record.hosts:
        sshd.start(host)
    record = _wait_ready(record, state_dir, ready_timeout_seconds)
    _write_client_files(record, state_dir)
    record = replace(record, complete=True)
    write_record(state_dir, record)
    return record


def _configure_sshd(host: HostRecord, state_dir: Path, hook: ConfigHook | None) -> None:
    sshd.generate_key(Path(host.host_key_path), f"fleet-lab-{host.namespace}")
    config = sshd.render_config(host, state_dir / AUTHORIZED_KEYS_FILE)
    if hook is not None:
        config = hook(host.name, config)
    atomic_write(Path(host.config_path), config, mode=0o600)
    sshd.validate(host)


def _wait_ready(record: LabRecord, state_dir: Path, timeout_seconds: float) -> LabRecord:
    """Poll until every sshd has a PID and answers with an SSH banner; record the PIDs."""
    deadline = time.monotonic() + timeout_seconds
    hosts = list(record.hosts)
    pending = set(range(len(hosts)))
    while pending:
        for index in sorted(pending):
            host = hosts[index]
            if host.sshd_pid is None:
                pid = sshd.read_pid_file(host.pid_file)
                if pid is not None:
                    host = hosts[index] = replace(host, sshd_pid=pid)
                    record = replace(record, hosts=tuple(hosts))
                    write_record(state_dir, record)
            _fail_fast(host)
            if host.sshd_pid is not None and sshd.banner_ok(
                    host.address, host.port, READY_CONNECT_TIMEOUT_SECONDS):
                pending.discard(index)
        if pending and time.monotonic() > deadline:
            late = hosts[min(pending)]
            raise LabError(f"sshd gave no SSH banner on {late.address}:{late.port} within "
                           f"{timeout_seconds:g} s", where=late.name,
                           hint=f"see {late.log_path}")
        if pending:
            time.sleep(sshd.POLL_INTERVAL_SECONDS)
    return record


def _fail_fast(host: HostRecord) -> None:
    """Raise at once when the host's sshd is gone (before or after it wrote its PidFile)."""
    if host.sshd_pid is not None:
        alive = sshd.is_lab_sshd(host.sshd_pid, host.config_path)
    else:  # the daemon is the only process of the namespace until it serves
        alive = any(sshd.is_lab_sshd(pid, host.config_path)
                    for pid in netns.pids_in_namespace(host.namespace))
    if not alive:
        reason = sshd.last_log_line(host.log_path) or "it exited without logging why"
        raise LabError(f"sshd did not start: {reason}", where=host.name,
                       hint=f"see {host.log_path}")


def _write_client_files(record: LabRecord, state_dir: Path) -> None:
    entries = [(h.address, h.port, sshd.public_key(Path(h.host_key_path)))
               for h in record.hosts]
    known_hosts = state_dir / KNOWN_HOSTS_FILE
    atomic_write(known_hosts, render_known_hosts(entries))
    python = str(PYTHON) if PYTHON.exists() else None
    inventory = render_inventory(record.lab_id, record.hosts,
                                 client_key=state_dir / CLIENT_KEY_FILE,
                                 known_hosts=known_hosts, python_interpreter=python)
    atomic_write(state_dir / INVENTORY_FILE, inventory)


def _lab_state(record: LabRecord, state_dir: Path) -> LabState:
    hosts = tuple(LabHost(name=h.name, namespace=h.namespace, address=h.address, port=h.port,
                          sshd_pid=_recorded_pid(h)) for h in record.hosts)
    return LabState(lab_id=record.lab_id, state_dir=state_dir, hosts=hosts,
                    inventory_path=state_dir / INVENTORY_FILE,
                    known_hosts_path=state_dir / KNOWN_HOSTS_FILE,
                    client_key_path=state_dir / CLIENT_KEY_FILE)


def _recorded_pid(host: HostRecord) -> int:
    if host.sshd_pid is None:
        raise LabError("lab recorded as complete but a host has no sshd PID",
                       where=f"{host.name} ({state_path(Path(host.config_path).parents[2])})")
    return host.sshd_pid
