# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Quorum arithmetic, the replica states and the safety gates. PRIVATE to this collection.

This is the one source of truth of DESIGN.md section 4: the replica module, the planner (_plan) and
the playbooks (through the filters and cluster_info) take every decision from these functions, so
check mode predicts each refusal of a real run. Pure functions over plain data (no I/O, stdlib only).

Observed replica (extra keys are ignored, so cluster_info replicas can be passed as they are)::

    {"replica_id": "0123456789ab",   # or "id"
     "node": "worker-1",             # MKE node name; None when no container of it is seen
     "state": "healthy"}             # healthy / unhealthy / unreachable / ghost / partial

Without ``state`` it is derived from ``healthy`` (or ``health == "OK"``), ``ghost`` and
``in_cluster_status`` (or ``member``): a replica without a node is a ghost, one outside
cluster_status is a partial join.
"""

from __future__ import annotations


def running_bootstrapper(b):
    """Why nothing may change while this bootstrapper container (cluster_info's ``bootstrappers``) runs."""
    return ("The bootstrapper container %s (%s) is still running on node %s, started by an earlier or another run "
            "(a controller killed mid-run leaves it running); wait until it ends, or stop it with "
            "'docker rm -f %s' on that node, then run again." % (b.get("name"), b.get("command"), b.get("node"),
                                                                 b.get("name")))


def running_bootstrappers(observed):
    """The running bootstrapper containers of a cluster_info result (none for a bare replica list)."""
    if not isinstance(observed, dict):
        return []
    return [b for b in observed.get("bootstrappers") or [] if b.get("running")]


EMERGENCY_REPAIR_HINT = (
    "Quorum is lost: this cannot be fixed by joining or removing replicas. Bring the stopped or "
    "partitioned replicas back if you can; otherwise run the emergency_repair playbook "
    "(ansible-playbook msr.replicas.emergency_repair -e msr_emergency_repair=true "
    "-e msr_emergency_repair_confirmed=true) or follow the emergency-repair runbook "
    "(docs/docsite/rst/playbook_emergency_repair.rst); automation only runs emergency-repair when both "
    "emergency_repair and emergency_repair_confirmed are true."
)

STATES = ("healthy", "unhealthy", "unreachable", "ghost", "partial")
# Only these node states, roles and availabilities may receive a replica (msr2.md 3.3).
PLACEABLE = {"state": "ready", "role": "worker", "availability": "active"}

DEFAULT_POLICY = {
    "allow_scale_down": False,
    "allow_even": False,
    "allow_install": False,
    "unsafe_join": False,
    "remove_unhealthy": True,
    "max_replicas": 7,
    "emergency_repair": False,
    "emergency_repair_confirmed": False,
    "force": False,
}


# ---------------------------------------------------------------- quorum arithmetic

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


def quorum_summary(total, healthy, known=True):
    """The numbers cluster_info reports as ``quorum``; has_quorum is None when membership is unknown."""
    return {
        "size": total,
        "healthy": healthy,
        "majority": majority(total),
        "failures_tolerated": failures_tolerated(total),
        "has_quorum": has_quorum(total, healthy) if known else None,
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


# ---------------------------------------------------------------- replica states

def replica_state(has_containers, running, node_state, status_available, reported, ping_ok, nodes_all_ready):
    """The state of one replica from what MKE and MSR show of it.

    reported: its replica_health value (None when it is not a key of it, or nobody answered).
    A member without containers is a ghost only when MKE reaches every node and MSR does not report it
    OK: MKE cannot list the containers of a node it cannot reach (and shows that node ready until its
    heartbeat times out), and such a replica may come back with its data.
    """
    if has_containers and status_available and reported is None:
        return "partial"
    if not has_containers:
        return "unreachable" if (not nodes_all_ready or reported == "OK") else "ghost"
    if node_state != "ready":
        return "unreachable"
    if running and ping_ok and (reported == "OK" or (reported is None and not status_available)):
        return "healthy"
    return "unhealthy"


def normalize_replica(item):
    """One observed replica as {"replica_id", "node", "state", "healthy", "ghost", "member"}."""
    if not isinstance(item, dict):
        raise ValueError("observed replica must be a dict, got %r" % (item,))
    rid = item.get("replica_id", item.get("id"))
    if not isinstance(rid, str) or not rid:
        raise ValueError("observed replica without replica_id: %r" % (item,))
    node = item.get("node") or None
    if node is not None and not isinstance(node, str):
        raise ValueError("replica %s: node must be a string" % rid)
    state = item.get("state")
    if state is None:
        state = _derived_state(rid, item, node)
    elif state not in STATES:
        raise ValueError("replica %s: state must be one of %s, got %r" % (rid, ", ".join(STATES), state))
    elif node is None and state not in ("ghost", "unreachable"):
        raise ValueError("replica %s: a %s replica has containers on a node, but node is not given" % (rid, state))
    # What emergency-repair needs of a survivor (cluster_info's container_state, ping, timestamp); without
    # container_state only a healthy replica is known to run.
    running = item["container_state"] == "running" if item.get("container_state") else state == "healthy"
    ping = item.get("ping")     # an HTTP status: the replica's web server answers, if with an error
    return {"replica_id": rid, "node": node, "state": state, "healthy": state == "healthy",
            "ghost": state == "ghost", "member": state != "partial", "detail": item.get("detail"),
            "running": running, "ping_answered": isinstance(ping, int) and not isinstance(ping, bool),
            "timestamp": item.get("timestamp") if isinstance(item.get("timestamp"), str) else ""}


def _derived_state(rid, item, node):
    if "healthy" in item:
        healthy = item["healthy"]
        if not isinstance(healthy, bool):
            raise ValueError("replica %s: healthy must be a boolean" % rid)
    elif "health" in item:
        healthy = item["health"] == "OK"
    else:
        raise ValueError("replica %s: neither state, healthy nor health given" % rid)
    member = item.get("member", item.get("in_cluster_status", True))
    if not isinstance(member, bool):
        raise ValueError("replica %s: member/in_cluster_status must be a boolean" % rid)
    if item.get("ghost") or node is None:
        return "ghost"
    if not member:
        return "partial"
    return "healthy" if healthy else "unhealthy"


def describe(member):
    what = {"unhealthy": "unhealthy", "unreachable": "unreachable: its MKE node is down or cannot be reached",
            "ghost": "ghost: a member without containers", "partial": "partial join: containers but not a member",
            "healthy": "healthy"}[member["state"]]
    return "%s (%s)" % (member["replica_id"], member.get("detail") or what)


# ---------------------------------------------------------------- the cluster being changed

class Cluster(object):
    """The observed cluster, changed one step at a time while a plan is built or checked.

    ``nodes``: MKE node name -> {"role", "state", "availability"}, or None when not known (then node
    placement is not checked here). ``critical_issues``: critical current_issues texts of MSR.
    """

    def __init__(self, replicas, status_available=True, nodes=None, critical_issues=(), pool=None):
        self.members = [dict(r) for r in replicas]
        self.status_available = status_available
        self.nodes = None if nodes is None else dict(nodes)
        self.critical_issues = list(critical_issues)
        self.pool = None if pool is None else set(pool)

    @classmethod
    def from_observed(cls, observed, pool=None):
        """From a list of replicas, or from a cluster_info result / module view (a dict)."""
        if isinstance(observed, dict):
            if not isinstance(observed.get("replicas"), list):
                raise ValueError("observed as a dict must be a cluster_info result (with a replicas list)")
            items = observed["replicas"]
            status = observed.get("status_available")
            nodes = _nodes(observed.get("nodes"))
            issues = [i.get("description") or i.get("message") or str(i)
                      for i in (observed.get("current_issues") or []) if isinstance(i, dict) and i.get("critical")]
        else:
            items, status, nodes, issues = observed or [], None, None, []
        replicas = sorted((normalize_replica(item) for item in items), key=lambda r: r["replica_id"])
        for before, after in zip(replicas, replicas[1:]):
            if before["replica_id"] == after["replica_id"]:
                raise ValueError("replica %s observed twice" % after["replica_id"])
        if status is None:
            # A bare list: membership is known when some replica is a member.
            status = any(r["member"] for r in replicas)
        return cls(replicas, bool(status), nodes, issues, pool)

    def total(self):
        return len(self.voters())

    def voters(self):
        return [m for m in self.members if m["member"]]

    def healthy(self):
        return [m for m in self.members if m["healthy"]]

    def unhealthy(self):
        return [m for m in self.members if m["member"] and not m["healthy"]]

    def partials(self):
        return [m for m in self.members if not m["member"]]

    def find(self, replica_id):
        for m in self.members:
            if m["replica_id"] == replica_id:
                return m
        return None

    def quorum(self):
        return quorum_summary(self.total(), len(self.healthy()), self.status_available)

    def remove(self, member):
        self.members.remove(member)

    def join(self, node):
        # The id of a new replica is only known once the bootstrapper ran.
        self.members.append({"replica_id": None, "node": node, "state": "healthy", "healthy": True,
                             "ghost": False, "member": True})


def _nodes(items):
    if not items:
        return None
    return dict((n["name"], n) for n in items if isinstance(n, dict) and n.get("name"))


def problems(cluster):
    """Why the cluster is not all-OK (rule 4); an empty list is the one health predicate."""
    found = []
    if not cluster.status_available:
        found.append("no replica answered cluster_status, so membership and quorum are unknown")
    for m in cluster.members:
        if not m["healthy"]:
            found.append(describe(m))
    for text in cluster.critical_issues:
        found.append("MSR reports a critical issue: %s" % text)
    return found


def healthy(cluster):
    return not problems(cluster)


def node_problem(cluster, node):
    """Why ``node`` may not receive a replica, or None (it must be a ready, active MKE worker)."""
    if cluster.nodes is None:
        return None
    info = cluster.nodes.get(node)
    if info is None:
        return "MKE has no node named '%s' (nodes: %s)" % (node, ", ".join(sorted(cluster.nodes)) or "none")
    if info.get("role") != PLACEABLE["role"]:
        why = "a %s" % info.get("role")
    elif info.get("state") != PLACEABLE["state"]:
        why = info.get("state")
    elif info.get("availability") != PLACEABLE["availability"]:
        why = "set to availability %s" % info.get("availability")
    else:
        return None
    return "MKE node %s is %s; an MSR replica goes only on a ready, active worker" % (node, why)


def pick_existing(cluster, exclude=(), avoid=(), wanted=None, label="existing_replica_id"):
    """(member, refusal): the replica whose database a command uses (rule 3).

    It is healthy now and is none of ``exclude``; ``wanted`` is the user's choice, checked. Otherwise
    replicas no later step removes come first, then known ids in order, so one stable replica is used.
    """
    exclude = set(exclude)
    if wanted:
        member = cluster.find(wanted)
        if wanted in exclude:
            return None, ("%s %s is the replica being removed; it must be another, healthy replica" % (label, wanted))
        known = ", ".join(m["replica_id"] for m in cluster.voters() if m["replica_id"]) or "none"
        if member is None:
            return None, "%s %s is not a replica of this cluster (replicas: %s)" % (label, wanted, known)
        if not member["member"]:
            return None, ("%s %s is not a member of the cluster (a partial join: containers but not in "
                          "cluster_status); use a member: %s" % (label, wanted, known))
        if not member["healthy"]:
            return None, "%s %s is not healthy (%s)" % (label, wanted, member.get("detail") or member["state"])
        return member, None
    candidates = [m for m in cluster.healthy() if m["replica_id"] is None or m["replica_id"] not in exclude]
    if not candidates:
        return None, "no healthy replica other than the ones being changed to run the bootstrapper from"
    candidates.sort(key=lambda m: (m["replica_id"] in avoid, m["replica_id"] is None, m["replica_id"] or "",
                                   m["node"] or ""))
    return candidates[0], None


def join_gate(cluster, node, policy, wanted_existing=None, avoid=()):
    """{"refusals", "warnings", "existing", "unsafe"} for joining a replica on ``node`` now (rules 1, 3, 7)."""
    policy = normalize_policy(policy)
    result = {"refusals": [], "warnings": [], "existing": None, "unsafe": False}
    refusals = result["refusals"]
    bad_node = node_problem(cluster, node)
    if bad_node:
        refusals.append(bad_node)
    if not cluster.status_available:
        refusals.append("refusing to join a replica: no replica answered cluster_status, so the cluster's "
                        "health is unknown")
        return result
    q = cluster.quorum()
    if q["size"] and not q["has_quorum"]:
        refusals.append("refusing to join a replica: %d of %d replicas are healthy, %d are needed. %s"
                        % (q["healthy"], q["size"], q["majority"], EMERGENCY_REPAIR_HINT))
        return result
    found = problems(cluster)
    if found:
        if not policy["unsafe_join"]:
            refusals.append("refusing to join a replica while the cluster is unhealthy: %s. Remove unhealthy or "
                            "ghost replicas first, or set unsafe_join: true (risks split brain and data loss)"
                            % "; ".join(found))
        else:
            result["unsafe"] = True
            result["warnings"].append("UNSAFE JOIN: joining node %s while replicas are unhealthy (%s). This can "
                                      "cause split brain and data loss." % (node, "; ".join(found)))
    existing, why = pick_existing(cluster, avoid=avoid, wanted=wanted_existing)
    if why:
        refusals.append(why)
    result["existing"] = existing
    return result


def remove_gate(cluster, targets, policy, wanted_existing=None, avoid=()):
    """{"refusals", "warnings", "action", "existing"} for taking ``targets`` (members of ``cluster``) out.

    A partial join is not a member: it is destroyed on its node, never removed (rule 12). A member is
    removed only when membership is known, from a healthy replica that stays, while every other
    replica is healthy (the bootstrapper's own pre-check, which policy ``force`` skips, as --force does)
    and never when the healthy rest would lose majority (rule 6; ``force`` never bypasses that).
    """
    policy = normalize_policy(policy)
    result = {"refusals": [], "warnings": [], "action": "remove", "existing": None}
    refusals = result["refusals"]
    ids = ", ".join(t["replica_id"] for t in targets)
    if all(not t["member"] for t in targets):
        result["action"] = "destroy"
        return result
    if any(not t["member"] for t in targets):
        raise ValueError("partial joins and members cannot be taken out by one command")
    if not cluster.status_available:
        refusals.append("refusing to remove replica %s: no replica answered cluster_status, so quorum cannot be "
                        "checked" % ids)
        return result
    total, healthy_count = cluster.total(), len(cluster.healthy())
    removing_healthy = len([t for t in targets if t["healthy"]])
    if total - len(targets) < 1:
        refusals.append("replica %s is the last replica; remove cannot remove the last one (destroy does, and this "
                        "collection does not automate it)" % ids)
        return result
    if not keeps_quorum(total, healthy_count, removing_healthy=removing_healthy,
                        removing_unhealthy=len(targets) - removing_healthy):
        left = healthy_count - removing_healthy
        refusals.append("refusing to remove replica %s: %d of %d replicas are healthy, and after the removal %d healthy "
                        "of %d would not be a majority. %s" % (ids, healthy_count, total, left, total - len(targets),
                                                               EMERGENCY_REPAIR_HINT if not has_quorum(total, healthy_count) else
                                                               "Repair or remove the unhealthy replicas first."))
        return result
    others_bad = [m for m in cluster.unhealthy() if not any(m is t for t in targets)]
    if others_bad:
        text = ("remove of replica %s while %s: the bootstrapper requires every other replica to be healthy"
                % (ids, "; ".join(describe(m) for m in others_bad)))
        if policy["force"]:
            result["warnings"].append("force: " + text + " (its pre-checks are skipped)")
        else:
            refusals.append("refusing the " + text + " (remove them together, or set force)")
    existing, why = pick_existing(cluster, exclude=[t["replica_id"] for t in targets], avoid=avoid,
                                  wanted=wanted_existing)
    if why:
        refusals.append(why)
    result["existing"] = existing
    return result


def repair_survivors(cluster, desired=()):
    """The members emergency-repair can keep, best first (rule 7).

    Under quorum loss no replica is healthy (every /_ping fails), so "healthiest" means: a member, not a
    ghost, whose containers run on a ready node (state unhealthy, not unreachable), since the
    bootstrapper needs its RethinkDB. Preferred: healthy ones, then those on a desired node (the msr
    group), then those whose web server still answers /_ping (with an error), then the newest health
    report, then the lowest id, so the choice is stable from one run to the next.
    """
    desired = set(desired or ())
    found = [m for m in cluster.members
             if m["member"] and not m["ghost"] and m["node"] and m["state"] in ("healthy", "unhealthy")
             and m.get("running", m["healthy"])]
    found.sort(key=lambda m: m["replica_id"] or "")
    found.sort(key=lambda m: m.get("timestamp") or "", reverse=True)
    found.sort(key=lambda m: (not m["healthy"], m["node"] not in desired, not m.get("ping_answered", m["healthy"])))
    return found


def backup_gate(cluster, wanted=None):
    """(member, refusal): the replica a backup reads from (msr2.md 1.11).

    backup reads RethinkDB through --existing-replica-id, so it needs a known membership, a healthy
    majority and a healthy member; by default the same one every run, as the docs advise.
    """
    if not cluster.status_available:
        return None, ("refusing to back up: no replica answered cluster_status, so the membership and the "
                      "quorum of the cluster are unknown")
    q = cluster.quorum()
    if not q["has_quorum"]:
        return None, ("refusing to back up: only %d of %d replicas are healthy and %d are needed for quorum; the "
                      "bootstrapper cannot read the database without a healthy majority. %s"
                      % (q["healthy"], q["size"], q["majority"], EMERGENCY_REPAIR_HINT))
    return pick_existing(cluster, wanted=wanted, label="replica_id")
