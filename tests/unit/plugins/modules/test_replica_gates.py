# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The replica module's refusals come from _topology's gates: check mode predicts each of them."""

from __future__ import annotations

import json

import pytest
from ansible_collections.msr.replicas.tests.unit.plugins.modules.conftest import A, B, C, D, PASSWORD, flags_of, three, warnings

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

P = "0a1b2c3d4e5f"


def both(run, cluster, runner, **args):
    """The check-mode result and the real one, which must refuse or act alike."""
    return run(cluster, runner, check=True, **args), run(cluster, runner, **args)


def test_absent_without_cluster_status_is_refused_even_with_force(run, fakes):
    cluster = three()
    cluster.status_answers = False
    runner = fakes.FakeRunner(cluster)
    for force in (False, True):
        predicted, real = both(run, cluster, runner, node="worker-3", state="absent", force=force)
        assert predicted["msg"] == real["msg"] == (
            "refusing to remove replica %s: no replica answered cluster_status, so quorum cannot be checked" % C)
    assert runner.calls == [] and C in cluster.replicas


def test_partial_join_on_the_node_is_destroyed_then_joined(run, fakes):
    cluster = three()
    cluster.add(P, "worker-4", health="joining", ping=503, in_status=False)
    runner = fakes.FakeRunner(cluster)
    first = run(cluster, runner, check=True, node="worker-4")
    second = run(cluster, runner, check=True, node="worker-4")
    assert first == second, "check mode must print the same thing on every run"
    assert first["changed"] and first["action"] == "join" and first["destroyed"] == [P]
    assert [c[c.index("mirantis/dtr:2.9.16") + 1] for c in first["cmds"]] == ["destroy", "join"]
    assert "<new replica id>" in first["cmd"] and first["replica_id"] is None
    assert first["diff"]["before"] == {"node": "worker-4", "replica_id": P, "state": "partial"}
    done = run(cluster, runner, node="worker-4")
    assert [c["argv"][0] for c in runner.calls] == ["destroy", "join"]
    assert flags_of(runner.calls[0])["--replica-id"] == P
    assert P not in cluster.replicas and cluster.replicas[done["replica_id"]]["node"] == "worker-4"


def test_absent_partial_join_is_destroyed_never_removed(run, fakes):
    cluster = three()
    cluster.add(P, "worker-4", health="joining", ping=503, in_status=False)
    runner = fakes.FakeRunner(cluster)
    predicted, real = both(run, cluster, runner, node="worker-4", state="absent")
    assert predicted["action"] == real["action"] == "destroy" and real["changed"]
    assert [c["argv"][0] for c in runner.calls] == ["destroy"] and P not in cluster.replicas


def test_remove_of_a_healthy_replica_next_to_an_unhealthy_one(run, fakes):
    cluster = fakes.FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3", D: "worker-4", "eeeeeeeeeee5": "worker-5"})
    cluster.replicas[D]["ping"] = 503
    runner = fakes.FakeRunner(cluster)
    predicted, real = both(run, cluster, runner, node="worker-3", state="absent")
    assert predicted["msg"] == real["msg"]
    assert real["msg"].startswith("refusing the remove of replica %s while %s (health: OK, /_ping: 503): the "
                                  "bootstrapper requires every other replica to be healthy" % (C, D))
    assert runner.calls == []
    # force skips the bootstrapper's pre-check (and says so), never the quorum guard.
    forced = run(cluster, runner, node="worker-3", state="absent", force=True)
    assert forced["changed"] and "--force" in runner.calls[0]["argv"]
    assert any(w.startswith("force: remove of replica %s" % C) for w in warnings(forced))


@pytest.mark.parametrize("setup, expected", [
    (lambda c: c.critical_issues.append("Table `dtr2.repositories` is not available for writes."),
     "MSR reports a critical issue: Table `dtr2.repositories` is not available for writes."),
    (lambda c: c.node("worker-3").update(state="down"), "(in cluster_status (OK) but no container of it is seen"),
    (lambda c: c.add(P, "worker-5", health="joining", ping=503, in_status=False),
     "%s (containers on node worker-5 but not in cluster_status)" % P),
])
def test_join_gate_sees_issues_down_nodes_and_partial_joins(run, fakes, setup, expected):
    cluster = three()
    setup(cluster)
    runner = fakes.FakeRunner(cluster)
    predicted, real = both(run, cluster, runner, node="worker-4")
    assert predicted["msg"] == real["msg"]
    assert real["msg"].startswith("refusing to join a replica while the cluster is unhealthy: ") and expected in real["msg"]
    assert runner.calls == []


