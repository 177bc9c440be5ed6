# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.msr.replicas.plugins.module_utils import _topology as topo
from ansible_collections.msr.replicas.plugins.module_utils._plan import plan, plan_emergency_repair

A, B, C, D, E, F = ("a" * 12, "b" * 12, "c" * 12, "d" * 12, "e" * 12, "f" * 12)


def rep(rid, node, healthy=True, **extra):
    item = {"replica_id": rid, "node": node, "healthy": healthy}
    item.update(extra)
    return item


def kinds(steps):
    return [(s["action"], s["node"]) for s in steps]


# ---------------------------------------------------------------- arithmetic

@pytest.mark.parametrize("n, majority, tolerated", [
    (0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 2, 1), (4, 3, 1), (5, 3, 2), (6, 4, 2), (7, 4, 3), (9, 5, 4),
])
def test_majority_and_failures_tolerated(n, majority, tolerated):
    assert topo.majority(n) == majority
    assert topo.failures_tolerated(n) == tolerated


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_counts_reject_non_integers(bad):
    with pytest.raises(ValueError):
        topo.majority(bad)


@pytest.mark.parametrize("total, healthy, kwargs, expected", [
    (3, 3, {"removing_healthy": 1}, True),        # 3 -> 2, both healthy
    (3, 2, {"removing_healthy": 1}, False),       # 1 healthy of 2 left
    (3, 2, {"removing_unhealthy": 1}, True),      # dropping the dead one is always fine
    (5, 3, {"removing_unhealthy": 2}, True),
    (5, 3, {"removing_healthy": 1}, False),
    (1, 1, {"removing_healthy": 1}, False),       # removing the last replica is a destroy
    (1, 1, {"adding": 1}, True),
    (3, 1, {}, False),
    (2, 1, {"adding": 1}, True),
])
def test_keeps_quorum(total, healthy, kwargs, expected):
    assert topo.keeps_quorum(total, healthy, **kwargs) is expected


def test_keeps_quorum_rejects_impossible_input():
    with pytest.raises(ValueError):
        topo.keeps_quorum(3, 4)
    with pytest.raises(ValueError):
        topo.keeps_quorum(3, 3, removing_unhealthy=1)


def test_quorum_summary():
    assert topo.quorum_summary(5, 3) == {"size": 5, "healthy": 3, "majority": 3,
                                         "failures_tolerated": 2, "has_quorum": True}


# ---------------------------------------------------------------- input checks

@pytest.mark.parametrize("policy", [{"allow_scaledown": True}, {"allow_even": "yes"}, {"max_replicas": -1}])
def test_bad_policy_is_an_error(policy):
    with pytest.raises(ValueError):
        plan(["w1"], [rep(A, "w1")], policy)


@pytest.mark.parametrize("observed", [
    [{"node": "w1", "healthy": True}],
    [rep(A, "w1", healthy="yes")],
    [{"replica_id": A, "node": "w1"}],
    [rep(A, "w1"), rep(A, "w2")],
])
def test_bad_observed_is_an_error(observed):
    with pytest.raises(ValueError):
        plan(["w1"], observed)


def test_desired_as_string_is_an_error():
    with pytest.raises(ValueError):
        plan("w1", [rep(A, "w1")])


def test_cluster_info_shape_is_accepted():
    observed = [{"id": A, "node": "w1", "health": "OK", "version": "2.9.20", "ping": 200},
                {"id": B, "node": "w2", "health": "replica reported health too long ago"},
                {"id": C, "node": "w3", "health": "OK"}]
    result = plan(["w1", "w2", "w3"], observed)
    assert kinds(result["actions"]) == [("remove", "w2"), ("join", "w2")]


# ---------------------------------------------------------------- concrete plans

def test_no_op_when_converged():
    result = plan(["w1", "w2", "w3"], [rep(A, "w1"), rep(B, "w2"), rep(C, "w3")])
    assert result["actions"] == [] and result["refusals"] == [] and result["warnings"] == []
    assert result["final_count"] == 3


