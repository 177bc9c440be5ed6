"""System tests, part 5: health as MSR reports it, and the faults that need real sockets, on a real lab.

The lab seeds 3 replicas (worker1-3) with timings wide enough to observe each stage from outside: a 2 s
start period, reports every 0.5 s going stale after 3 s, and a 3 s MKE heartbeat delay.
"""
from __future__ import annotations

import time

import pytest
from system_lab import STALE, cli, lab_fixture, replica_id_from, wait_for

pytestmark = pytest.mark.timeout(180)

STARTING, STALE_AFTER, HEARTBEAT = 2.0, 3.0, 3.0
lab = lab_fixture("--workers", "4", "--replicas", "3", "--starting-seconds", str(STARTING), "--health-period", "0.5",
                  "--health-stale", str(STALE_AFTER), "--heartbeat-seconds", str(HEARTBEAT))
DISCONNECTED = "Rethink replica is currently in state: disconnected"
NO_DAEMON = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


@pytest.fixture(autouse=True)
def settled(lab):
    """Each test starts from (and leaves) a cluster that is live and reported OK."""
    lab.wait_settled(15)
    yield
    lab.fault("clear")
    lab.wait_settled(15)


def rid_on(lab, node):
    return lab.replica_on(node)


def mke_state(lab, token, node):
    status, nodes, _ = lab.mke("/nodes", token=token)
    assert status == 200, nodes
    return {n["Description"]["Hostname"]: n["Status"]["State"] for n in nodes}[node]


def mke_container_nodes(lab, token):
    status, items, _ = lab.mke('/containers/json?all=1&filters={"name":["dtr-rethinkdb-"]}', token=token)
    assert status == 200, items
    return sorted(i["Names"][0].split("/")[1] for i in items)


def test_up_returns_a_lab_that_reports_ok(lab):
    health = lab.cluster_status()["replica_health"]
    assert len(health) == 3 and set(health.values()) == {"OK"}
    out = lab.ssh("worker1", "docker ps --filter health=starting -q")
    assert out.returncode == 0 and out.stdout == ""


def test_a_stopped_replica_reads_ok_then_too_long_ago_and_status_shows_both(lab):
    r3 = rid_on(lab, "worker3")
    lab.fault("stop-replica", "worker3")
    try:
        _stopped_replica_views(lab, r3, time.monotonic())
    finally:
        lab.fault("start-replica", "worker3")


def _stopped_replica_views(lab, r3, t):
    text = cli("status").stdout
    block = text[text.index(r3):].splitlines()[:3]
    assert "stopped" in block[0] and DISCONNECTED in block[1]
    if time.monotonic() - t < STALE_AFTER - 1:   # still inside the threshold: the cache says OK
        assert block[2].split(":", 1)[1].split("[")[0].strip() == "OK", block
    health = lab.wait_reported(lambda h: h[r3].startswith(STALE), what="the stopped replica's report goes stale")
    assert time.monotonic() - t >= STALE_AFTER - 1
    stamp = lab.cluster_status()["replica_timestamp"][r3]
    assert health[r3] == STALE + stamp
    assert lab.replicas()[r3]["reported"] == STALE + stamp


def test_start_replica_passes_the_starting_window(lab):
    r3 = rid_on(lab, "worker3")
    lab.fault("stop-replica", "worker3")
    lab.fault("start-replica", "worker3")
    t = time.monotonic()
    ps = lab.ssh("worker3", "docker ps --filter health=starting --format '{{.Names}}'").stdout.split()
    inspect = lab.ssh("worker3", f"docker inspect -f '{{{{.State.Health.Status}}}}' dtr-api-{r3}").stdout.strip()
    status, body, _ = lab.msr("worker3", "/_ping", https=False)
    row = lab.replicas()[r3]
    if time.monotonic() - t < STARTING - 0.5:    # every look fell inside the window
        assert f"dtr-rethinkdb-{r3}" in ps and f"dtr-nginx-{r3}" in ps and len(ps) == 9
        assert inspect == "starting"
        assert status == 503 and body == {"Error": f"rethinkdb: container dtr-rethinkdb-{r3} is starting",
                                          "Healthy": False}
        assert row["starting"] > 0 and row["health"] == DISCONNECTED
    wait_for(lambda: lab.ping_ok("worker3"), 10, 0.1, "worker3 /_ping 200 after its start period")
    assert time.monotonic() - t >= STARTING - 0.5
    assert lab.ssh("worker3", "docker ps --filter health=starting -q").stdout == ""
    lab.wait_reported(lambda h: h[r3] == "OK", what="worker3 reported OK again")


