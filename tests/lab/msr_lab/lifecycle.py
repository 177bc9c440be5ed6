"""`up` and `down`: create the nodes, start the daemon and the LB, and remove all of it again."""
from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from msr_lab import control, inventory
from msr_lab.common.labfiles import LabFiles
from msr_lab.common.pki import LabPKI
from msr_lab.lb import lbnode
from msr_lab.nodes import netns, sshkeys
from msr_lab.nodes.teardown import leftovers
from msr_lab.nodes.teardown import teardown as remove_nodes


# Virtual MKE workers (--mke-nodes): .51-.250 of the subnet, above the real workers' .21-.50.
VIRTUAL_BASE, MAX_VIRTUAL = 51, 200


def plan_nodes(args, net: ipaddress.IPv4Network) -> dict[str, dict]:
    """Node names and addresses: managers .11+, workers .21+, LB .5+ (host is .1); each LB node's kind."""
    if net.prefixlen != 24:
        raise SystemExit("msr-lab: --subnet must be a /24")
    if not 1 <= args.managers <= 9 or not 0 <= args.workers <= 30:
        raise SystemExit("msr-lab: --managers must be 1-9 and --workers 0-30")
    if not 0 <= args.replicas <= args.workers:
        raise SystemExit("msr-lab: --replicas must be between 0 and --workers")
    if args.health_period <= 0 or min(args.health_stale, args.starting_seconds, args.heartbeat_seconds) < 0:
        raise SystemExit("msr-lab: --health-period must be positive and the other timings not negative")
    try:
        lb_kinds = lbnode.parse_kinds(getattr(args, "lb_kind", None), args.lbs)
    except ValueError as exc:
        raise SystemExit(f"msr-lab: {exc}") from None
    if not 0 <= len(lb_kinds) <= 6 or (args.lbs is not None and args.lbs < 0):
        raise SystemExit("msr-lab: --lbs must be 0-6")   # .5-.10: the managers start at .11
    virtual = getattr(args, "mke_nodes", 0) or 0
    if not 0 <= virtual <= MAX_VIRTUAL:
        raise SystemExit(f"msr-lab: --mke-nodes must be 0-{MAX_VIRTUAL}")
    base = net.network_address
    nodes = {}
    for i in range(args.managers):
        nodes[f"manager{i + 1}"] = {"role": "manager", "addr": str(base + 11 + i)}
    for i in range(args.workers):
        nodes[f"worker{i + 1}"] = {"role": "worker", "addr": str(base + 21 + i)}
    for i, kind in enumerate(lb_kinds):
        nodes[f"lb{i + 1}"] = {"role": "lb", "addr": str(base + 5 + i), "lb_kind": kind}
    for i in range(virtual):
        # .51+: addresses of the lab subnet that no namespace holds (nothing answers there)
        nodes[f"mkenode{i + 1}"] = {"role": "worker", "addr": str(base + VIRTUAL_BASE + i), "virtual": True}
    return nodes


