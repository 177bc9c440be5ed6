"""`install` and `join`: the log lines and phases of msr2.md 1.6, the cluster changes through cluster.Cluster."""
from __future__ import annotations

import random
import re
import secrets
from contextlib import contextmanager

from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper.install_opts import install_spec
from msr_lab.bootstrapper.run import PRODUCT, SERVICES, Run

_HEX12 = re.compile(r"^[0-9a-f]{12}$")
PHASE2 = "dtr-phase2"
KBASE_UNHEALTHY = ("This DTR has replicas that are not working correctly. Make sure existing DTR replicas are "
                   "healthy before joining new ones. To ignore this warning, use --unsafe-join. Error: "
                   "Unhealthy replicas: {ids}; reasons: {reasons}")


def _busy_nodes(run: Run, mke_reps: dict) -> dict[str, str]:
    """node -> replica id for nodes that run (or half-run) a replica; ghosts have no containers left."""
    busy = {r["node"]: rid for rid, r in mke_reps.items() if r["node"]}
    for rid, rep in run.members().items():
        if rep.state != "ghost":
            busy.setdefault(rep.node, rid)
    return busy


def _pick_node(run: Run, nodes: dict, busy: dict) -> str:
    name = run.opts.get("ucp-node")
    if not name or name == "_random_":
        # Documented default: "Random by default"; the lab picks among usable workers [I].
        usable = sorted(h for h, n in nodes.items() if n["role"] == "worker" and n["state"] == "ready"
                        and n["availability"] == "active" and h not in busy)
        if not usable:
            run.fatal("Could not find a UCP worker node to deploy DTR to: every worker is down, drained or "
                      "already runs a DTR replica. Use --ucp-node to choose one")
        name = random.choice(usable)
        run.info(f"No --ucp-node given, chose node {name} at random")
        return name
    node = nodes.get(name)
    if node is None:
        run.fatal(f"The node '{name}' is not part of the UCP cluster (nodes: {', '.join(sorted(nodes))})")
    if node["state"] != "ready":
        run.fatal(f"The node '{name}' is not ready (state: {node['state'] or 'unknown'}); "
                  "DTR can only be deployed to healthy nodes")
    # Managers, drained and paused nodes are MKE's scheduler's to refuse (when phase2 is created).
    if name in busy:
        run.fatal(f"The node '{name}' already runs DTR replica {busy[name]}; "
                  "choose a node without a DTR replica (ports [80 443] are in use)")
    return name


def _replica_id(run: Run, taken) -> str:
    rid = run.opts.get("replica-id")
    if rid:
        if not _HEX12.match(rid):
            run.fatal(f"Invalid replica ID '{rid}': it must be a 12-character hexadecimal string")
        if rid in taken:
            run.fatal(f"A replica with ID {rid} already exists in this DTR cluster")
        return rid
    while True:
        rid = secrets.token_hex(6)
        if rid not in taken:
            return rid


def _network_test(run: Run, target: str) -> None:
    run.phase("network-test")
    if run.opts.get("skip-network-test", False):
        run.warn("Skipping the overlay network test (--skip-network-test)")
        return
    run.info("Cleaning up before overlay network test")
    run.info("Starting overlay network test")
    for name in {target, run.ctx.node.name}:
        node = run.lab.node(name)
        if node is not None and node.partitioned:
            run.fatal(f"Overlay networking test failed: the node {name} cannot be reached on the dtr-ol overlay "
                      "network. Make sure the overlay network ports are open between UCP nodes")
    run.info("Overlay networking test passed.")


def _phase2_checks(run: Run, unhealthy: dict[str, str]) -> None:
    """What phase2 itself refuses, relayed as its own FATA line, then the bootstrapper's (msr2.md §1.10)."""
    if not unhealthy:
        return
    text = KBASE_UNHEALTHY.format(ids=", ".join(sorted(unhealthy)),
                                  reasons=", ".join(unhealthy[r] for r in sorted(unhealthy)))
    if run.opts.get("unsafe-join", False):
        run.warn(f"Joining anyway because of --unsafe-join: {text}")
        return
    run.log("fatal", text)
    run.fatal(f"Failed to execute phase2: Problem running container '{PHASE2}' from image '{run.image}': "
              "non-zero return code 1")


@contextmanager
def _phase2(run: Run, target: str):
    """dtr-phase2 runs on the target, through MKE (its scheduler decides), for the rest of the command."""
    run.phase("phase2")
    run.info(f"Creating network: {target}/dtr-br")
    run.info("Connecting to network: dtr-ol")
    run.info("Waiting for phase2 container to be known to the Docker daemon")
    with run.helper_container(target, PHASE2, {"com.docker.dtr.phase2": "true"}):
        yield


def connectivity_test(run: Run) -> None:
    run.phase("connectivity-test")
    run.info("Starting UCP connectivity test")
    run.info("UCP connectivity test passed")


def first_replica_node(run: Run, nodes: dict, mke_reps: dict, http_port: int, https_port: int) -> str:
    """Where `install` (or `restore`) puts a cluster's first replica, checked as they check it."""
    run.info("Checking if the node is okay to install on")
    busy = _busy_nodes(run, mke_reps)
    free = sorted(h for h, n in nodes.items() if n["role"] == "worker" and n["state"] == "ready" and h not in busy)
    target = _pick_node(run, nodes, busy)
    run.info(f"Verifying [{http_port} {https_port}] ports on {target}")
    run.info(f"The UCP cluster contains the following nodes without port conflicts: {', '.join(free)}")
    run.info("Creating network: dtr-ol")
    _network_test(run, target)
    return target


