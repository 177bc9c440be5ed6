# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules against the lab's faults: ghost, quorum loss, partition, MKE errors.

Every refusal is asked twice, in check mode and for real: the two must say the same and change nothing.
"""

from __future__ import annotations

import time

import pytest

from msrint import replica_task

pytestmark = pytest.mark.timeout(200)

INFO = {"name": "read", "msr.replicas.cluster_info": {}}


def info(lab):
    run = lab.run(lab.play([INFO]), check=True, touches=False)
    assert run.rc == 0, run.output
    return run.result("read")


def wait_state(lab, rid, state, timeout=30):
    deadline = time.time() + timeout
    while True:
        view = info(lab)
        found = [r for r in view["replicas"] if r["id"] == rid]
        if found and found[0]["state"] == state:
            return view
        if time.time() > deadline:
            raise AssertionError("replica %s never became %s: %s" % (rid, state, found))
        time.sleep(1)


def refused_alike(lab, task):
    """The failed check-mode and real results of ``task``; they must match and change nothing."""
    task = dict(task, ignore_errors=True)
    before = lab.replicas()
    results = []
    for check in (True, False):
        run = lab.run(lab.play([task]), check=check, touches=False)
        assert run.rc == 0, run.output
        rec = run.task(task["name"])
        assert rec["status"] == "failed", rec
        assert rec["result"]["changed"] is False and "phases" not in rec["result"]
        results.append(rec["result"])
        assert lab.replicas() == before
    assert results[0]["msg"] == results[1]["msg"]
    return results[1]["msg"]


def test_ghost_is_reported_then_removed_and_the_cluster_heals(lab):
    lab.fresh(replicas=3)
    ghost = lab.replica_on("worker3")["id"]
    lab.fault("ghost", "worker3")
    # Its own health entry stays OK until it goes stale: until then MSR cannot tell it is gone.
    view = wait_state(lab, ghost, "ghost")
    assert view["healthy"] is False and view["quorum"]["has_quorum"] is True
    assert "ghost_replica" in [i["kind"] for i in view["issues"]]

    msg = refused_alike(lab, replica_task("join worker4", node="worker4"))
    assert msg.startswith("refusing to join a replica while the cluster is unhealthy: %s (in cluster_status" % ghost)

    run = lab.run(lab.play([replica_task("remove the ghost", state="absent", replica_id=ghost)]))
    assert run.rc == 0, run.output
    r = run.result("remove the ghost")
    assert r["changed"] and r["action"] == "remove" and r["replica_ids"] == [ghost]
    assert ghost not in lab.replicas()
    after = info(lab)
    assert after["healthy"] is True and after["quorum"]["size"] == 2

    run = lab.run(lab.play([replica_task("join worker3 again", node="worker3")]))
    assert run.rc == 0, run.output
    assert run.result("join worker3 again")["healthy"] is True


def test_quorum_loss_refuses_every_change(lab):
    lab.fresh(replicas=3)
    lab.fault("quorum-loss")
    try:
        deadline = time.time() + 30
        view = info(lab)
        while view["quorum"]["has_quorum"] is not False and time.time() < deadline:
            time.sleep(1)
            view = info(lab)
        assert view["quorum"]["has_quorum"] is False and view["healthy"] is False
        assert "quorum_lost" in [i["kind"] for i in view["issues"]]
        broken = [r for r in view["replicas"] if not r["healthy"]]
        if view["status_available"]:
            msg = refused_alike(lab, replica_task("join worker4", node="worker4", unsafe_join=True))
            assert "run the emergency_repair playbook" in msg and "emergency-repair runbook" in msg, msg
        msg = refused_alike(lab, replica_task("remove one", state="absent", replica_id=broken[0]["id"], force=True))
        assert msg.startswith("refusing to remove replica %s" % broken[0]["id"]), msg
    finally:
        lab.clear_faults()


def test_partitioned_replica_is_unreachable_not_a_ghost(lab):
    lab.fresh(replicas=3)
    rid = lab.replica_on("worker3")["id"]
    lab.fault("partition", "worker3")
    try:
        view = wait_state(lab, rid, "unreachable")
        r = [x for x in view["replicas"] if x["id"] == rid][0]
        assert r["ghost"] is False and "ghost_replica" not in [i["kind"] for i in view["issues"]]
        # Once MKE marks the node down (its heartbeat delay) the replica is still unreachable, not a ghost.
        # The refusal is compared after that: check mode and the real run must see the same cluster.
        wait_node = time.time() + 30
        while [n for n in info(lab)["nodes"] if n["name"] == "worker3"][0]["state"] != "down":
            assert time.time() < wait_node, "MKE never marked worker3 down"
            time.sleep(1)
        assert info(lab)["replicas"][[x["id"] for x in view["replicas"]].index(rid)]["state"] == "unreachable"
        msg = refused_alike(lab, replica_task("join worker4", node="worker4"))
        assert msg.startswith("refusing to join a replica while the cluster is unhealthy: %s (" % rid)
    finally:
        lab.fault("heal", "worker3")
    lab.wait_healthy(timeout=60)


def test_mke_errors_are_retried_then_reported(lab):
    lab.fresh(replicas=1)
    lab.fault("mke-error", 500, 2)       # fewer than api_retries: the read succeeds
    assert info(lab)["replicas"]
    lab.fault("mke-error", 500, 0)       # until cleared
    try:
        msg = refused_alike(lab, replica_task("join worker2", node="worker2", api_retries=2))
        assert msg.startswith("MKE at %s answered GET /nodes with HTTP 500" % lab.vars["msr_mke_url"].rstrip("/")) \
            or "HTTP 500" in msg, msg
    finally:
        lab.fault("clear")
