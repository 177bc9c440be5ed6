# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._reconcile import observed_pool, reconcile, status, table

A, B, C, D = "a" * 12, "b" * 12, "c" * 12, "d" * 12
NODES = ["w1", "w2", "w3", "w4", "w5"]
ADDR = {n: "10.0.0.2%s" % n[1] for n in NODES}
DESIRED = ["w1", "w2", "w3"]


def rep(rid, node, state="healthy", version="2.9.16"):
    return {"id": rid, "node": node, "state": state, "version": version, "address": ADDR.get(node),
            "healthy": state == "healthy", "ghost": state == "ghost",
            "in_cluster_status": state != "partial"}


def cluster(*replicas, storage=None):
    members = [r for r in replicas if r["state"] != "partial"]
    healthy = [r for r in replicas if r["state"] == "healthy"]
    size = len(members)
    return {"status_available": True, "replicas": list(replicas),
            "nodes": [{"name": n, "role": "worker", "state": "ready", "availability": "active", "address": ADDR[n]}
                      for n in NODES],
            "storage": storage or {"driver": "s3", "drivers": ["s3"], "nfs": False},
            "quorum": {"size": size, "healthy": len(healthy), "majority": size // 2 + 1,
                       "has_quorum": len(healthy) >= size // 2 + 1}}


def three():
    return cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"))


POOLS = {"lb1": ["w1", "w2", "w3"], "lb2": ["w1", "w2", "w3"]}


def kinds(report):
    return [d["kind"] for d in report["drift"]]


def steps(report, key="actions"):
    return [(s["action"], s.get("node"), s.get("lb_host")) for s in report[key]]


def test_in_sync():
    report = reconcile(DESIRED, three(), POOLS, "2.9.16")
    assert report["in_sync"] and report["drift"] == [] and report["actions"] == [] and report["refusals"] == []
    assert report["replicas"] == [{"id": A, "node": "w1", "state": "healthy", "version": "2.9.16"},
                                  {"id": B, "node": "w2", "state": "healthy", "version": "2.9.16"},
                                  {"id": C, "node": "w3", "state": "healthy", "version": "2.9.16"}]
    assert report["lb_pools"] == POOLS and report["quorum"]["has_quorum"] is True
    assert status(report) == "in_sync"


def test_missing_replica_is_joined_then_added_to_every_pool():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"))
    report = reconcile(DESIRED + ["w4", "w5"], obs, POOLS, "2.9.16")
    assert kinds(report) == ["missing_replica", "missing_replica"]
    assert steps(report) == [("join", "w4", None), ("lb_add", "w4", "lb1"), ("lb_add", "w4", "lb2"),
                             ("join", "w5", None), ("lb_add", "w5", "lb1"), ("lb_add", "w5", "lb2")]
    assert all(d["fixable"] for d in report["drift"]) and not report["in_sync"]


def test_ghost_is_removed_before_the_join():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, None, "ghost"))
    report = reconcile(DESIRED, obs, {"lb1": ["w1", "w2"]}, "2.9.16")
    assert kinds(report) == ["ghost", "missing_replica"]
    assert steps(report) == [("remove", None, None), ("join", "w3", None), ("lb_add", "w3", "lb1")]
    assert report["actions"][0]["replica_id"] == C


def test_stopped_replica_is_drained_removed_and_replaced():
    obs = cluster(rep(A, "w1"), rep(B, "w2", "unhealthy"), rep(C, "w3"))
    report = reconcile(DESIRED, obs, POOLS, "2.9.16")
    assert kinds(report) == ["unhealthy", "missing_replica", "lb_unhealthy", "lb_unhealthy"]
    assert steps(report) == [("lb_remove", "w2", "lb1"), ("lb_remove", "w2", "lb2"), ("remove", "w2", None),
                             ("join", "w2", None), ("lb_add", "w2", "lb1"), ("lb_add", "w2", "lb2")]


def test_unreachable_replica():
    obs = cluster(rep(A, "w1"), rep(B, "w2", "unreachable"), rep(C, "w3"))
    report = reconcile(DESIRED, obs, {}, "2.9.16")
    assert kinds(report) == ["unreachable", "missing_replica"]
    assert "cannot be reached" in report["drift"][0]["message"]


def test_partial_join_is_destroyed():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4", "partial"))
    report = reconcile(DESIRED, obs, POOLS, "2.9.16")
    assert kinds(report) == ["partial_join"]
    assert steps(report) == [("destroy", "w4", None)]
    assert "destroy" in report["drift"][0]["message"]


