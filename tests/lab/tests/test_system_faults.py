"""System tests, part 3: every fault through `msr-lab fault ...`, and the Python fault API, on a real lab.

The module's lab starts with one replica; a fixture joins two more through `docker run ... join`, so the
cluster has 3 replicas (one can fail without losing quorum).
"""
from __future__ import annotations

import time

import pytest
from logrus import fatal_lines
from system_lab import JOIN_SECONDS, STATE, fata, lab_fixture, replica_id_from, wait_for

from msr_lab import control
from msr_lab.common.labfiles import LabFiles

pytestmark = pytest.mark.timeout(120)

lab = lab_fixture("--workers", "5", "--replicas", "1")
DISCONNECTED = "Rethink replica is currently in state: disconnected"


@pytest.fixture(scope="module")
def three(lab):
    for node in ("worker2", "worker3"):
        r, _ = lab.join(node)
        assert r.returncode == 0, r.stderr
    reps = lab.replicas()
    assert sorted(r["node"] for r in reps.values() if r["health"] == "OK") == ["worker1", "worker2", "worker3"]
    return {r["node"]: rid for rid, r in reps.items()}


def ping_fails(lab, node) -> bool:
    try:
        return lab.msr(node, "/_ping", timeout=1)[0] != 200
    except OSError:   # refused (no dtr-nginx) or timed out (partitioned)
        return True


def test_partition_and_heal(lab, three):
    r2 = three["worker2"]
    lab.fault("partition", "worker2")
    try:
        with pytest.raises(OSError):        # the node is cut off the lab bridge: no answer at all
            lab.msr("worker2", "/_ping", timeout=1)
        assert lab.ssh("worker1", "true", timeout=10).returncode == 0   # the others are still reachable
        status, body, _ = lab.msr("worker1", "/api/v0/meta/cluster_status", auth="admin")
        assert status == 200 and body["replica_health"][r2] == DISCONNECTED
        assert body["replica_health"][three["worker1"]] == "OK"          # 2 of 3: quorum kept
        assert {n["name"]: n["partitioned"] for n in lab.status()["nodes"]}["worker2"] is True
        status, nodes, _ = lab.mke("/nodes", token=lab.mke_token())
        assert {n["Description"]["Hostname"]: n["Status"]["State"] for n in nodes}["worker2"] == "down"
    finally:
        lab.fault("heal", "worker2")
    wait_for(lambda: lab.ping_ok("worker2"), 10, what="worker2 /_ping after heal")
    status, body, _ = lab.msr("worker1", "/api/v0/meta/cluster_status", auth="admin")
    assert set(body["replica_health"].values()) == {"OK"}


def test_destroy_on_a_partitioned_node_fails_and_leaves_everything(lab, three):
    """The bootstrapper acts on a node only through MKE, which cannot reach a partitioned one."""
    r3 = three["worker3"]
    before = lab.docker("worker3", "ps", "-a", "--format", "{{.Names}}").stdout
    lab.fault("partition", "worker3")
    try:
        r, _ = lab.bootstrap("destroy", f"--replica-id={r3}")
        assert fata(r) == (f"Failed to destroy replica {r3} on node worker3: Error response from daemon: the Docker "
                           f"engine of node worker3 ({lab.addr('worker3')}:12376) is unreachable: dial tcp "
                           f"{lab.addr('worker3')}:12376: i/o timeout")
        # the node's own socket (reached from the host, not through MKE) still has every container
        assert lab.docker("worker3", "ps", "-a", "--format", "{{.Names}}").stdout == before
        assert lab.replicas()[r3]["state"] != "ghost"
    finally:
        lab.fault("heal", "worker3")
    wait_for(lambda: lab.ping_ok("worker3"), 10, what="worker3 /_ping after heal")


def test_quorum_loss(lab, three):
    out = lab.fault("quorum-loss")
    try:
        assert list(out["health"].values()).count("OK") == 0
        for node in three:
            assert ping_fails(lab, node), node
        stopped = [r["node"] for r in lab.replicas().values() if r["state"] == "stopped"]
        assert len(stopped) == 2
        (alive,) = [n for n in three if n not in stopped]
        status, body, _ = lab.msr(alive, "/api/v0/meta/settings", method="POST", body={"webTLSCert": ""},
                                  auth="admin")
        assert status == 500 and "Cannot perform write" in body["errors"][0]["message"]
        assert lab.status()["cluster"]["has_quorum"] is False
    finally:
        for node in three:
            lab.fault("start-replica", node)
    assert all(r["health"] == "OK" for r in lab.replicas().values())
    assert lab.msr("worker1", "/api/v0/meta/settings", method="POST", body={"webTLSCert": ""},
                   auth="admin")[0] == 200


