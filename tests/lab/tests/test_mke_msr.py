"""The MKE and MSR HTTP applications called directly, plus one real TLS round trip with the lab PKI."""
from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import ssl
import time

import pytest
from labclock import fake_clock, settle

from msr_lab.common.httpbase import Request
from msr_lab.common.httpserver import close_server, serve_app
from msr_lab.common.model import Lab, Node
from msr_lab.common.pki import LabPKI, certificate_hosts
from msr_lab.engine.state import EngineState
from msr_lab.mke.app import MkeApp
from msr_lab.msr.app import MsrApp
from msr_lab.msr.cluster import Cluster

PASSWORD = "s3cret-pw"
CA_PEM = "-----BEGIN CERTIFICATE-----\nlab\n-----END CERTIFICATE-----\n"


def make_lab(storage="s3") -> Lab:
    lab = Lab({"storage": storage, "mke_username": "admin", "mke_password": PASSWORD, "ca_pem": CA_PEM,
               "msr_image": "mirantis/dtr", "seed_external_url": "https://10.99.0.5"})
    for name, role, addr in [("manager1", "manager", "10.99.0.11"), ("manager2", "manager", "10.99.0.12"),
                             ("worker1", "worker", "10.99.0.21"), ("worker2", "worker", "10.99.0.22"),
                             ("worker3", "worker", "10.99.0.23"), ("lb1", "lb", "10.99.0.5")]:
        node = lab.nodes[name] = Node(name=name, role=role, addr=addr)
        if node.in_mke:
            node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    return lab


def basic(user="admin", secret=PASSWORD) -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def call(app, method, target, headers=None, body=None, tls=True):
    raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
    resp = asyncio.run(app(Request(method, target, dict(headers or {}), raw, "127.0.0.1:5555", tls)))
    return resp


def js(resp):
    return json.loads(resp.body)


def header(resp, name):
    return next((v for k, v in resp.headers if k.lower() == name.lower()), None)


@pytest.fixture
def lab():
    lab = make_lab()
    fake_clock(lab)
    for i, rid in enumerate(("0000000000a1", "0000000000a2", "0000000000a3")):
        lab.cluster.seed_install(f"worker{i + 1}", "2.9.16", rid)
    settle(lab)
    return lab


@pytest.fixture
def mke(lab):
    return MkeApp(lab)


def token(mke) -> str:
    resp = call(mke, "POST", "/auth/login", body={"username": "admin", "password": PASSWORD})
    assert resp.status == 200
    return js(resp)["auth_token"]


# ---------------------------------------------------------------- MKE

def test_mke_ping_and_ca_need_no_auth(mke):
    r = call(mke, "GET", "/_ping")
    assert (r.status, r.body) == (200, b"OK")
    r = call(mke, "GET", "/ca")
    assert r.status == 200 and r.body.decode() == CA_PEM


@pytest.mark.parametrize("headers", [{}, basic(secret="wrong"), basic(user="bob"),
                                     {"authorization": "Bearer nosuchtoken"}, {"authorization": "Basic !!"}])
def test_mke_rejects_bad_credentials_with_ucp_shape(mke, headers):
    for path in ("/nodes", "/info", "/containers/json", "/v1.41/containers/json"):
        r = call(mke, "GET", path, headers)
        assert r.status == 401
        err = js(r)["errors"][0]
        assert err["code"] == "UNAUTHORIZED" and err["message"]


def test_mke_login(mke):
    r = call(mke, "POST", "/auth/login", {"user-agent": "pytest"}, {"username": "admin", "password": "nope"})
    assert r.status == 401 and js(r)["errors"][0]["code"] == "UNAUTHORIZED"
    r = call(mke, "POST", "/auth/login", body=b"not json")
    assert r.status == 400
    r = call(mke, "POST", "/auth/login", {"user-agent": "pytest"}, {"username": "admin", "password": PASSWORD})
    doc = js(r)
    assert set(doc) == {"auth_token", "token_id", "user_agent"} and doc["user_agent"] == "pytest"
    assert call(mke, "GET", "/nodes", {"authorization": f"Bearer {doc['auth_token']}"}).status == 200
    assert call(mke, "GET", "/nodes", basic()).status == 200


