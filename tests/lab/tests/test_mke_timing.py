"""MKE and MSR where time matters, on a controllable clock: the heartbeat delay before MKE shows a node
down, tokens that expire, a slow or hanging /_ping, and the faults that set them (faults.inject)."""
from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import pytest
from labclock import fake_clock, settle

from msr_lab.common.httpbase import Request
from msr_lab.common.httpserver import close_server, serve_app
from msr_lab.common.model import Lab, Node
from msr_lab.engine.state import EngineState
from msr_lab.faults import inject
from msr_lab.mke.app import MkeApp
from msr_lab.msr.cluster import Cluster

PASSWORD = "pw"
RIDS = ("0000000000a1", "0000000000a2", "0000000000a3")


@pytest.fixture
def lab():
    lab = Lab({"storage": "s3", "mke_username": "admin", "mke_password": PASSWORD, "msr_image": "mirantis/dtr",
               "heartbeat_seconds": 4})
    for name, role, addr in [("manager1", "manager", "10.99.0.11"), ("manager2", "manager", "10.99.0.12"),
                             ("worker1", "worker", "10.99.0.21"), ("worker2", "worker", "10.99.0.22"),
                             ("worker3", "worker", "10.99.0.23")]:
        node = lab.nodes[name] = Node(name=name, role=role, addr=addr)
        node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    fake_clock(lab)
    for i, rid in enumerate(RIDS):
        lab.cluster.seed_install(f"worker{i + 1}", "2.9.16", rid)
    settle(lab)
    return lab


@pytest.fixture
def mke(lab):
    return MkeApp(lab)


def call(app, method, target, headers=None, body=None, tls=True):
    raw = json.dumps(body).encode() if body is not None else b""
    return asyncio.run(app(Request(method, target, dict(headers or {}), raw, "127.0.0.1:5555", tls)))


def js(resp):
    return json.loads(resp.body)


def basic(secret=PASSWORD) -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"admin:{secret}".encode()).decode()}


def states(mke) -> dict[str, str]:
    return {n["Description"]["Hostname"]: n["Status"]["State"] for n in js(call(mke, "GET", "/nodes", basic()))}


def rethink_nodes(mke) -> list[str]:
    items = js(call(mke, "GET", '/containers/json?all=1&filters={"name":["dtr-rethinkdb-"]}', basic()))
    return sorted(i["Names"][0].split("/")[1] for i in items)


def run_for(lab, mke, seconds, step=0.25):
    end = lab.now() + seconds
    while lab.now() < end - 1e-9:
        lab.clock.advance(min(step, end - lab.now()))
        mke.tick(lab.now())


# ---------------------------------------------------------------- heartbeats

@pytest.mark.parametrize("fault", ["partitioned", "engine_down", "state"])
def test_mke_shows_an_unreachable_node_down_only_after_the_heartbeat_delay(lab, mke, fault):
    mke.tick(lab.now())
    if fault == "partitioned":
        lab.nodes["worker2"].partitioned = True
    elif fault == "engine_down":
        lab.nodes["worker2"].engine.shut_down()
    else:
        lab.nodes["worker2"].state = "down"
    # MKE cannot reach its engine at once: its containers are gone from the aggregated list ...
    assert rethink_nodes(mke) == ["worker1", "worker3"]
    # ... but the node still reads ready until no heartbeat came for heartbeat_seconds
    run_for(lab, mke, 3.9)
    assert states(mke)["worker2"] == "ready"
    node = js(call(mke, "GET", "/nodes/worker2", basic()))
    assert node["Status"] == {"State": "ready", "Message": "Healthy MKE worker", "Addr": "10.99.0.22"}
    run_for(lab, mke, 0.2)
    assert states(mke) == {"manager1": "ready", "manager2": "ready", "worker1": "ready", "worker2": "down",
                           "worker3": "ready"}
    assert js(call(mke, "GET", "/nodes/worker2", basic()))["Status"]["Message"] == "Node is down: heartbeat failure"
    # back: ready at its first heartbeat
    if fault == "partitioned":
        lab.nodes["worker2"].partitioned = False
    elif fault == "engine_down":
        lab.nodes["worker2"].engine.boot()
    else:
        lab.nodes["worker2"].state = "ready"
    assert states(mke)["worker2"] == "ready" and rethink_nodes(mke) == ["worker1", "worker2", "worker3"]


def test_a_manager_keeps_its_reachability_until_the_delay(lab, mke):
    mke.tick(lab.now())
    lab.nodes["manager1"].partitioned = True
    run_for(lab, mke, 1)
    m1 = js(call(mke, "GET", "/nodes/manager1", basic()))
    assert m1["Status"]["State"] == "ready" and m1["ManagerStatus"]["Reachability"] == "reachable"
    run_for(lab, mke, 4)
    m1 = js(call(mke, "GET", "/nodes/manager1", basic()))
    assert m1["Status"]["State"] == "down" and m1["ManagerStatus"]["Reachability"] == "unreachable"
    assert js(call(mke, "GET", "/nodes/manager2", basic()))["ManagerStatus"]["Leader"] is True


# ---------------------------------------------------------------- tokens