def test_engine_down_then_up(lab):
    token = lab.mke_token()
    r2 = rid_on(lab, "worker2")
    assert lab.ssh("worker2", "docker run -d --name plain mirantis/dtr-api:2.9.16 && "
                              "docker run -d --name kept --restart unless-stopped mirantis/dtr-api:2.9.16"
                   ).returncode == 0
    lab.fault("engine-down", "worker2")
    t = time.monotonic()
    r = lab.docker("worker2", "ps")
    assert r.returncode == 1 and "Cannot connect to the Docker daemon" in r.stderr
    r = lab.ssh("worker2", "docker ps")                        # the node is up: ssh works, dockerd does not
    assert r.returncode == 1 and NO_DAEMON in r.stderr
    assert mke_container_nodes(lab, token) == ["worker1", "worker3"]   # MKE cannot reach it at once
    early_state = mke_state(lab, token, "worker2")
    early_report = lab.cluster_status()["replica_health"][r2]
    if time.monotonic() - t < HEARTBEAT - 1:
        assert early_state == "ready" and early_report == "OK"
    wait_for(lambda: mke_state(lab, token, "worker2") == "down", 10, 0.2, "MKE marks worker2 down")
    assert time.monotonic() - t >= HEARTBEAT - 1
    lab.wait_reported(lambda h: h[r2].startswith(STALE), what="worker2's report goes stale")
    node = {n["name"]: n for n in lab.status()["nodes"]}["worker2"]
    assert node["engine"] == "down" and node["mke_state"] == "down" and node["state"] == "ready"

    lab.fault("engine-up", "worker2")
    t = time.monotonic()
    names = lab.ssh("worker2", "docker ps --filter health=starting --format '{{.Names}}'").stdout.split()
    if time.monotonic() - t < STARTING - 0.5:
        assert sorted(names) == sorted(f"dtr-{s}-{r2}" for s in (
            "rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "jobrunner", "notary-signer",
            "scanningstore"))
    running = lab.ssh("worker2", "docker ps --format '{{.Names}}'").stdout.split()
    assert "kept" in running and "plain" not in running        # restart policies decide
    assert mke_state(lab, token, "worker2") == "ready"
    wait_for(lambda: lab.ping_ok("worker2"), 10, 0.1, "worker2 /_ping after its start period")
    lab.wait_reported(lambda h: h[r2] == "OK", what="worker2 reported OK")
    assert lab.ssh("worker2", "docker rm -f plain kept").returncode == 0


def test_slow_and_hanging_ping(lab):
    lab.fault("slow-ping", "worker1", 700)
    t = time.monotonic()
    assert lab.msr("worker1", "/_ping", https=False, timeout=5)[0] == 200
    assert time.monotonic() - t >= 0.7
    lab.fault("hang-ping", "worker1")
    with pytest.raises(OSError):                                # no answer at all
        lab.msr("worker1", "/_ping", timeout=1.5)
    assert lab.msr("worker1", "/api/v0/meta/cluster_status", auth="admin")[0] == 200   # the rest still answers
    pool = lambda: {s["name"]: s["status"] for s in lab.lb_pool() if s["backend"] == "msr_http"}  # noqa: E731
    wait_for(lambda: pool()["worker1"].startswith("DOWN"), 20, 0.5, "HAProxy's check times out: worker1 DOWN")
    lab.fault("clear")
    assert lab.msr("worker1", "/_ping", https=False, timeout=2)[0] == 200
    wait_for(lambda: pool()["worker1"] == "UP", 20, 0.5, "HAProxy marks worker1 UP again")


def test_tokens_expire(lab):
    token = lab.mke_token()
    lab.fault("token-expiry", 1)
    fresh = lab.mke_token()
    assert lab.mke("/nodes", token=fresh)[0] == 200
    wait_for(lambda: lab.mke("/nodes", token=fresh)[0] == 401, 5, 0.1, "the token expires")
    status, body, _ = lab.mke("/nodes", token=fresh)
    assert body == {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized: authentication required"}]}
    status, body, _ = lab.msr("worker1", "/api/v0/meta/cluster_status", auth=("admin", token))
    assert status == 401 and body["errors"][0]["code"] == "NOT_AUTHENTICATED"
    assert lab.mke("/nodes", auth="admin")[0] == 200           # the password still works
    lab.fault("clear")
    assert lab.mke("/nodes", token=fresh)[0] == 200


def test_freeze_and_thaw_health(lab):
    r1 = rid_on(lab, "worker1")
    lab.fault("freeze-health", "worker1")
    health = lab.wait_reported(lambda h: h[r1].startswith(STALE), "worker2", what="worker1's report goes stale")
    assert set(v for k, v in health.items() if k != r1) == {"OK"}
    assert lab.ping_ok("worker1") and lab.replicas()[r1]["health"] == "OK"   # it keeps serving
    lab.fault("thaw-health", "worker1")
    lab.wait_reported(lambda h: h[r1] == "OK", what="worker1 reports again")


def test_heartbeat_delay_on_partition(lab):
    token = lab.mke_token()
    lab.fault("partition", "worker4")
    t = time.monotonic()
    early = mke_state(lab, token, "worker4")
    if time.monotonic() - t < HEARTBEAT - 1:
        assert early == "ready"
    wait_for(lambda: mke_state(lab, token, "worker4") == "down", 10, 0.2, "MKE marks worker4 down")
    assert time.monotonic() - t >= HEARTBEAT - 1
    lab.fault("heal", "worker4")
    assert mke_state(lab, token, "worker4") == "ready"


def test_join_waits_for_the_new_replica_then_its_report(lab):
    t = time.monotonic()
    r, seconds = lab.join("worker4")
    assert r.returncode == 0, r.stderr
    assert seconds >= STARTING                                  # `Waiting for DTR to start...`
    rid = replica_id_from(r.stderr)
    healthy = lab.ssh("worker4", "docker ps --filter health=healthy --filter name=dtr-nginx -q").stdout.split()
    assert len(healthy) == 1 and lab.ping_ok("worker4")
    lab.wait_reported(lambda h: h.get(rid) == "OK", what="the joined replica reported OK")
    assert time.monotonic() - t >= STARTING
    r, _ = lab.remove(rid)
    assert r.returncode == 0, r.stderr