@pytest.mark.parametrize("node, change, why", [
    ("manager-1", {}, "a manager"), ("worker-4", {"availability": "drain"}, "set to availability drain"),
    ("worker-4", {"availability": "pause"}, "set to availability pause"),
])
def test_a_replica_goes_only_on_a_ready_active_worker(run, fakes, node, change, why):
    cluster = fakes.FakeCluster({A: "worker-1"}, nodes=("worker-1", "worker-4", "manager-1"))
    cluster.node(node).update(change)
    runner = fakes.FakeRunner(cluster)
    predicted, real = both(run, cluster, runner, node=node)
    assert predicted["msg"] == real["msg"] == (
        "MKE node %s is %s; an MSR replica goes only on a ready, active worker" % (node, why))
    assert runner.calls == []


def test_remove_waits_for_an_all_ok_cluster(run, fakes):
    cluster = fakes.FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3", D: "worker-4", "eeeeeeeeeee5": "worker-5"})
    runner = fakes.FakeRunner(cluster)

    def degrade(c):
        if A not in c.replicas:               # once the remove ran, another replica falls behind
            c.replicas[B]["health"] = "Replica reported health too long ago: 2026-12-01T10:00:00Z"
    cluster.after_observe = degrade
    r = run(cluster, runner, node="worker-1", state="absent", wait_timeout=0)
    assert r["msg"] == ("remove of replica %s finished but the cluster did not settle within 0 s: %s (health: Replica "
                        "reported health too long ago: 2026-12-01T10:00:00Z, /_ping: 200)" % (A, B))


def test_wait_reports_the_last_error(run, fakes):
    cluster = three()
    runner = fakes.FakeRunner(cluster)

    def broken(c):
        if len(c.replicas) == 4:
            raise MsrError("MKE at https://mke.example.com did not answer GET /nodes within 1 s (1 try)")
    cluster.after_observe = broken
    r = run(cluster, runner, node="worker-4", replica_id=P, wait_timeout=0)
    assert r["msg"].endswith("within 0 s: MKE at https://mke.example.com did not answer GET /nodes within 1 s (1 try). "
                             "It stays in the cluster: once it is healthy, run the join again (the playbooks then put "
                             "it into the load-balancer pools), or remove it (state: absent)")


def test_several_unhealthy_replicas_go_in_one_remove(run, fakes):
    cluster = fakes.FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3", D: "worker-4", "eeeeeeeeeee5": "worker-5"})
    cluster.replicas[C]["ping"] = 503
    cluster.replicas[D]["ping"] = 503
    runner = fakes.FakeRunner(cluster)
    alone = run(cluster, runner, node="worker-3", state="absent")
    assert alone["msg"].startswith("refusing the remove of replica %s while %s" % (C, D))
    together = run(cluster, runner, replica_ids=[C, D], state="absent")
    assert together["changed"] and flags_of(runner.calls[0])["--replica-ids"] == "%s,%s" % (C, D)
    assert sorted(cluster.replicas) == sorted([A, B, "eeeeeeeeeee5"])
    assert PASSWORD not in json.dumps(together)


def test_install_passes_msr_tls_by_environment_only(run, fakes):
    cluster = fakes.FakeCluster()
    runner = fakes.FakeRunner(cluster)
    key = "-----BEGIN PRIVATE KEY-----\nMIIsecretkey\n-----END PRIVATE KEY-----\n"
    r = run(cluster, runner, node="worker-1", install=True, version="2.9.16", external_url="https://msr.example.com",
            dtr_ca="CA-PEM", dtr_cert="CERT-PEM", dtr_key=key)
    call = runner.calls[0]
    assert call["env"]["MSR_CA"] == "CA-PEM" and call["env"]["MSR_CERT"] == "CERT-PEM" and call["env"]["MSR_KEY"] == key
    assert not any("PEM" in part or "secretkey" in part for part in call["argv"])
    assert "MIIsecretkey" not in json.dumps(r) and "MSR_KEY" in r["cmd"]
    missing = run(cluster, runner, node="worker-2", install=True, version="2.9.16", dtr_ca="CA-PEM")
    assert missing["msg"] == "dtr_ca, dtr_cert and dtr_key must be given together (missing: dtr_cert, dtr_key)"


def test_plain_tcp_engine_is_refused(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", docker_host="tcp://10.0.0.10:2375")
    assert r["failed"] and r["msg"].startswith("docker_host tcp://10.0.0.10:2375 is a TCP address, which needs TLS")


def test_http_mke_url_is_refused(run, fakes):
    cluster = three()
    r = run(cluster, fakes.FakeRunner(cluster), node="worker-4", mke_url="http://mke.example.com")
    assert r["failed"] and "http://" in r["msg"]
