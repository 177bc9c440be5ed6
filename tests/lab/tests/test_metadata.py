"""Metadata that can be lost: the repository API on every replica, over per-replica copies with RethinkDB
semantics (majority writes, missed writes and backfill, join, emergency-repair, destroy)."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest

from msr_lab.common.httpbase import Request
from msr_lab.common.model import Lab, Node
from msr_lab.engine.state import EngineState
from msr_lab.mke.auth import issue_token
from msr_lab.msr.cluster import Cluster

PASSWORD = "pw-metadata"
A, B, C = "0000000000a1", "0000000000a2", "0000000000a3"
WRITE_ERROR = ('gorethink: Cannot perform write: primary replica for shard ["", +inf) not available in: '
               'r.DB("dtr2").Table("repositories")')
READ_ERROR = WRITE_ERROR.replace("Cannot perform write", "Cannot perform read")
REPO_KEYS = {"id", "namespace", "namespaceType", "name", "shortDescription", "longDescription", "visibility",
             "scanOnPush", "immutableTags", "enableManifestLists", "pulls", "pushes", "tagLimit"}


def make_lab(replicas=3, workers=5) -> Lab:
    # starting_seconds 0: these tests are about the copies; start periods have tests of their own
    lab = Lab({"storage": "s3", "mke_username": "admin", "mke_password": PASSWORD, "msr_image": "mirantis/dtr",
               "starting_seconds": 0})
    for name, role, addr in ([("manager1", "manager", "10.98.0.11"), ("lb1", "lb", "10.98.0.5")]
                             + [(f"worker{i}", "worker", f"10.98.0.{20 + i}") for i in range(1, workers + 1)]):
        node = lab.nodes[name] = Node(name=name, role=role, addr=addr)
        if node.in_mke:
            node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    for i in range(replicas):
        join(lab, f"0000000000a{i + 1}", f"worker{i + 1}")
    return lab


def join(lab, rid, node):
    """What install/join do to the cluster (the bootstrapper tests run the real commands)."""
    lab.cluster.add_member(rid, node, "2.9.16")
    lab.cluster.create_replica_objects(rid, node, "2.9.16")
    lab.cluster.mark_running(rid)


def auth(secret=PASSWORD, user="admin") -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def call(lab, rid, method, path, body=None, headers=None):
    raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
    app = lab.cluster.app_for(rid)
    resp = asyncio.run(app(Request(method, path, auth() if headers is None else headers, raw, "10.98.0.1:5555",
                                   True)))
    return resp.status, (json.loads(resp.body) if resp.body else None)


def create(lab, rid, name, namespace="admin", **extra):
    return call(lab, rid, "POST", f"/api/v0/repositories/{namespace}",
                {"name": name, "visibility": "private", "shortDescription": f"the {name} repository", **extra})


def names(lab, rid) -> list[str]:
    status, body = call(lab, rid, "GET", "/api/v0/repositories")
    assert status == 200, body
    return [f"{r['namespace']}/{r['name']}" for r in body["repositories"]]


def catalog(lab, rid) -> list[str]:
    status, body = call(lab, rid, "GET", "/v2/_catalog")
    assert status == 200, body
    return body["repositories"]


def copy_names(lab, rid) -> list[str] | None:
    """What the replica's own copy holds, read around the API (None: it has no copy)."""
    c = lab.cluster.copy_of(rid)
    return None if c is None else sorted(c.data["repositories"])


def error(body) -> tuple[str, str]:
    err = body["errors"][0]
    return err["code"], err["message"]


@pytest.fixture
def lab():
    return make_lab()


# ---------------------------------------------------------------- the API

def test_create_returns_the_dtr_document_and_every_replica_lists_it(lab):
    status, doc = create(lab, A, "web", scanOnPush=True, tagLimit=5)
    assert status == 201 and set(doc) == REPO_KEYS
    assert {k: doc[k] for k in REPO_KEYS - {"id"}} == {
        "namespace": "admin", "namespaceType": "user", "name": "web", "shortDescription": "the web repository",
        "longDescription": "", "visibility": "private", "scanOnPush": True, "immutableTags": False,
        "enableManifestLists": False, "pulls": 0, "pushes": 0, "tagLimit": 5}
    assert len(doc["id"]) == 36
    status, org = create(lab, B, "base", namespace="docker-datacenter", visibility="public")
    assert status == 201 and org["namespaceType"] == "organization" and org["visibility"] == "public"
    for rid in (A, B, C):
        assert names(lab, rid) == ["admin/web", "docker-datacenter/base"]
        assert catalog(lab, rid) == ["admin/web", "docker-datacenter/base"]
        assert call(lab, rid, "GET", "/api/v0/repositories/admin/web") == (200, doc)
        status, body = call(lab, rid, "GET", "/api/v0/repositories/docker-datacenter")
        assert status == 200 and [r["name"] for r in body["repositories"]] == ["base"]
        assert copy_names(lab, rid) == ["admin/web", "docker-datacenter/base"]


