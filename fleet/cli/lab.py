"""`fleet lab up`, `down` and `status`: a local lab of SSH hosts (network namespaces or QEMU
guests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fleet.cli.args import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_json,
    print_json,
    stdout_console,
    sub,
    subcommands,
)
from fleet.errors import FleetError

LAB_UP_EXAMPLE = """examples:
  sudo fleet lab up 3                 # three sshd hosts in network namespaces (instant)
  fleet lab up --numa 2n,4n           # two QEMU guests: 2 sockets/2 nodes and 4 nodes
  fleet lab up --numa 2n --vfio       # + an emulated IOMMU and spare PCI devices (vfio role)
  fleet facts -i ~/.local/state/fleet/lab/inventory.yml
  fleet lab down

NUMA specs: 2n (2 sockets, 2 nodes, 4 CPUs), 4n (4 nodes, 4 CPUs, distances 10/16/22/28),
2n-asym (3+1 CPUs, memory 3:1). Guests boot Debian's kernel under TCG with nested KVM; the
root filesystem is built once from Debian packages (about a minute) and cached in
~/.cache/fleet/lab. Boot to SSH takes 25-50 s; each guest uses about 1 GiB of RAM.
"""
LAB_DOWN_EXAMPLE = "example:\n  sudo fleet lab down\n"
LAB_STATUS_EXAMPLE = "example:\n  fleet lab status --json\n"
LAB_POWER_EXAMPLE = """example:
  fleet lab power-cycle vm1-2n     # QEMU stopped and started again: the lab's kernel boots