def test_outside_desired_is_skipped_unless_scale_down_allowed():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w4"), rep("e" * 12, "w5"))
    pools = {"lb1": ["w1", "w2", "w3", "w4", "w5"]}
    report = reconcile(DESIRED, obs, pools, "2.9.16")
    assert kinds(report) == ["outside_desired", "outside_desired"]
    assert [d["fixable"] for d in report["drift"]] == [False, False]
    assert report["actions"] == [] and len(report["skipped"]) == 2 and report["refusals"] == []
    assert any("allow_scale_down" in w for w in report["warnings"])
    assert status(report) == "drift"
    allowed = reconcile(DESIRED, obs, pools, "2.9.16", {"allow_scale_down": True})
    assert [d["fixable"] for d in allowed["drift"]] == [True, True]
    assert steps(allowed) == [("lb_remove", "w4", "lb1"), ("remove", "w4", None),
                              ("lb_remove", "w5", "lb1"), ("remove", "w5", None)]


def test_duplicate_healthy_replica_on_a_node():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"), rep(D, "w3"), rep("e" * 12, "w2"))
    report = reconcile(DESIRED, obs, {}, "2.9.16")
    assert kinds(report) == ["duplicate_replica", "duplicate_replica"]


def test_lb_drift_per_host():
    pools = {"lb1": ["w1", "w2"], "lb2": ["w1", "w2", "w3", "w9"], "lb3": None}
    report = reconcile(DESIRED, three(), pools, "2.9.16")
    assert [(d["kind"], d["lb_host"], d["node"]) for d in report["drift"]] == [
        ("lb_missing", "lb1", "w3"), ("lb_extra", "lb2", "w9")]
    assert steps(report) == [("lb_add", "w3", "lb1"), ("lb_remove", "w9", "lb2")]
    assert report["lb_pools"]["lb3"] is None


def test_version_drift_is_reported_not_fixed():
    obs = cluster(rep(A, "w1"), rep(B, "w2", version="2.9.15"), rep(C, "w3"))
    report = reconcile(DESIRED, obs, POOLS, "2.9.16")
    assert kinds(report) == ["version"] and report["drift"][0]["fixable"] is False
    assert "upgrade" in report["drift"][0]["message"] and report["actions"] == []
    assert status(report) == "drift"
    assert kinds(reconcile(DESIRED, obs, POOLS, None)) == []   # no version given: not compared


@pytest.mark.parametrize("storage, count, drift", [
    ({"driver": "filesystem", "nfs": False}, 3, True),
    ({"driver": "filesystem", "nfs": None}, 3, True),
    ({"driver": "filesystem", "nfs": True}, 3, False),
    ({"driver": "filesystem", "nfs": False}, 1, False),
    ({"driver": "s3", "nfs": False}, 3, False),
])
def test_local_storage(storage, count, drift):
    obs = cluster(*[rep(rid, n) for rid, n in zip((A, B, C), DESIRED)][:count], storage=storage)
    report = reconcile(DESIRED[:count], obs, {}, "2.9.16")
    assert ("local_storage" in kinds(report)) is drift
    if drift:
        assert report["drift"][0]["fixable"] is False and "shared storage" in report["drift"][0]["message"]


def test_quorum_lost_refuses_and_points_at_emergency_repair():
    obs = cluster(rep(A, "w1"), rep(B, "w2", "unhealthy"), rep(C, "w3", "unhealthy"))
    report = reconcile(DESIRED, obs, POOLS, "2.9.16")
    assert kinds(report)[0] == "quorum_lost" and report["actions"] == []
    assert report["refusals"] and "emergency" in " ".join(report["refusals"]).lower()
    assert status(report) == "error" and not report["in_sync"]


def test_status_unavailable():
    obs = dict(three(), status_available=False)
    report = reconcile(DESIRED, obs, {}, "2.9.16")
    assert kinds(report)[0] == "status_unavailable" and report["refusals"]


def test_even_final_count_is_a_refusal_with_blocked_actions():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3"))
    report = reconcile(DESIRED + ["w4"], obs, POOLS, "2.9.16")
    assert report["refusals"] and report["actions"] == []
    assert steps(report, "blocked_actions")[0] == ("join", "w4", None)
    assert reconcile(DESIRED + ["w4"], obs, POOLS, "2.9.16", {"allow_even": True})["refusals"] == []


def test_bad_input():
    with pytest.raises(ValueError):
        reconcile("w1", three())
    with pytest.raises(ValueError):
        reconcile(DESIRED, [])
    with pytest.raises(ValueError):
        reconcile(DESIRED, three(), None, "2.9.16", {"allow_scale_dwn": True})


