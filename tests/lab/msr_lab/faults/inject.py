"""Fault injection, daemon side. Each fault changes the lab's state the way the real failure would."""
from __future__ import annotations

from msr_lab.common.model import Lab
from msr_lab.lb import lbnode
from msr_lab.mke import config
from msr_lab.nodes import netns

KINDS = ("stop-replica", "start-replica", "partition", "heal", "kill-bootstrapper", "slow-join",
         "mke-error", "mke-latency", "ghost", "quorum-loss", "admin-scheduling", "clear",
         "engine-down", "engine-up", "slow-ping", "hang-ping", "freeze-health", "thaw-health", "token-expiry", "lb-down", "lb-up", "workload")
# What the workload fault runs: an ordinary application container, neither MSR's nor MKE's.
WORKLOAD_IMAGE = "nginx:1.25"


def replica_id(lab: Lab, target: str) -> str:
    """A replica named by its id or by the node it runs on."""
    cluster = lab.cluster
    if target in cluster.replicas:
        return target
    found = [r.id for r in cluster.replicas.values() if r.node == target]
    if not found:
        raise ValueError(f"no replica {target!r} (give a replica id or the name of a node that runs one)")
    return found[0]


def node_name(lab: Lab, target: str) -> str:
    if target in lab.nodes:
        return target
    return lab.cluster.replicas[replica_id(lab, target)].node


def apply(lab: Lab, desc: dict, req: dict) -> dict:
    kind = req.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r}; choose one of: {', '.join(KINDS)}")
    target = req.get("target")
    faults = lab.faults
    if kind == "stop-replica":
        lab.cluster.stop_replica(replica_id(lab, target))
    elif kind == "start-replica":
        lab.cluster.start_replica(replica_id(lab, target))
    elif kind == "ghost":
        lab.cluster.ghost_replica(replica_id(lab, target))
    elif kind in ("partition", "heal"):
        name = node_name(lab, target)
        # a node that is down keeps its link down until lb-up; a virtual one has no link, only MKE's view
        if not lab.nodes[name].lb_down and not lab.nodes[name].virtual:
            netns.partition(desc["nodes"][name]["veth"], down=kind == "partition")
        with lab.lock:
            lab.nodes[name].partitioned = kind == "partition"
        lab.changed()
    elif kind == "quorum-loss":
        quorum_loss(lab)
    elif kind == "kill-bootstrapper":
        faults.kill_at_phase = req["phase"]
    elif kind == "slow-join":
        faults.join_seconds = float(req["seconds"])
    elif kind == "mke-error":
        faults.mke_status = int(req.get("status", 500))
        faults.mke_error_count = int(req.get("count", 0))
    elif kind == "mke-latency":
        faults.mke_latency_ms = int(req["ms"])
    elif kind == "admin-scheduling":
        # an admin changing the MKE setting, as through the web UI or config-toml
        config.set_admin_scheduling(lab, _on_off(req.get("state")))
        lab.changed()
    elif kind in ("lb-down", "lb-up"):
        lb_power(lab, desc, target, up=kind == "lb-up")
    elif kind == "clear":
        clear(lab, desc)
    elif kind in ("engine-down", "engine-up"):
        engine_fault(lab, node_name(lab, target), down=kind == "engine-down")
    elif kind in ("slow-ping", "hang-ping", "freeze-health", "thaw-health"):
        replica_fault(lab, kind, replica_id(lab, target), req)
    elif kind == "token-expiry":
        faults.token_ttl = float(req["seconds"])
    elif kind == "workload":
        start_workload(lab, target, req.get("name") or "web")
    reported, _ = lab.cluster.reports.view(None, lab.now())
    return {"faults": vars(faults).copy(), "health": lab.cluster.health(), "reported": reported}


def engine_fault(lab: Lab, name: str, down: bool) -> None:
    """The node's dockerd stops (its containers stop, its socket refuses) or starts again."""
    node = lab.nodes[name]
    if node.engine is None:
        raise ValueError(f"node {name!r} has no Docker engine (it is not an MKE node)")
    if down and not node.engine_down:
        node.engine.shut_down()
    elif not down and node.engine_down:
        node.engine.boot()


