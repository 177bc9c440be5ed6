# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils import _cluster
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._mke import node_summary, replica_container
from ansible_collections.msr.replicas.plugins.module_utils._msr import parse_cluster_status, parse_storage
from ansible_collections.msr.replicas.plugins.modules import cluster_info

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures")
BASE = {"mke_url": "https://mke.example.com", "mke_password": "pw", "mke_insecure_tls": True, "msr_insecure_tls": True}


def fx(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


class FakeMke:
    def __init__(self, containers=None):
        self._containers = containers if containers is not None else fx("mke_containers_rethinkdb.json")

    def nodes(self):
        return [node_summary(n) for n in fx("mke_nodes.json")]

    def service_containers(self):
        FakeMke.service_asked += 1
        registries = [c for c in fx("mke_containers_all.json") if any("dtr-registry-" in n for n in c["Names"])]
        return {"dtr-rethinkdb-": self._containers, "dtr-nginx-": [], "dtr-registry-": registries}

    def replica_containers(self, listing):
        return [replica_container(c) for c in listing["dtr-rethinkdb-"]]

    def replica_ports(self, listing):
        return {"f3712d9c419a": {"https": 4443}}

    def bootstrappers(self):
        FakeMke.bootstrappers_asked += 1
        return []

    def scheduling(self):
        return {"admin_scheduling": True, "user_scheduling": None, "error": None}

    def all_containers(self):
        FakeMke.all_asked += 1
        return fx("mke_containers_all.json")

    all_asked = service_asked = bootstrappers_asked = 0


class FakeMsr:
    pings = {}
    health = {}
    status = "msr_cluster_status.json"
    storage_doc = "msr_storage_s3.json"
    asked = []

    def __init__(self, url):
        self.url = url

    def ping(self):
        return FakeMsr.pings.get(self.url, {"status": 200, "healthy": True, "error": ""})

    def cluster_status(self):
        FakeMsr.asked.append(self.url)
        if FakeMsr.status is None:
            raise MsrError("MSR replica %s answered GET /api/v0/meta/cluster_status with HTTP 500" % self.url)
        doc = fx(FakeMsr.status)
        doc["replica_health"].update(FakeMsr.health)
        return parse_cluster_status(doc)

    def storage(self):
        return parse_storage(fx(FakeMsr.storage_doc))


@pytest.fixture(autouse=True)
def reset():
    FakeMsr.pings, FakeMsr.status, FakeMsr.storage_doc, FakeMsr.asked = {}, "msr_cluster_status.json", "msr_storage_s3.json", []
    FakeMsr.health = {}
    FakeMke.all_asked = FakeMke.service_asked = FakeMke.bootstrappers_asked = 0


def kinds(view):
    return sorted(i["kind"] for i in view["issues"])


def test_healthy_three_replicas():
    view = _cluster.observe(FakeMke(), FakeMsr)
    assert [(r["id"], r["node"], r["url"]) for r in view["replicas"]] == [
        ("f2277ad178f7", "worker-1", "https://172.31.16.121"),
        ("f3712d9c419a", "worker-2", "https://172.31.16.122:4443"),
        ("f58cf364e3df", "worker-3", "https://172.31.16.123")]
    assert all(r["healthy"] and r["ping"] == 200 and r["health"] == "OK" for r in view["replicas"])
    assert view["quorum"] == {"size": 3, "healthy": 3, "majority": 2, "failures_tolerated": 1, "has_quorum": True}
    assert view["storage"]["driver"] == "s3"
    # Only the documented non-critical current issue.
    assert kinds(view) == ["current_issue"] and view["issues"][0]["severity"] == "warning"
    assert view["healthy"] is True and view["problems"] == [] and view["status_available"] is True
    assert [r["state"] for r in view["replicas"]] == ["healthy"] * 3
    r = view["replicas"][1]
    assert (r["address"], r["https_port"], r["version"]) == ("172.31.16.122", 4443, "2.9.16")
    assert view["version"] == "2.9.16"
    assert [n.get("replica_id") for n in view["nodes"] if n["role"] == "worker"][:3] == [
        "f2277ad178f7", "f3712d9c419a", "f58cf364e3df"]


def test_ghost_and_partial_join_and_unhealthy():
    containers = fx("mke_containers_rethinkdb.json")[:2] + [
        {"Names": ["/worker-4/dtr-rethinkdb-0a1b2c3d4e5f"], "State": "running",
         "Labels": {"com.docker.dtr.replica": "0a1b2c3d4e5f", "com.docker.dtr.version": "2.9.16"}}]
    FakeMsr.pings = {"https://172.31.16.122:4443": {"status": 503, "healthy": False, "error": "rethinkdb"}}
    FakeMsr.health = {"f58cf364e3df": "Replica reported health too long ago: 2026-12-01T10:00:00Z"}
    view = _cluster.observe(FakeMke(containers), FakeMsr)
    by_id = dict((r["id"], r) for r in view["replicas"])
    assert by_id["f58cf364e3df"]["ghost"] and by_id["f58cf364e3df"]["node"] is None
    assert not by_id["0a1b2c3d4e5f"]["in_cluster_status"] and by_id["0a1b2c3d4e5f"]["health"] == "not in cluster_status"
    assert not by_id["f3712d9c419a"]["healthy"] and by_id["f3712d9c419a"]["ping"] == 503
    assert {"ghost_replica", "partial_join", "ping_failed", "quorum_lost"} <= set(kinds(view))
    assert [by_id[r]["state"] for r in ("0a1b2c3d4e5f", "f2277ad178f7", "f3712d9c419a", "f58cf364e3df")] == [
        "partial", "healthy", "unhealthy", "ghost"]
    assert view["healthy"] is False
    # Members are the replica_health keys: 3, of which only f2277ad178f7 is healthy.
    assert view["quorum"]["size"] == 3 and view["quorum"]["healthy"] == 1 and not view["quorum"]["has_quorum"]
    # cluster_status is asked from a replica whose /_ping is 200 first.
    assert FakeMsr.asked[0] != "https://172.31.16.122:4443"


def test_member_without_containers_that_reports_ok_is_unreachable_not_a_ghost():
    # MKE lists no container of f58cf364e3df, yet its own health report is OK: MKE cannot reach its node
    # (a partition still inside MKE's heartbeat delay). It may come back with its data: not a ghost.
    containers = fx("mke_containers_rethinkdb.json")[:2]
    view = _cluster.observe(FakeMke(containers), FakeMsr)
    r = [r for r in view["replicas"] if r["id"] == "f58cf364e3df"][0]
    assert (r["state"], r["ghost"], r["node"]) == ("unreachable", False, None)
    assert "replica_unreachable" in kinds(view) and "ghost_replica" not in kinds(view)
    assert view["quorum"]["has_quorum"] is True and view["healthy"] is False


def test_replica_on_a_down_node_is_unreachable(monkeypatch):
    nodes = FakeMke().nodes()
    nodes[3]["state"] = "down"            # worker-3, whose containers MKE then no longer lists
    monkeypatch.setattr(FakeMke, "nodes", lambda self: nodes)
    FakeMsr.health = {"f58cf364e3df": "Rethink replica is currently in state: disconnected"}
    view = _cluster.observe(FakeMke(fx("mke_containers_rethinkdb.json")[:2]), FakeMsr)
    r = [r for r in view["replicas"] if r["id"] == "f58cf364e3df"][0]
    assert r["state"] == "unreachable" and "MKE cannot reach node(s) worker-3" in r["detail"]


def test_even_count_and_filesystem():
    FakeMsr.storage_doc = "msr_storage_filesystem.json"
    containers = fx("mke_containers_rethinkdb.json")[:2]
    view = _cluster.build_view(
        FakeMke().nodes(), [replica_container(c) for c in containers], {}, {
            "f2277ad178f7": {"status": 200, "healthy": True, "error": ""},
            "f3712d9c419a": {"status": 200, "healthy": True, "error": ""}},
        {"replica_health": {"f2277ad178f7": "OK", "f3712d9c419a": "OK"}, "current_issues": []},
        parse_storage(fx("msr_storage_filesystem.json")))
    assert kinds(view) == ["even_count", "filesystem_storage"]
    assert view["healthy"] is True  # warnings do not make the cluster unhealthy


def test_no_replica_answers_status():
    FakeMsr.status = None
    view = _cluster.observe(FakeMke(), FakeMsr, msr_url="https://msr.example.com")
    assert FakeMsr.asked[0] == "https://msr.example.com" and len(FakeMsr.asked) == 4
    assert kinds(view) == ["no_cluster_status"]
    assert all(r["health"] == "unknown" and r["in_cluster_status"] is None for r in view["replicas"])
    # Every /_ping answered 200, but membership is unknown: so is quorum (never reported as true).
    assert view["quorum"]["has_quorum"] is None and view["status_available"] is False
    assert view["healthy"] is False and view["problems"][0].startswith("no replica answered cluster_status")


def test_empty_cluster():
    view = _cluster.observe(FakeMke([]), FakeMsr)
    assert view["replicas"] == [] and view["issues"] == [] and view["quorum"]["size"] == 0


@pytest.mark.parametrize("check", [False, True])
def test_module_returns_view_read_only(monkeypatch, capsys, check):
    monkeypatch.setattr(cluster_info, "clients_from_params", lambda p: (FakeMke(), FakeMsr))
    with patch_module_args(dict(BASE, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            cluster_info.main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False
    assert set(["nodes", "replicas", "storage", "quorum", "issues"]) <= set(out)
    assert out["nodes"][1]["name"] == "worker-1" and out["nodes"][0]["role"] == "manager"
    assert out["quorum"]["failures_tolerated"] == 1
    assert out["mke"]["admin_scheduling"] is True and out["healthy"] is True


def test_module_error(monkeypatch, capsys):
    class Broken(FakeMke):
        def nodes(self):
            raise MsrError("MKE rejected the credentials for user 'admin' (HTTP 401)")
    monkeypatch.setattr(cluster_info, "clients_from_params", lambda p: (Broken(), FakeMsr))
    with patch_module_args(BASE):
        with pytest.raises(SystemExit):
            cluster_info.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] and out["msg"] == "MKE rejected the credentials for user 'admin' (HTTP 401)"


def test_workloads_are_read_only_when_asked():
    view = _cluster.observe(FakeMke(), FakeMsr)
    # one filtered listing of MSR's containers, never every container of the cluster; NFS comes from it
    assert (FakeMke.all_asked, FakeMke.service_asked, FakeMke.bootstrappers_asked) == (0, 1, 1)
    assert all("workloads" not in n for n in view["nodes"]) and view["storage"]["nfs"] is True
    # CPUs and memory come with every read (the recorded /nodes has no Resources: unknown)
    assert all(n["cpus"] is None and n["memory_bytes"] is None for n in view["nodes"])


def test_workloads_per_node_and_nfs():
    view = _cluster.observe(FakeMke(), FakeMsr, workloads=True)
    assert FakeMke.all_asked == 1
    found = dict((n["name"], [w["name"] for w in n["workloads"]]) for n in view["nodes"])
    # worker-1 runs MSR, the bootstrapper, MKE's ucp-* and its kube-system / ucp-* pods: none is a workload
    assert found == {"ip-172-31-16-116": [], "worker-1": [], "worker-2": ["old-job", "web"],
                     "worker-3": ["k8s_POD_shop-5d8f7_default_7b7b7b7b-1111-2222-3333-444455556666_0",
                                  "k8s_app_shop-5d8f7_default_7b7b7b7b-1111-2222-3333-444455556666_2"],
                     "worker-4": []}
    assert view["storage"] == {"driver": "s3", "drivers": ["s3"], "nfs": True}
    # the rest of the view is the same as without workloads
    plain = _cluster.observe(FakeMke(), FakeMsr)
    assert [dict((k, v) for k, v in n.items() if k != "workloads") for n in view["nodes"]] == plain["nodes"]
    assert view["replicas"] == plain["replicas"] and view["issues"] == plain["issues"]


@pytest.mark.parametrize("asked", [False, True])
def test_module_workloads_option(monkeypatch, capsys, asked):
    monkeypatch.setattr(cluster_info, "clients_from_params", lambda p: (FakeMke(), FakeMsr))
    args = dict(BASE, workloads=True) if asked else BASE
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            cluster_info.main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is False and FakeMke.all_asked == (1 if asked else 0)
    worker2 = [n for n in out["nodes"] if n["name"] == "worker-2"][0]
    if asked:
        assert [w["name"] for w in worker2["workloads"]] == ["old-job", "web"] and out["storage"]["nfs"] is True
    else:
        assert "workloads" not in worker2 and out["storage"]["nfs"] is True


@pytest.mark.parametrize("wait", [0, 30])
def test_module_lists_bootstrappers_once(monkeypatch, capsys, wait):
    """The wait for running bootstrappers and the view share one listing (no bootstrapper runs here)."""
    monkeypatch.setattr(cluster_info, "clients_from_params", lambda p: (FakeMke(), FakeMsr))
    with patch_module_args(dict(BASE, wait_bootstrappers=wait)):
        with pytest.raises(SystemExit):
            cluster_info.main()
    assert json.loads(capsys.readouterr().out)["bootstrappers"] == []
    assert (FakeMke.bootstrappers_asked, FakeMke.service_asked) == (1, 1)


def test_replicas_are_pinged_at_once():
    # Each ping waits at the barrier for the other two: it passes only when all three run together.
    import threading
    barrier = threading.Barrier(3, timeout=10)

    class Client:
        def __init__(self, url):
            self.url = url

        def ping(self):
            barrier.wait()
            return {"status": 200, "healthy": True, "error": "", "url": self.url}

    urls = {"b": "https://10.0.0.2", "a": "https://10.0.0.1", "c": "https://10.0.0.3"}
    pings = _cluster.ping_all(Client, urls)
    assert list(pings) == ["b", "a", "c"]
    assert [p["url"] for p in pings.values()] == [urls["b"], urls["a"], urls["c"]]


def test_one_msr_client_per_replica_url():
    params = {"mke_url": "https://mke.example.com", "mke_username": "admin", "mke_password": "x",
              "mke_ca": None, "mke_insecure_tls": True, "msr_ca": None, "msr_insecure_tls": True,
              "api_timeout": 5, "api_retries": 1}
    _mke, factory = _cluster.clients_from_params(params)
    first = factory("https://10.0.0.1")
    assert factory("https://10.0.0.1") is first and factory("https://10.0.0.2") is not first
    factory.set_deadline(1234.0)
    assert factory("https://10.0.0.1").http.deadline == 1234.0   # a later wait's deadline reaches it too
