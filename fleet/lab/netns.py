"""Network namespaces and veth pairs for lab hosts (the `ip` command), nothing else.

Only names this module is given are created or deleted; other interfaces and routes are
only read (to pick a free /24 in the RFC 2544 range 198.18.0.0/15).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from fleet.errors import LabError
from fleet.lab.command import run
from fleet.lab.state import HostRecord

IP = "ip"
NETNS_DIR = Path("/run/netns")
BENCHMARK_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
LAB_PREFIX_LEN = 24
HOST_PREFIX_LEN = 30
MAX_HOSTS = 2 ** (HOST_PREFIX_LEN - LAB_PREFIX_LEN)  # 64 /30 links in one /24


def probe(name: str) -> None:
    """Create and delete a throwaway namespace; LabError when `ip netns` cannot work here."""
    hint = "the lab needs root, iproute2 and a kernel with network namespaces"
    run([IP, "netns", "add", name], where="ip netns", hint=hint)
    run([IP, "netns", "delete", name], where="ip netns", hint=hint)


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def used_networks() -> tuple[ipaddress.IPv4Network, ...]:
    """Every IPv4 prefix in any routing table and on any interface of the root namespace."""
    routes = json.loads(run([IP, "-j", "-4", "route", "show", "table", "all"]) or "[]")
    addrs = json.loads(run([IP, "-j", "-4", "addr", "show"]) or "[]")
    return parse_used_networks(routes, addrs)


def parse_used_networks(routes: Iterable[Mapping[str, object]],
                        addrs: Iterable[Mapping[str, object]]) -> tuple[ipaddress.IPv4Network, ...]:
    """Pure: prefixes from `ip -j -4 route show table all` and `ip -j -4 addr show`."""
    found: list[ipaddress.IPv4Network] = []
    for route in routes:
        dst = route.get("dst")
        if isinstance(dst, str) and dst != "default":
            found.append(ipaddress.IPv4Network(dst, strict=False))
    for link in addrs:
        infos = link.get("addr_info")
        for info in infos if isinstance(infos, list) else []:
            if isinstance(info, Mapping) and info.get("family") == "inet":
                found.append(ipaddress.IPv4Network(
                    f"{info['local']}/{info['prefixlen']}", strict=False))
    return tuple(found)


def pick_subnet(used: Iterable[ipaddress.IPv4Network], start: int) -> ipaddress.IPv4Network:
    """Pure: the first /24 of 198.18.0.0/15, from index ``start`` on, that no used prefix overlaps.

    Prefixes wider than the benchmarking range itself (default-like covering routes such as a
    VPN's 0.0.0.0/1) are ignored: the lab's /30 routes are more specific and win over them.
    """
    specific = [n for n in used if n.prefixlen >= BENCHMARK_RANGE.prefixlen]
    candidates = list(BENCHMARK_RANGE.subnets(new_prefix=LAB_PREFIX_LEN))
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if not any(candidate.overlaps(n) for n in specific):
            return candidate
    raise LabError("no free /24 left in 198.18.0.0/15", where="ip route",
                   hint="remove unused routes in 198.18.0.0/15 or old labs (fleet lab down)")


def host_link(subnet: ipaddress.IPv4Network, index: int) -> tuple[str, str]:
    """Pure: (root-end address, namespace address) of the ``index``-th /30 (0-based)."""
    links = list(subnet.subnets(new_prefix=HOST_PREFIX_LEN))
    if not 0 <= index < len(links):
        raise LabError(f"host index {index} does not fit in {subnet}", where="lab")
    first, second = list(links[index].hosts())
    return str(first), str(second)


def create(hosts: Iterable[HostRecord]) -> None:
    """Namespaces, veth pairs (peer created inside its namespace), addresses, links up."""
    hosts = tuple(hosts)
    root_batch = []
    for h in hosts:
        root_batch += [
            f"netns add {h.namespace}",
            f"link add {h.veth_root} type veth peer name {h.veth_peer} netns {h.namespace}",
            f"addr add {h.root_address}/{h.prefix_len} dev {h.veth_root}",
            f"link set {h.veth_root} up",
        ]
    run([IP, "-batch", "-"], stdin="\n".join(root_batch) + "\n", where="ip (root namespace)")
    for h in hosts:
        inner = [
            "link set lo up",
            f"addr add {h.address}/{h.prefix_len} dev {h.veth_peer}",
            f"link set {h.veth_peer} up",
        ]
        run([IP, "-n", h.namespace, "-batch", "-"], stdin="\n".join(inner) + "\n",
            where=f"ip netns {h.namespace}")


def delete(host: HostRecord) -> tuple[str, ...]:
    """Delete the host's veth and namespace when they exist; say what was removed."""
    removed: list[str] = []
    if link_exists(host.veth_root):
        run([IP, "link", "delete", host.veth_root], where=host.name)
        removed.append(f"deleted veth {host.veth_root}")
    if namespace_exists(host.namespace):
        run([IP, "netns", "delete", host.namespace], where=host.name)
        removed.append(f"deleted namespace {host.namespace}")
    return tuple(removed)


def namespace_inode(name: str) -> int | None:
    try:
        return (NETNS_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


def process_net_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def pids_in_namespace(name: str) -> tuple[int, ...]:
    """Processes whose network namespace is ``name`` (what `ip netns pids` reports)."""
    inode = namespace_inode(name)
    if inode is None:
        return ()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_net_inode(int(entry.name)) == inode:
            found.append(int(entry.name))
    return tuple(sorted(found))