def test_mke_nodes(lab, mke):
    lab.nodes["worker2"].labels["com.mirantis.launchpad.managed.dtr"] = "true"
    lab.nodes["worker3"].availability = "drain"
    nodes = js(call(mke, "GET", "/nodes", basic()))
    assert [n["Description"]["Hostname"] for n in nodes] == ["manager1", "manager2", "worker1", "worker2",
                                                             "worker3"]
    m1, m2, w1, w2, w3 = nodes
    assert m1["Spec"]["Role"] == "manager" and m1["ManagerStatus"] == {
        "Leader": True, "Reachability": "reachable", "Addr": "10.99.0.11:2377"}
    assert m2["ManagerStatus"]["Leader"] is False
    assert "ManagerStatus" not in w1 and w1["Spec"]["Role"] == "worker"
    assert w1["Status"] == {"State": "ready", "Message": "Healthy MKE worker", "Addr": "10.99.0.21"}
    assert m1["Status"]["Message"] == "Healthy MKE manager"
    assert w2["Spec"]["Labels"]["com.mirantis.launchpad.managed.dtr"] == "true"
    assert w3["Spec"]["Availability"] == "drain"
    assert w1["ID"] == lab.nodes["worker1"].node_id
    # filters, both wire forms
    workers = js(call(mke, "GET", '/nodes?filters={"role":["worker"]}', basic()))
    assert len(workers) == 3
    assert len(js(call(mke, "GET", '/nodes?filters={"role":{"manager":true}}', basic()))) == 2
    labelled = js(call(mke, "GET", '/nodes?filters={"node.label":["com.mirantis.launchpad.managed.dtr=true"]}',
                       basic()))
    assert [n["Description"]["Hostname"] for n in labelled] == ["worker2"]


def test_mke_unreachable_nodes_are_down_and_leader_moves(lab, mke):
    lab.nodes["worker1"].partitioned = True
    lab.nodes["manager1"].state = "down"
    lab.clock.advance(lab.timing("heartbeat_seconds"))   # no heartbeat from either for that long
    nodes = {n["Description"]["Hostname"]: n for n in js(call(mke, "GET", "/v1.41/nodes", basic()))}
    assert nodes["worker1"]["Status"]["State"] == "down"
    assert nodes["manager1"]["Status"]["State"] == "down"
    assert nodes["manager1"]["ManagerStatus"]["Reachability"] == "unreachable"
    assert nodes["manager2"]["ManagerStatus"]["Leader"] is True
    assert nodes["worker2"]["Status"]["State"] == "ready"


def test_mke_node_by_id_or_hostname(lab, mke):
    by_name = js(call(mke, "GET", "/nodes/worker2", basic()))
    by_id = js(call(mke, "GET", f"/nodes/{lab.nodes['worker2'].node_id}", basic()))
    assert by_name == by_id and by_name["Description"]["Hostname"] == "worker2"
    r = call(mke, "GET", "/nodes/nosuch", basic())
    assert r.status == 404 and "nosuch" in js(r)["message"]


def test_mke_node_update_sets_labels_and_availability_at_the_current_version(lab, mke):
    node = js(call(mke, "GET", "/nodes/worker2", basic()))
    index = node["Version"]["Index"]
    spec = dict(node["Spec"], Labels=dict(node["Spec"]["Labels"], **{"com.mirantis.msr.replica": "true"}),
                Availability="drain")
    stale = call(mke, "POST", "/nodes/%s/update?version=%d" % (node["ID"], index - 1), basic(), spec)
    assert stale.status == 500 and "update out of sequence" in js(stale)["message"]
    assert call(mke, "POST", "/nodes/worker2/update", basic(), spec).status == 400       # no version
    assert call(mke, "POST", "/nodes/nosuch/update?version=1", basic(), spec).status == 404
    assert call(mke, "POST", "/nodes/%s/update?version=%d" % (node["ID"], index), {}, spec).status == 401
    assert call(mke, "POST", "/nodes/%s/update?version=%d" % (node["ID"], index), basic(), spec).status == 200
    after = js(call(mke, "GET", "/nodes/worker2", basic()))
    assert after["Version"]["Index"] == index + 1 and after["Spec"]["Availability"] == "drain"
    assert after["Spec"]["Labels"]["com.mirantis.msr.replica"] == "true"
    assert after["Spec"]["Labels"]["com.docker.ucp.SANs"] == node["Spec"]["Labels"]["com.docker.ucp.SANs"]
    labelled = js(call(mke, "GET", '/nodes?filters={"node.label":["com.mirantis.msr.replica=true"]}', basic()))
    assert [n["Description"]["Hostname"] for n in labelled] == ["worker2"]
    # the same version twice: the second is out of sequence; removing the label is sending the spec without it
    assert call(mke, "POST", "/nodes/%s/update?version=%d" % (node["ID"], index), basic(), spec).status == 500
    spec = dict(after["Spec"], Labels={k: v for k, v in after["Spec"]["Labels"].items() if "msr" not in k})
    assert call(mke, "POST", "/nodes/worker2/update?version=%d" % (index + 1), basic(), spec).status == 200
    assert "com.mirantis.msr.replica" not in js(call(mke, "GET", "/nodes/worker2", basic()))["Spec"]["Labels"]
    demote = dict(spec, Role="manager")
    r = call(mke, "POST", "/nodes/worker2/update?version=%d" % (index + 2), basic(), demote)
    assert r.status == 400 and "not emulated" in js(r)["message"]