def up(files: LabFiles, args) -> int:
    started = time.monotonic()
    if files.exists() or leftovers(files.prefix, files.bridge):
        if daemon_alive(files):
            print("msr-lab: a lab is already up (msr-lab status); remove it first with: msr-lab down", file=sys.stderr)
            return 1
        print("msr-lab: removing what an earlier lab left behind", file=sys.stderr)
        teardown(files)
    net = ipaddress.ip_network(args.subnet)
    nodes = plan_nodes(args, net)
    workers = [n for n, i in nodes.items() if i["role"] == "worker" and not i.get("virtual")]
    real = {n: i for n, i in nodes.items() if not i.get("virtual")}
    managers = [n for n, i in nodes.items() if i["role"] == "manager"]
    lbs = [n for n, i in nodes.items() if i["role"] == "lb"]
    config = {
        "msr_version": args.msr_version, "msr_image": "mirantis/dtr", "storage": args.storage,
        "join_seconds": args.join_seconds, "mke_username": "admin", "mke_password": secrets.token_urlsafe(18),
        "mke_url": f"https://{nodes[managers[0]]['addr']}", "seed_replicas": workers[:args.replicas],
        "subnet": str(net),
        "admin_scheduling": (args.admin_scheduling == "on") if args.admin_scheduling else args.replicas > 0,
        # the seeded cluster's --dtr-external-url: the LB, so its replicas' certificates name the LB too
        "seed_external_url": f"https://{nodes[lbs[0]]['addr']}" if lbs else "",
        "health_period": args.health_period, "health_stale": args.health_stale,
        "starting_seconds": args.starting_seconds, "heartbeat_seconds": args.heartbeat_seconds,
        "mke_node_containers": getattr(args, "mke_node_containers", 2),
    }
    try:
        files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        pki = LabPKI(files.pki_dir)   # MKE's CA: its certificate names only the managers, which serve MKE
        pki.ensure(managers, [nodes[m]["addr"] for m in managers])
        config["ca_pem"] = pki.ca_pem
        # the inventory's "organisation" CA (msr_dtr_*): a certificate for the workers and the LB
        LabPKI(files.pki_dir, prefix="org-", ca_name="msr-lab organisation CA").ensure(
            workers + lbs, [nodes[n]["addr"] for n in workers + lbs])
        pubkey = sshkeys.ensure_client_key(str(files.root))
        host_addr = str(net.network_address + 1)
        netns.create_bridge(files.bridge, f"{host_addr}/{net.prefixlen}")
        hosts = {name: info["addr"] for name, info in real.items()}
        with ThreadPoolExecutor(max_workers=len(real)) as pool:
            futures = {name: pool.submit(netns.create_node, str(files.root), files.prefix, name, info["role"], info["addr"],
                                         files.bridge, pubkey, hosts) for name, info in real.items()}
            for name, future in futures.items():
                nodes[name].update(future.result())
        files.save({"config": config, "nodes": nodes, "prefix": files.prefix, "bridge": files.bridge})
        sshkeys.write_ssh_client_files(str(files.root), hosts)
        write_ssh_wrapper(files)
        start_daemon(files)
        wait_seeded(files, config)
        for name, info in nodes.items():
            if info["role"] == "lb":
                # the seeded pool goes into the config: membership lives there, not in the runtime API
                servers = [(w, nodes[w]["addr"]) for w in config["seed_replicas"]]
                lbnode.start(str(files.root), name, info["lb_kind"], servers)
    except BaseException as exc:
        print(f"msr-lab up failed: {exc}; removing what was made", file=sys.stderr)
        teardown(files)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return 1
    virtual = len(nodes) - len(real)
    print(f"msr-lab is up in {time.monotonic() - started:.1f} s: {args.managers} managers, {args.workers} workers, "
          + (f"{virtual} virtual MKE workers, " if virtual else "") +
          f"{len([n for n in nodes.values() if n['role'] == 'lb'])} LB, MSR {args.msr_version} with {args.replicas} replica(s)")
    print(f"  MKE: {config['mke_url']} (admin / see `msr-lab inventory`)")
    print(f"  ssh: ssh -F {files.ssh_dir / 'config'} worker1")
    print("  next: msr-lab status | msr-lab inventory -o inventory.yml | msr-lab down")
    return 0


def write_ssh_wrapper(files: LabFiles) -> None:
    """<state>/bin/ssh: OpenSSH with the lab's config, for `docker -H ssh://root@<node>` (OpenSSH ignores $HOME)."""
    bindir = files.root / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {files.ssh_dir / "config"} "$@"\n')
    wrapper.chmod(0o755)


def start_daemon(files: LabFiles, timeout: float = 20.0) -> None:
    log = open(files.daemon_log, "ab")
    subprocess.Popen([sys.executable, "-m", "msr_lab.cli", "daemon", "--state-dir", str(files.root)],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_alive(files):
            return
        time.sleep(0.1)
    tail = files.daemon_log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the lab daemon did not start within {timeout:.0f} s; its log ends with:\n{tail}")


def wait_seeded(files: LabFiles, config: dict) -> None:
    """The replicas `up` installs go through their start period and first report: `up` returns once
    cluster_status reports every one of them OK, so the lab is ready to use when it returns."""
    if not config["seed_replicas"]:
        return
    limit = 20 + config["starting_seconds"] + 3 * config["health_period"]
    deadline = time.monotonic() + limit
    while True:
        replicas = control.status(files)["cluster"]["replicas"]
        if replicas and all(r["reported"] == "OK" and r["health"] == "OK" for r in replicas):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the seeded replicas did not report healthy within {limit:.0f} s: "
                               + "; ".join(f"{r['id']}: {r['reported']}" for r in replicas))
        time.sleep(0.1)


def daemon_alive(files: LabFiles) -> bool:
    try:
        return control.call("ping", files, timeout=2) == "pong"
    except (control.LabError, OSError, ValueError):
        return False


def stop_daemon(files: LabFiles) -> None:
    try:
        pid = int(files.daemon_pid.read_text())
    except (OSError, ValueError):
        pid = None
    if daemon_alive(files):
        try:
            control.call("shutdown", files, timeout=5)
        except control.LabError:
            pass
    for _ in range(50):
        if pid is None or not _pid_alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, 9)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def teardown(files: LabFiles) -> None:
    stop_daemon(files)
    remove_nodes(str(files.root), files.prefix, files.bridge)


def down(files: LabFiles) -> int:
    started = time.monotonic()
    if not files.exists() and not leftovers(files.prefix, files.bridge):
        print("msr-lab: no lab is up; nothing to remove")
        return 0
    teardown(files)
    print(f"msr-lab is down in {time.monotonic() - started:.1f} s")
    return 0


