# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.msr.replicas.plugins.modules import replica

from ansible_collections.msr.replicas.tests.unit.plugins.modules.conftest import (
    A,
    B,
    C,
    CA,
    D,
    PASSWORD,
    flags_of,
    three,
    warnings,
)


# -- present ---------------------------------------------------------------------------------------

def test_present_already_there_is_ok(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster)
    for check in (True, False):
        r = run(cluster, runner, check=check, node="worker-2")
        assert r["changed"] is False and r["replica_id"] == B and r["health"] == "OK" and r["healthy"]
        assert r["diff"]["before"] == r["diff"]["after"] == {"node": "worker-2", "replica_id": B, "state": "present"}
    assert runner.calls == []


def test_join_check_mode_predicts_then_applies_then_idempotent(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster)
    predicted = run(cluster, runner, check=True, node="worker-4")
    assert predicted["changed"] is True and predicted["action"] == "join"
    assert runner.calls == [] and len(cluster.replicas) == 3
    assert predicted["cmd"][:7] == ["docker", "run", "--rm", "-e", "UCP_CA", "-e", "UCP_PASSWORD"]

    done = run(cluster, runner, node="worker-4")
    assert done["changed"] is True and done["action"] == "join"
    # check mode cannot know the generated ID; the real run reports it
    assert predicted["diff"] == {
        "before": {"node": "worker-4", "replica_id": None, "state": "absent"},
        "after": {"node": "worker-4", "replica_id": None, "state": "present"}}
    assert done["diff"] == {
        "before": {"node": "worker-4", "replica_id": None, "state": "absent"},
        "after": {"node": "worker-4", "replica_id": done["replica_id"], "state": "present"}}
    call = runner.calls[0]
    f = flags_of(call)
    assert call["argv"][0] == "join" and f["--ucp-node"] == "worker-4"
    assert f["--existing-replica-id"] == A  # healthy, lowest id
    assert f["--replica-id"] == done["replica_id"] and len(done["replica_id"]) == 12
    assert f["--ucp-url"] == "https://mke.example.com" and f["--ucp-username"] == "admin"
    assert "--nocolor" in call["argv"] and "--ucp-insecure-tls" not in call["argv"]
    assert call["image"] == "mirantis/dtr" and call["version"] == "2.9.16"  # version from the cluster
    assert call["env"] == {"UCP_PASSWORD": PASSWORD, "UCP_CA": CA}
    assert PASSWORD not in json.dumps(call["argv"]) and "BEGIN CERT" not in json.dumps(call["argv"])
    assert PASSWORD not in json.dumps(done) and "BEGIN CERT" not in json.dumps(done["cmd"])
    assert done["healthy"] and done["health"] == "OK"
    assert done["phases"][-1] == "Replica ID is set to: %s" % done["replica_id"]

    again = run(cluster, runner, node="worker-4")
    assert again["changed"] is False and again["replica_id"] == done["replica_id"]
    assert len(runner.calls) == 1


def test_join_with_given_replica_id_shows_it_in_diff(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-4", replica_id="0A1B2C3D4E5F", existing_replica_id=C,
            skip_network_test=True, replica_https_port=4443, debug=True)
    assert r["diff"]["after"]["replica_id"] == "0a1b2c3d4e5f" and r["replica_id"] == "0a1b2c3d4e5f"
    f = flags_of(runner.calls[0])
    assert f["--existing-replica-id"] == C and f["--replica-https-port"] == "4443"
    assert "--skip-network-test" in runner.calls[0]["argv"] and "--debug" in runner.calls[0]["argv"]


def test_refuses_join_when_a_replica_is_unhealthy(run, fakes):
    cluster = three()
    cluster.replicas[B]["health"] = "Replica reported health too long ago"
    runner = fakes.FakeRunner(cluster)
    for check in (True, False):
        r = run(cluster, runner, check=check, node="worker-4")
        assert r["failed"] and r["msg"] == (
            "refusing to join a replica while the cluster is unhealthy: %s (health: Replica reported health too long "
            "ago, /_ping: 200). "
            "Remove unhealthy or ghost replicas first, or set unsafe_join: true (risks split brain and data loss)" % B)
    assert runner.calls == []


def test_refuses_join_with_ghost(run, fakes):
    cluster = three()
    cluster.add(D, None)
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4")
    assert r["failed"] and "%s (OK)" % D not in r["msg"] and D in r["msg"]


def test_unsafe_join_warns_and_passes_flag(run, fakes):
    cluster = three()
    cluster.replicas[A]["ping"] = 503
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-4", unsafe_join=True)
    assert r["changed"] and "--unsafe-join" in runner.calls[0]["argv"]
    assert flags_of(runner.calls[0])["--existing-replica-id"] == B  # A is not healthy
    assert any("UNSAFE JOIN" in w for w in warnings(r))