A vm lab's inventory names this as each guest's fleet_power_command: a kernel variant that
does not boot is rolled back through it.
"""


def register(subparsers: Any) -> None:
    lab = sub(subparsers, "lab", "local lab of SSH hosts in network namespaces (root)",
              LAB_UP_EXAMPLE)
    lab_sub = subcommands(lab, "lab commands")
    up = sub(lab_sub, "up", "create N lab hosts (netns + sshd), inventory, known_hosts",
             LAB_UP_EXAMPLE)
    up.add_argument("count", type=int, metavar="N", nargs="?", default=None,
                    help="number of netns hosts (or, with --numa, omit it)")
    up.add_argument("--numa", metavar="SPEC[,SPEC...]",
                    help="QEMU guests with these NUMA topologies instead of netns hosts")
    up.add_argument("--memory-mib", type=int, default=None,
                    help="--numa: memory per guest in MiB (default 2048)")
    up.add_argument("--cpus", type=int, default=None,
                    help="--numa: vCPUs per guest (default 4)")
    up.add_argument("--accel", choices=("tcg", "kvm"), default="tcg",
                    help="--numa: QEMU accelerator (default tcg; kvm needs nested virt)")
    up.add_argument("--vfio", action="store_true",
                    help="--numa: give each guest an emulated IOMMU and spare PCI devices for "
                         "fleet_vfio_devices (two sharing an IOMMU group, one alone; slower boot)")
    up.add_argument("--ready-timeout", type=float, default=240.0, metavar="SECONDS",
                    help="--numa: how long to wait for each guest's SSH (default 240)")
    _add_lab_dir(up)
    add_json(up)
    up.set_defaults(handler=cmd_lab_up)
    down = sub(lab_sub, "down", "stop and remove everything the lab started", LAB_DOWN_EXAMPLE)
    _add_lab_dir(down)
    add_json(down)
    down.set_defaults(handler=cmd_lab_down)
    status = sub(lab_sub, "status", "show the lab's hosts and their health", LAB_STATUS_EXAMPLE)
    _add_lab_dir(status)
    add_json(status)
    status.set_defaults(handler=cmd_lab_status)
    power = sub(lab_sub, "power-cycle", "vm lab: stop a guest's QEMU and start it again",
                LAB_POWER_EXAMPLE)
    power.add_argument("name", metavar="GUEST", help="the guest's inventory name")
    _add_lab_dir(power)
    power.set_defaults(handler=cmd_lab_power_cycle)


def _add_lab_dir(parser: argparse.ArgumentParser) -> None:
    """--dir; its default is resolved when the command runs (fleet.lab is not imported for
    --help or --version)."""
    parser.add_argument("--dir", type=Path, default=None,
                        help="lab state directory (default: $XDG_STATE_HOME/fleet/lab, else "
                             "~/.local/state/fleet/lab)")


def _state_dir(args: argparse.Namespace) -> Path:
    from fleet.lab import default_state_dir

    return Path(args.dir) if args.dir is not None else default_state_dir()


def cmd_lab_up(args: argparse.Namespace) -> int:
    from fleet.codec import to_jsonable
    from fleet.lab import lab_up, vm_lab_up

    if args.numa is None and args.count is None:
        raise FleetError("say how many hosts (fleet lab up 3) or which NUMA guests "
                         "(fleet lab up --numa 2n,4n)", where="fleet lab up",
                         hint="see fleet lab up --help")
    if args.vfio and args.numa is None:
        raise FleetError("--vfio needs QEMU guests", where="fleet lab up",
                         hint="fleet lab up --numa 2n --vfio")
    if args.numa is not None:
        from fleet.lab.image.rootfs import ensure_rootfs

        def progress(message: str) -> None:
            sys.stderr.write(f"fleet: {message}\n")

        specs = [s.strip() for s in args.numa.split(",") if s.strip()]
        if args.count is not None and args.count != len(specs):
            raise FleetError(f"{args.count} hosts asked for but {len(specs)} --numa spec(s) given",
                             where="fleet lab up", hint="give one spec per guest, no count")
        image = ensure_rootfs(progress=progress)
        from fleet.lab.vm.passthrough import with_passthrough

        state = vm_lab_up(specs, _state_dir(args), image=image, memory_mib=args.memory_mib,
                          cpus=args.cpus, accel=args.accel, progress=progress,
                          ready_timeout_seconds=args.ready_timeout,
                          guest_hook=with_passthrough if args.vfio else None)
    else:
        state = lab_up(args.count, _state_dir(args))
    if args.json:
        print_json(to_jsonable(state))
    else:
        console = stdout_console()
        for h in state.hosts:
            where = (f"netns {h.namespace}  sshd pid {h.sshd_pid}" if h.kind == "netns"
                     else f"{h.spec}  qemu pid {h.qemu_pid}  console {h.console_log_path}")
            console.print(f"{h.name}  {h.address}:{h.port}  {where}")
        console.print(f"inventory: {state.inventory_path}")
        console.print(f"try: fleet facts -i {state.inventory_path}")
    return EXIT_OK


def cmd_lab_down(args: argparse.Namespace) -> int:
    from fleet.lab import lab_down

    removed = lab_down(_state_dir(args))
    if args.json:
        print_json({"removed": list(removed)})
    else:
        console = stdout_console()
        for item in removed:
            console.print(item)
        if not removed:
            console.print(f"no lab in {_state_dir(args)}")
    return EXIT_OK


def cmd_lab_status(args: argparse.Namespace) -> int:
    from fleet.cli.render import lab_status_data, lab_status_view
    from fleet.lab import lab_status

    status = lab_status(_state_dir(args))
    if args.json:
        print_json(lab_status_data(status))
    else:
        stdout_console().print(lab_status_view(status))
    return EXIT_OK if status.healthy or not status.exists else EXIT_PARTIAL


def cmd_lab_power_cycle(args: argparse.Namespace) -> int:
    from fleet.lab.vm.lab import vm_power_cycle

    pid = vm_power_cycle(_state_dir(args), args.name)
    stdout_console().print(f"{args.name}: power-cycled (qemu pid {pid}); it boots the lab's "
                           "kernel")
    return EXIT_OK