def write_inventory(files: LabFiles, output: str | None, msr: str | None = None) -> int:
    desired = current_replica_nodes(files)
    if msr is not None:
        desired = [n for n in msr.split(",") if n]
        workers = {name for name, info in files.load()["nodes"].items()
                   if info["role"] == "worker" and not info.get("virtual")}
        if set(desired) - workers:
            sys.stderr.write("msr-lab: --msr: not a worker of this lab: %s\n" % ", ".join(sorted(set(desired) - workers)))
            return 2
    text = inventory.render(files, desired, current_cluster(files))
    if output:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def current_replica_nodes(files: LabFiles) -> list[str] | None:
    try:
        replicas = control.status(files)["cluster"]["replicas"]
    except (control.LabError, KeyError, TypeError):
        return None
    return sorted({r["node"] for r in replicas if r.get("node")})


def current_cluster(files: LabFiles) -> dict | None:
    """The MSR cluster as the daemon sees it now (None when the daemon does not answer)."""
    try:
        cluster = control.status(files)["cluster"]
    except (control.LabError, KeyError, TypeError, OSError, ValueError):
        return None
    return cluster if isinstance(cluster, dict) else None


def ssh_config(files: LabFiles, home: str | None) -> int:
    ssh = files.ssh_dir
    if home:
        sshkeys.install_ssh_home(str(files.root), home)
        print(f"wrote {home}/.ssh/config, known_hosts and id_ed25519; use HOME={home}")
    else:
        print(f"config:      {ssh / 'config'}\nknown_hosts: {ssh / 'known_hosts'}\nkey:         {ssh / 'id_ed25519'}\n"
              f"docker CLI over ssh: PATH={files.root / 'bin'}:$PATH docker -H ssh://root@<node address> ps")
    return 0


def format_status(data: dict) -> str:
    lines = ["NODE         ROLE     ADDRESS        STATE  MKE    ENGINE AVAILABILITY  NETWORK"]
    virtual = [n for n in data["nodes"] if n.get("virtual")]
    for n in data["nodes"]:
        if n.get("virtual"):
            continue
        lines.append(f"{n['name']:<12} {n['role']:<8} {n['addr']:<14} {n['state']:<6} {n.get('mke_state') or '-':<6} "
                     f"{n.get('engine') or '-':<6} {n['availability']:<13} {'down' if n.get('lb_down') else 'partitioned' if n['partitioned'] else 'ok'}")
    if virtual:
        ready = sum(1 for n in virtual if n.get("mke_state") == "ready")
        lines.append(f"{virtual[0]['name']}..{virtual[-1]['name']} ({len(virtual)} virtual MKE workers, "
                     f"{virtual[0]['addr']}-{virtual[-1]['addr']}, no namespace or sshd): {ready} ready in MKE, "
                     f"{sum(n.get('containers') or 0 for n in virtual)} containers")
    cluster = data["cluster"]
    lines += ["", "REPLICA       NODE         VERSION  STATE"]
    for r in cluster.get("replicas", []):
        state = r.get("state", "")
        if r.get("starting"):
            state += f", starting for {r['starting']:.1f}s more (engine health: starting, /_ping 503)"
        lines.append(f"{r['id']:<13} {r.get('node') or '-':<12} {r.get('version', ''):<8} {state}")
        age = r.get("reported_age")
        lines.append(f"    live (RethinkDB, what the bootstrapper checks): {r.get('health', '')}")
        lines.append(f"    reported (cluster_status replica_health):       {r.get('reported', '')}"
                     + ("" if age is None else f"  [{age:.1f}s ago]"))
        if r.get("faults"):
            lines.append(f"    faults: {r['faults']}")
    if not cluster.get("replicas"):
        lines.append("(MSR is not installed)")
    if "quorum" in cluster:
        lines.append(f"quorum: {cluster['quorum']}")
    if cluster.get("installed"):
        storage = cluster.get("storage", "")
        if cluster.get("nfs_url"):
            storage += f" ({cluster['nfs_url']})"
        elif cluster.get("storage_volume"):
            storage += f" (volume {cluster['storage_volume']})"
        lines.append(f"storage: {storage}; external URL: {cluster.get('external_url') or '-'}; "
                     f"MSR CA: {cluster.get('ca_subject')} (the replicas' CA: msr-lab inventory, msr_ca)")
    for name, pool in data.get("lb", {}).items():
        lines += ["", f"LB POOL on {name} ({data.get('lb_kinds', {}).get(name, 'haproxy')})"]
        if isinstance(pool, dict):
            lines.append(f"  error: {pool.get('error')}")
            continue
        for s in pool:
            lines.append(f"  {s.get('backend', ''):<12} {s.get('name', ''):<12} {s.get('addr', ''):<18} {s.get('status', '')}")
    workloads = {n["name"]: n["workloads"] for n in data["nodes"] if n.get("workloads")}
    if workloads:
        lines += ["", "workload containers (fault workload): "
                  + "; ".join(f"{node}: {', '.join(names)}" for node, names in workloads.items())]
    active = data.get("faults_active", {})
    lines += ["", f"faults: {active or 'none'}", f"MKE: {data.get('mke_url')}"]
    return "\n".join(lines)
