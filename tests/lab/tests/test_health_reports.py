"""Health as MSR reports it (msr2.md §2.3, §1.10), on a controllable clock: the replica_health cache that
each replica refreshes on a period, its ageing, and the start period every (re)started replica passes."""
from __future__ import annotations

import datetime

import pytest
from labclock import fake_clock, settle

from msr_lab.common.model import Lab, Node
from msr_lab.engine.common import EngineError
from msr_lab.engine.state import EngineState
from msr_lab.msr.cluster import Cluster
from msr_lab.msr.health import NOT_READY_TEXT

DISCONNECTED = "Rethink replica is currently in state: disconnected"
STALE = "Replica reported health too long ago: "


def make_lab(**config) -> Lab:
    lab = Lab({"storage": "s3", "mke_username": "admin", "mke_password": "pw", "msr_image": "mirantis/dtr",
               **config})
    for i in range(5):
        node = lab.nodes[f"worker{i + 1}"] = Node(name=f"worker{i + 1}", role="worker", addr=f"10.99.0.{21 + i}")
        node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    fake_clock(lab)
    return lab


def seed(lab, n):
    rids = [f"{i + 1:012x}" for i in range(n)]
    for i, rid in enumerate(rids):
        lab.cluster.seed_install(f"worker{i + 1}", "2.9.16", rid)
    settle(lab)
    return rids


def rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_for(lab, seconds, step=0.25):
    """Time passes with the daemon's ticks."""
    end = lab.now() + seconds
    while lab.now() < end - 1e-9:
        lab.clock.advance(min(step, end - lab.now()))
        lab.cluster.reports.tick(lab.now())


def reported(lab, observer=None):
    doc = lab.cluster.cluster_status(observer)
    return doc["replica_health"], doc["replica_timestamp"]


def container(lab, rid, svc):
    return lab.nodes[lab.cluster.replicas[rid].node].engine.find_container(f"dtr-{svc}-{rid}")


@pytest.fixture
def lab():
    return make_lab()


def test_a_dead_replica_reads_ok_until_its_report_is_too_old(lab):
    a, b, c = seed(lab, 3)
    run_for(lab, 1)
    last = lab.cluster.reports.entries[c].at
    lab.cluster.stop_replica(c)
    # the inconvenient truth: the live view knows at once, the cache does not
    assert lab.cluster.health()[c] == DISCONNECTED
    health, stamps = reported(lab, a)
    assert health[c] == "OK" and stamps[c] == rfc3339(last)
    stale = lab.timing("health_stale")
    assert stale == 3 * lab.timing("health_period")           # the default threshold
    run_for(lab, stale - (lab.now() - last) - 0.05)
    health, stamps = reported(lab, a)
    assert health[c] == "OK" and stamps[c] == rfc3339(last)
    run_for(lab, 0.1)
    health, stamps = reported(lab, a)
    assert health == {a: "OK", b: "OK", c: STALE + rfc3339(last)}
    assert stamps[c] == rfc3339(last) and stamps[a] == rfc3339(lab.cluster.reports.entries[a].at)
    assert lab.now() - lab.cluster.reports.entries[a].at < lab.timing("health_period")


def test_each_replica_reports_once_per_period():
    lab = make_lab(health_period=1.5)
    (a,) = seed(lab, 1)
    first = lab.cluster.reports.entries[a].at
    run_for(lab, 1.4, step=0.1)
    assert lab.cluster.reports.entries[a].at == first
    run_for(lab, 0.2, step=0.1)
    assert lab.cluster.reports.entries[a].at == pytest.approx(first + 1.5)


def test_the_threshold_is_configurable():
    lab = make_lab(health_period=1, health_stale=10)
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(c)
    run_for(lab, 9.5)
    assert reported(lab)[0][c] == "OK"
    run_for(lab, 1)
    assert reported(lab)[0][c].startswith(STALE)