def test_existing_replica_must_be_healthy(run, fakes):
    cluster = three()
    cluster.replicas[C]["health"] = "down"
    cluster.replicas[C]["in_status"] = True
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", existing_replica_id=C, unsafe_join=False)
    assert r["failed"] and r["msg"].startswith("refusing to join")


def test_present_unknown_node(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-9")
    assert r["msg"] == "MKE has no node named 'worker-9' (nodes: worker-1, worker-2, worker-3, worker-4, worker-5)"


def test_present_node_not_ready(run, fakes):
    cluster = three()
    cluster.node("worker-4")["state"] = "down"
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4")
    assert r["msg"] == "MKE node worker-4 is down; an MSR replica goes only on a ready, active worker"


def test_present_other_replica_id_on_node(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-1", replica_id=B)
    assert r["msg"] == "node worker-1 already runs replica %s, not %s; remove it first to replace it" % (A, B)


def test_version_mismatch_refused(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", version="2.9.15")
    assert r["msg"].startswith("version 2.9.15 differs from the cluster's MSR version 2.9.16")


def test_empty_cluster_needs_install(run, fakes):
    cluster = fakes.FakeCluster()
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-1", version="2.9.16")
    assert r["msg"] == "the cluster has no MSR replica; set install: true to install the first replica on node worker-1"
    r = run(cluster, runner, node="worker-1", install=True)
    assert r["msg"] == "version is required to install the first replica"
    r = run(cluster, runner, node="worker-1", install=True, version="2.9.16", external_url="https://msr.example.com")
    assert r["changed"] and r["action"] == "install"
    f = flags_of(runner.calls[0])
    assert runner.calls[0]["argv"][0] == "install" and f["--dtr-external-url"] == "https://msr.example.com"
    assert "--existing-replica-id" not in f and "--nocolor" not in runner.calls[0]["argv"]


def test_install_on_nfs(run, fakes):
    cluster = fakes.FakeCluster()
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-1", install=True, version="2.9.16", nfs_storage_url="nfs://10.0.0.9/msr")
    assert r["changed"] and flags_of(runner.calls[0])["--nfs-storage-url"] == "nfs://10.0.0.9/msr"


def test_insecure_tls(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-4", mke_ca=None, msr_ca=None, mke_insecure_tls=True, msr_insecure_tls=True)
    assert "--ucp-insecure-tls" in runner.calls[0]["argv"] and "UCP_CA" not in runner.calls[0]["env"]
    assert any("mke_insecure_tls is true" in w for w in warnings(r))


def test_tls_option_errors(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", mke_ca=None)
    assert r["msg"] == "one of mke_ca (the MKE CA certificate, PEM text) or mke_insecure_tls=true is required"
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", mke_insecure_tls=True)
    assert r["msg"].startswith("mke_ca and mke_insecure_tls are mutually exclusive")
    # MSR's own CA, never MKE's: without msr_ca (or an explicit insecure choice) the module refuses
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", msr_ca=None)
    assert r["msg"].startswith("one of msr_ca (MSR's own CA certificate, PEM text; every replica serves it at "
                               "https://<replica>/ca) or msr_insecure_tls=true is required")
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", msr_insecure_tls=True)
    assert r["msg"].startswith("msr_ca and msr_insecure_tls are mutually exclusive")
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", msr_ca=None, msr_insecure_tls=True, check=True)
    assert r.get("failed") is not True and any("msr_insecure_tls is true" in w for w in warnings(r))


@pytest.mark.parametrize("args,msg", [
    ({"state": "present"}, "state is present but all of the following are missing: node"),
    ({"state": "absent"}, "state is absent but any of the following are missing: node, replica_id, replica_ids"),
    ({"node": "worker-1", "replica_id": "xyz"}, "replica_id must be 12 hexadecimal characters, got 'xyz'"),
    ({"node": "worker-1", "version": "latest"}, "version must look like 2.9.16, got 'latest'"),
])
def test_argument_errors(run, fakes, args, msg):
    cluster = three()
    assert run(cluster, fakes.FakeRunner(cluster), **args)["msg"] == msg


def test_docker_sdk_needed_only_for_a_change(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-1", has_docker=False)
    assert r["changed"] is False
    for check in (True, False):
        r = run(cluster, fakes.FakeRunner(cluster), check=check, node="worker-4", has_docker=False)
        assert r["failed"] and "Failed to import the required Python library (docker)" in r["msg"]


# -- failed joins leave nothing half made ----------------------------------------------------------

def test_failed_partial_join_is_removed(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster, fail_join="partial")
    r = run(cluster, runner, node="worker-4", replica_id="0a1b2c3d4e5f")
    assert r["failed"] and r["msg"] == ("join of replica 0a1b2c3d4e5f on node worker-4 failed: Failed to execute "
                                        "phase2: Phase 2 returned non-zero status: 1. Nothing is left of replica "
                                        "0a1b2c3d4e5f.")
    assert [c["argv"][0] for c in runner.calls] == ["join", "remove"]
    f = flags_of(runner.calls[1])
    assert f["--replica-ids"] == "0a1b2c3d4e5f" and f["--existing-replica-id"] == A
    assert "0a1b2c3d4e5f" not in cluster.replicas and r["cleanup"]["left"] is None


def test_failed_join_with_only_containers_is_destroyed(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster, fail_join="containers")
    r = run(cluster, runner, node="worker-4", replica_id="0a1b2c3d4e5f")
    assert [c["argv"][0] for c in runner.calls] == ["join", "destroy"]
    assert flags_of(runner.calls[1])["--replica-id"] == "0a1b2c3d4e5f"
    assert r["msg"].endswith("Nothing is left of replica 0a1b2c3d4e5f.")


def test_failed_join_before_anything_made(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster, fail_join="before")
    r = run(cluster, runner, node="worker-4")
    assert [c["argv"][0] for c in runner.calls] == ["join"]
    assert r["msg"].endswith("The join left nothing behind.")


def test_failed_cleanup_reports_what_is_left(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster, fail_join="partial", fail_remove="remove failed")
    r = run(cluster, runner, node="worker-4", replica_id="0a1b2c3d4e5f")
    assert [c["argv"][0] for c in runner.calls] == ["join", "remove", "destroy"]
    left = r["cleanup"]
    assert left["left"] == "replica 0a1b2c3d4e5f in cluster_status"  # destroy left a ghost
    assert "Left behind: replica 0a1b2c3d4e5f in cluster_status. Clear it with: docker run --rm" in r["msg"]
    assert "remove --replica-ids 0a1b2c3d4e5f --existing-replica-id" in r["msg"]
    assert PASSWORD not in json.dumps(left)


def test_engine_unreachable(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FailingRunner(cluster), node="worker-4", replica_id="0a1b2c3d4e5f")
    assert r["msg"] == ("join of replica 0a1b2c3d4e5f on node worker-4 could not run: cannot reach the Docker engine "
                        "at unix:///var/run/docker.sock: connection refused. The join left nothing behind.")


def test_join_not_healthy_in_time(run, fakes, monkeypatch):
    cluster = three()
    runner = fakes.FakeRunner(cluster)
    original = runner.run

    def slow(*a, **k):
        res = original(*a, **k)
        for r in cluster.replicas.values():
            if r["node"] == "worker-4":
                r["ping"] = 503
        return res
    runner.run = slow
    r = run(cluster, runner, node="worker-4", replica_id="0a1b2c3d4e5f", wait_timeout=0)
    assert r["msg"] == ("replica 0a1b2c3d4e5f joined node worker-4 but did not become healthy (/_ping 200 and an "
                        "all-OK cluster) within 0 s: replica 0a1b2c3d4e5f is unhealthy: health: OK, /_ping: 503. It "
                        "stays in the cluster: once it is healthy, run the join again (the playbooks then put it into "
                        "the load-balancer pools), or remove it (state: absent)")


def test_join_not_healthy_in_time_reports_why_not_the_read_cut_short(run, fakes):
    """When the wait's time runs out during a read (DeadlineError), the reason is the last read's."""
    from ansible_collections.msr.replicas.plugins.module_utils._common import DeadlineError

    cluster = three()
    runner = fakes.FakeRunner(cluster)
    original, view = runner.run, cluster.view
    reads = {"after_join": 0}

    def slow(*a, **k):
        res = original(*a, **k)
        cluster.replicas["0a1b2c3d4e5f"]["ping"] = 503
        reads["after_join"] = 1
        return res

    def observed():
        if reads["after_join"]:
            reads["after_join"] += 1
            if reads["after_join"] > 2:
                raise DeadlineError("MKE at https://mke.example.com: the wait timed out before GET /nodes could be sent")
        return view()
    runner.run, cluster.view = slow, observed
    r = run(cluster, runner, node="worker-4", replica_id="0a1b2c3d4e5f", wait_timeout=30)
    assert r["msg"] == ("replica 0a1b2c3d4e5f joined node worker-4 but did not become healthy (/_ping 200 and an "
                        "all-OK cluster) within 30 s: replica 0a1b2c3d4e5f is unhealthy: health: OK, /_ping: 503. It "
                        "stays in the cluster: once it is healthy, run the join again (the playbooks then put it into "
                        "the load-balancer pools), or remove it (state: absent)")


# -- absent ------------------------------------------------------------------------------------------

def test_remove_by_node_check_then_apply_then_idempotent(run, fakes):
    cluster = fakes.FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3", D: "worker-4", "eeeeeeeeeee5": "worker-5"})
    runner = fakes.FakeRunner(cluster)
    predicted = run(cluster, runner, check=True, node="worker-1", state="absent")
    assert predicted["changed"] and predicted["action"] == "remove" and runner.calls == []
    done = run(cluster, runner, node="worker-1", state="absent")
    assert done["diff"] == predicted["diff"] == {
        "before": {"node": "worker-1", "replica_id": A, "state": "present"},
        "after": {"node": "worker-1", "replica_id": None, "state": "absent"}}
    f = flags_of(runner.calls[0])
    assert f["--replica-ids"] == A and f["--existing-replica-id"] == B  # never the removed one
    assert done["replica_id"] == A and A not in cluster.replicas
    again = run(cluster, runner, node="worker-1", state="absent")
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]
    assert len(runner.calls) == 1


def test_remove_never_uses_target_as_existing(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-1", state="absent", existing_replica_id=A)
    assert r["msg"] == ("existing_replica_id %s is the replica being removed; it must be another, healthy replica" % A)


def test_remove_ghost_by_id_without_node(run, fakes):
    cluster = three()
    cluster.add(D, None, health="Rethink replica is currently in state: disconnected")
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, state="absent", replica_id=D, force=True)
    assert r["changed"] and flags_of(runner.calls[0])["--replica-ids"] == D and "--force" in runner.calls[0]["argv"]
    assert r["diff"]["before"] == {"node": None, "replica_id": D, "state": "present"}


def test_remove_unknown_id_is_ok(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), state="absent", replica_id=D)
    assert r["changed"] is False


def test_remove_refuses_to_break_quorum(run, fakes):
    cluster = three()
    cluster.replicas[B]["health"] = "down"
    # 2 of 3 healthy: removing healthy A leaves 1 healthy of 2, not a majority.
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-1", state="absent")
    assert r["msg"] == ("refusing to remove replica %s: 2 of 3 replicas are healthy, and after the removal 1 healthy "
                        "of 2 would not be a majority. Repair or remove the unhealthy replicas first." % A)
    # Removing the unhealthy one is what repairs the cluster.
    runner = fakes.FakeRunner(cluster)
    r = run(cluster, runner, node="worker-2", state="absent")
    assert r["changed"] and flags_of(runner.calls[0])["--existing-replica-id"] == A


def test_remove_last_replica_refused(run, fakes):
    cluster = fakes.FakeCluster({A: "worker-1"})
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-1", state="absent")
    assert r["msg"].startswith("replica %s is the last replica" % A)


def test_remove_node_mismatch(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-2", state="absent", replica_id=A)
    assert r["msg"] == ("replica %s runs on node worker-1, not on node worker-2: give that replica's node, or the ID "
                        "of the replica on node worker-2 (msr.replicas.cluster_info lists them)" % A)


def test_remove_failure_message(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster, fail_remove="replica is not healthy"), node="worker-3", state="absent")
    assert r["msg"] == "remove of replica %s failed: replica is not healthy" % C


def test_force_needs_29(run, fakes):
    cluster = three(version="2.7.8")
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-3", state="absent", force=True)
    assert r["msg"] == "force needs MSR 2.9 or later (version 2.7.8)"


def test_join_that_leaves_dtr_phase2_warns(run, fakes, monkeypatch):
    """The bootstrapper can finish a join but fail to remove its dtr-phase2 helper (an MKE token that expired):
    the join succeeds, and the leftover is reported, since the next join on that node clashes with it."""
    cluster = fakes.three()
    real = replica.ReplicaManager

    class LeavesPhase2(real):
        def __init__(self, module, observe_fn, runner, phase2_fn=None, **k):
            real.__init__(self, module, observe_fn, runner, lambda node: node == "worker-4", **k)

    monkeypatch.setattr(replica, "ReplicaManager", LeavesPhase2)
    done = run(cluster, fakes.FakeRunner(cluster), node="worker-4")
    assert done["changed"] is True and done["healthy"] is True
    assert done["also_left"] == ["container dtr-phase2 on node worker-4"]
    assert ("the bootstrapper's dtr-phase2 container is still on node worker-4 after the join; remove it with "
            "'docker rm -f dtr-phase2' on that node before the next join there") in warnings(done)