def test_mke_info_and_version(mke):
    info = js(call(mke, "GET", "/info", basic()))
    swarm = info["Swarm"]
    assert swarm["Nodes"] == 5 and swarm["Managers"] == 2 and swarm["ControlAvailable"] is True
    assert swarm["NodeID"] and swarm["LocalNodeState"] == "active"
    assert info["ContainersRunning"] == 27
    version = js(call(mke, "GET", "/version", basic()))
    assert version["Version"].startswith("ucp/") and version["ApiVersion"]


def test_mke_containers_across_nodes(lab, mke):
    h = basic()
    items = js(call(mke, "GET", '/containers/json?filters={"name":["dtr-rethinkdb-"]}', h))
    assert sorted(i["Names"][0] for i in items) == ["/worker1/dtr-rethinkdb-0000000000a1",
                                                     "/worker2/dtr-rethinkdb-0000000000a2",
                                                     "/worker3/dtr-rethinkdb-0000000000a3"]
    assert {i["Labels"]["com.docker.dtr.replica"] for i in items} == {"0000000000a1", "0000000000a2",
                                                                      "0000000000a3"}
    # the CLI's map-of-maps form and launchpad's ancestor filter
    items = js(call(mke, "GET", '/containers/json?filters={"ancestor":{"mirantis/dtr-nginx:2.9.16":true}}', h))
    assert len(items) == 3 and all("/dtr-nginx-" in i["Names"][0] for i in items)
    lab.cluster.stop_replica("0000000000a2")
    running = js(call(mke, "GET", '/containers/json?filters={"name":["dtr-rethinkdb-"]}', h))
    assert len(running) == 2
    everything = js(call(mke, "GET", '/containers/json?all=1&filters={"name":["dtr-rethinkdb-"]}', h))
    assert len(everything) == 3
    lab.nodes["worker3"].partitioned = True  # MKE cannot reach that engine
    everything = js(call(mke, "GET", '/containers/json?all=true&filters={"name":["dtr-rethinkdb-"]}', h))
    assert sorted(i["Names"][0].split("/")[1] for i in everything) == ["worker1", "worker2"]
    assert call(mke, "GET", '/containers/json?filters={"bogus":["x"]}', h).status == 400
    assert call(mke, "GET", "/containers/json?filters=notjson", h).status == 400


