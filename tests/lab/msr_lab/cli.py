"""msr-lab: bring a multi-node MKE/MSR 2.9 emulation up and down, inspect it, inject faults."""
from __future__ import annotations

import argparse
import json
import os
import sys

from msr_lab import control
from msr_lab.common.labfiles import LabFiles
from msr_lab.common.model import TIMING
from msr_lab.faults import inject

DESCRIPTION = """\
A multi-node MKE/MSR 2.9 lab on one machine: one network namespace per node with its own hostname,
files, processes, sshd and /var/run/docker.sock (an emulated Docker Engine), MKE on the managers, MSR
replicas on the workers, and load-balancer nodes running HAProxy or NGINX. Needs root.
State lives in $MSR_LAB_DIR (default /var/lib/msr-lab)."""

FAULT_HELP = """\
stop-replica TARGET     stop a replica's containers (TARGET: replica id or node name)
start-replica TARGET    start them again
partition NODE          cut a node off the lab network
heal NODE               reconnect it
ghost TARGET            destroy a replica without removing it from the cluster (a ghost replica)
quorum-loss             stop enough replicas that the cluster loses its majority
kill-bootstrapper PHASE kill the next bootstrapper run when it reaches PHASE (e.g. containers, replication)
slow-join SECONDS       make every join's replication step take SECONDS
mke-error STATUS [COUNT] MKE answers STATUS (e.g. 500) to the next COUNT requests (0: until cleared)
mke-latency MS          MKE waits MS milliseconds before every answer
admin-scheduling on|off MKE lets admins run containers on managers and MSR nodes, or not (config-toml)
engine-down NODE        stop the node's Docker engine (MKE still lists the node until the heartbeat delay)
engine-up NODE          start it again: containers with a restart policy restart (through their start period)
slow-ping TARGET MS     the replica's /_ping answers MS milliseconds late
hang-ping TARGET        the replica's /_ping does not answer until cleared
freeze-health TARGET    the replica stops refreshing its replica_health entry (it keeps serving)
thaw-health TARGET      it reports again
token-expiry SECONDS    MKE tokens stop working SECONDS after login (bearer and MSR basic auth; 0: never)
lb-down NODE            an LB node goes down: unreachable, its processes gone (runtime API changes lost)
lb-up NODE              it boots again: sshd and its enabled LB service start from the config on disk
workload NODE [NAME]    run an application container NAME (default web, image nginx:1.25) on an MKE
                        node's engine, so the node is no longer dedicated to MSR
clear                   undo the service faults, start stopped engines, remove workload containers,
                        heal all partitions and bring LB nodes back up"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="msr-lab", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="create the lab's nodes and start its services")
    up.add_argument("--managers", type=int, default=3, help="MKE manager nodes (default 3)")
    up.add_argument("--workers", type=int, default=5, help="MKE worker nodes, the MSR candidates (default 5)")
    up.add_argument("--lbs", type=int, default=None,
                    help="load-balancer nodes lb1..lbN, 0-6 (default: one per --lb-kind, or 1)")
    up.add_argument("--lb-kind", action="append", metavar="KIND[,KIND...]",
                    help="what each LB node runs on 80/443: haproxy or nginx, one for all or one per node "
                         "in order; repeat or give a comma list (default haproxy)")
    up.add_argument("--mke-nodes", type=int, default=0,
                    help="virtual MKE workers mkenode1..N (0-200, at .51+): only in MKE's node list and "
                         "/containers/json, no namespace, sshd or engine socket (default 0)")
    up.add_argument("--mke-node-containers", type=int, default=2,
                    help="workload containers each virtual MKE worker runs (default 2)")
    up.add_argument("--msr-version", default="2.9.16", help="MSR version of the installed replicas (default 2.9.16)")
    up.add_argument("--replicas", type=int, default=1,
                    help="MSR replicas installed at start, on the first workers (default 1; 0 = MSR not installed)")
    up.add_argument("--storage", default="s3", choices=("s3", "azure", "gcs", "swift", "filesystem", "nfs"),
                    help="image storage of the cluster --replicas seeds (default s3: shared object storage); "
                         "an install run later uses its own flags, local filesystem by default")
    up.add_argument("--join-seconds", type=float, default=3.0, help="how long a join takes (default 3)")
    up.add_argument("--admin-scheduling", choices=("on", "off"),
                    help="MKE's enable_admin_ucp_scheduling (default: on when --replicas > 0, as MSR's install "
                         "needed it; off for a fresh MKE, as MKE ships)")
    up.add_argument("--subnet", default="10.77.0.0/24", help="the lab bridge's private /24 (default 10.77.0.0/24)")
    up.add_argument("--health-period", type=float, default=TIMING["health_period"],
                    help="seconds between a replica's reports to the replica_health cache "
                         f"(default {TIMING['health_period']:g})")
    up.add_argument("--health-stale", type=float, default=TIMING["health_stale"],
                    help="a report older than this reads 'Replica reported health too long ago' "
                         "(default 3 health periods)")
    up.add_argument("--starting-seconds", type=float, default=TIMING["starting_seconds"],
                    help="how long a dtr-* container stays `starting` after each start "
                         f"(default {TIMING['starting_seconds']:g})")
    up.add_argument("--heartbeat-seconds", type=float, default=TIMING["heartbeat_seconds"],
                    help="MKE shows an unreachable node down after this long "
                         f"(default {TIMING['heartbeat_seconds']:g})")

    sub.add_parser("down", help="remove every namespace, process, mount, bridge and file of the lab")
    st = sub.add_parser("status", help="show nodes, replicas, health and the LB pool")
    st.add_argument("--json", action="store_true", help="print JSON")
    inv = sub.add_parser("inventory", help="print a YAML Ansible inventory for the lab")
    inv.add_argument("-o", "--output", help="write it to this file (mode 0600) instead of stdout")
    inv.add_argument("--msr", metavar="NODE[,NODE...]",
                     help="the msr group (the nodes that should run a replica); default the nodes running one now")
    ssh = sub.add_parser("ssh-config", help="write ssh config, known_hosts and key for the lab's nodes")
    ssh.add_argument("--home", help="write DIR/.ssh/{config,known_hosts,id_ed25519}, for tools that read only "
                                    "~/.ssh such as the docker SDK's ssh:// transport (use with HOME=DIR)")
    fault = sub.add_parser("fault", help="inject a fault (see below)", epilog=FAULT_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    fault.add_argument("kind", choices=inject.KINDS, metavar="KIND")
    fault.add_argument("args", nargs="*")
    daemon = sub.add_parser("daemon")  # internal: started by `up`
    daemon.add_argument("--state-dir")
    return p


def fault_request(kind: str, args: list[str]) -> dict:
    names = {"stop-replica": ["target"], "start-replica": ["target"], "partition": ["target"], "heal": ["target"],
             "ghost": ["target"], "kill-bootstrapper": ["phase"], "slow-join": ["seconds"],
             "mke-error": ["status", "count"], "mke-latency": ["ms"],
             "engine-down": ["target"], "engine-up": ["target"], "slow-ping": ["target", "ms"],
             "hang-ping": ["target"], "freeze-health": ["target"], "thaw-health": ["target"],
             "token-expiry": ["seconds"], "admin-scheduling": ["state"],
             "lb-down": ["target"], "lb-up": ["target"], "workload": ["target", "name"]}.get(kind, [])
    required = names if kind == "slow-ping" else names[:1] if kind != "mke-error" else []
    if len(args) < len(required) or len(args) > len(names):
        raise SystemExit(f"msr-lab fault {kind}: expects {' '.join(n.upper() for n in names) or 'no argument'}")
    return dict(zip(names, args))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        print("msr-lab: must run as root (it creates network namespaces, mounts and a bridge)", file=sys.stderr)
        return 1
    files = LabFiles(getattr(args, "state_dir", None))
    try:
        if args.command == "daemon":
            from msr_lab import daemon
            daemon.main(args.state_dir)
            return 0
        from msr_lab import lifecycle
        if args.command == "up":
            return lifecycle.up(files, args)
        if args.command == "down":
            return lifecycle.down(files)
        if not files.exists():
            print("msr-lab: no lab is up; run: msr-lab up", file=sys.stderr)
            return 1
        if args.command == "status":
            data = control.status(files)
            print(json.dumps(data, indent=2) if args.json else lifecycle.format_status(data))
        elif args.command == "inventory":
            return lifecycle.write_inventory(files, args.output, args.msr)
        elif args.command == "ssh-config":
            return lifecycle.ssh_config(files, args.home)
        elif args.command == "fault":
            result = control.call("fault", files, kind=args.kind, **fault_request(args.kind, args.args))
            print(json.dumps(result, indent=2))
        return 0
    except control.LabError as exc:
        print(f"msr-lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
