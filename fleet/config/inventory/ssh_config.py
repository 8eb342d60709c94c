"""~/.ssh/config for fleet's own SSH transport, as OpenSSH reads it (so as Ansible's ssh
connection, which runs OpenSSH, sees it).

OpenSSH itself evaluates the file (Host and Match blocks, Include, tokens): ``ssh -G -F FILE
TARGET`` prints the options it would use for TARGET, and the ones that differ from OpenSSH's
defaults (``ssh -G -F /dev/null``) and that fleet uses join a host's SSH arguments behind the
inventory's own (``ansible_*`` variables and ``ansible_ssh_common_args`` win, as on Ansible's ssh
command line). Read only when ``$HOME/.ssh/config`` exists; the system-wide
/etc/ssh/ssh_config is not read.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleet.errors import InventoryError

# what fleet's transport uses (fleet.config.inventory.ssh_args.USED), as ssh -G names them
TAKEN = ("hostname", "port", "user", "identityfile", "proxyjump", "proxycommand",
         "userknownhostsfile", "stricthostkeychecking", "connecttimeout",
         "serveraliveinterval", "identitiesonly")
_BASELINE_TARGET = "fleet-ssh-config-baseline.invalid"
_TIMEOUT_SECONDS = 10.0

Options = tuple[tuple[str, str], ...]


def user_config() -> Path | None:
    """$HOME/.ssh/config when it exists."""
    path = Path.home() / ".ssh" / "config"
    return path if path.is_file() else None


def parse_dump(text: str) -> Options:
    """``ssh -G`` output -> (key, value) in order, the keys fleet takes only (IdentityFile
    may repeat)."""
    pairs = []
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        key = key.lower()
        if key in TAKEN and value:
            pairs.append((key, value.strip()))
    return tuple(pairs)


def set_by_config(resolved: Options, baseline: Options, target: str) -> Options:
    """What the config file says for ``target`` beyond OpenSSH's defaults: values that differ
    from the baseline's (the baseline's host name is its own, so HostName counts only when it
    is not the target itself)."""
    defaults = {(k, v) for k, v in baseline if k != "hostname"}
    chosen = []
    for key, value in resolved:
        if key == "hostname":
            if value != target:
                chosen.append((key, value))
        elif (key, value) not in defaults:
            chosen.append((key, value))
    return tuple(chosen)


def resolve(config: Path, targets: Sequence[str]) -> Mapping[str, Options]:
    """For each target: the options ``config`` sets for it (OpenSSH evaluates the file)."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise InventoryError("ssh is missing: it is needed to read ~/.ssh/config",
                             where=str(config), hint="install openssh-client")
    unique = list(dict.fromkeys(targets))
    baseline = parse_dump(_dump(ssh, Path("/dev/null"), _BASELINE_TARGET))
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(unique)))) as pool:
        dumps = list(pool.map(lambda t: _dump(ssh, config, t), unique))
    return {target: set_by_config(parse_dump(dump), baseline, target)
            for target, dump in zip(unique, dumps, strict=True)}


def _dump(ssh: str, config: Path, target: str) -> str:
    try:
        done = subprocess.run([ssh, "-G", "-F", str(config), "--", target],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InventoryError(f"cannot evaluate the SSH config: {e}", where=str(config),
                             hint="check the file with `ssh -G HOST`") from None
    if done.returncode != 0:
        detail = next((ln.strip() for ln in done.stderr.splitlines() if ln.strip()), "no stderr")
        raise InventoryError(f"OpenSSH cannot read it: {detail}", where=str(config),
                             hint="fix the file (check it with `ssh -G HOST`)")
    return done.stdout
