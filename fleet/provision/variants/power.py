"""Power-cycle a host through the inventory's fleet_power_command (an argv, no shell)."""

from __future__ import annotations

import subprocess

from fleet.config.inventory.variants import HostProvisioning
from fleet.errors import ProvisionError

POWER_TIMEOUT_SECONDS = 300.0


def power_cycle(provisioning: HostProvisioning, why: str) -> None:
    """Run the host's power command on the controller; ProvisionError when it has none or it
    fails (``why`` says what made it needed)."""
    argv = provisioning.power_command
    host = provisioning.host
    if argv is None:
        raise ProvisionError(f"{why}, and the host has no fleet_power_command to power-cycle it",
                             where=host, hint="add fleet_power_command: [argv...] to its "
                             f"inventory ({provisioning.where}), or power-cycle it by hand")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True,
                              timeout=POWER_TIMEOUT_SECONDS, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"{why}; its power command {argv[0]} failed: {exc}", where=host,
                             hint="check fleet_power_command") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {done.returncode}"
        raise ProvisionError(f"{why}; its power command {argv[0]} failed: {reason}",
                             where=host, hint="check fleet_power_command")