@pytest.mark.parametrize("desired, observed, expected", [
    # 1 -> 3: two joins from the only replica
    (["w1", "w2", "w3"], [rep(A, "w1")], [("join", "w2"), ("join", "w3")]),
    # 3 -> 5
    (["w1", "w2", "w3", "w4", "w5"], [rep(A, "w1"), rep(B, "w2"), rep(C, "w3")],
     [("join", "w4"), ("join", "w5")]),
])
def test_scale_up(desired, observed, expected):
    result = plan(desired, observed)
    assert result["refusals"] == []
    assert kinds(result["actions"]) == expected
    for step in result["actions"]:
        assert step["existing_replica_id"] == A
        assert step["existing_node"] == "w1"
    assert result["final_count"] == len(desired)


def test_replace_failed_replica_removes_before_joining():
    observed = [rep(A, "w1"), rep(B, "w2", healthy=False), rep(C, "w3")]
    result = plan(["w1", "w2", "w3"], observed)
    assert kinds(result["actions"]) == [("remove", "w2"), ("join", "w2")]
    remove, join = result["actions"]
    assert remove["replica_id"] == B and remove["existing_replica_id"] == A
    assert join["existing_replica_id"] == A
    assert result["final_count"] == 3


def test_ghost_removed_first_by_id_only():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, None, healthy=False), rep(E, "w5", healthy=False)]
    result = plan(["w1", "w2", "w3", "w4", "w5"], observed)
    assert result["refusals"] == []
    # One remove of both: the bootstrapper removes a replica only while every other one is healthy.
    first = result["actions"][0]
    assert (first["action"], first["replica_id"], first["replica_ids"]) == ("remove", D, [D, E])
    assert first["node"] is None and first["existing_replica_id"] == A
    assert "ghost" in first["reason"]
    assert kinds(result["actions"][1:]) == [("join", "w4"), ("join", "w5")]


def test_partial_join_is_destroyed_not_removed_and_does_not_count_for_quorum():
    observed = [rep(A, "w1"), rep(B, "w2", healthy=False, in_cluster_status=False)]
    result = plan(["w1", "w2", "w3"], observed)
    assert result["quorum"]["size"] == 1 and result["quorum"]["has_quorum"]
    # remove would be refused by the bootstrapper (not a member): destroy clears its node (rule 12).
    assert kinds(result["actions"]) == [("destroy", "w2"), ("join", "w2"), ("join", "w3")]
    assert result["actions"][0]["replica_id"] == B and "existing_replica_id" not in result["actions"][0]
    assert "partial join" in result["actions"][0]["reason"]


def test_scale_down_refused_without_policy():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4"), rep(E, "w5")]
    result = plan(["w1", "w2", "w3"], observed)
    assert result["actions"] == []
    assert [s["replica_id"] for s in result["skipped"]] == [D, E]
    assert any("allow_scale_down" in w for w in result["warnings"])
    assert result["final_count"] == 5


def test_scale_down_with_policy_uses_a_replica_that_stays():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4"), rep(E, "w5")]
    result = plan(["w3", "w4", "w5"], observed, {"allow_scale_down": True})
    assert result["refusals"] == []
    assert [(s["action"], s["replica_id"]) for s in result["actions"]] == [("remove", A), ("remove", B)]
    assert all(s["existing_replica_id"] == C for s in result["actions"])
    assert result["final_nodes"] == ["w3", "w4", "w5"]


def test_move_whole_cluster_joins_before_removing():
    observed = [rep(A, "w1")]
    result = plan(["w2", "w3", "w4"], observed, {"allow_scale_down": True, "allow_even": False})
    assert kinds(result["actions"]) == [("join", "w2"), ("join", "w3"), ("join", "w4"), ("remove", "w1")]
    last = result["actions"][-1]
    # The only known replica is the one removed: the remove runs from a replica joined in this plan.
    assert last["existing_replica_id"] is None and last["existing_node"] == "w2"