def test_mke_error_fault_counts_down(lab, mke):
    lab.faults.mke_status = 503
    lab.faults.mke_error_count = 2
    for _ in range(2):
        r = call(mke, "GET", "/_ping")
        assert r.status == 503 and js(r)["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
    assert call(mke, "GET", "/_ping").status == 200
    assert lab.faults.mke_status is None
    lab.faults.mke_status = 500  # count 0: until cleared
    assert all(call(mke, "GET", "/nodes", basic()).status == 500 for _ in range(5))
    lab.faults.mke_status = None
    assert call(mke, "GET", "/nodes", basic()).status == 200


def test_mke_latency_fault(lab, mke):
    lab.faults.mke_latency_ms = 300
    start = time.monotonic()
    assert call(mke, "GET", "/_ping").status == 200
    assert time.monotonic() - start >= 0.3


def test_mke_unknown_path(mke):
    r = call(mke, "GET", "/nope", basic())
    assert r.status == 404 and js(r) == {"message": "page not found"}


# ---------------------------------------------------------------- MSR

def msr(lab, rid="0000000000a1"):
    return lab.cluster.app_for(rid)


def test_msr_ping_healthy_and_after_quorum_loss(lab):
    app = msr(lab)
    assert isinstance(app, MsrApp) and app.rid == "0000000000a1"
    r = call(app, "GET", "/_ping")
    assert r.status == 200 and js(r) == {"Error": "", "Healthy": True}
    assert call(app, "GET", "/_ping", tls=False).status == 200  # the HTTP port serves health checks too
    lab.cluster.stop_replica("0000000000a2")
    lab.cluster.stop_replica("0000000000a3")
    r = call(app, "GET", "/_ping")
    assert r.status == 503 and js(r)["Healthy"] is False
    assert js(r)["Error"] == "rethinkdb: Rethink replica is currently in state: waiting_for_quorum"
    r = call(app, "GET", "/health", basic())
    assert r.status == 503 and js(r)["Health"] is False


def test_msr_health_and_nginx_status_need_auth(lab):
    app = msr(lab)
    assert call(app, "GET", "/health").status == 401
    r = call(app, "GET", "/health", basic())
    assert r.status == 200 and js(r) == {"Error": "", "Health": True}
    assert call(app, "GET", "/nginx_status").status == 401
    r = call(app, "GET", "/nginx_status", basic())
    assert r.status == 200 and r.body.startswith(b"Active connections:")
    assert b"server accepts handled requests" in r.body


def test_msr_cluster_status_auth(lab, mke):
    app = msr(lab)
    for h in ({}, basic(secret="bad"), basic(user="other")):
        r = call(app, "GET", "/api/v0/meta/cluster_status", h)
        assert r.status == 401 and js(r)["errors"][0]["code"] == "NOT_AUTHENTICATED"
    doc = js(call(app, "GET", "/api/v0/meta/cluster_status", basic()))
    assert doc["replica_health"] == {"0000000000a1": "OK", "0000000000a2": "OK", "0000000000a3": "OK"}
    assert doc["current_issues"] == [] and doc["rethink_system_tables"]["current_issues"] == []
    # an MKE token works in place of the password
    r = call(app, "GET", "/api/v0/meta/cluster_status", basic(secret=token(mke)))
    assert r.status == 200


def test_msr_cluster_status_as_observed(lab):
    lab.nodes["worker3"].partitioned = True
    seen_by_3 = js(call(msr(lab, "0000000000a3"), "GET", "/api/v0/meta/cluster_status", basic()))
    # current_issues are live RethinkDB state; replica_health is the cache, still OK for everyone
    assert seen_by_3["current_issues"][0]["critical"] is True
    assert set(seen_by_3["replica_health"].values()) == {"OK"}
    seen_by_1 = js(call(msr(lab), "GET", "/api/v0/meta/cluster_status", basic()))
    assert "not reachable: dtr_rethinkdb_0000000000a3" in seen_by_1["current_issues"][0]["description"]
    assert set(seen_by_1["replica_health"].values()) == {"OK"}
    # time passes: the majority keeps reporting, the cut-off replica cannot write (and reads its old copy)
    for _ in range(4):
        lab.clock.advance(lab.timing("health_period"))
        lab.cluster.reports.tick(lab.now())
    seen_by_1 = js(call(msr(lab), "GET", "/api/v0/meta/cluster_status", basic()))
    assert seen_by_1["replica_health"]["0000000000a1"] == "OK"
    assert seen_by_1["replica_health"]["0000000000a3"].startswith("Replica reported health too long ago: ")
    seen_by_3 = js(call(msr(lab, "0000000000a3"), "GET", "/api/v0/meta/cluster_status", basic()))
    assert all(v.startswith("Replica reported health too long ago: ") for v in seen_by_3["replica_health"].values())
    assert seen_by_3["replica_timestamp"]["0000000000a1"] < seen_by_1["replica_timestamp"]["0000000000a1"]
    # the minority replica cannot read its settings
    r = call(msr(lab, "0000000000a3"), "GET", "/api/v0/meta/settings", basic())
    assert r.status == 500 and "Cannot perform read" in js(r)["errors"][0]["message"]


def test_msr_settings(lab):
    a1, a2 = msr(lab), msr(lab, "0000000000a2")
    doc = js(call(a1, "GET", "/api/v0/meta/settings", basic()))
    assert doc["replicaID"] == "0000000000a1" and doc["dtrHost"] == "10.99.0.5"
    assert doc["createRepositoryOnPush"] is False
    r = call(a1, "POST", "/api/v0/meta/settings", basic(), {"createRepositoryOnPush": True, "replicaID": "x"})
    assert r.status == 200
    other = js(call(a2, "GET", "/api/v0/meta/settings", basic()))
    assert other["createRepositoryOnPush"] is True and other["replicaID"] == "0000000000a2"
    assert call(a1, "POST", "/api/v0/meta/settings", basic(), b"[1]").status == 400
    assert call(a1, "POST", "/api/v0/meta/settings", {}, {"x": 1}).status == 401
    lab.cluster.stop_replica("0000000000a2")
    lab.cluster.stop_replica("0000000000a3")
    r = call(a1, "POST", "/api/v0/meta/settings", basic(), {"scanningEnabled": True})
    assert r.status == 500 and "Cannot perform write" in js(r)["errors"][0]["message"]
    assert lab.cluster.settings["scanningEnabled"] is False


def test_msr_storage_settings(lab):
    app = msr(lab)
    path = "/api/v0/admin/settings/registry/simple"
    assert js(call(app, "GET", path, basic()))["storage"]["s3"]["bucket"] == "msr-lab"
    r = call(app, "PUT", path, basic(), {"storage": {"filesystem": {"rootdirectory": "/tmp"}}})
    assert r.status == 202
    assert js(call(app, "GET", path, basic())) == {"storage": {"filesystem": {"rootdirectory": "/storage"}}}
    s3 = {"storage": {"delete": {"enabled": True}, "s3": {"bucket": "b", "region": "us-east-1",
                                                         "accesskey": "BADKEY", "secretkey": "x"}}}
    r = call(app, "PUT", path, basic(), s3)
    assert r.status == 400 and "InvalidAccessKeyId" in js(r)["errors"][0]["message"]
    s3["storage"]["s3"]["accesskey"] = "AKIAGOOD"
    assert call(app, "PUT", path, basic(), s3).status == 202
    assert js(call(msr(lab, "0000000000a2"), "GET", path, basic())) == s3
    assert lab.cluster.status()["storage"] == "s3"
    for bad in ({"storage": {}}, {"storage": {"s3": {}, "azure": {}}}, {"nostorage": 1}, {"storage": {"ftp": {}}}):
        assert call(app, "PUT", path, basic(), bad).status == 400
    assert call(app, "PUT", path, {}, s3).status == 401
    lab.cluster.stop_replica("0000000000a2")
    lab.cluster.stop_replica("0000000000a3")
    r = call(app, "PUT", path, basic(), {"storage": {"filesystem": {}}})
    assert r.status == 500 and js(r)["errors"][0]["message"].startswith("gorethink:")
    assert lab.cluster.storage == s3["storage"]


def test_msr_registry_v2(lab, mke):
    app = msr(lab)
    r = call(app, "GET", "/v2/")
    assert r.status == 401
    assert header(r, "Docker-Distribution-Api-Version") == "registry/2.0"
    assert header(r, "WWW-Authenticate").startswith('Bearer realm="https://10.99.0.5/auth/token"')
    r = call(app, "GET", "/v2/", basic())
    assert r.status == 200 and js(r) == {} and header(r, "Docker-Distribution-Api-Version") == "registry/2.0"
    r = call(app, "GET", "/v2/_catalog", {"authorization": f"Bearer {token(mke)}"})
    assert r.status == 200 and js(r) == {"repositories": []}
    lab.cluster.stop_replica("0000000000a2")
    lab.cluster.stop_replica("0000000000a3")
    assert call(app, "GET", "/v2/", basic()).status == 500


def test_msr_plain_http_redirects_api_calls(lab):
    r = call(msr(lab), "GET", "/api/v0/meta/settings", {"host": "10.99.0.21"}, tls=False)
    assert r.status == 301 and header(r, "Location") == "https://10.99.0.21/api/v0/meta/settings"


def test_msr_joining_and_removed_replicas(lab):
    lab.cluster.add_member("0000000000b1", "worker1", "2.9.16", https_port=4443)
    lab.cluster.create_replica_objects("0000000000b1", "worker1", "2.9.16")
    app = msr(lab, "0000000000b1")
    r = call(app, "GET", "/_ping")
    assert r.status == 503 and js(r)["Error"] == "rethinkdb: container dtr-rethinkdb-0000000000b1 is starting"
    settle(lab)
    r = call(app, "GET", "/_ping")
    assert r.status == 503 and "not ready" in js(r)["Error"]
    assert call(app, "GET", "/api/v0/meta/settings", basic()).status == 503
    lab.cluster.remove_member("0000000000b1")
    assert call(app, "GET", "/_ping").status == 502


# ---------------------------------------------------------------- PKI and a real TLS round trip

def test_pki_reuses_files_and_reissues_for_other_names(tmp_path):
    pki = LabPKI(tmp_path / "pki")
    pki.ensure(["manager1", "manager2"], ["10.99.0.11", "10.99.0.12"])
    ca, cert = pki.ca_pem, pki.cert_path.read_bytes()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert oct(pki.key_path.stat().st_mode & 0o777) == "0o600"
    pki.ensure(["manager2", "manager1"], ["10.99.0.12", "10.99.0.11"])
    assert pki.cert_path.read_bytes() == cert  # the same names: untouched
    pki.ensure(["manager1"], ["10.99.0.11"])     # fewer names: reissued, naming only those
    assert pki.cert_path.read_bytes() != cert and pki.ca_pem == ca  # new leaf, same CA
    assert certificate_hosts(pki.cert_pem) == ({"manager1"}, {"10.99.0.11"})
    assert LabPKI(tmp_path / "pki").ca_pem == ca


def _get(port, ctx, path="/_ping", server_hostname="127.0.0.1"):
    """GET over TLS to 127.0.0.1:port, checking the certificate against `server_hostname`."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        conn.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_tls_round_trip_with_the_msr_ca(lab, tmp_path):
    """A replica serves its own certificate from MSR's CA: the MSR CA verifies it, the MKE CA does not."""
    mke_pki = LabPKI(tmp_path / "pki")
    mke_pki.ensure(["manager1"], ["10.99.0.11"])
    msr_ca = lab.cluster.tls.ca_pem
    assert msr_ca != mke_pki.ca_pem

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        server = await serve_app(msr(lab), sock, lab.cluster.server_context("0000000000a1"))
        try:
            trusted = ssl.create_default_context(cadata=msr_ca)
            status, body = await asyncio.to_thread(_get, port, trusted, "/_ping", "10.99.0.21")
            assert status == 200 and json.loads(body) == {"Error": "", "Healthy": True}
            for ctx in (mke_pki.client_context(), ssl.create_default_context()):
                with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
                    await asyncio.to_thread(_get, port, ctx, "/_ping", "10.99.0.21")
            status, _ = await asyncio.to_thread(_get, port, trusted, "/api/v0/meta/cluster_status", "worker1")
            assert status == 401
        finally:
            await close_server(server)

    asyncio.run(main())


def test_mke_over_https_login_then_bearer(lab, tmp_path):
    pki = LabPKI(tmp_path / "pki")
    pki.ensure(["localhost"], ["127.0.0.1"])

    def client(port):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=pki.client_context(), timeout=10)
        try:
            conn.request("POST", "/auth/login", json.dumps({"username": "admin", "password": PASSWORD}),
                         {"Content-Type": "application/json"})
            tok = json.loads(conn.getresponse().read())["auth_token"]
            conn.request("GET", '/containers/json?filters={"name":["dtr-nginx-"]}',
                         headers={"Authorization": f"Bearer {tok}"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = await serve_app(MkeApp(lab), sock, pki.server_context())
        try:
            status, items = await asyncio.to_thread(client, sock.getsockname()[1])
            assert status == 200
            assert sorted(i["Names"][0] for i in items) == [f"/worker{i}/dtr-nginx-0000000000a{i}" for i in (1, 2, 3)]
        finally:
            await close_server(server)

    asyncio.run(main())
