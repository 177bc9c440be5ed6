# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Quorum arithmetic and the replica change planner. PRIVATE to this collection.

Pure functions over plain data (no I/O, stdlib only) so that every decision the playbooks take
can be unit-tested. The planner implements the safety rules of DESIGN.md section 4.

Observed replica (extra keys are ignored, so cluster_info replicas can be passed as they are)::

    {"replica_id": "0123456789ab",   # or "id"
     "node": "worker-1",             # MKE node name; None/"" when the replica has no node
     "healthy": True,                # or "health": "OK" (the cluster_status replica_health value)
     "ghost": False,                 # in the membership but without containers or node
     "in_cluster_status": True}      # False: containers but not a RethinkDB member (partial join)

Plan result::

    {"actions": [...], "blocked_actions": [...], "refusals": [...], "warnings": [...],
     "skipped": [...], "final_count": int, "final_nodes": [...], "quorum": {...}}

When ``refusals`` is not empty, nothing may be done: ``actions`` is empty and ``blocked_actions``
shows what the plan would have done once the refusals are resolved.
"""

from __future__ import annotations

EMERGENCY_REPAIR_HINT = (
    "Quorum is lost: this cannot be fixed by joining or removing replicas. Follow the "
    "emergency-repair runbook (docs/runbooks/emergency-repair.md); automation only runs "
    "emergency-repair when both emergency_repair and emergency_repair_confirmed are true."
)

DEFAULT_POLICY = {
    "allow_scale_down": False,
    "allow_even": False,
    "allow_install": False,
    "unsafe_join": False,
    "remove_unhealthy": True,
    "max_replicas": 7,
    "emergency_repair": False,
    "emergency_repair_confirmed": False,
}


def majority(n):
    """Replicas that must be healthy for a membership of ``n`` to keep quorum (n//2 + 1)."""
    n = _count(n, "n")
    if n == 0:
        return 0
    return n // 2 + 1


def failures_tolerated(n):
    """Replicas that may fail while a membership of ``n`` keeps quorum: 1->0, 3->1, 5->2, 7->3."""
    n = _count(n, "n")
    if n == 0:
        return 0
    return n - majority(n)


def has_quorum(total, healthy):
    """True when ``healthy`` replicas are a majority of a membership of ``total``."""
    total = _count(total, "total")
    healthy = _count(healthy, "healthy")
    if healthy > total:
        raise ValueError("healthy (%d) cannot exceed total (%d)" % (healthy, total))
    return total > 0 and healthy >= majority(total)


def keeps_quorum(total, healthy, removing_healthy=0, removing_unhealthy=0, adding=0):
    """True when the membership still has quorum after the change.

    Joined replicas count as healthy (a join only completes once the new replica is healthy).
    Removing the last replica never keeps quorum: that is a destroy, not a scale-down.
    """
    total = _count(total, "total")
    healthy = _count(healthy, "healthy")
    removing_healthy = _count(removing_healthy, "removing_healthy")
    removing_unhealthy = _count(removing_unhealthy, "removing_unhealthy")
    adding = _count(adding, "adding")
    if healthy > total:
        raise ValueError("healthy (%d) cannot exceed total (%d)" % (healthy, total))
    if removing_healthy > healthy or removing_unhealthy > total - healthy:
        raise ValueError("cannot remove more replicas than exist")
    after_total = total - removing_healthy - removing_unhealthy + adding
    after_healthy = healthy - removing_healthy + adding
    return has_quorum(after_total, after_healthy)


def quorum_summary(total, healthy):
    """The numbers cluster_info reports as ``quorum``."""
    return {
        "size": total,
        "healthy": healthy,
        "majority": majority(total),
        "failures_tolerated": failures_tolerated(total),
        "has_quorum": has_quorum(total, healthy),
    }


def _count(value, name):
    # bool is an int subclass; True as a replica count is always a caller bug.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s must be a non-negative integer, got %r" % (name, value))
    return value


def normalize_policy(policy):
    """Defaults filled in; unknown keys raise so a typo cannot silently disable a guard."""
    result = dict(DEFAULT_POLICY)
    for key, value in (policy or {}).items():
        if key not in DEFAULT_POLICY:
            raise ValueError("unknown policy key %r (known: %s)" % (key, ", ".join(sorted(DEFAULT_POLICY))))
        if key == "max_replicas":
            result[key] = _count(value, key)
        elif isinstance(value, bool):
            result[key] = value
        else:
            raise ValueError("policy %s must be a boolean, got %r" % (key, value))
    return result


def normalize_replica(item):
    """One observed replica as {"replica_id", "node", "healthy", "ghost", "member"}."""
    if not isinstance(item, dict):
        raise ValueError("observed replica must be a dict, got %r" % (item,))
    rid = item.get("replica_id", item.get("id"))
    if not isinstance(rid, str) or not rid:
        raise ValueError("observed replica without replica_id: %r" % (item,))
    node = item.get("node") or None
    if node is not None and not isinstance(node, str):
        raise ValueError("replica %s: node must be a string" % rid)
    if "healthy" in item:
        healthy = item["healthy"]
        if not isinstance(healthy, bool):
            raise ValueError("replica %s: healthy must be a boolean" % rid)
    elif "health" in item:
        healthy = item["health"] == "OK"
    else:
        raise ValueError("replica %s: neither healthy nor health given" % rid)
    # A replica without a node has no containers anywhere: it is a ghost, and ghosts are never healthy.
    ghost = bool(item.get("ghost")) or node is None
    # Only RethinkDB members count for quorum; a partial join left containers but never became one.
    member = item.get("member", item.get("in_cluster_status", True))
    if not isinstance(member, bool):
        raise ValueError("replica %s: member/in_cluster_status must be a boolean" % rid)
    return {"replica_id": rid, "node": node, "healthy": healthy and member and not ghost,
            "ghost": ghost, "member": member}


def _normalize_nodes(values, name):
    if values is None:
        return None
    if isinstance(values, str):
        raise ValueError("%s must be a list of node names, not a string" % name)
    result = set()
    for value in values:
        if not isinstance(value, str) or not value:
            raise ValueError("%s contains an invalid node name: %r" % (name, value))
        result.add(value)
    return result


class _Cluster(object):
    """The membership as it evolves while the plan is built (one step at a time)."""

    def __init__(self, replicas, pool):
        self.members = [dict(r) for r in replicas]
        self.pool = None if pool is None else set(pool)

    def total(self):
        return len([m for m in self.members if m["member"]])

    def healthy(self):
        return [m for m in self.members if m["healthy"]]

    def unhealthy(self):
        return [m for m in self.members if not m["healthy"]]

    def remove(self, member):
        self.members.remove(member)

    def join(self, node):
        # The id of a new replica is only known once the bootstrapper ran.
        self.members.append({"replica_id": None, "node": node, "healthy": True, "ghost": False, "member": True})


def _pick_existing(cluster, target, avoid_ids):
    """A replica that is healthy at this step and is not ``target``.

    Prefers replicas that no later step removes, then known ids, so one stable replica is used.
    """
    candidates = [m for m in cluster.healthy() if m is not target]
    if not candidates:
        return None
    candidates.sort(key=lambda m: (
        m["replica_id"] in avoid_ids,
        m["replica_id"] is None,
        m["replica_id"] or "",
        m["node"] or "",
    ))
    return candidates[0]


def _existing_fields(member):
    # existing_replica_id None means "the replica joined on existing_node earlier in this plan".
    return {"existing_replica_id": member["replica_id"], "existing_node": member["node"]}


def plan(desired, observed, policy=None, eligible=None, lb_pool=None):
    """Ordered, one-change-at-a-time actions that take ``observed`` to ``desired``.

    desired: MKE node names that should run a replica (inventory group msr).
    observed: replicas as seen through MKE and cluster_status (see module docstring).
    policy: keys of DEFAULT_POLICY.
    eligible: optional MKE node names that may host a replica; joins elsewhere are refused.
    lb_pool: optional node names currently in the load-balancer pool; None means no LB actions.
    """
    policy = normalize_policy(policy)
    desired = _normalize_nodes(desired, "desired")
    eligible = _normalize_nodes(eligible, "eligible")
    lb_pool = _normalize_nodes(lb_pool, "lb_pool")
    if desired is None:
        raise ValueError("desired must be a list of node names")
    # Sorted so that the plan does not depend on the order the APIs listed the replicas in.
    replicas = sorted((normalize_replica(item) for item in (observed or [])), key=lambda r: r["replica_id"])
    seen = set()
    for replica in replicas:
        if replica["replica_id"] in seen:
            raise ValueError("replica %s observed twice" % replica["replica_id"])
        seen.add(replica["replica_id"])

    total = len([r for r in replicas if r["member"]])
    healthy_count = len([r for r in replicas if r["healthy"]])
    result = {
        "actions": [],
        "blocked_actions": [],
        "refusals": [],
        "warnings": [],
        "skipped": [],
        "final_count": total,
        "final_nodes": sorted(r["node"] for r in replicas if r["node"] and r["member"]),
        "quorum": quorum_summary(total, healthy_count),
    }
    refusals = result["refusals"]
    warnings = result["warnings"]

    if not desired:
        # An empty group must never mean "remove every replica" (kubespray #12061).
        refusals.append("The desired replica set is empty; refusing to plan (it would remove every replica).")
        return result

    if not replicas:
        return _plan_install(result, sorted(desired), policy, eligible, lb_pool)
    if total == 0:
        # Containers but no member means nobody answered cluster_status: never guess, never install.
        refusals.append("Replicas exist but none is a known cluster member (cluster_status unavailable?); "
                        "refusing to plan.")
        return result

    if not has_quorum(total, healthy_count):
        return _plan_quorum_lost(result, replicas, desired, policy)
    if policy["emergency_repair"] or policy["emergency_repair_confirmed"]:
        warnings.append("emergency_repair is set but the cluster has quorum; it is ignored.")

    steps = []
    cluster = _Cluster(replicas, lb_pool)
    # Replicas worth keeping: healthy, on a desired node, first by id when a node has several.
    keep = {}
    for replica in replicas:
        if replica["healthy"] and replica["node"] in desired and replica["node"] not in keep:
            keep[replica["node"]] = replica

    to_remove_unhealthy = [r for r in replicas if not r["healthy"]]
    kept = []
    if not policy["remove_unhealthy"]:
        # Ghosts and partial joins are certainly broken: they go even then.
        kept = [r for r in to_remove_unhealthy if r["member"] and not r["ghost"]]
        to_remove_unhealthy = [r for r in to_remove_unhealthy if r["ghost"] or not r["member"]]
        for replica in kept:
            warnings.append("Replica %s on %s is unhealthy and kept (remove_unhealthy is false)."
                            % (replica["replica_id"], replica["node"]))
    # Ghosts first: they are certainly dead and block every join.
    to_remove_unhealthy.sort(key=lambda r: (not r["ghost"], r["member"], r["replica_id"]))
    extras = [r for r in replicas if r["healthy"] and keep.get(r["node"]) is not r]
    extras.sort(key=lambda r: (r["node"] or "", r["replica_id"]))
    avoid_ids = set(r["replica_id"] for r in to_remove_unhealthy)
    if policy["allow_scale_down"]:
        avoid_ids.update(r["replica_id"] for r in extras)

    # Rule 2: unhealthy and ghost replicas go first.
    for replica in to_remove_unhealthy:
        if replica["ghost"]:
            reason = "ghost replica (no node or containers)"
        elif not replica["member"]:
            reason = "partial join (containers but not a cluster member)"
        else:
            reason = "unhealthy replica"
        if not _add_remove(steps, cluster, replica, avoid_ids, reason, refusals):
            break

    # Rule 1 and 4: join missing nodes one at a time, never next to an unhealthy replica.
    # A node whose unhealthy replica is kept gets no second replica.
    occupied = set(r["node"] for r in kept)
    missing = sorted(node for node in desired if node not in keep and node not in occupied)
    for node in missing:
        if eligible is not None and node not in eligible:
            refusals.append("Node %s is in the desired set but is not an eligible MKE node." % node)
            continue
        unhealthy = cluster.unhealthy()
        if unhealthy and not policy["unsafe_join"]:
            refusals.append(
                "Cannot join %s while replica(s) %s are unhealthy: remove them first or set unsafe_join."
                % (node, ", ".join(sorted(m["replica_id"] for m in unhealthy))))
            continue
        existing = _pick_existing(cluster, None, avoid_ids)
        if existing is None:
            refusals.append("No healthy replica to join %s from." % node)
            continue
        step = {"action": "join", "node": node, "reason": "node is desired but runs no healthy replica"}
        step.update(_existing_fields(existing))
        if unhealthy:
            step["unsafe_join"] = True
            warnings.append("UNSAFE: joining %s while %s are unhealthy (unsafe_join) risks split-brain and data loss."
                            % (node, ", ".join(sorted(m["replica_id"] for m in unhealthy))))
        steps.append(step)
        cluster.join(node)
        # Rule 8: in the pool only once healthy; a join completes only when the replica is healthy.
        if cluster.pool is not None and node not in cluster.pool:
            steps.append({"action": "lb_add", "node": node, "replica_id": None, "reason": "new replica is healthy"})
            cluster.pool.add(node)

    # Rule 10: healthy replicas outside the desired set leave only when scale-down is allowed.
    for replica in extras:
        if replica["node"] in desired:
            why = "second healthy replica on node %s" % replica["node"]
        else:
            why = "node %s is not in the desired set" % replica["node"]
        if not policy["allow_scale_down"]:
            result["skipped"].append({"action": "remove", "replica_id": replica["replica_id"],
                                      "node": replica["node"], "reason": why + "; needs allow_scale_down"})
            warnings.append("Not removing healthy replica %s (%s): scale-down needs allow_scale_down."
                            % (replica["replica_id"], why))
            continue
        if not _add_remove(steps, cluster, replica, avoid_ids, "scale-down: " + why, refusals):
            break

    # LB drift: healthy replicas missing from the pool, members that are not replicas any more.
    if cluster.pool is not None:
        replica_nodes = set(m["node"] for m in cluster.members if m["node"])
        healthy_nodes = set(m["node"] for m in cluster.healthy() if m["node"])
        for node in sorted(healthy_nodes - cluster.pool):
            steps.append({"action": "lb_add", "node": node, "replica_id": _id_on(cluster, node),
                          "reason": "healthy replica missing from the pool"})
            cluster.pool.add(node)
        for node in sorted(cluster.pool - replica_nodes):
            steps.append({"action": "lb_remove", "node": node, "replica_id": None,
                          "reason": "pool member runs no replica"})
            cluster.pool.discard(node)

    return _finish(result, steps, cluster, policy)


def _id_on(cluster, node):
    for member in cluster.members:
        if member["node"] == node and member["healthy"]:
            return member["replica_id"]
    return None


def _add_remove(steps, cluster, replica, avoid_ids, reason, refusals):
    """Append the remove (with its LB drain); False when it would break quorum (rule 6)."""
    member = None
    for candidate in cluster.members:
        if candidate["replica_id"] == replica["replica_id"]:
            member = candidate
    others_unhealthy = [m["replica_id"] for m in cluster.unhealthy() if m is not member]
    if member["healthy"] and others_unhealthy:
        # The bootstrapper's remove: "All other replicas must be healthy and will remain healthy".
        refusals.append("Not removing healthy replica %s while replica(s) %s are unhealthy."
                        % (member["replica_id"], ", ".join(sorted(others_unhealthy))))
        return False
    removing_healthy = 1 if member["healthy"] else 0
    removing_unhealthy = 1 if member["member"] and not member["healthy"] else 0
    if not keeps_quorum(cluster.total(), len(cluster.healthy()),
                        removing_healthy=removing_healthy, removing_unhealthy=removing_unhealthy):
        refusals.append("Removing replica %s would leave %d healthy of %d replicas, below the majority of %d."
                        % (member["replica_id"], len(cluster.healthy()) - removing_healthy,
                           cluster.total() - 1, majority(max(cluster.total() - 1, 0))))
        return False
    existing = _pick_existing(cluster, member, avoid_ids)
    if existing is None:
        refusals.append("No healthy replica other than %s to run the remove from." % member["replica_id"])
        return False
    node = member["node"]
    # Rule 8: drain and leave the pool before the remove, unless another replica still serves the node.
    if cluster.pool is not None and node in cluster.pool and not _other_on(cluster, member):
        steps.append({"action": "lb_remove", "node": node, "replica_id": member["replica_id"],
                      "reason": "drain before removing the replica"})
        cluster.pool.discard(node)
    step = {"action": "remove", "replica_id": member["replica_id"], "node": node, "reason": reason}
    step.update(_existing_fields(existing))
    steps.append(step)
    cluster.remove(member)
    return True


def _other_on(cluster, member):
    return any(m is not member and m["node"] == member["node"] and m["healthy"] for m in cluster.members)


def _finish(result, steps, cluster, policy):
    final = cluster.total()
    result["final_count"] = final
    result["final_nodes"] = sorted(m["node"] for m in cluster.members if m["node"] and m["member"])
    # Rule 5: only the end state must be odd; 1 -> 3 passes through 2 for a moment.
    if final % 2 == 0 and final > 0 and not policy["allow_even"]:
        result["refusals"].append(
            "The plan ends with %d replicas, an even number that tolerates no more failures than %d; "
            "change the desired set or set allow_even." % (final, final - 1))
    if final > policy["max_replicas"]:
        result["warnings"].append("The plan ends with %d replicas, above %d: replication slows every write."
                                  % (final, policy["max_replicas"]))
    if result["refusals"]:
        result["blocked_actions"] = steps
    else:
        result["actions"] = steps
    return result


def _plan_install(result, desired, policy, eligible, lb_pool):
    if not policy["allow_install"]:
        result["refusals"].append("No replica exists; installing a new MSR needs allow_install.")
        return result
    bad = [node for node in desired if eligible is not None and node not in eligible]
    for node in bad:
        result["refusals"].append("Node %s is in the desired set but is not an eligible MKE node." % node)
    cluster = _Cluster([], lb_pool)
    steps = []
    for node in desired:
        if not cluster.members:
            steps.append({"action": "install", "node": node, "reason": "no replica exists"})
        else:
            step = {"action": "join", "node": node, "reason": "node is desired but runs no healthy replica"}
            step.update(_existing_fields(cluster.members[0]))
            steps.append(step)
        cluster.join(node)
        if cluster.pool is not None and node not in cluster.pool:
            steps.append({"action": "lb_add", "node": node, "replica_id": None, "reason": "new replica is healthy"})
            cluster.pool.add(node)
    if cluster.pool is not None:
        for node in sorted(cluster.pool - set(desired)):
            steps.append({"action": "lb_remove", "node": node, "replica_id": None,
                          "reason": "pool member runs no replica"})
            cluster.pool.discard(node)
    return _finish(result, steps, cluster, policy)


def _plan_quorum_lost(result, replicas, desired, policy):
    """Rule 7: explain and stop; emergency repair only with two separate explicit flags."""
    healthy = sorted((r for r in replicas if r["healthy"]),
                     key=lambda r: (r["node"] not in desired, r["replica_id"]))
    q = result["quorum"]
    detail = "%d of %d replicas are healthy, %d are needed." % (q["healthy"], q["size"], q["majority"])
    if not (policy["emergency_repair"] and policy["emergency_repair_confirmed"]):
        result["refusals"].append(detail + " " + EMERGENCY_REPAIR_HINT)
        return result
    if not healthy:
        result["refusals"].append(detail + " No healthy replica survives: emergency-repair is impossible; "
                                  "restore from a backup.")
        return result
    survivor = healthy[0]
    result["actions"] = [{
        "action": "emergency_repair",
        "existing_replica_id": survivor["replica_id"],
        "existing_node": survivor["node"],
        "reason": detail + " Emergency repair keeps only this replica; re-plan afterwards to join the others.",
    }]
    result["warnings"].append("Emergency repair confirmed: every replica except %s leaves the cluster."
                              % survivor["replica_id"])
    result["final_count"] = 1
    result["final_nodes"] = [survivor["node"]]
    return result