def start_workload(lab: Lab, name: str, container: str) -> None:
    """A user's application container on an MKE node's engine (docker run -d nginx:1.25), which MKE's
    /containers/json then lists: the node is no longer dedicated to MSR. `clear` removes it."""
    node = lab.nodes.get(name)
    if node is None or node.engine is None:
        nodes = ", ".join(n.name for n in lab.mke_nodes()) or "none"
        raise ValueError(f"{name!r} is not an MKE node (MKE nodes: {nodes})")
    node.engine.load_image(WORKLOAD_IMAGE)
    node.engine.run_service(container, WORKLOAD_IMAGE, {"msr-lab.fault": "workload"}, health=None)
    with lab.lock:
        node.workloads.append(container)
    lab.changed()


def seed_virtual_node(node, count: int) -> None:
    """A virtual MKE worker (up --mke-nodes) runs `count` application containers app-1..N, which MKE's
    /containers/json lists as it lists every node's containers (they are not workload-fault containers:
    `clear` leaves them)."""
    node.engine.load_image(WORKLOAD_IMAGE)
    for i in range(count):
        node.engine.run_service(f"app-{i + 1}", WORKLOAD_IMAGE, {"msr-lab.virtual": "true"}, health=None)


def stop_workloads(lab: Lab) -> None:
    """Remove the containers the workload fault started (those still there)."""
    for node in lab.mke_nodes():
        with lab.lock:
            names, node.workloads = list(node.workloads), []
        for container in names:
            c = node.engine.find_container(container)
            if c is not None:
                node.engine.remove_container(c, force=True)


def replica_fault(lab: Lab, kind: str, rid: str, req: dict) -> None:
    with lab.lock:
        r = lab.cluster.replicas[rid]
        if kind == "slow-ping":
            r.ping_delay_ms = int(req["ms"])
        elif kind == "hang-ping":
            r.ping_hang = True
        else:
            r.reports_frozen = kind == "freeze-health"
    lab.changed()


def _on_off(value) -> bool:
    if str(value).lower() not in ("on", "off"):
        raise ValueError(f"admin-scheduling takes on or off, not {value!r}")
    return str(value).lower() == "on"


def quorum_loss(lab: Lab) -> None:
    """Stop just enough running replicas that the healthy ones are a minority."""
    cluster = lab.cluster
    running = [r.id for r in cluster.replicas.values() if cluster.replica_ok(r.id)]
    majority = len(cluster.replicas) // 2 + 1
    to_stop = len(running) - majority + 1
    if to_stop <= 0:
        return
    for rid in running[:to_stop]:
        cluster.stop_replica(rid)


def lb_power(lab: Lab, desc: dict, name: str, up: bool) -> None:
    """An LB node goes down (unreachable, its processes gone) or boots again; repeating either is a no-op."""
    node = lab.nodes.get(name)
    if node is None or node.role != "lb":
        lbs = ", ".join(n for n, x in lab.nodes.items() if x.role == "lb") or "none"
        raise ValueError(f"{name!r} is not an LB node (LB nodes: {lbs})")
    info = desc["nodes"][name]
    with lab.lock:
        if node.lb_down == (not up):
            return
        node.lb_down = not up
    if up:
        lbnode.power_on(info["pid"], info["veth"], link=not node.partitioned)
    else:
        lbnode.power_off(info["pid"], info["veth"])
    lab.changed()


def clear(lab: Lab, desc: dict) -> None:
    """Undo the service faults, start stopped engines, remove the workload containers, heal every partition and
    boot downed LB nodes. Stopped and ghost replicas stay as they are."""
    faults = lab.faults
    faults.kill_at_phase = None
    faults.join_seconds = float(lab.config.get("join_seconds", 3.0))
    faults.mke_status = None
    faults.mke_error_count = 0
    faults.mke_latency_ms = 0
    faults.token_ttl = 0.0
    with lab.lock:
        for r in lab.cluster.replicas.values():
            r.ping_delay_ms, r.ping_hang, r.reports_frozen = 0, False, False
    for node in lab.nodes.values():
        if node.engine_down:
            node.engine.boot()
    stop_workloads(lab)
    for name, node in lab.nodes.items():
        if node.partitioned:
            if not node.lb_down and not node.virtual:
                netns.partition(desc["nodes"][name]["veth"], down=False)
            node.partitioned = False
    for name in [n for n, node in lab.nodes.items() if node.lb_down]:
        lb_power(lab, desc, name, up=True)
    lab.changed()