def test_tokens_expire_after_the_ttl(lab, mke):
    token = js(call(mke, "POST", "/auth/login", body={"username": "admin", "password": PASSWORD}))["auth_token"]
    msr = lab.cluster.app_for(RIDS[0])
    bearer = {"authorization": f"Bearer {token}"}
    inject.apply(lab, {"nodes": {}}, {"kind": "token-expiry", "seconds": 5})
    lab.clock.advance(4.9)
    assert call(mke, "GET", "/nodes", bearer).status == 200
    assert call(msr, "GET", "/api/v0/meta/cluster_status", basic(token)).status == 200
    lab.clock.advance(0.1)
    r = call(mke, "GET", "/nodes", bearer)
    assert r.status == 401 and js(r) == {"errors": [{"code": "UNAUTHORIZED",
                                                     "message": "unauthorized: authentication required"}]}
    r = call(msr, "GET", "/api/v0/meta/cluster_status", basic(token))
    assert r.status == 401 and js(r)["errors"][0]["code"] == "NOT_AUTHENTICATED"
    # the password still works, and a fresh token lives its own ttl
    assert call(mke, "GET", "/nodes", basic()).status == 200
    fresh = js(call(mke, "POST", "/auth/login", body={"username": "admin", "password": PASSWORD}))["auth_token"]
    assert call(mke, "GET", "/nodes", {"authorization": f"Bearer {fresh}"}).status == 200
    inject.apply(lab, {"nodes": {}}, {"kind": "clear"})
    assert lab.faults.token_ttl == 0 and call(mke, "GET", "/nodes", bearer).status == 200


# ---------------------------------------------------------------- /_ping faults

async def _timed(app, target="/_ping", tls=False):
    t = time.monotonic()
    resp = await app(Request("GET", target, {"host": "msr"}, b"", "127.0.0.1:5555", tls))
    return resp, time.monotonic() - t


def test_slow_ping_answers_late(lab):
    app = lab.cluster.app_for(RIDS[1])
    inject.apply(lab, {"nodes": {}}, {"kind": "slow-ping", "target": "worker2", "ms": 300})
    resp, took = asyncio.run(_timed(app))
    assert resp.status == 200 and took >= 0.3
    other, _ = asyncio.run(_timed(lab.cluster.app_for(RIDS[0])))
    assert other.status == 200
    assert lab.cluster.status()["replicas"][1]["faults"] == {"ping_delay_ms": 300}
    inject.apply(lab, {"nodes": {}}, {"kind": "clear"})
    assert lab.cluster.replicas[RIDS[1]].ping_delay_ms == 0


def test_hanging_ping_answers_only_once_cleared(lab):
    app = lab.cluster.app_for(RIDS[1])
    inject.apply(lab, {"nodes": {}}, {"kind": "hang-ping", "target": RIDS[1]})

    async def main():
        pending = asyncio.create_task(_timed(app))
        await asyncio.sleep(0.4)
        assert not pending.done()
        settings, _ = await _timed(app, "/api/v0/meta/settings", tls=True)   # other endpoints still answer
        assert settings.status == 401
        inject.apply(lab, {"nodes": {}}, {"kind": "clear"})
        resp, took = await asyncio.wait_for(pending, 2)
        return resp, took

    resp, took = asyncio.run(main())
    assert resp.status == 200 and json.loads(resp.body) == {"Error": "", "Healthy": True} and took >= 0.4


# ---------------------------------------------------------------- the faults' plumbing

def test_fault_kinds_and_clear(lab):
    out = inject.apply(lab, {"nodes": {}}, {"kind": "engine-down", "target": "worker3"})
    assert lab.nodes["worker3"].engine_down and out["health"][RIDS[2]].endswith("disconnected")
    assert out["reported"][RIDS[2]] == "OK"                   # the cache has not noticed yet
    inject.apply(lab, {"nodes": {}}, {"kind": "freeze-health", "target": "worker1"})
    assert lab.cluster.replicas[RIDS[0]].reports_frozen
    with pytest.raises(ValueError, match="no Docker engine|no replica"):
        inject.apply(lab, {"nodes": {}}, {"kind": "freeze-health", "target": "manager1"})
    inject.apply(lab, {"nodes": {}}, {"kind": "clear"})
    assert not lab.nodes["worker3"].engine_down and not lab.cluster.replicas[RIDS[0]].reports_frozen
    assert lab.nodes["worker3"].engine.find_container(f"dtr-api-{RIDS[2]}").health == "starting"
    inject.apply(lab, {"nodes": {}}, {"kind": "freeze-health", "target": "worker1"})
    inject.apply(lab, {"nodes": {}}, {"kind": "thaw-health", "target": "worker1"})
    assert not lab.cluster.replicas[RIDS[0]].reports_frozen


def test_a_client_giving_up_on_a_hanging_ping_ends_its_wait(lab):
    """Health checks that time out (HAProxy's every second) must not leave waits behind."""
    inject.apply(lab, {"nodes": {}}, {"kind": "hang-ping", "target": RIDS[0]})

    def client(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: msr\r\n\r\n")
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(100)                  # no answer while it hangs

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        server = await serve_app(lab.cluster.app_for(RIDS[0]), sock)
        try:
            idle = len(asyncio.all_tasks())
            await asyncio.to_thread(client, sock.getsockname()[1])
            for _ in range(40):
                if len(asyncio.all_tasks()) <= idle:
                    break
                await asyncio.sleep(0.05)
            return len(asyncio.all_tasks()) - idle
        finally:
            await close_server(server)

    assert asyncio.run(main()) <= 0
    assert lab.cluster.replicas[RIDS[0]].ping_hang      # the fault itself is still on
