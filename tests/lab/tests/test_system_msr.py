"""System tests, part 2: MSR replicas, the LB node, and the bootstrapper run through the real docker CLI.

The tests of this module share one lab and run in file order: the bootstrapper tests build on each other
(join -> refusals -> unsafe join -> remove -> destroy/ghost -> fix), as an operator's session would.
"""
from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from logrus import fatal_lines
from system_lab import STALE, fata, lab_fixture, replica_id_from, wait_for

pytestmark = pytest.mark.timeout(120)

lab = lab_fixture("--workers", "5", "--replicas", "1")
KBASE = ("This DTR has replicas that are not working correctly. Make sure existing DTR replicas are healthy before "
         "joining new ones. To ignore this warning, use --unsafe-join. Error: Unhealthy replicas: ")


def test_replica_endpoints(lab):
    rid = lab.replica_on("worker1")
    for https in (True, False):
        status, body, _ = lab.msr("worker1", "/_ping", https=https)
        assert (status, body) == (200, {"Error": "", "Healthy": True})
    status, body, _ = lab.msr("worker1", "/api/v0/meta/cluster_status", auth="admin")
    assert status == 200 and body["replica_health"] == {rid: "OK"} and body["current_issues"] == []
    status, body, headers = lab.msr("worker1", "/api/v0/meta/cluster_status")
    assert status == 401 and body["errors"][0]["code"] == "NOT_AUTHENTICATED"
    # MSR's own CA, for clients to trust: on HTTPS without auth; the plain HTTP port redirects it
    status, body, _ = lab.msr("worker1", "/ca")
    assert status == 200 and body == lab.msr_ca() and body != Path(lab.ca).read_text()
    # plain HTTP redirects the API to HTTPS
    conn = http.client.HTTPConnection(lab.addr("worker1"), 80, timeout=5)
    conn.request("GET", "/api/v0/meta/cluster_status")
    resp = conn.getresponse()
    assert resp.status == 301 and resp.getheader("Location").startswith(f"https://{lab.addr('worker1')}/")
    conn.close()
    # storage settings: GET, PUT, GET again
    path = "/api/v0/admin/settings/registry/simple"
    status, body, _ = lab.msr("worker1", path, auth="admin")
    assert status == 200 and "s3" in body["storage"]
    new = {"storage": {"s3": {"bucket": "system-test", "region": "eu-west-1"}, "delete": {"enabled": True}}}
    assert lab.msr("worker1", path, method="PUT", body=new, auth="admin")[0] == 202
    assert lab.msr("worker1", path, auth="admin")[1] == new
    assert lab.msr("worker1", path, method="PUT", body=new)[0] == 401
    # the registry API
    status, body, headers = lab.msr("worker1", "/v2/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
    status, body, headers = lab.msr("worker1", "/v2/", auth="admin")
    assert status == 200 and headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def _pool(lab, backend="msr_https"):
    return {s["name"]: s["status"] for s in lab.lb_pool() if s["backend"] == backend}


def test_lb_haproxy(lab):
    lb = lab.addr("lb1")
    assert lab.status()["lb_kinds"] == {"lb1": "haproxy"}     # the default: one HAProxy node
    # HAProxy (TCP pass-through) reaches the replica on 443 and 80: the replica's cert names the LB (the seeded
    # cluster's external URL), verified with the cluster's MSR CA
    assert lab.request(f"https://{lb}/_ping")[:2] == (200, {"Error": "", "Healthy": True})
    assert lab.request(f"http://{lb}/_ping")[:2] == (200, {"Error": "", "Healthy": True})
    with pytest.raises(OSError):          # one kind per LB node: no NGINX beside HAProxy
        lab.request(f"http://{lb}:8080/_ping", timeout=2)
    wait_for(lambda: _pool(lab) == {"worker1": "UP"}, 10, what="HAProxy pool UP")
    assert _pool(lab, "msr_http") == {"worker1": "UP"}

    lab.fault("stop-replica", "worker1")
    try:
        _, took = wait_for(lambda: _pool(lab)["worker1"].startswith("DOWN"), 10, 0.2, "HAProxy marks worker1 DOWN")
        assert took < 10
        with pytest.raises(OSError):     # nothing behind the LB now
            lab.request(f"https://{lb}/_ping", timeout=3)
    finally:
        lab.fault("start-replica", "worker1")
    wait_for(lambda: _pool(lab)["worker1"] == "UP", 10, 0.2, "HAProxy marks worker1 UP again")
    assert lab.request(f"https://{lb}/_ping")[0] == 200


def test_join_worker2(lab):
    r1 = lab.replica_on("worker1")
    r, seconds = lab.join("worker2", r1)
    assert r.returncode == 0, r.stderr
    assert "Join is complete" in r.stderr
    rid = replica_id_from(r.stderr)
    # the replica's containers run on worker2 (seen from inside the node)
    ps = lab.ssh("worker2", "docker ps --format '{{.Names}}'")
    names = set(ps.stdout.split())
    assert {f"dtr-{svc}-{rid}" for svc in ("rethinkdb", "registry", "api", "nginx", "garant")} <= names, ps.stdout
    assert "dtr-phase2" not in names
    # and through MKE, prefixed with the node
    status, containers, _ = lab.mke("/containers/json", token=lab.mke_token())
    assert status == 200
    assert f"/worker2/dtr-rethinkdb-{rid}" in {n for c in containers for n in c["Names"]}
    reps = lab.replicas()
    assert {r["node"]: r["health"] for r in reps.values()} == {"worker1": "OK", "worker2": "OK"}
    assert lab.ping_ok("worker2")


def test_join_worker3_for_quorum(lab):
    r, _ = lab.join("worker3")
    assert r.returncode == 0, r.stderr
    assert len(lab.replicas()) == 3


def test_join_refusals(lab):
    """Each documented refusal: exit 1 and one FATA line, the cluster unchanged."""
    before = lab.membership()
    r1 = lab.replica_on("worker1")
    cases = {
        "wrong password": (lab.join("worker4", r1, password="not-the-password")[0],
                           "Invalid UCP credentials"),
        "untrusted CA": (lab.join("worker4", r1, ca=False)[0], "x509: certificate signed by unknown authority"),
        "unknown flag": (lab.join("worker4", r1, "--no-such-flag")[0], "flag provided but not defined"),
        "target runs a replica": (lab.join("worker2", r1)[0], "already runs DTR replica"),
        "unknown existing replica": (lab.join("worker4", "0123456789ab")[0],
                                     "given with --existing-replica-id is not part of this DTR cluster"),
    }
    for what, (r, text) in cases.items():
        line = fata(r)
        assert text in line, (what, line)
    # missing required value without a TTY: refused at once, never waits for input
    r, seconds = lab.bootstrap("join", "--ucp-node=worker4", f"--existing-replica-id={r1}", password=False,
                                timeout=20)
    assert "Missing required value for --ucp-password" in fata(r) and "no TTY" in r.stderr
    assert seconds < 10
    assert lab.membership() == before


def test_mke_scheduling_setting_decides_whether_joins_run(lab):
    """An admin turns enable_admin_ucp_scheduling off through config-toml: MKE's scheduler refuses the join
    with the documented text (msr2.md §1.10), nothing is left on the node; on again, the fault does the same."""
    token = lab.mke_token()
    status, text, _ = lab.mke("/api/ucp/config-toml", token=token)
    assert status == 200 and "enable_admin_ucp_scheduling = true" in text
    status, body, _ = lab.mke("/api/ucp/config-toml", method="PUT", token=token, content_type="application/toml",
                              body=text.replace("enable_admin_ucp_scheduling = true",
                                                "enable_admin_ucp_scheduling = false").encode())
    assert status == 200, body
    try:
        r, _ = lab.join("worker4")
        assert fata(r) == ('Error response from daemon: {"message":"could not find any nodes on which the container '
                           'could be created"}')
        assert lab.replica_on("worker4") is None
        assert lab.ssh("worker4", "docker ps -aq; docker volume ls -q").stdout.strip() == ""
    finally:
        lab.fault("admin-scheduling", "on")
    assert "enable_admin_ucp_scheduling = true" in lab.mke("/api/ucp/config-toml", token=token)[1]


def test_unhealthy_cluster_needs_unsafe_join(lab):
    r3 = lab.replica_on("worker3")
    lab.fault("stop-replica", r3)
    try:
        r, _ = lab.join("worker4")
        first, last = fatal_lines(r.stderr)
        assert r.returncode == 1 and KBASE + r3 in first and "disconnected" in first
        assert last.startswith("Failed to execute phase2: Problem running container 'dtr-phase2'")
        assert lab.replica_on("worker4") is None
        r, _ = lab.join("worker4", None, "--unsafe-join")
        assert r.returncode == 0, r.stderr
        assert "Joining anyway because of --unsafe-join" in r.stderr
        assert lab.replicas()[replica_id_from(r.stderr)]["node"] == "worker4"
    finally:
        lab.fault("start-replica", r3)
    lab.wait_settled()      # through its start period


def test_remove_replica(lab):
    r4 = lab.replica_on("worker4")
    assert lab.ssh("worker4", "docker ps -aq").stdout.strip()
    r, _ = lab.remove(r4)
    assert r.returncode == 0, r.stderr
    assert f"Successfully removed replica(s) {r4}" in r.stderr
    assert r4 not in lab.replicas()
    assert lab.ssh("worker4", "docker ps -a --format '{{.Names}}'").stdout == ""
    assert f"-{r4}" not in lab.ssh("worker4", "docker volume ls -q").stdout
    assert not lab.ping_ok("worker4", timeout=1)


def test_destroy_leaves_ghost_then_remove_fixes(lab):
    r3 = lab.replica_on("worker3")
    r, _ = lab.bootstrap("destroy", f"--replica-id={r3}")
    assert r.returncode == 0, r.stderr
    assert lab.ssh("worker3", "docker ps -a --format '{{.Names}}'").stdout == ""
    reps = lab.replicas()
    assert reps[r3]["state"] == "ghost" and reps[r3]["health"] != "OK"
    status, body, _ = lab.msr("worker1", "/api/v0/meta/cluster_status", auth="admin")
    assert status == 200 and r3 in body["replica_ids"]
    # the ghost cannot report any more: its cache entry ages until it reads "too long ago"
    lab.wait_reported(lambda h: h[r3].startswith(STALE), what="the ghost's report goes stale")
    # the next join is refused with the kbase text naming the ghost
    r, _ = lab.join("worker5")
    assert r.returncode == 1 and KBASE + r3 in fatal_lines(r.stderr)[0]
    # the documented fix
    r, _ = lab.remove(r3)
    assert r.returncode == 0, r.stderr
    assert r3 not in lab.replicas()
    r, _ = lab.join("worker5")
    assert r.returncode == 0, r.stderr
    assert sorted(x["node"] for x in lab.replicas().values() if x["health"] == "OK") == \
        ["worker1", "worker2", "worker5"]