def test_without_a_majority_no_replica_can_write_its_report(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.stop_replica(b)
    lab.cluster.stop_replica(c)
    assert lab.cluster.alive(a) and not lab.cluster.has_quorum(a)
    before = lab.cluster.reports.entries[a].at
    run_for(lab, lab.timing("health_stale") + 1)
    assert lab.cluster.reports.entries[a].at == before
    assert all(v.startswith(STALE) for v in reported(lab, a)[0].values())


def test_freeze_and_thaw_reports(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.replicas[b].reports_frozen = True
    run_for(lab, lab.timing("health_stale") + 1)
    assert lab.cluster.ping(b) == (True, "")                 # it keeps serving
    assert lab.cluster.health()[b] == "OK"
    assert reported(lab)[0][b].startswith(STALE) and reported(lab)[0][a] == "OK"
    lab.cluster.replicas[b].reports_frozen = False
    lab.cluster.reports.tick(lab.now())                       # it reports at once when thawed
    assert reported(lab)[0][b] == "OK" and lab.cluster.reports.entries[b].at == lab.now()


def test_a_replica_reports_its_own_failing_service(lab):
    (a,) = seed(lab, 1)
    eng = lab.nodes["worker1"].engine
    eng.stop_container(container(lab, a, "garant"))
    run_for(lab, lab.timing("health_period"))
    assert reported(lab)[0][a] == f"garant: container dtr-garant-{a} is not running"


def test_a_restart_passes_the_starting_window(lab):
    a, b, c = seed(lab, 3)
    run_for(lab, 1)
    lab.cluster.stop_replica(c)
    run_for(lab, 1)
    last = lab.cluster.reports.entries[c].at
    lab.cluster.start_replica(c)
    eng = lab.nodes["worker3"].engine
    starting = eng.list_containers(False, {"health": ["starting"]})
    assert sorted(x.name for x in starting) == sorted(f"dtr-{s}-{c}" for s in (
        "rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "jobrunner", "notary-signer",
        "scanningstore"))
    assert eng.inspect(container(lab, c, "api"))["State"]["Health"]["Status"] == "starting"
    assert lab.cluster.ping(c) == (False, f"rethinkdb: container dtr-rethinkdb-{c} is starting")
    assert lab.cluster.health()[c] == DISCONNECTED and not lab.cluster.replica_started(c)
    window = lab.timing("starting_seconds")
    run_for(lab, window - 0.05, step=0.05)
    assert lab.cluster.reports.entries[c].at == last and lab.cluster.starting_left(c) > 0
    run_for(lab, 0.1, step=0.05)
    assert eng.list_containers(False, {"health": ["starting"]}) == []
    assert lab.cluster.ping(c) == (True, "") and lab.cluster.replica_started(c)
    assert reported(lab)[0][c] == "OK" and lab.cluster.reports.entries[c].at > last


def test_the_window_length_comes_from_the_config():
    lab = make_lab(starting_seconds=5)
    lab.cluster.seed_install("worker1", "2.9.16", "0000000000a1")
    api = container(lab, "0000000000a1", "api")
    lab.clock.advance(4.9)
    assert api.health == "starting"
    lab.clock.advance(0.2)
    assert api.health == "healthy"


def test_a_joined_replica_shows_ok_only_after_its_first_report(lab):
    (a,) = seed(lab, 1)
    cl = lab.cluster
    cl.add_member("00000000000b", "worker2", "2.9.16")
    assert reported(lab)[0]["00000000000b"] == NOT_READY_TEXT    # registered by the bootstrapper
    cl.create_replica_objects("00000000000b", "worker2", "2.9.16")
    settle(lab)
    assert reported(lab)[0]["00000000000b"] == NOT_READY_TEXT    # it reports while backfilling
    lab.clock.advance(0.1)
    cl.mark_running("00000000000b")
    assert cl.health()["00000000000b"] == "OK"                   # the live view at once
    assert reported(lab)[0]["00000000000b"] == NOT_READY_TEXT    # the cache at its next report
    due = cl.reports.due["00000000000b"]
    run_for(lab, due - lab.now() - 0.05, step=0.05)
    assert reported(lab)[0]["00000000000b"] == NOT_READY_TEXT
    run_for(lab, 0.1, step=0.05)
    assert reported(lab)[0]["00000000000b"] == "OK"


def test_removed_members_leave_the_cache(lab):
    a, b, c = seed(lab, 3)
    lab.cluster.remove_member(c)
    assert set(reported(lab)[0]) == {a, b} and c not in lab.cluster.reports.entries


# ---------------------------------------------------------------- the engine going down and up

def test_engine_down_and_up_restarts_by_policy(lab):
    a, b = seed(lab, 2)
    eng = lab.nodes["worker2"].engine
    eng.pull("mirantis/dtr:2.9.16")
    plain = eng.create_container("plain", {"Image": "mirantis/dtr-api:2.9.16"})
    eng.start_container(plain)
    always = eng.create_container("always", {"Image": "mirantis/dtr-api:2.9.16",
                                             "HostConfig": {"RestartPolicy": {"Name": "always"}}})
    eng.start_container(always)
    eng.stop_container(always)                                # `always` comes back anyway
    stopped = container(lab, b, "jobrunner")
    eng.stop_container(stopped)                               # `docker stop`: unless-stopped stays down
    eng.shut_down()
    assert lab.nodes["worker2"].engine_down and not lab.nodes["worker2"].reachable
    assert all(not x.running for x in eng.containers.values())
    with pytest.raises(EngineError, match="Cannot connect to the Docker daemon"):
        eng.start_container(plain)
    with pytest.raises(EngineError, match="Cannot connect to the Docker daemon"):
        eng.create_container("new", {"Image": "mirantis/dtr-api:2.9.16"})
    assert lab.cluster.health()[b] == DISCONNECTED
    restarted = eng.boot()
    assert "always" in restarted and "plain" not in restarted and stopped.name not in restarted
    assert set(restarted) == {"always"} | {f"dtr-{s}-{b}" for s in (
        "rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "notary-signer", "scanningstore")}
    assert container(lab, b, "rethinkdb").health == "starting"
    assert container(lab, b, "rethinkdb").restart_count == 1
    settle(lab)
    assert lab.cluster.health()[b] == "OK" and not stopped.running
