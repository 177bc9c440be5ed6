"""`remove`, `destroy` and `emergency-repair` (msr2.md 1.1, 1.3, 1.7)."""
from __future__ import annotations

import json
from urllib.parse import quote

from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper.mke_client import MkeError
from msr_lab.bootstrapper.join import _HEX12
from msr_lab.bootstrapper.run import Run


def _leftovers(run: Run, rid: str, node_name: str) -> list[str]:
    """dtr-*-<rid> containers and volumes still on a node (delete_replica_objects skips unreachable nodes)."""
    node = run.lab.node(node_name)
    if node is None or node.engine is None:
        return []
    suffix = f"-{rid}"
    names = [c.name for c in node.engine.list_containers(True, {"name": [suffix]})
             if c.name.startswith("dtr-") and c.name.endswith(suffix)]
    names += [v for v in list(node.engine.volumes) if v.startswith("dtr-") and v.endswith(suffix)]
    return names


def _ask_existing(run: Run, members: dict) -> str:
    existing = run.opts.get("existing-replica-id")
    if existing:
        return existing
    ok = [r for r in sorted(members) if run.cluster.replica_ok(r)]
    typed = run.prompt(f"This cluster contains the replicas: {' '.join(sorted(members))}\n"
                       f"Choose a healthy replica to connect to [{ok[0] if ok else ''}]: ", F.EXISTING)
    if typed is None:
        run.fatal("Missing required value for --existing-replica-id: pass the flag or set the "
                  f"${F.EXISTING.env(run.msr)} environment variable (no TTY to prompt on)")
    if not (typed or ok):
        run.fatal("Missing required value for --existing-replica-id")
    return typed or ok[0]


