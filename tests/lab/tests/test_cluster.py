"""Cluster semantics: RethinkDB quorum, health texts as observed, and the replica objects on real engines."""
from __future__ import annotations

import re

import pytest

from msr_lab.common.model import Lab, Node
from msr_lab.engine.state import EngineState
from msr_lab.msr.cluster import Cluster
from msr_lab.msr.health import NOT_READY_TEXT, ClusterError
from msr_lab.msr.objects import SERVICES

OK = "OK"
DISCONNECTED = "Rethink replica is currently in state: disconnected"
WAIT_QUORUM = "Rethink replica is currently in state: waiting_for_quorum"
WAIT_PRIMARY = "Rethink replica is currently in state: waiting_for_primary"


def make_lab(workers=7, storage="s3") -> Lab:
    lab = Lab({"storage": storage, "mke_username": "admin", "mke_password": "pw", "msr_image": "mirantis/dtr"})
    for name, role, addr in ([("manager1", "manager", "10.99.0.11"), ("lb1", "lb", "10.99.0.5")]
                             + [(f"worker{i + 1}", "worker", f"10.99.0.{21 + i}") for i in range(workers)]):
        node = lab.nodes[name] = Node(name=name, role=role, addr=addr)
        if node.in_mke:
            node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    return lab


def seed(lab, n, version="2.9.16"):
    rids = [f"{i + 1:012x}" for i in range(n)]
    for i, rid in enumerate(rids):
        lab.cluster.seed_install(f"worker{i + 1}", version, rid)
    return rids


def engine(lab, rid):
    return lab.nodes[lab.cluster.replicas[rid].node].engine


def container(lab, rid, svc):
    return engine(lab, rid).find_container(f"dtr-{svc}-{rid}")


@pytest.fixture
def lab():
    return make_lab()


# ---------------------------------------------------------------- quorum math

@pytest.mark.parametrize("n", range(1, 8))
def test_quorum_math_for_stopped_replicas(n):
    for stopped in range(n + 1):
        lab = make_lab()
        rids = seed(lab, n)
        for rid in rids[n - stopped:]:
            lab.cluster.stop_replica(rid)
        majority = n // 2 + 1
        quorum = n - stopped >= majority
        c = lab.cluster
        assert c.majority() == majority
        assert c.has_quorum() is quorum, (n, stopped)
        health = c.health()
        for rid in rids[:n - stopped]:
            # the primary (first installed) is among the live ones, so it waits for quorum
            assert health[rid] == (OK if quorum else WAIT_QUORUM)
            assert c.ping(rid) == ((True, "") if quorum else (False, f"rethinkdb: {WAIT_QUORUM}"))
            assert c.replica_ok(rid) is quorum
        for rid in rids[n - stopped:]:
            assert health[rid] == DISCONNECTED
            assert c.ping(rid)[0] is False
            assert c.replica_ok(rid) is False
        issues = c.current_issues()
        if stopped == 0:
            assert issues == []
        else:
            assert len(issues) == 1 and issues[0]["critical"] is not quorum
            for rid in rids[n - stopped:]:
                assert f"dtr_rethinkdb_{rid}" in issues[0]["description"]


@pytest.mark.parametrize("n", range(1, 8))
def test_failures_tolerated_match_the_docs(n):
    # 1 -> 0, 3 -> 1, 5 -> 2, 7 -> 3 (and 2 -> 0, 4 -> 1, 6 -> 2)
    lab = make_lab()
    seed(lab, n)
    tolerated = 0
    for rid in list(lab.cluster.replicas):
        lab.cluster.stop_replica(rid)
        if not lab.cluster.has_quorum():
            break
        tolerated += 1
    assert tolerated == (n - 1) // 2