def test_update_and_delete(lab):
    create(lab, A, "web")
    status, doc = call(lab, B, "PATCH", "/api/v0/repositories/admin/web", {"visibility": "public",
                                                                           "immutableTags": True})
    assert status == 200 and doc["visibility"] == "public" and doc["immutableTags"] is True
    assert call(lab, C, "GET", "/api/v0/repositories/admin/web")[1]["visibility"] == "public"
    assert call(lab, C, "DELETE", "/api/v0/repositories/admin/web") == (204, None)
    for rid in (A, B, C):
        assert names(lab, rid) == [] and catalog(lab, rid) == []
        assert copy_names(lab, rid) == []


@pytest.mark.parametrize("method,path,body,status,code", [
    ("POST", "/api/v0/repositories/admin", {"name": "web", "visibility": "private"}, 400, "REPOSITORY_EXISTS"),
    ("POST", "/api/v0/repositories/admin", {"name": "Web", "visibility": "private"}, 400, "INVALID_REPOSITORY_NAME"),
    ("POST", "/api/v0/repositories/admin", {"name": "a..b", "visibility": "private"}, 400,
     "INVALID_REPOSITORY_NAME"),
    ("POST", "/api/v0/repositories/admin", {"visibility": "private"}, 400, "INVALID_REPOSITORY_NAME"),
    ("POST", "/api/v0/repositories/admin", {"name": "x", "visibility": "secret"}, 400, "INVALID_JSON"),
    ("POST", "/api/v0/repositories/admin", {"name": "x", "visibility": "public", "shortDescription": 3}, 400,
     "INVALID_JSON"),
    ("POST", "/api/v0/repositories/admin", b"not json", 400, "INVALID_JSON"),
    ("POST", "/api/v0/repositories/nobody", {"name": "x", "visibility": "public"}, 404, "NO_SUCH_ACCOUNT"),
    ("GET", "/api/v0/repositories/nobody", None, 404, "NO_SUCH_ACCOUNT"),
    ("GET", "/api/v0/repositories/admin/nothere", None, 404, "NO_SUCH_REPOSITORY"),
    ("DELETE", "/api/v0/repositories/admin/nothere", None, 404, "NO_SUCH_REPOSITORY"),
    ("PATCH", "/api/v0/repositories/admin/nothere", {"visibility": "public"}, 404, "NO_SUCH_REPOSITORY"),
])
def test_errors_in_dtr_shape_change_nothing(lab, method, path, body, status, code):
    create(lab, A, "web")
    before = lab.cluster.copy_of(A).seq
    got, doc = call(lab, B, method, path, body)
    assert got == status and error(doc)[0] == code and error(doc)[1]
    assert lab.cluster.copy_of(A).seq == before and names(lab, C) == ["admin/web"]


@pytest.mark.parametrize("headers", [{}, auth("wrong"), auth(user="bob"), {"authorization": "Bearer nope"}])
def test_admin_auth(lab, headers):
    for method, path in (("GET", "/api/v0/repositories"), ("POST", "/api/v0/repositories/admin"),
                         ("DELETE", "/api/v0/repositories/admin/web")):
        status, body = call(lab, A, method, path, {"name": "web", "visibility": "public"}, headers=headers)
        assert status == 401 and error(body)[0] == "NOT_AUTHENTICATED"
    assert copy_names(lab, A) == []
    token = issue_token(lab, "admin")
    assert call(lab, A, "POST", "/api/v0/repositories/admin", {"name": "web", "visibility": "public"},
                headers={"authorization": f"Bearer {token}"})[0] == 201
    assert call(lab, A, "GET", "/api/v0/repositories", headers=auth(token))[0] == 200


# ---------------------------------------------------------------- RethinkDB semantics

def test_without_quorum_reads_and_writes_fail_and_nothing_lands(lab):
    create(lab, A, "web")
    lab.cluster.stop_replica(B)
    lab.cluster.stop_replica(C)
    status, body = create(lab, A, "late")
    assert status == 500 and error(body) == ("UNKNOWN", WRITE_ERROR)
    for path in ("/api/v0/repositories", "/api/v0/repositories/admin/web", "/v2/_catalog"):
        status, body = call(lab, A, "GET", path)
        assert status == 500 and error(body) == ("UNKNOWN", READ_ERROR), path
    assert call(lab, A, "DELETE", "/api/v0/repositories/admin/web")[0] == 500
    assert copy_names(lab, A) == ["admin/web"]
    lab.cluster.start_replica(B)
    assert names(lab, A) == ["admin/web"]


def test_a_stopped_replica_misses_writes_and_backfills_when_back(lab):
    lab.cluster.stop_replica(C)
    assert create(lab, A, "web")[0] == 201
    assert names(lab, B) == ["admin/web"]
    assert copy_names(lab, C) == []          # its own copy did not get the write
    lab.cluster.start_replica(C)
    assert copy_names(lab, C) == ["admin/web"]
    assert names(lab, C) == ["admin/web"]