def test_kill_bootstrapper_at_rethink(lab, three):
    lab.fault("kill-bootstrapper", "rethink")
    node = lab.free_worker()
    r, _ = lab.join(node)
    assert r.returncode == 137, r.stderr
    assert "Join is complete" not in r.stderr and "Creating dtr-rethinkdb-" in r.stderr
    joining = [rid for rid, x in lab.replicas().items() if x["node"] == node]
    assert len(joining) == 1 and lab.replicas()[joining[0]]["state"] == "joining"
    assert lab.status()["faults"]["kill_at_phase"] is None      # the fault fires once
    # a killed run leaves its phase2 container behind on the target, as for real
    assert "dtr-phase2" in lab.ssh(node, "docker ps -a --format '{{.Names}}'").stdout.split()
    r, _ = lab.remove(joining[0])
    assert r.returncode == 0, r.stderr
    assert node not in {x["node"] for x in lab.replicas().values()}


def test_slow_join(lab, three):
    lab.fault("slow-join", 2)
    try:
        r, seconds = lab.join(lab.free_worker())
        assert r.returncode == 0, r.stderr
        assert seconds >= 2.0
        rid = replica_id_from(r.stderr)
    finally:
        lab.fault("clear")
    assert lab.status()["faults"]["join_seconds"] == JOIN_SECONDS
    r, _ = lab.remove(rid)
    assert r.returncode == 0, r.stderr


def test_mke_error(lab, three):
    lab.fault("mke-error", 500)
    try:
        token_status = lab.mke("/auth/login", method="POST", body={"username": "admin", "password": lab.password})
        assert token_status[0] == 500
        assert lab.mke("/nodes", auth="admin")[0] == 500
        assert lab.mke("/nodes", auth="admin")[0] == 500     # count 0: until cleared
        before = lab.replicas()
        r, _ = lab.join(lab.free_worker())
        assert "unexpected status 500 from UCP" in fata(r)
        assert lab.replicas() == before
    finally:
        lab.fault("clear")
    assert lab.mke("/nodes", auth="admin")[0] == 200


def test_mke_latency(lab, three):
    lab.fault("mke-latency", 400)
    try:
        t = time.monotonic()
        assert lab.mke("/_ping")[0] == 200
        assert time.monotonic() - t >= 0.4
    finally:
        lab.fault("clear")
    assert lab.status()["faults"]["mke_latency_ms"] == 0


def test_ghost_fault(lab, three):
    node = lab.free_worker()
    r, _ = lab.join(node)
    assert r.returncode == 0, r.stderr
    rid = replica_id_from(r.stderr)
    lab.fault("ghost", node)
    rep = lab.replicas()[rid]
    assert rep["state"] == "ghost" and rep["health"] == DISCONNECTED
    assert lab.ssh(node, "docker ps -aq").stdout == ""
    r, _ = lab.join(lab.free_worker())
    assert r.returncode == 1 and f"Unhealthy replicas: {rid}" in fatal_lines(r.stderr)[0]
    r, _ = lab.remove(rid)
    assert r.returncode == 0, r.stderr
    assert all(x["health"] == "OK" for x in lab.replicas().values())


def test_clear_undoes_everything(lab, three):
    for fault in (["partition", "worker3"], ["mke-latency", 100], ["slow-join", 9], ["kill-bootstrapper", "containers"],
                  ["mke-error", 503, 5]):
        lab.fault(*fault)
    assert ping_fails(lab, "worker3")
    assert lab.status()["faults_active"] == {"kill_at_phase": "containers", "join_seconds": 9.0, "mke_status": 503,
                                             "mke_error_count": 5, "mke_latency_ms": 100}
    lab.fault("clear")
    st = lab.status()
    assert st["faults"] == {"kill_at_phase": None, "join_seconds": JOIN_SECONDS, "mke_status": None,
                            "mke_error_count": 0, "mke_latency_ms": 0}, st["faults"]
    assert st["faults_active"] == {}
    assert not any(n["partitioned"] for n in st["nodes"])
    wait_for(lambda: lab.ping_ok("worker3"), 10, what="worker3 /_ping after clear")
    assert lab.mke("/nodes", auth="admin")[0] == 200


def test_python_fault_api(lab, three):
    faults = control.Faults(LabFiles(STATE))
    r2 = three["worker2"]
    out = faults.stop_replica("worker2")
    assert out["health"][r2] == DISCONNECTED
    assert ping_fails(lab, "worker2")
    assert control.status(LabFiles(STATE))["cluster"]["has_quorum"] is True
    out = faults.start_replica(r2)
    assert out["health"][r2] == "OK"
    wait_for(lambda: lab.ping_ok("worker2"), 10, what="worker2 /_ping after start")
    faults.partition("worker3")
    assert ping_fails(lab, "worker3")
    faults.heal("worker3")
    wait_for(lambda: lab.ping_ok("worker3"), 10, what="worker3 /_ping after heal")
    faults.mke_error(503, 1)            # one failure, then the fault is spent
    assert lab.mke("/_ping")[0] == 503
    assert lab.mke("/_ping")[0] == 200
    assert faults.slow_join(1.5)["faults"]["join_seconds"] == 1.5
    out = faults.clear()
    assert out["faults"]["join_seconds"] == JOIN_SECONDS and set(out["health"].values()) == {"OK"}
    with pytest.raises(control.LabError, match="no replica"):
        faults.stop_replica("manager1")