def test_observed_pool_haproxy_counts_serving_healthy_replicas_and_every_other_server():
    obs = cluster(rep(A, "w1"), rep(B, "w2"), rep(C, "w3", "unhealthy"))
    seen = {"provider": "haproxy",
            "pool": [{"name": n, "address": ADDR.get(n, "10.9.9.9")} for n in ("w1", "w2", "w3", "bogus")],
            "runtime": [{"backend": b, "name": n, "admin": "MAINT" if (n, b) == ("w2", "msr_https") else "READY"}
                        for b in ("msr_http", "msr_https") for n in ("w1", "w2", "w3", "extra")]}
    # w2 is in MAINT in one backend: not serving. w3 (unhealthy), bogus (file only), extra (runtime only) count.
    assert observed_pool(seen, obs) == ["bogus", "extra", "w1", "w3"]
    assert observed_pool(dict(seen, runtime=None), obs) == ["bogus", "w1", "w2", "w3"]


def test_observed_pool_nginx_maps_addresses_and_other_providers_are_unknown():
    seen = {"provider": "nginx", "pool": [{"name": ADDR["w1"], "address": ADDR["w1"]},
                                          {"name": "10.9.9.9", "address": "10.9.9.9"}]}
    assert observed_pool(seen, three()) == ["10.9.9.9", "w1"]
    assert observed_pool({"provider": "custom"}, three()) is None
    assert observed_pool(None, three()) is None
    report = reconcile(DESIRED, three(), {"lb3": seen, "f5": {"provider": "custom"}}, "2.9.16")
    assert report["lb_pools"] == {"f5": None, "lb3": ["10.9.9.9", "w1"]}
    assert ("lb_extra", "10.9.9.9") in [(d["kind"], d["node"]) for d in report["drift"]]


@pytest.mark.parametrize("before, after, failed, expected", [
    ({"in_sync": True, "refusals": []}, None, False, "in_sync"),
    ({"in_sync": False, "refusals": []}, None, False, "drift"),
    ({"in_sync": False, "refusals": []}, {"in_sync": True, "refusals": []}, False, "converged"),
    ({"in_sync": False, "refusals": []}, {"in_sync": False, "refusals": []}, False, "drift"),
    ({"in_sync": False, "refusals": ["no"]}, None, False, "error"),
    ({"in_sync": True, "refusals": []}, None, True, "error"),
    (None, None, False, "error"),
])
def test_status(before, after, failed, expected):
    assert status(before, after, failed) == expected


def test_table_lists_everything_in_fixed_columns():
    obs = cluster(rep(A, "w1"), rep(B, "w2", "unhealthy"), rep(C, "w3", version="2.9.15"))
    report = reconcile(DESIRED, obs, {"lb1": ["w1", "w2", "w3", "w9"], "lb3": None}, "2.9.16")
    lines = table(report)
    text = "\n".join(lines)
    assert lines[0] == "MSR reconcile: DRIFT: %d finding(s)" % len(report["drift"])
    assert "quorum: 2 of 3 healthy, majority 2, has_quorum True" in text
    assert "pool lb1: w1 w2 w3 w9" in text and "pool lb3: not observed" in text
    for d in report["drift"]:
        assert d["message"] in text      # never cut
    drift_rows = [ln for ln in lines if ln.startswith(("unhealthy ", "lb_extra ", "version "))]
    assert len(drift_rows) == 3
    header = [ln for ln in lines if ln.startswith("DRIFT ")][0]
    col = header.index("MESSAGE")
    assert all(ln[col - 2:col] == "  " for ln in drift_rows)
    actions = [ln for ln in lines if ln[:1].isdigit()]
    assert [ln.split()[1] for ln in actions] == [s["action"] for s in report["actions"]]
    assert table(reconcile(DESIRED, three(), {}, "2.9.16"))[0] == "MSR reconcile: IN SYNC"
    refused = table(reconcile(DESIRED, cluster(rep(A, "w1"), rep(B, "w2", "ghost"), rep(C, "w3", "ghost")), {}, "x"))
    assert refused[0] == "MSR reconcile: REFUSED" and any(ln.startswith("REFUSED: ") for ln in refused)


def test_report_is_json_and_holds_no_secret():
    obs = three()
    obs["mke_password"] = "hunter2-secret"    # whatever cluster_info might carry, the report picks fields
    report = reconcile(DESIRED, obs, POOLS, "2.9.16")
    text = json.dumps(report)
    assert "hunter2-secret" not in text and "hunter2-secret" not in "\n".join(table(report))
    assert set(report) >= {"in_sync", "actions", "blocked_actions", "refusals", "warnings", "drift", "quorum",
                           "replicas", "lb_pools"}