def test_a_partitioned_replica_cannot_write_and_catches_up_after_heal(lab):
    lab.nodes["worker3"].partitioned = True
    lab.changed()
    status, body = create(lab, C, "from-minority")
    assert status == 500 and error(body) == ("UNKNOWN", WRITE_ERROR)
    assert call(lab, C, "GET", "/api/v0/repositories")[0] == 500
    assert create(lab, A, "web")[0] == 201
    assert copy_names(lab, C) == [] and copy_names(lab, B) == ["admin/web"]
    lab.nodes["worker3"].partitioned = False
    lab.changed()
    assert copy_names(lab, C) == ["admin/web"]
    assert names(lab, C) == ["admin/web"] and catalog(lab, C) == ["admin/web"]


def test_a_joined_replica_receives_everything_when_its_join_completes(lab):
    create(lab, A, "web")
    create(lab, A, "db", namespace="docker-datacenter")
    call(lab, A, "POST", "/api/v0/meta/settings", {"createRepositoryOnPush": True})
    rid = "0000000000a4"
    lab.cluster.add_member(rid, "worker4", "2.9.16")
    lab.cluster.create_replica_objects(rid, "worker4", "2.9.16")
    assert copy_names(lab, rid) is None              # joining: nothing yet, and it cannot answer
    assert call(lab, rid, "GET", "/api/v0/repositories")[0] == 503
    lab.cluster.mark_running(rid)
    assert copy_names(lab, rid) == ["admin/web", "docker-datacenter/db"]
    assert names(lab, rid) == ["admin/web", "docker-datacenter/db"]
    assert call(lab, rid, "GET", "/api/v0/meta/settings")[1]["createRepositoryOnPush"] is True


def test_a_join_completed_while_cut_off_gets_nothing_and_loses_nothing(lab):
    """A replica whose node is partitioned when its join completes has no copy to receive: it must not start
    a fresh database that outranks the cluster's data, and it catches up after the heal."""
    create(lab, A, "web")
    rid = "0000000000a4"
    lab.cluster.add_member(rid, "worker4", "2.9.16")
    lab.cluster.create_replica_objects(rid, "worker4", "2.9.16")
    lab.nodes["worker4"].partitioned = True
    lab.changed()
    lab.cluster.mark_running(rid)
    assert copy_names(lab, rid) is None
    lab.nodes["worker4"].partitioned = False
    lab.changed()
    for r in (A, B, C, rid):
        assert names(lab, r) == ["admin/web"], r


def test_emergency_repair_keeps_only_what_the_survivor_had(lab):
    create(lab, A, "before")
    lab.cluster.stop_replica(C)
    create(lab, A, "missed-by-c")
    call(lab, A, "PUT", "/api/v0/admin/settings/registry/simple", {"storage": {"azure": {"accountname": "x"}}})
    lab.cluster.stop_replica(A)
    lab.cluster.stop_replica(B)
    lab.cluster.start_replica(C)                     # alone: no quorum, no backfill
    assert copy_names(lab, C) == ["admin/before"]
    lab.cluster.emergency_repair(C)
    assert list(lab.cluster.replicas) == [C]
    assert names(lab, C) == ["admin/before"] and catalog(lab, C) == ["admin/before"]
    assert "s3" in call(lab, C, "GET", "/api/v0/admin/settings/registry/simple")[1]["storage"]
    assert create(lab, C, "after")[0] == 201     # the survivor is the majority now
    join(lab, "0000000000a4", "worker4")
    assert names(lab, "0000000000a4") == ["admin/after", "admin/before"]


def test_destroying_every_replica_loses_the_metadata(lab):
    create(lab, A, "web")
    for rid in (A, B, C):
        lab.cluster.ghost_replica(rid)
        assert copy_names(lab, rid) is None
    assert lab.cluster.replicas == {}               # the last replica with data took the cluster with it
    join(lab, "0000000000b1", "worker4")             # a fresh install starts empty
    assert names(lab, "0000000000b1") == []
    assert lab.cluster.copy_of("0000000000b1").data["repositories"] == {}


def test_losing_the_rethink_volume_loses_the_copy(lab):
    create(lab, A, "web")
    lab.cluster.stop_replica(C)
    engine = lab.nodes["worker3"].engine
    for c in list(engine.containers.values()):
        if c.name == f"dtr-rethinkdb-{C}":
            engine.remove_container(c, force=True)
    engine.remove_volume(f"dtr-rethink-{C}", force=True)
    assert copy_names(lab, C) is None
    assert lab.cluster.metadata_summary(C) is None
    assert lab.cluster.status()["replicas"][0]["metadata"] == {"seq": lab.cluster.copy_of(A).seq,
                                                               "repositories": 1}


def test_settings_and_storage_are_replicated_the_same_way(lab):
    lab.cluster.stop_replica(C)
    status, doc = call(lab, A, "POST", "/api/v0/meta/settings", {"scanningEnabled": True})
    assert status == 200 and doc["scanningEnabled"] is True and doc["replicaID"] == A
    assert lab.cluster.copy_of(C).data["settings"]["scanningEnabled"] is False
    assert lab.cluster.settings["scanningEnabled"] is True        # the majority's view
    lab.cluster.start_replica(C)
    assert call(lab, C, "GET", "/api/v0/meta/settings")[1]["scanningEnabled"] is True