def _objects(run: Run, rid: str, target: str, http_port: int, https_port: int) -> None:
    run.phase("volumes")
    run.info("Setting up replica volumes...")
    run.phase("containers")
    run.info("Getting container configuration and starting containers...")
    run.cluster.add_member(rid, target, run.version, http_port=http_port, https_port=https_port,
                           repo=run.image_owner)
    run.cluster.create_replica_objects(rid, target, run.version, repo=run.image_owner)
    for svc in SERVICES:
        run.info(f"Creating dtr-{svc}-{rid}")


def _local_fs(cluster) -> bool:
    """True when images live on a replica-local filesystem (msr2.md 2.5); NFS counts as shared."""
    return cluster.storage_driver() == "filesystem"


def join(run: Run) -> int:
    run.begin("replica join")
    http_port, https_port = run.port(F.HTTP_PORT), run.port(F.HTTPS_PORT)
    run.connect()
    nodes, mke_reps = run.mke_nodes(), run.mke_replicas()
    members = run.members()
    if not members and not mke_reps:
        run.fatal(f"There are no {PRODUCT} replicas in this UCP cluster to join; use 'install' first")
    existing = run.opts.get("existing-replica-id")
    if not existing:
        ids = sorted(members) or sorted(mke_reps)
        typed = run.prompt(f"This cluster contains the replicas: {' '.join(ids)}\n"
                           f"Choose a replica to join to [{ids[0]}]: ", F.EXISTING)
        if typed is None:
            run.fatal("Missing required value for --existing-replica-id: pass the flag or set the "
                      f"${F.EXISTING.env(run.msr)} environment variable (no TTY to prompt on)")
        existing = typed or ids[0]
    run.require_member(existing, members)
    run.require_healthy(existing)
    running = {r.version for r in members.values() if r.state != "ghost"}
    if running and run.version not in running:
        run.fatal(f"This DTR cluster runs version {', '.join(sorted(running))}; join replicas with the "
                  f"bootstrapper of the same version, not {run.version}")
    run.phase("check-node")
    run.info("Checking if the node is okay to install on")
    rid = _replica_id(run, set(members) | set(mke_reps))
    target = _pick_node(run, nodes, _busy_nodes(run, mke_reps))
    _network_test(run, target)
    with _phase2(run, target):
        _phase2_checks(run, run.unhealthy())
        connectivity_test(run)
        _objects(run, rid, target, http_port, https_port)
        run.phase("rethink")
        run.info("Establishing connection with Rethinkdb")
        run.info("Verifying auth settings...")
        run.phase("register")
        run.wait_for_dtr(rid)
        run.info("Successfully registered dtr with UCP")
        run.phase("replication")
        count = len(run.cluster.replicas)
        run.replication_lines(count, run.lab.faults.join_seconds)
        run.phase("complete")
        run.cluster.mark_running(rid)
    count = len(run.cluster.replicas)
    if count > 1 and _local_fs(run.cluster):
        run.warn("Warning! You are using DTR with the filesystem driver in an HA setup. This will not work with "
                 "non-clustered file systems. See the documentation for how to configure HA image storage.")
    run.info("Join is complete")
    run.info(f"Replica ID is set to: {rid}")
    run.count_lines(count)
    return 0


def install(run: Run) -> int:
    run.begin("installation")
    spec = install_spec(run)        # storage, external URL, the given CA/cert/key: refused before any change
    http_port, https_port = run.port(F.HTTP_PORT), run.port(F.HTTPS_PORT)
    run.connect()
    nodes = run.mke_nodes()
    run.phase("check-node")
    run.info("Searching containers in UCP for DTR replicas")
    mke_reps = run.mke_replicas()
    members = run.members()
    if members or mke_reps:
        run.fatal(f"{PRODUCT} is already installed in this UCP cluster (replicas: "
                  f"{', '.join(sorted(set(members) | set(mke_reps)))}). Use 'join' to add replicas")
    rid = _replica_id(run, set())
    target = first_replica_node(run, nodes, mke_reps, http_port, https_port)
    with _phase2(run, target):
        connectivity_test(run)
        run.info("Creating initial CA certificates")
        run.cluster.create(**spec.cluster_args())    # a fresh cluster: its own storage, dtrHost and MSR CA
        _objects(run, rid, target, http_port, https_port)
        run.phase("rethink")
        run.info("Establishing connection with Rethinkdb")
        run.info("Migrating db...")
        run.info("Starting all containers...")
        run.phase("register")
        run.info("License config copied from UCP")
        run.wait_for_dtr(rid)
        run.info("Successfully registered dtr with UCP")
        run.phase("complete")
        run.cluster.mark_running(rid)
    run.info("Installation is complete")
    run.info(f"Replica ID is set to: {rid}")
    run.info(f"You can use flag '--existing-replica-id {rid}' when joining other replicas to your {PRODUCT} Cluster")
    return 0