@pytest.mark.parametrize("desired, observed, policy, refused", [
    (["w1", "w2"], [rep(A, "w1")], {}, True),
    (["w1", "w2"], [rep(A, "w1")], {"allow_even": True}, False),
    (["w1", "w2", "w3", "w4"], [rep(A, "w1"), rep(B, "w2"), rep(C, "w3")], {}, True),
    (["w1", "w2", "w3"], [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4")], {}, True),
])
def test_even_final_count_is_refused(desired, observed, policy, refused):
    result = plan(desired, observed, policy)
    assert bool(result["refusals"]) is refused
    if refused:
        assert "even" in result["refusals"][0]
        assert result["actions"] == []
        assert result["blocked_actions"] == [] or result["blocked_actions"][0]["action"] == "join"
    else:
        assert result["final_count"] == 2


def test_above_seven_warns():
    nodes = ["w%d" % i for i in range(9)]
    result = plan(nodes, [rep(A, "w0")])
    assert result["refusals"] == []
    assert any("above 7" in w for w in result["warnings"])
    assert result["final_count"] == 9


@pytest.mark.parametrize("observed", [
    [rep(A, "w1"), rep(B, "w2", healthy=False), rep(C, "w3", healthy=False)],
    [rep(A, "w1"), rep(B, "w2", healthy=False)],
    [rep(A, "w1"), rep(B, "w2"), rep(C, None, healthy=False), rep(D, None, healthy=False)],
])
def test_quorum_lost_refuses_and_points_at_runbook(observed):
    result = plan(["w1", "w2", "w3"], observed)
    assert result["actions"] == [] and result["blocked_actions"] == []
    assert len(result["refusals"]) == 1
    assert "emergency-repair" in result["refusals"][0]
    assert result["quorum"]["has_quorum"] is False


@pytest.mark.parametrize("policy", [{"emergency_repair": True}, {"emergency_repair_confirmed": True}])
def test_emergency_repair_needs_both_flags(policy):
    observed = [rep(A, "w1"), rep(B, "w2", healthy=False), rep(C, "w3", healthy=False)]
    result = plan(["w1", "w2", "w3"], observed, policy)
    assert result["actions"] == [] and result["refusals"]


def test_emergency_repair_with_both_flags_keeps_a_healthy_desired_replica():
    observed = [rep(A, "w9"), rep(B, "w2"), rep(C, "w3", healthy=False), rep(D, "w4", healthy=False),
                rep(E, "w5", healthy=False)]
    result = plan(["w2", "w3", "w4"], observed, {"emergency_repair": True, "emergency_repair_confirmed": True})
    assert result["refusals"] == []
    assert result["actions"] == [{"action": "emergency_repair", "existing_replica_id": B, "existing_node": "w2",
                                  "removed": [A, C, D, E], "reason": result["actions"][0]["reason"]}]
    assert result["warnings"]


def test_emergency_repair_impossible_without_survivor():
    observed = [rep(A, "w1", healthy=False), rep(B, "w2", healthy=False)]
    result = plan(["w1", "w2", "w3"], observed, {"emergency_repair": True, "emergency_repair_confirmed": True})
    assert result["actions"] == [] and "backup" in result["refusals"][0]


REPAIR = {"emergency_repair": True, "emergency_repair_confirmed": True}


def lost(rid, node, container_state="running", ping=503, timestamp="2026-01-01T00:00:00Z", **extra):
    """A replica as cluster_info reports it under quorum loss: never healthy, its containers maybe running."""
    item = {"id": rid, "node": node, "state": "unhealthy", "container_state": container_state, "ping": ping,
            "timestamp": timestamp}
    item.update(extra)
    return item


def test_quorum_loss_survivor_is_a_running_replica_though_none_is_healthy():
    # what the lab's quorum-loss fault shows: two stopped (connection refused), one running (503)
    observed = [lost(A, "w1", "exited", None), lost(B, "w2", "exited", None), lost(C, "w3")]
    result = plan(["w1", "w2", "w3"], observed, REPAIR)
    assert result["refusals"] == []
    assert result["actions"][0]["existing_replica_id"] == C and result["actions"][0]["removed"] == [A, B]
    assert result["survivors"] == [C] and result["final_nodes"] == ["w3"]


@pytest.mark.parametrize("observed, best", [
    # a desired node beats one outside the msr group
    ([lost(A, "w9"), lost(B, "w2"), lost(C, "w1", "exited", None)], B),
    # a web server that answers /_ping beats one that does not
    ([lost(A, "w1", ping=None), lost(B, "w2")], B),
    # then the newest health report
    ([lost(A, "w1", timestamp="2026-01-01T00:00:01Z"), lost(B, "w2", timestamp="2026-01-01T00:00:09Z")], B),
    # then the lowest id
    ([lost(B, "w2"), lost(A, "w1"), lost(C, "w3", "exited", None)], A),
    # a healthy replica (5 replicas, 2 healthy) beats everything
    ([lost(A, "w1"), dict(lost(B, "w9"), state="healthy", ping=200), rep(C, "w3", healthy=False),
      rep(D, "w4", healthy=False), dict(lost(E, "w5"), state="healthy", ping=200)], B),
])
def test_survivor_order(observed, best):
    assert plan(["w1", "w2", "w3"], observed, REPAIR)["actions"][0]["existing_replica_id"] == best


@pytest.mark.parametrize("observed", [
    [lost(A, "w1", "exited", None), lost(B, "w2", "exited", None)],              # every container stopped
    [lost(A, "w1", state="unreachable"), lost(B, "w2", state="unreachable")],   # nodes down
    [lost(A, None, state="ghost"), lost(B, "w2", "exited")],                    # a ghost and a stopped one
])
def test_no_survivor_points_at_restore_from_backup(observed):
    result = plan(["w1", "w2"], observed, REPAIR)
    assert result["actions"] == [] and result["survivors"] == []
    assert "restore MSR from the newest backup" in result["refusals"][0]


def test_plan_emergency_repair_with_quorum_is_a_no_op_and_without_flags_refuses():
    one = [dict(lost(A, "w1"), state="healthy", ping=200)]
    for policy in (None, REPAIR):
        result = plan_emergency_repair(one, policy)
        assert result["actions"] == [] and result["refusals"] == [] and result["quorum"]["has_quorum"] is True
    observed = [lost(A, "w1"), lost(B, "w2", "exited", None), lost(C, "w3", "exited", None)]
    for policy in (None, {"emergency_repair": True}, {"emergency_repair_confirmed": True}):
        result = plan_emergency_repair(observed, policy)
        assert result["actions"] == [] and "emergency_repair_confirmed" in result["refusals"][0]
    assert plan_emergency_repair([], REPAIR)["refusals"][0].startswith("No replica exists")
    unknown = plan_emergency_repair({"replicas": [lost(A, "w1")], "status_available": False}, REPAIR)
    assert "cluster_status" in unknown["refusals"][0]


def test_plan_emergency_repair_checks_the_wanted_replica():
    observed = [lost(A, "w1"), lost(B, "w2"), lost(C, "w3", "exited", None)]
    assert plan_emergency_repair(observed, REPAIR, replica_id=B)["actions"][0]["existing_replica_id"] == B
    for wanted, why in ((C, "cannot be kept"), (D, "is not a replica of this cluster")):
        result = plan_emergency_repair(observed, REPAIR, replica_id=wanted)
        assert result["actions"] == [] and why in result["refusals"][0] and "survivors: %s, %s" % (A, B) in result["refusals"][0]


def test_empty_desired_is_refused_not_remove_all():
    result = plan([], [rep(A, "w1"), rep(B, "w2"), rep(C, "w3")], {"allow_scale_down": True})
    assert result["actions"] == [] and result["blocked_actions"] == []
    assert "empty" in result["refusals"][0]


def test_install_needs_policy():
    assert plan(["w1"], [])["refusals"]
    result = plan(["w2", "w1", "w3"], [], {"allow_install": True})
    assert kinds(result["actions"]) == [("install", "w1"), ("join", "w2"), ("join", "w3")]
    assert result["actions"][1]["existing_node"] == "w1"


def test_no_member_known_refuses_instead_of_installing():
    observed = [rep(A, "w1", healthy=False, in_cluster_status=False)]
    result = plan(["w1"], observed, {"allow_install": True})
    assert result["actions"] == [] and result["refusals"]


def test_ineligible_node_is_refused():
    result = plan(["w1", "w2", "m1"], [rep(A, "w1")], eligible=["w1", "w2", "w3"])
    assert result["actions"] == []
    assert any("m1" in r for r in result["refusals"])


def test_keep_unhealthy_blocks_joins_unless_unsafe_join():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3", healthy=False)]
    desired = ["w1", "w2", "w3", "w4", "w5"]
    blocked = plan(desired, observed, {"remove_unhealthy": False})
    assert blocked["actions"] == []
    assert any("unhealthy" in r for r in blocked["refusals"])
    unsafe = plan(desired, observed, {"remove_unhealthy": False, "unsafe_join": True})
    assert kinds(unsafe["actions"]) == [("join", "w4"), ("join", "w5")]
    assert all(s["unsafe_join"] for s in unsafe["actions"])
    assert any("UNSAFE" in w for w in unsafe["warnings"])


def test_scale_down_next_to_an_unhealthy_replica_is_refused():
    # 3 members, one unhealthy and kept: removing a healthy one would leave 1 healthy of 2, and the
    # bootstrapper wants every other replica healthy for a remove anyway.
    observed = [rep(A, "w1"), rep(B, "w2", healthy=False), rep(C, "w3")]
    result = plan(["w1", "w2"], observed, {"remove_unhealthy": False, "allow_scale_down": True, "allow_even": True})
    assert result["actions"] == [] and result["blocked_actions"] == []
    assert any(r.startswith("refusing to remove replica %s: 2 of 3 replicas are healthy" % C)
               for r in result["refusals"]), result["refusals"]


def test_removing_the_last_replica_is_refused():
    # A desired set elsewhere with an ineligible node: the only replica must not go.
    result = plan(["w2"], [rep(A, "w1")], {"allow_scale_down": True}, eligible=["w1"])
    assert result["actions"] == []
    assert all(s["action"] != "remove" for s in result["blocked_actions"])
    assert any("is the last replica" in r for r in result["refusals"]), result["refusals"]


def test_duplicate_healthy_replica_on_a_node_is_an_extra():
    observed = [rep(A, "w1"), rep(B, "w1"), rep(C, "w2"), rep(D, "w3")]
    result = plan(["w1", "w2", "w3"], observed, {"allow_scale_down": True})
    assert [(s["action"], s["replica_id"]) for s in result["actions"]] == [("remove", B)]


# ---------------------------------------------------------------- load balancer

def test_lb_drain_before_remove_and_add_after_join():
    observed = [rep(A, "w1"), rep(B, "w2", healthy=False), rep(C, "w3")]
    result = plan(["w1", "w2", "w3"], observed, lb_pool=["w1", "w2", "w3"])
    assert kinds(result["actions"]) == [("lb_remove", "w2"), ("remove", "w2"), ("join", "w2"), ("lb_add", "w2")]


def test_lb_drift_fixes():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3")]
    result = plan(["w1", "w2", "w3"], observed, lb_pool=["w1", "w9"])
    assert kinds(result["actions"]) == [("lb_add", "w2"), ("lb_add", "w3"), ("lb_remove", "w9")]
    assert result["actions"][0]["replica_id"] == B


def test_lb_scale_down_drains_first():
    observed = [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4"), rep(E, "w5")]
    result = plan(["w1", "w2", "w3"], observed, {"allow_scale_down": True}, lb_pool=["w1", "w2", "w3", "w4", "w5"])
    assert kinds(result["actions"]) == [("lb_remove", "w4"), ("remove", "w4"), ("lb_remove", "w5"), ("remove", "w5")]


def test_no_lb_actions_without_pool():
    result = plan(["w1", "w2", "w3"], [rep(A, "w1")])
    assert all(not s["action"].startswith("lb_") for s in result["actions"])


# ---------------------------------------------------------------- properties

NODES = ["n%d" % i for i in range(7)]


@st.composite
def scenarios(draw):
    count = draw(st.integers(min_value=0, max_value=8))
    ids = draw(st.lists(st.text("0123456789abcdef", min_size=12, max_size=12), min_size=count,
                        max_size=count, unique=True))
    observed = []
    for rid in ids:
        item = {"replica_id": rid,
                "node": draw(st.one_of(st.none(), st.sampled_from(NODES))),
                # Mostly healthy, so that many plans are accepted and actually exercised.
                "healthy": draw(st.integers(0, 4)) != 0}
        if draw(st.integers(0, 9)) == 0:
            item["in_cluster_status"] = False
        if draw(st.integers(0, 9)) == 0:
            item["ghost"] = True
        if draw(st.integers(0, 9)) == 0:
            states = topo.STATES if item["node"] else ("ghost", "unreachable")
            item = {"replica_id": rid, "node": item["node"], "state": draw(st.sampled_from(states))}
        observed.append(item)
    desired = draw(st.lists(st.sampled_from(NODES), unique=True, max_size=7))
    policy = {key: draw(st.booleans()) for key in
              ("allow_scale_down", "allow_even", "allow_install", "unsafe_join", "remove_unhealthy")}
    lb_pool = draw(st.one_of(st.none(), st.lists(st.sampled_from(NODES + ["lb-only"]), unique=True)))
    eligible = draw(st.sampled_from([None, None, NODES, NODES[:5]]))
    return desired, observed, policy, lb_pool, eligible


def simulate(desired, observed, policy, lb_pool, result):
    """Replay the plan on a model of the cluster and assert the safety rules at every step."""
    members = [topo.normalize_replica(r) for r in observed]
    pool = None if lb_pool is None else set(lb_pool)
    steps = result["actions"] or result["blocked_actions"]
    assert not (result["actions"] and result["refusals"])
    assert not (result["actions"] and result["blocked_actions"])
    start_ok = topo.has_quorum(len([m for m in members if m["member"]]), len([m for m in members if m["healthy"]]))
    if steps and members and steps[0]["action"] != "emergency_repair":
        assert start_ok

    def existing(step, target):
        found = [m for m in members if m["healthy"] and m is not target
                 and (m["replica_id"] == step["existing_replica_id"] if step["existing_replica_id"]
                      else m["replica_id"] is None and m["node"] == step["existing_node"])]
        assert found, "existing replica %r is not healthy here" % step
        assert step["existing_replica_id"] is None or step["existing_replica_id"] != (target or {}).get("replica_id")

    for step in steps:
        action = step["action"]
        if action == "join":
            unhealthy = [m for m in members if not m["healthy"]]
            assert not unhealthy or (policy["unsafe_join"] and step.get("unsafe_join"))
            assert members, "join without any replica"
            existing(step, None)
            members.append({"replica_id": None, "node": step["node"], "healthy": True, "ghost": False,
                            "member": True})
        elif action == "install":
            assert not members and policy["allow_install"]
            members.append({"replica_id": None, "node": step["node"], "healthy": True, "ghost": False,
                            "member": True})
        elif action == "destroy":
            target = [m for m in members if m["replica_id"] == step["replica_id"]]
            assert len(target) == 1 and not target[0]["member"], "destroy of a member leaves a ghost: %s" % step
            members.remove(target[0])
        elif action == "remove":
            targets = [m for m in members if m["replica_id"] in step["replica_ids"]]
            assert len(targets) == len(step["replica_ids"]) and step["replica_id"] == step["replica_ids"][0]
            assert all(t["member"] for t in targets), "remove of a partial join: %s" % step
            for target in targets:
                existing(step, target)
                if target["healthy"]:
                    assert policy["allow_scale_down"], "healthy replica removed without allow_scale_down"
                if pool is not None and target["node"] in pool:
                    assert any(m not in targets and m["node"] == target["node"] and m["healthy"] for m in members), \
                        "removed while still in the LB pool"
            # The bootstrapper's pre-check: every other replica is healthy.
            assert all(m["healthy"] for m in members if m not in targets and m["member"]), step
            for target in targets:
                members.remove(target)
            total = len([m for m in members if m["member"]])
            healthy = len([m for m in members if m["healthy"]])
            assert total > 0 and healthy >= topo.majority(total), "quorum lost after removing %s" % step
        elif action == "lb_add":
            assert pool is not None and step["node"] not in pool
            assert any(m["healthy"] and m["node"] == step["node"] for m in members)
            pool.add(step["node"])
        elif action == "lb_remove":
            assert pool is not None and step["node"] in pool
            pool.discard(step["node"])
        elif action == "emergency_repair":
            assert policy.get("emergency_repair") and policy.get("emergency_repair_confirmed")
            assert not start_ok
            return members, pool
        else:
            raise AssertionError("unknown action %r" % step)
    return members, pool


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plan_properties(scenario):
    desired, observed, policy, lb_pool, eligible = scenario
    result = plan(desired, observed, policy, eligible=eligible, lb_pool=lb_pool)
    members, pool = simulate(desired, observed, topo.normalize_policy(policy), lb_pool, result)
    final = len([m for m in members if m["member"]])
    if result["actions"] and result["actions"][0]["action"] == "emergency_repair":
        return
    steps = result["actions"] or result["blocked_actions"]
    if steps or not result["refusals"]:
        assert final == result["final_count"]
    if result["refusals"]:
        assert result["actions"] == []
        return
    # Rule 5: an accepted plan never ends even without allow_even.
    assert final % 2 == 1 or policy["allow_even"]
    # Accepted plans converge: one healthy replica on every desired node...
    healthy_nodes = set(m["node"] for m in members if m["healthy"])
    kept_unhealthy = set(m["node"] for m in members if not m["healthy"])
    assert set(desired) <= healthy_nodes | kept_unhealthy
    assert kept_unhealthy.isdisjoint(healthy_nodes) or not policy["remove_unhealthy"]
    # ...no broken leftovers when they may be removed...
    if policy["remove_unhealthy"]:
        assert all(m["healthy"] for m in members)
    # ...and with scale-down allowed, no healthy replica off the desired nodes (a desired node may still hold
    # only its kept unhealthy replica when remove_unhealthy is false).
    if policy["allow_scale_down"]:
        assert healthy_nodes <= set(desired)
    if lb_pool is not None:
        assert pool == set(m["node"] for m in members if m["node"]) & (pool | healthy_nodes)
        assert healthy_nodes <= pool


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_plan_is_deterministic_and_order_independent(scenario):
    desired, observed, policy, lb_pool, eligible = scenario
    first = plan(desired, observed, policy, eligible=eligible, lb_pool=lb_pool)
    again = plan(list(reversed(desired)), list(reversed(observed)), policy, eligible=eligible,
                 lb_pool=None if lb_pool is None else list(reversed(lb_pool)))
    assert first == again


@given(st.integers(min_value=1, max_value=99))
def test_majority_properties(n):
    assert 2 * topo.majority(n) > n
    assert 2 * (topo.majority(n) - 1) <= n
    assert topo.failures_tolerated(n) + topo.majority(n) == n
    if n % 2 == 0:
        assert topo.failures_tolerated(n) == topo.failures_tolerated(n - 1)


def test_plan_refuses_everything_while_a_bootstrapper_still_runs():
    # A controller killed mid-join leaves the join's bootstrapper running; its replica is joining (unhealthy).
    observed = {"replicas": [rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4", healthy=False)],
                "status_available": True,
                "bootstrappers": [{"name": "msr-replicas-join-" + D, "node": "m1", "command": "join",
                                   "state": "running", "running": True},
                                  {"name": "msr-replicas-join-" + E, "node": "m1", "command": "join",
                                   "state": "exited", "running": False}]}
    result = plan(["w1", "w2", "w3", "w4", "w5"], observed)
    assert result["actions"] == [] and kinds(result["blocked_actions"])[0] == ("remove", "w4")
    assert result["refusals"] == [topo.running_bootstrapper(observed["bootstrappers"][0])]
    assert "msr-replicas-join-%s (join) is still running on node m1" % D in result["refusals"][0]
    assert "docker rm -f msr-replicas-join-%s" % D in result["refusals"][0]
    # an exited one only: nothing refused
    observed["bootstrappers"] = observed["bootstrappers"][1:]
    assert plan(["w1", "w2", "w3", "w4", "w5"], observed)["refusals"] == []