def remove(run: Run) -> int:
    run.begin("replica remove")
    raw = run.opts.get("replica-ids")
    if run.opts.get("replica-id"):
        run.warn("The --replica-id flag is deprecated; use --replica-ids")
        raw = ",".join(x for x in (raw, run.opts.get("replica-id")) if x)
    run.connect()
    raw = raw or run.need(F.REMOVE_IDS)
    ids = list(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    if not ids:
        run.fatal("No replica IDs given with --replica-ids")
    members = run.members()
    existing = _ask_existing(run, members)
    run.phase("check")
    run.info("Checking the replicas to remove")
    unknown = [r for r in ids if r not in members]
    if unknown:
        run.fatal(f"Replica {', '.join(unknown)} not found in this DTR cluster (replicas: {', '.join(sorted(members))})")
    if existing in ids:
        run.fatal(f"The replica {existing} given with --existing-replica-id is also listed for removal; "
                  "connect to a replica that stays in the cluster")
    run.require_member(existing, members)
    run.require_healthy(existing)
    remaining = [r for r in members if r not in ids]
    others_bad = {r: why for r, why in run.unhealthy().items() if r in remaining}
    healthy_left = [r for r in remaining if run.cluster.replica_ok(r)]
    if run.opts.get("force", False):
        run.warn("Ignoring pre-checks because of --force")
    else:
        hint = " Use --force to ignore pre-checks." if run.msr else ""
        if others_bad:
            run.fatal("All other replicas must be healthy when removing a replica. Unhealthy replicas: "
                      f"{', '.join(sorted(others_bad))}; reasons: "
                      f"{', '.join(others_bad[r] for r in sorted(others_bad))}.{hint}")
        if len(healthy_left) < len(remaining) // 2 + 1:
            run.fatal(f"Removing {', '.join(ids)} would leave {len(healthy_left)} healthy replicas out of "
                      f"{len(remaining)}, which is not a majority.{hint}")
    run.phase("remove")
    for rid in ids:
        run.info(f"Removing replica {rid} from the cluster")
        run.cluster.remove_member(rid)
    run.phase("replication")
    count = len(run.cluster.replicas)
    run.replication_lines(count, 0.0)
    run.phase("cleanup")
    for rid in ids:
        node = members[rid].node
        run.info(f"Removing the containers and volumes of replica {rid} on node {node}")
        run.cluster.delete_replica_objects(rid, node)
        left = _leftovers(run, rid, node)
        if left:
            run.warn(f"Could not remove the containers and volumes of replica {rid}: node {node} is unreachable. "
                     f"Left behind: {', '.join(sorted(left))}. Run 'destroy --replica-id {rid}' on that node "
                     "once it is reachable")
    run.phase("complete")
    run.info(f"Successfully removed replica(s) {', '.join(ids)}")
    run.count_lines(count)
    return 0


def _objects_through_mke(run: Run, rid: str) -> dict[str, dict[str, list[str]]]:
    """node -> {"containers": [...], "volumes": [...]} (`<node>/<name>`) of the replica's objects, on the
    nodes MKE reaches."""
    suffix = f"-{rid}"
    found: dict[str, dict[str, list[str]]] = {}
    try:
        containers = run.mke.get("/containers/json?all=1&filters=" + quote(json.dumps({"name": [suffix]})))
        kinds = [("containers", ((c.get("Names") or [""])[0]).lstrip("/")) for c in containers or []]
        kinds += [("volumes", v) for v in run.mke.volumes()]
    except MkeError as e:
        run.fatal(f"Failed to search UCP for the containers and volumes of replica {rid}: {e}")
    for kind, full in kinds:
        node, _, name = full.rpartition("/")
        if node and name.startswith("dtr-") and name.endswith(suffix):
            found.setdefault(node, {"containers": [], "volumes": []})[kind].append(full)
    return found


def _destroy_on(run: Run, rid: str, node: str, objects: dict[str, list[str]] | None = None) -> None:
    """Remove the replica's containers, then its volumes, on `node` through MKE; FATA (and nothing
    more removed) when MKE cannot reach the node."""
    try:
        if objects is None:
            # first a call that needs the node itself, so an unreachable node refuses before anything goes
            run.mke.remove_container(f"{node}/dtr-nginx-{rid}")
            objects = _objects_through_mke(run, rid).get(node, {"containers": [], "volumes": []})
        for ref in objects["containers"]:
            run.mke.remove_container(ref)
        for ref in objects["volumes"]:
            run.mke.remove_volume(ref)
    except MkeError as e:
        run.fatal(f"Failed to destroy replica {rid} on node {node}: {e}")


def destroy(run: Run) -> int:
    run.begin("replica destroy")
    run.connect()
    rid = run.need(F.DESTROY_ID)
    if not _HEX12.match(rid):
        run.fatal(f"Invalid replica ID '{rid}': it must be a 12-character hexadecimal string")
    members = run.members()
    run.phase("destroy")
    if rid in members:
        node = members[rid].node
        run.info(f"Removing the containers and volumes of replica {rid} on node {node}")
        _destroy_on(run, rid, node)
        run.cluster.mark_ghost(rid)
    else:
        # Not a member: only leftover objects, wherever MKE can see them.
        found = _objects_through_mke(run, rid)
        if not found:
            run.fatal(f"No containers or volumes of replica {rid} were found on the UCP nodes (nodes UCP "
                      "cannot reach are not searched)")
        for node in sorted(found):
            run.info(f"Removing the containers and volumes of replica {rid} on node {node}")
            _destroy_on(run, rid, node, found[node])
    run.phase("complete")
    run.info(f"Replica {rid} was destroyed")
    if rid in run.cluster.replicas:   # the last replica with data takes the cluster with it: no ghost then
        run.warn(f"The replica was destroyed without notifying the rest of the cluster. Run 'remove --replica-ids "
                 f"{rid}' with a healthy --existing-replica-id to remove it from the cluster")
    return 0


def emergency_repair(run: Run) -> int:
    run.begin("emergency repair")
    run.connect()
    members = run.members()
    keep = run.opts.get("existing-replica-id")
    if not keep:
        typed = run.prompt(f"This cluster contains the replicas: {' '.join(sorted(members))}\n"
                           "Choose the replica to keep: ", F.EXISTING)
        if not typed:
            run.fatal("Missing required value for --existing-replica-id: pass the flag or set the "
                      f"${F.EXISTING.env(run.msr)} environment variable" + (" (no TTY to prompt on)" if typed is None else ""))
        keep = typed
    run.require_member(keep, members)
    rep = members[keep]
    lab_node = run.lab.node(rep.node)
    if rep.state != "running" or lab_node is None or not lab_node.reachable:
        run.fatal(f"The replica {keep} is not running (state: {rep.state}); choose a replica whose containers run")
    run.phase("repair")
    if run.cluster.has_quorum():
        run.warn("The cluster has not lost quorum; emergency-repair is only needed when a majority of replicas "
                 "is unhealthy")
    others = sorted(r for r in members if r != keep)
    run.info(f"Repairing the cluster using replica {keep}")
    if others:
        run.info(f"Stopping and removing the containers of replicas {', '.join(others)}")
        if run.opts.get("force", False):
            run.info(f"Removing the volumes of replicas {', '.join(others)}")
    run.cluster.emergency_repair(keep, force=bool(run.opts.get("force", False)))
    run.phase("complete")
    run.info(f"Emergency repair is complete: replica {keep} is now the only replica of the cluster")
    run.count_lines(len(run.cluster.replicas))
    return 0
