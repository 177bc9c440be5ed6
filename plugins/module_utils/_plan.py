# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replica change planner. PRIVATE to this collection.

Every step is admitted by the same gates the replica module uses (_topology.join_gate, remove_gate),
applied to the cluster as it will be at that step, so a plan and a module run never disagree.

Plan result::

    {"actions": [...], "blocked_actions": [...], "refusals": [...], "warnings": [...],
     "skipped": [...], "final_count": int, "final_nodes": [...], "quorum": {...}}

Actions: ``destroy`` (replica_id, node: a partial join), ``remove`` (replica_id, replica_ids, node,
existing_replica_id, existing_node), ``join`` (node, existing_*), ``install`` (node), ``lb_add`` /
``lb_remove`` (node), ``emergency_repair`` (existing_*, removed). When ``refusals`` is not empty, nothing may be
done: ``actions`` is empty and ``blocked_actions`` shows what the plan would have done once the refusals
are resolved.
"""

from __future__ import annotations

from ansible_collections.msr.replicas.plugins.module_utils._topology import (
    EMERGENCY_REPAIR_HINT,
    Cluster,
    describe,
    join_gate,
    node_problem,
    normalize_policy,
    remove_gate,
    repair_survivors,
    running_bootstrapper,
    running_bootstrappers,
)


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


def _existing_fields(member):
    # existing_replica_id None means "the replica joined on existing_node earlier in this plan".
    return {"existing_replica_id": member["replica_id"], "existing_node": member["node"]}


def plan(desired, observed, policy=None, eligible=None, lb_pool=None):
    """Ordered, one-change-at-a-time actions that take ``observed`` to ``desired``.

    desired: MKE node names that should run a replica (inventory group msr).
    observed: replicas (see _topology), or a whole cluster_info result (then MKE node roles and states
        and MSR's critical issues take part in the gates too).
    policy: keys of _topology.DEFAULT_POLICY.
    eligible: optional MKE node names that may host a replica; joins elsewhere are refused.
    lb_pool: optional node names currently in the load-balancer pool; None means no LB actions.
    """
    policy = normalize_policy(policy)
    desired = _normalize_nodes(desired, "desired")
    eligible = _normalize_nodes(eligible, "eligible")
    lb_pool = _normalize_nodes(lb_pool, "lb_pool")
    if desired is None:
        raise ValueError("desired must be a list of node names")
    cluster = Cluster.from_observed(observed, pool=lb_pool)
    result = _empty_result(cluster)
    refusals = result["refusals"]
    # A bootstrapper still at work (e.g. the join of a run whose controller was killed) changes the cluster
    # under any plan made now: nothing is planned until it ends.
    refusals.extend(running_bootstrapper(b) for b in running_bootstrappers(observed))

    if not desired:
        # An empty group must never mean "remove every replica" (kubespray #12061).
        refusals.append("The desired replica set is empty; refusing to plan (it would remove every replica).")
        return result
    if not cluster.members:
        return _plan_install(result, cluster, sorted(desired), policy, eligible)
    if not cluster.status_available or cluster.total() == 0:
        # Containers but no known member: never guess, never install.
        refusals.append("Replicas exist but none is a known cluster member (no replica answered cluster_status); "
                        "refusing to plan.")
        return result
    if not result["quorum"]["has_quorum"]:
        return _plan_quorum_lost(result, cluster, desired, policy)
    if policy["emergency_repair"] or policy["emergency_repair_confirmed"]:
        result["warnings"].append("emergency_repair is set but the cluster has quorum; it is ignored.")
    steps = []
    _Planner(result, steps, cluster, policy, desired, eligible).run()
    return _finish(result, steps, cluster, policy)


def _empty_result(cluster):
    return {
        "actions": [],
        "blocked_actions": [],
        "refusals": [],
        "warnings": [],
        "skipped": [],
        "final_count": cluster.total(),
        "final_nodes": sorted(m["node"] for m in cluster.voters() if m["node"]),
        "quorum": cluster.quorum(),
    }


class _Planner(object):
    def __init__(self, result, steps, cluster, policy, desired, eligible):
        self.result, self.steps, self.cluster, self.policy = result, steps, cluster, policy
        self.desired, self.eligible = desired, eligible
        self.refusals, self.warnings = result["refusals"], result["warnings"]
        self.avoid = set()

    def run(self):
        cluster = self.cluster
        # Replicas worth keeping: healthy, on a desired node, first by id when a node has several.
        keep = {}
        for m in cluster.members:
            if m["healthy"] and m["node"] in self.desired and m["node"] not in keep:
                keep[m["node"]] = m
        broken = cluster.unhealthy()
        kept = []
        if not self.policy["remove_unhealthy"]:
            # Ghosts are certainly dead: they go even then.
            kept = [m for m in broken if not m["ghost"]]
            broken = [m for m in broken if m["ghost"]]
            for m in kept:
                self.warnings.append("Replica %s on %s is %s and kept (remove_unhealthy is false)."
                                     % (m["replica_id"], m["node"], m["state"]))
        extras = [m for m in cluster.healthy() if keep.get(m["node"]) is not m]
        extras.sort(key=lambda m: (m["node"] or "", m["replica_id"]))
        self.avoid = set(m["replica_id"] for m in broken)
        if self.policy["allow_scale_down"]:
            self.avoid.update(m["replica_id"] for m in extras)

        # Rule 12: partial joins are destroyed on their node (they are not members).
        for m in sorted(cluster.partials(), key=lambda m: m["replica_id"]):
            self.steps.append({"action": "destroy", "replica_id": m["replica_id"], "node": m["node"],
                               "reason": "partial join (containers but not a cluster member)"})
            cluster.remove(m)
        # Rule 2: unhealthy and ghost replicas go first, in one remove: the bootstrapper removes a replica
        # only while every other one is healthy.
        if broken and not self._remove(sorted(broken, key=lambda m: (not m["ghost"], m["replica_id"])),
                                       "ghost or unhealthy replica"):
            return
        if broken:
            # What they caused (unreachable servers, tables not ready) goes with them; a module run re-checks.
            cluster.critical_issues = []
        self._joins(keep, kept)
        self._scale_down(extras)
        self._lb_drift()

    def _joins(self, keep, kept):
        # Rule 1 and 4: join missing nodes one at a time. A node whose unhealthy replica is kept gets no second one.
        occupied = set(m["node"] for m in kept)
        for node in sorted(n for n in self.desired if n not in keep and n not in occupied):
            if self.eligible is not None and node not in self.eligible:
                self.refusals.append("Node %s is in the desired set but is not an eligible MKE node." % node)
                continue
            gate = join_gate(self.cluster, node, self.policy, avoid=self.avoid)
            if gate["refusals"]:
                self.refusals.extend("Cannot join %s: %s" % (node, r) for r in gate["refusals"])
                continue
            step = {"action": "join", "node": node, "reason": "node is desired but runs no healthy replica"}
            step.update(_existing_fields(gate["existing"]))
            if gate["unsafe"]:
                step["unsafe_join"] = True
                self.warnings.extend(gate["warnings"])
            self.steps.append(step)
            self.cluster.join(node)
            # Rule 8: in the pool only once healthy; a join completes only when the replica is healthy.
            self._lb_add(node, None, "new replica is healthy")

    def _scale_down(self, extras):
        # Rule 10: healthy replicas outside the desired set leave only when scale-down is allowed.
        for m in extras:
            if m["node"] in self.desired:
                why = "second healthy replica on node %s" % m["node"]
            else:
                why = "node %s is not in the desired set" % m["node"]
            if not self.policy["allow_scale_down"]:
                self.result["skipped"].append({"action": "remove", "replica_id": m["replica_id"], "node": m["node"],
                                               "reason": why + "; needs allow_scale_down"})
                self.warnings.append("Not removing healthy replica %s (%s): scale-down needs allow_scale_down."
                                     % (m["replica_id"], why))
                continue
            if not self._remove([m], "scale-down: " + why):
                return

    def _remove(self, targets, reason):
        """Append the remove (after its LB drains); False when a gate refuses it (rules 3, 6)."""
        gate = remove_gate(self.cluster, targets, self.policy, avoid=self.avoid)
        self.warnings.extend(gate["warnings"])
        if gate["refusals"]:
            self.refusals.extend(gate["refusals"])
            return False
        pool = self.cluster.pool
        for t in targets:
            # Rule 8: drain and leave the pool before the remove, unless another replica still serves the node.
            others = [m for m in self.cluster.healthy() if m["node"] == t["node"] and not any(m is x for x in targets)]
            if pool is not None and t["node"] in pool and not others:
                self.steps.append({"action": "lb_remove", "node": t["node"], "replica_id": t["replica_id"],
                                   "reason": "drain before removing the replica"})
                pool.discard(t["node"])
        step = {"action": "remove", "replica_id": targets[0]["replica_id"],
                "replica_ids": [t["replica_id"] for t in targets], "node": targets[0]["node"], "reason": reason}
        step.update(_existing_fields(gate["existing"]))
        self.steps.append(step)
        for t in targets:
            self.cluster.remove(t)
        return True

    def _lb_add(self, node, replica_id, reason):
        pool = self.cluster.pool
        if pool is not None and node not in pool:
            self.steps.append({"action": "lb_add", "node": node, "replica_id": replica_id, "reason": reason})
            pool.add(node)

    def _lb_drift(self):
        # Healthy replicas missing from the pool, members that are not replicas any more.
        pool = self.cluster.pool
        if pool is None:
            return
        replica_nodes = set(m["node"] for m in self.cluster.members if m["node"])
        for m in sorted((m for m in self.cluster.healthy() if m["node"]), key=lambda m: (m["node"], m["replica_id"] or "")):
            self._lb_add(m["node"], m["replica_id"], "healthy replica missing from the pool")
        for node in sorted(pool - replica_nodes):
            self.steps.append({"action": "lb_remove", "node": node, "replica_id": None,
                               "reason": "pool member runs no replica"})
            pool.discard(node)


def _finish(result, steps, cluster, policy):
    final = cluster.total()
    result["final_count"] = final
    result["final_nodes"] = sorted(m["node"] for m in cluster.voters() if m["node"])
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


def _plan_install(result, cluster, desired, policy, eligible):
    if not policy["allow_install"]:
        result["refusals"].append("No replica exists; installing a new MSR needs allow_install.")
        return result
    for node in desired:
        bad = node_problem(cluster, node)
        if bad is None and eligible is not None and node not in eligible:
            bad = "Node %s is in the desired set but is not an eligible MKE node." % node
        if bad:
            result["refusals"].append(bad)
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


def _plan_quorum_lost(result, cluster, desired, policy, wanted=None):
    """Rule 7: explain and stop; emergency repair only with two separate explicit flags."""
    q = result["quorum"]
    detail = "%d of %d replicas are healthy, %d are needed." % (q["healthy"], q["size"], q["majority"])
    if not (policy["emergency_repair"] and policy["emergency_repair_confirmed"]):
        result["refusals"].append(detail + " " + EMERGENCY_REPAIR_HINT)
        return result
    survivors = repair_survivors(cluster, desired)
    result["survivors"] = [m["replica_id"] for m in survivors]
    if not survivors:
        result["refusals"].append(detail + " No replica survives (none is a member whose containers run on a ready "
                                  "node): emergency-repair is impossible; restore MSR from the newest backup "
                                  "(the bootstrapper's restore).")
        return result
    survivor = survivors[0]
    if wanted:
        chosen = [m for m in survivors if m["replica_id"] == wanted]
        if not chosen:
            member = cluster.find(wanted)
            why = ("is not a replica of this cluster" if member is None else
                   "cannot be kept (%s; emergency-repair needs a member whose containers run on a ready node)"
                   % describe(member))
            result["refusals"].append("Replica %s %s; survivors: %s." % (wanted, why, ", ".join(result["survivors"])))
            return result
        survivor = chosen[0]
    removed = sorted(m["replica_id"] for m in cluster.voters() if m is not survivor)
    result["actions"] = [{
        "action": "emergency_repair",
        "existing_replica_id": survivor["replica_id"],
        "existing_node": survivor["node"],
        "removed": removed,
        "reason": detail + " Emergency repair keeps only this replica; re-plan afterwards to join the others.",
    }]
    result["warnings"].append("Emergency repair confirmed: every replica except %s (%s) leaves the cluster: %s."
                              % (survivor["replica_id"], survivor["node"], ", ".join(removed) or "none"))
    result["final_count"] = 1
    result["final_nodes"] = [survivor["node"]]
    return result


def plan_emergency_repair(observed, policy=None, desired=None, replica_id=None):
    """plan()'s result for an emergency repair alone (the emergency_repair module and playbook).

    With quorum there is nothing to repair: no action, no refusal, ``quorum.has_quorum`` true (so a second
    run after a repair is a no-op). ``replica_id``: the replica to keep (checked); default the best of
    _topology.repair_survivors, preferring ``desired`` nodes. ``survivors`` lists the candidates.
    """
    policy = normalize_policy(policy)
    desired = _normalize_nodes(desired, "desired") or set()
    cluster = Cluster.from_observed(observed)
    result = _empty_result(cluster)
    result["survivors"] = []
    if not cluster.members:
        result["refusals"].append("No replica exists: there is nothing to repair (install MSR, or restore it from "
                                  "the newest backup).")
    elif not cluster.status_available:
        result["refusals"].append("No replica answered cluster_status, so the membership and quorum are unknown; "
                                  "refusing an emergency repair on a guess.")
    elif not result["quorum"]["has_quorum"]:
        _plan_quorum_lost(result, cluster, desired, policy, wanted=replica_id)
    return result
