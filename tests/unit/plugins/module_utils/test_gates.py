# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The replica states and the gates every decision comes from (_topology)."""

from __future__ import annotations

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _topology as topo
from ansible_collections.msr.replicas.plugins.module_utils._plan import plan

A, B, C, D = ("a" * 12, "b" * 12, "c" * 12, "d" * 12)
WORKER = {"role": "worker", "state": "ready", "availability": "active"}


def nodes(**overrides):
    found = {}
    for name in ("w1", "w2", "w3", "w4", "m1"):
        found[name] = dict(WORKER, name=name, role="manager" if name.startswith("m") else "worker")
    for name, change in overrides.items():
        found[name].update(change)
    return list(found.values())


def view(states, status=True, issues=(), node_list=None):
    replicas = [{"id": rid, "node": node, "state": state} for rid, (node, state) in sorted(states.items())]
    return {"replicas": replicas, "status_available": status, "nodes": node_list or nodes(),
            "current_issues": [{"critical": True, "description": text} for text in issues]}


def cluster(*args, **kwargs):
    return topo.Cluster.from_observed(view(*args, **kwargs))


@pytest.mark.parametrize("args, state", [
    # has_containers, running, node_state, status_available, reported, ping_ok, nodes_all_ready
    ((True, True, "ready", True, "OK", True, True), "healthy"),
    ((True, True, "ready", True, "Replica reported health too long ago: 2026-12-01T10:00:00Z", True, True), "unhealthy"),
    ((True, True, "ready", True, None, True, True), "partial"),
    ((True, True, "down", True, "OK", False, False), "unreachable"),
    ((False, False, None, True, "disconnected", False, True), "ghost"),
    # MKE cannot list a down node's containers: such a member may come back, it is not a ghost.
    ((False, False, None, True, "disconnected", False, False), "unreachable"),
    # A partitioned node still shown ready (heartbeat delay) while the replica reports OK: not a ghost.
    ((False, False, None, True, "OK", False, True), "unreachable"),
    ((True, True, "ready", False, None, True, True), "healthy"),
    ((True, False, "ready", True, "OK", True, True), "unhealthy"),
    ((True, True, "ready", True, "OK", False, True), "unhealthy"),
])
def test_replica_state(args, state):
    assert topo.replica_state(*args) == state


def test_quorum_is_unknown_without_membership():
    assert topo.quorum_summary(3, 3, known=False)["has_quorum"] is None
    assert cluster({A: ("w1", "healthy")}, status=False).quorum()["has_quorum"] is None


@pytest.mark.parametrize("node, change, expected", [
    ("m1", {}, "MKE node m1 is a manager; an MSR replica goes only on a ready, active worker"),
    ("w4", {"state": "down"}, "MKE node w4 is down; an MSR replica goes only on a ready, active worker"),
    ("w4", {"availability": "drain"},
     "MKE node w4 is set to availability drain; an MSR replica goes only on a ready, active worker"),
    ("zz", {}, "MKE has no node named 'zz' (nodes: m1, w1, w2, w3, w4)"),
    ("w4", {}, None),
])
def test_node_gate(node, change, expected):
    c = topo.Cluster.from_observed(view({A: ("w1", "healthy")}, node_list=nodes(**({node: change} if change else {}))))
    assert topo.node_problem(c, node) == expected


def test_join_gate_sees_every_problem_the_bootstrapper_would():
    ok = cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "healthy")})
    gate = topo.join_gate(ok, "w4", {})
    assert gate["refusals"] == [] and gate["existing"]["replica_id"] == A
    for broken in (cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "healthy")}, issues=["Table dtr2.x not ready"]),
                   cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "unreachable")}),
                   cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "partial")})):
        gate = topo.join_gate(broken, "w4", {})
        assert len(gate["refusals"]) == 1, gate
        assert gate["refusals"][0].startswith("refusing to join a replica while the cluster is unhealthy: ")
        unsafe = topo.join_gate(broken, "w4", {"unsafe_join": True})
        assert unsafe["refusals"] == [] and unsafe["unsafe"] and unsafe["warnings"][0].startswith("UNSAFE JOIN")
    unknown = topo.join_gate(cluster({A: ("w1", "healthy")}, status=False), "w4", {"unsafe_join": True})
    assert unknown["refusals"] == ["refusing to join a replica: no replica answered cluster_status, so the "
                                   "cluster's health is unknown"]
    lost = topo.join_gate(cluster({A: ("w1", "healthy"), B: ("w2", "ghost"), C: ("w3", "unhealthy")}), "w4",
                          {"unsafe_join": True})
    assert lost["refusals"][0].startswith("refusing to join a replica: 1 of 3 replicas are healthy, 2 are needed.")