def test_waiting_for_primary_when_the_primary_is_gone(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(a)
    lab.cluster.stop_replica(b)
    assert lab.cluster.health() == {a: DISCONNECTED, b: DISCONNECTED, c: WAIT_PRIMARY}
    lab.cluster.start_replica(a)
    assert lab.cluster.health() == {a: OK, b: DISCONNECTED, c: OK}


# ---------------------------------------------------------------- partitions and node state

def test_partitioned_minority_sees_the_cluster_differently(lab):
    a, b, c = seed(lab, 3)
    lab.nodes["worker3"].partitioned = True
    cl = lab.cluster
    assert cl.health() == {a: OK, b: OK, c: DISCONNECTED}
    assert cl.health(a) == cl.health()
    assert cl.health(c) == {a: DISCONNECTED, b: DISCONNECTED, c: WAIT_PRIMARY}
    assert cl.ping(a) == (True, "") and cl.ping(c)[0] is False
    assert cl.has_quorum(a) and not cl.has_quorum(c)
    mine = cl.cluster_status(c)
    assert mine["current_issues"][0]["critical"] is True
    assert "dtr_rethinkdb_" + a in mine["current_issues"][0]["description"]
    theirs = cl.cluster_status(a)
    assert theirs["current_issues"][0]["critical"] is False
    assert theirs["current_issues"][0]["description"].endswith(
        "some replicas are not ready. The following servers are not reachable: dtr_rethinkdb_" + c)
    servers = {s["name"]: s for s in theirs["rethink_system_tables"]["server_status"]}
    assert set(servers) == {f"dtr_rethinkdb_{a}", f"dtr_rethinkdb_{b}"}
    net = servers[f"dtr_rethinkdb_{a}"]["network"]
    assert net["canonical_addresses"] == [{"host": f"dtr-rethinkdb-{a}.dtr-ol", "port": 29015}]
    assert net["connected_to"] == {f"dtr_rethinkdb_{b}": True, f"dtr_rethinkdb_{c}": False}
    lab.nodes["worker3"].partitioned = False
    assert set(cl.health().values()) == {OK}


def test_two_of_three_partitioned_loses_quorum_everywhere(lab):
    rids = seed(lab, 3)
    lab.nodes["worker1"].partitioned = True
    lab.nodes["worker2"].partitioned = True
    assert not lab.cluster.has_quorum()
    assert all(not lab.cluster.ping(r)[0] for r in rids)
    assert all(not lab.cluster.has_quorum(r) for r in rids)


def test_node_down_disconnects_its_replica(lab):
    a, b, c = seed(lab, 3)
    lab.nodes["worker2"].state = "down"
    assert lab.cluster.health() == {a: OK, b: DISCONNECTED, c: OK}


def test_joining_replica_is_not_ready_and_does_not_vote(lab):
    (a,) = seed(lab, 1)
    cl = lab.cluster
    cl.add_member("00000000000b", "worker2", "2.9.16")
    # before its containers exist it is simply unreachable; the installed replica keeps quorum
    assert cl.health() == {a: OK, "00000000000b": DISCONNECTED}
    cl.create_replica_objects("00000000000b", "worker2", "2.9.16")
    assert container(lab, "00000000000b", "nginx").health == "starting"
    assert cl.health() == {a: OK, "00000000000b": NOT_READY_TEXT}
    assert cl.ping("00000000000b")[0] is False and "not ready" in cl.ping("00000000000b")[1]
    assert "backfilling" in cl.current_issues()[0]["description"]
    cl.mark_running("00000000000b")
    assert container(lab, "00000000000b", "nginx").health == "healthy"
    assert cl.health() == {a: OK, "00000000000b": OK} and cl.current_issues() == []
    assert cl.majority() == 2


def test_a_stopped_service_fails_ping_with_its_name(lab):
    (a,) = seed(lab, 1)
    engine(lab, a).stop_container(container(lab, a, "garant"))
    assert lab.cluster.ping(a) == (False, f"garant: container dtr-garant-{a} is not running")
    assert lab.cluster.health()[a] == OK  # rethinkdb itself is fine


# ---------------------------------------------------------------- objects on the engines

def test_replica_objects_on_the_engine(lab):
    (rid,) = seed(lab, 1, "2.9.16")
    eng = engine(lab, rid)
    names = sorted(c.name for c in eng.containers.values())
    assert names == sorted(f"dtr-{s}-{rid}" for s in SERVICES)
    assert sorted(eng.volumes) == sorted(f"dtr-{k}-{rid}" for k in ("ca", "notary", "postgres", "registry",
                                                                    "rethink"))
    assert {"dtr-br", "dtr-ol"} <= set(eng.networks)
    assert eng.networks["dtr-ol"].driver == "overlay"
    rethink = container(lab, rid, "rethinkdb")
    assert rethink.image == "mirantis/dtr-rethink:2.9.16"
    assert container(lab, rid, "nginx").image == "mirantis/dtr-nginx:2.9.16"
    assert container(lab, rid, "scanningstore").image == "mirantis/dtr-postgres:2.9.16"
    assert rethink.labels["com.docker.dtr.version"] == "2.9.16"
    assert rethink.labels["com.docker.dtr.replica"] == rid
    assert rethink.labels["com.docker.compose.project"] == "dtr"
    assert all(c.status == "running" and c.health == "healthy" for c in eng.containers.values())
    found = eng.list_containers(True, {"name": ["dtr-rethinkdb-"], "label": ["com.docker.dtr.replica"]})
    assert [c.name for c in found] == [f"dtr-rethinkdb-{rid}"]
    # the volumes are really mounted, so the engine refuses to remove one in use
    assert any(m.get("Name") == f"dtr-rethink-{rid}" for m in rethink.mounts)


def test_nginx_publishes_the_replica_ports_while_running(lab):
    c = lab.cluster
    c.add_member("00000000000a", "worker3", "2.9.16", http_port=8081, https_port=4443)
    c.create_replica_objects("00000000000a", "worker3", "2.9.16")
    eng = engine(lab, "00000000000a")
    nginx = container(lab, "00000000000a", "nginx")
    assert eng.summary(nginx)["Ports"] == [
        {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 4443, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"}]
    assert eng.inspect(nginx)["NetworkSettings"]["Ports"]["443/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "4443"}]
    assert eng.summary(container(lab, "00000000000a", "rethinkdb"))["Ports"] == []   # only nginx publishes
    c.stop_replica("00000000000a")
    assert eng.summary(nginx)["Ports"] == [] and eng.inspect(nginx)["NetworkSettings"]["Ports"] == {}


def test_nfs_storage_uses_nfs_registry_volumes():
    lab = make_lab(storage="nfs")
    (rid,) = seed(lab, 1)
    vols = set(engine(lab, rid).volumes)
    assert f"dtr-nfs-registry-{rid}" in vols and f"dtr-registry-{rid}" not in vols
    assert lab.cluster.storage == {"filesystem": {"rootdirectory": "/storage"}}
    assert lab.cluster.status()["storage"] == "nfs"


@pytest.mark.parametrize("kind,driver", [("s3", "s3"), ("filesystem", "filesystem"), ("azure", "azure"),
                                         ("gcs", "gcs"), ("swift", "swift")])
def test_seeded_storage_follows_up_storage(kind, driver):
    """`up --storage` is the storage of the cluster `up` seeds (seed_install), not of a fresh install."""
    lab = make_lab(storage=kind)
    seed(lab, 1)
    assert list(lab.cluster.storage) == [driver]
    assert lab.cluster.status()["storage"] == driver
    if kind == "s3":
        assert lab.cluster.storage["s3"]["bucket"] == "msr-lab"
    if kind == "filesystem":
        assert lab.cluster.storage == {"filesystem": {"rootdirectory": "/storage"}}


def test_delete_replica_objects(lab):
    a, b = seed(lab, 2)
    out = lab.cluster.delete_replica_objects(b, "worker2")
    assert out["reachable"] is True and len(out["containers"]) == 9 and len(out["volumes"]) == 5
    eng = lab.nodes["worker2"].engine
    assert eng.containers == {} and eng.volumes == {}
    # nothing left: a second call removes nothing and does not fail
    again = lab.cluster.delete_replica_objects(b, "worker2")
    assert again["containers"] == [] and again["volumes"] == []
    # the membership is a separate thing
    assert b in lab.cluster.replicas


@pytest.mark.parametrize("fault", ["partitioned", "down"])
def test_delete_on_unreachable_node_leaves_everything(lab, fault):
    a, b = seed(lab, 2)
    node = lab.nodes["worker2"]
    if fault == "partitioned":
        node.partitioned = True
    else:
        node.state = "down"
    out = lab.cluster.delete_replica_objects(b, "worker2")
    assert out == {"node": "worker2", "reachable": False, "containers": [], "volumes": []}
    assert len(node.engine.containers) == 9 and len(node.engine.volumes) == 5


def test_stop_and_start_replica(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(b)
    eng = engine(lab, b)
    assert all(x.status == "exited" and x.exit_code == 0 for x in eng.containers.values())
    assert lab.cluster.replicas[b].state == "stopped"
    assert lab.cluster.listeners() and all(app.rid != b for _, _, _, app in lab.cluster.listeners())
    lab.cluster.start_replica(b)
    assert all(x.status == "running" for x in eng.containers.values())
    assert lab.cluster.health() == {a: OK, b: OK, c: OK}


def test_containers_decide_not_the_recorded_state(lab):
    a, b, c = seed(lab, 3)
    eng = engine(lab, b)
    eng.stop_container(container(lab, b, "rethinkdb"))  # e.g. `docker stop` on the node
    assert lab.cluster.health()[b] == DISCONNECTED
    assert next(r for r in lab.cluster.status()["replicas"] if r["id"] == b)["state"] == "stopped"
    eng.start_container(container(lab, b, "rethinkdb"))
    assert lab.cluster.health()[b] == OK
    lab.cluster.stop_replica(c)
    for x in list(engine(lab, c).containers.values()):  # `docker start` of every container
        engine(lab, c).start_container(x)
    assert lab.cluster.health()[c] == OK and lab.cluster.ping(c) == (True, "")
    assert next(r for r in lab.cluster.status()["replicas"] if r["id"] == c)["state"] == "running"
    assert len(lab.cluster.listeners()) == 6


def test_ghost_replica_keeps_membership(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.ghost_replica(c)
    assert lab.nodes["worker3"].engine.containers == {} and lab.nodes["worker3"].engine.volumes == {}
    assert lab.cluster.replicas[c].state == "ghost"
    assert lab.cluster.health() == {a: OK, b: OK, c: DISCONNECTED}
    with pytest.raises(ClusterError):
        lab.cluster.start_replica(c)
    lab.cluster.remove_member(c)
    assert lab.cluster.health() == {a: OK, b: OK} and lab.cluster.current_issues() == []


def test_the_last_replica_with_data_takes_the_cluster_with_it(lab):
    """Ghosts keep the cluster only while some member still has its data; then nothing is left of it."""
    a, b = seed(lab, 2)
    lab.cluster.settings["createRepositoryOnPush"] = True
    ca = lab.cluster.tls.ca_pem
    assert lab.cluster.ghost_replica(a)["dissolved"] is False and lab.cluster.installed
    assert lab.cluster.ghost_replica(b)["dissolved"] is True
    assert lab.cluster.replicas == {} and not lab.cluster.installed and lab.cluster.tls is None
    assert lab.cluster.settings["createRepositoryOnPush"] is False and lab.cluster.status()["msr_ca"] is None
    (c,) = seed(lab, 1)                            # a new cluster: its own CA
    assert lab.cluster.tls.ca_pem != ca and lab.cluster.replicas[c].state == "running"


def test_ghosts_count_towards_the_majority(lab):
    a, b = seed(lab, 2)
    lab.cluster.ghost_replica(b)
    assert not lab.cluster.has_quorum()
    assert lab.cluster.health() == {a: WAIT_QUORUM, b: DISCONNECTED}


@pytest.mark.parametrize("force", [False, True])
def test_emergency_repair(lab, force):
    rids = seed(lab, 5)
    for rid in rids[2:]:
        lab.cluster.stop_replica(rid)
    lab.nodes["worker5"].partitioned = True
    assert not lab.cluster.has_quorum()
    out = lab.cluster.emergency_repair(rids[0], force=force)
    assert out["kept"] == rids[0]
    assert sorted(out["removed"]) == sorted(rids[1:4]) and out["unreachable"] == [rids[4]]
    assert list(lab.cluster.replicas) == [rids[0]]
    assert lab.cluster.health() == {rids[0]: OK} and lab.cluster.ping(rids[0]) == (True, "")
    for i in (1, 2, 3):
        eng = lab.nodes[f"worker{i + 1}"].engine
        assert eng.containers == {}
        assert (eng.volumes == {}) is force
    # the partitioned node could not be reached: its objects are still there
    assert len(lab.nodes["worker5"].engine.containers) == 9


def test_emergency_repair_needs_a_live_replica(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(a)
    with pytest.raises(ClusterError):
        lab.cluster.emergency_repair(a)


def test_upgrade_replica_keeps_volumes(lab):
    (a,) = seed(lab, 1, "2.8.10")
    before = set(engine(lab, a).volumes)
    lab.cluster.upgrade_replica(a, "2.9.16")
    assert container(lab, a, "rethinkdb").labels["com.docker.dtr.version"] == "2.9.16"
    assert container(lab, a, "api").image == "mirantis/dtr-api:2.9.16"
    assert set(engine(lab, a).volumes) == before
    assert lab.cluster.replicas[a].version == "2.9.16"


# ---------------------------------------------------------------- membership, listeners, status

def test_seed_install_random_id_and_errors(lab):
    r = lab.cluster.seed_install("worker1", "2.9.16")
    assert re.fullmatch(r"[0-9a-f]{12}", r.id) and r.state == "running" and lab.cluster.installed
    with pytest.raises(ClusterError):
        lab.cluster.add_member(r.id, "worker2", "2.9.16")
    with pytest.raises(ClusterError):
        lab.cluster.add_member("0000000000ff", "nosuchnode", "2.9.16")
    with pytest.raises(ClusterError):
        lab.cluster.remove_member("0000000000ff")


def test_changes_are_announced(lab):
    calls = []
    lab.on_change(lambda: calls.append(1))
    seed(lab, 1)
    assert calls


def test_listeners_follow_nginx(lab):
    lab.cluster.add_member("0000000000aa", "worker1", "2.9.16", http_port=8080, https_port=8443)
    assert lab.cluster.listeners() == []
    lab.cluster.create_replica_objects("0000000000aa", "worker1", "2.9.16")
    got = lab.cluster.listeners()
    assert [(n, p, t) for n, p, t, _ in got] == [("worker1", 8080, False), ("worker1", 8443, True)]
    assert got[0][3] is got[1][3] and got[0][3].rid == "0000000000aa"
    assert lab.cluster.listeners()[0][3] is got[0][3]  # the same app object while it lives
    e = engine(lab, "0000000000aa")
    e.stop_container(container(lab, "0000000000aa", "nginx"))
    assert lab.cluster.listeners() == []


def test_status_and_cluster_status_documents(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(c)
    st = lab.cluster.status()
    assert st["installed"] and st["has_quorum"] and st["majority"] == 2
    assert st["quorum"].startswith("2/3 healthy")
    row = next(r for r in st["replicas"] if r["id"] == c)
    assert row["node"] == "worker3" and row["state"] == "stopped" and row["health"] == DISCONNECTED
    doc = lab.cluster.cluster_status(a)
    assert set(doc["replica_health"]) == set(doc["replica_timestamp"]) == {a, b, c}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in doc["replica_timestamp"].values())
    tables = doc["rethink_system_tables"]
    assert tables["cluster_config"] == [{"heartbeat_timeout_secs": 10, "id": "heartbeat"}]
    assert {"dtr2", "jobrunner", "notaryserver", "notarysigner"} <= {d["name"] for d in tables["db_config"]}
    assert tables["current_issues"][0]["type"] == "table_availability"
    empty = make_lab().cluster.status()
    assert empty["installed"] is False and empty["replicas"] == []