def test_existing_replica_must_be_a_healthy_member_that_stays():
    c = cluster({A: ("w1", "healthy"), B: ("w2", "unhealthy"), C: ("w3", "healthy")})
    assert topo.pick_existing(c, wanted=B)[1] == "existing_replica_id %s is not healthy (unhealthy)" % B
    assert topo.pick_existing(c, exclude=[A], wanted=A)[1].startswith("existing_replica_id %s is the replica being" % A)
    assert topo.pick_existing(c, wanted=D)[1].startswith("existing_replica_id %s is not a replica" % D)
    assert topo.pick_existing(c, exclude=[A])[0]["replica_id"] == C
    assert topo.pick_existing(c, avoid=[A])[0]["replica_id"] == C


def test_remove_gate():
    three = {A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "healthy")}
    c = cluster(three)
    gate = topo.remove_gate(c, [c.find(C)], {})
    assert gate["refusals"] == [] and gate["action"] == "remove" and gate["existing"]["replica_id"] == A
    # Membership unknown: no proof that quorum survives, even with force.
    unknown = cluster(three, status=False)
    assert topo.remove_gate(unknown, [unknown.find(C)], {"force": True})["refusals"] == [
        "refusing to remove replica %s: no replica answered cluster_status, so quorum cannot be checked" % C]
    # A healthy one while another is unhealthy: the bootstrapper refuses; force skips only that pre-check.
    five = cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "healthy"), D: ("w4", "unhealthy")})
    refused = topo.remove_gate(five, [five.find(C)], {})
    assert refused["refusals"][0].startswith("refusing the remove of replica %s while %s (" % (C, D))
    forced = topo.remove_gate(five, [five.find(C)], {"force": True})
    assert forced["refusals"] == [] and forced["warnings"][0].startswith("force: remove of replica %s" % C)
    # force never bypasses the quorum guard.
    weak = cluster({A: ("w1", "healthy"), B: ("w2", "healthy"), C: ("w3", "unhealthy")})
    q = topo.remove_gate(weak, [weak.find(A)], {"force": True})
    assert q["refusals"][0].startswith("refusing to remove replica %s: 2 of 3 replicas are healthy" % A)
    # A partial join is destroyed, never removed.
    partial = cluster({A: ("w1", "healthy"), B: ("w2", "partial")})
    gate = topo.remove_gate(partial, [partial.find(B)], {})
    assert gate == {"refusals": [], "warnings": [], "action": "destroy", "existing": None}


def test_plan_uses_node_states_and_issues_of_a_cluster_info_result():
    observed = view({A: ("w1", "healthy")}, node_list=nodes(w2={"state": "down"}))
    result = plan(["w1", "w2", "m1"], observed, {"allow_even": True})
    assert result["actions"] == [] and sorted(result["refusals"]) == [
        "Cannot join m1: MKE node m1 is a manager; an MSR replica goes only on a ready, active worker",
        "Cannot join w2: MKE node w2 is down; an MSR replica goes only on a ready, active worker"]
    issues = plan(["w1", "w2", "w3"], view({A: ("w1", "healthy")}, issues=["Table `dtr2.repositories` is not ready"]))
    assert issues["actions"] == [] and "MSR reports a critical issue: Table `dtr2.repositories`" in issues["refusals"][0]
    unknown = plan(["w1"], view({A: ("w1", "healthy")}, status=False))
    assert unknown["actions"] == [] and unknown["refusals"][0].startswith("Replicas exist but none is a known")
    assert unknown["quorum"]["has_quorum"] is None


def test_unreachable_replica_is_removed_like_an_unhealthy_one_and_kept_without_remove_unhealthy():
    observed = view({A: ("w1", "healthy"), B: ("w2", "healthy"), C: (None, "unreachable")})
    assert [(s["action"], s.get("replica_id")) for s in plan(["w1", "w2", "w3"], observed)["actions"]] == [
        ("remove", C), ("join", None)]
    kept = plan(["w1", "w2"], observed, {"remove_unhealthy": False, "allow_even": True})
    assert kept["actions"] == [] and any("is unreachable and kept" in w for w in kept["warnings"])
    ghost = plan(["w1", "w2", "w3"], view({A: ("w1", "healthy"), B: ("w2", "healthy"), C: (None, "ghost")}),
                 {"remove_unhealthy": False})
    assert [s["action"] for s in ghost["actions"]] == ["remove", "join"]
