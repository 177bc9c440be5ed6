"""MKE's config-toml and the container calls MKE proxies to the nodes, with its scheduler's refusals."""
from __future__ import annotations

import tomllib

import pytest
from test_mke_msr import basic, call, header, js, make_lab, token

from msr_lab.mke import config
from msr_lab.mke.app import MkeApp

NO_NODES = '{"message":"could not find any nodes on which the container could be created"}'


@pytest.fixture
def lab():
    lab = make_lab()
    for i, rid in enumerate(("0000000000a1", "0000000000a2")):
        lab.cluster.seed_install(f"worker{i + 1}", "2.9.16", rid)
    return lab


@pytest.fixture
def mke(lab):
    return MkeApp(lab)


def bearer(app) -> dict:
    return {"authorization": f"Bearer {token(app)}"}


def test_config_toml_needs_auth_and_is_toml(mke):
    assert call(mke, "GET", "/api/ucp/config-toml").status == 401
    r = call(mke, "GET", "/api/ucp/config-toml", {**bearer(mke), "accept": "application/toml"})
    assert r.status == 200 and header(r, "content-type") == "application/toml"
    doc = tomllib.loads(r.body.decode())
    assert doc["scheduling_configuration"]["enable_admin_ucp_scheduling"] is True   # Lab() without `up` options
    assert doc["auth"]["sessions"]["lifetime_minutes"] == 60 and doc["cluster_config"]["controller_port"] == 443


def test_config_toml_put_replaces_with_defaults_for_the_rest(lab, mke):
    auth = bearer(mke)
    body = b'[scheduling_configuration]\n  enable_admin_ucp_scheduling = false\n'
    r = call(mke, "PUT", "/api/ucp/config-toml", {**auth, "content-type": "application/toml"}, body)
    assert r.status == 200, r.body
    assert config.admin_scheduling(lab) is False
    doc = tomllib.loads(call(mke, "GET", "/api/ucp/config-toml", auth).body.decode())
    assert doc["scheduling_configuration"] == {"enable_admin_ucp_scheduling": False,
                                               "default_node_orchestrator": "swarm"}
    assert doc["auth"]["backend"] == "managed"
    # what GET returns can be PUT back unchanged (the documented export/edit/import round trip)
    text = call(mke, "GET", "/api/ucp/config-toml", auth).body
    assert call(mke, "PUT", "/api/ucp/config-toml", auth, text.replace(b"enable_admin_ucp_scheduling = false", b"enable_admin_ucp_scheduling = true")).status == 200
    assert config.admin_scheduling(lab) is True


def test_config_toml_refuses_bad_documents(lab, mke):
    auth = bearer(mke)
    for body, text in [(b"[scheduling_configuration\n", "unable to parse"),
                       (b'[scheduling_configuration]\nenable_admin_ucp_scheduling = "yes"\n', "expected a bool")]:
        r = call(mke, "PUT", "/api/ucp/config-toml", auth, body)
        assert r.status == 400 and text in js(r)["errors"][0]["message"], r.body
    assert config.admin_scheduling(lab) is True


def _create(app, node, name, image="mirantis/dtr:2.9.16"):
    return call(app, "POST", f"/containers/create?name={name}", basic(),
                {"Image": image, "Cmd": ["phase2"], "Env": [f"constraint:node=={node}"]})


def test_containers_through_mke_land_on_the_constrained_node(lab, mke):
    r = _create(mke, "worker3", "probe")
    assert r.status == 201, r.body
    cid = js(r)["Id"]
    c = lab.nodes["worker3"].engine.find_container("probe")
    assert c is not None and c.id == cid and "constraint:node==worker3" not in c.env
    r = call(mke, "GET", "/containers/worker3/probe/json", basic())
    assert r.status == 200 and js(r)["Name"] == "/worker3/probe" and js(r)["Node"]["Name"] == "worker3"
    assert call(mke, "POST", f"/containers/{cid}/start", basic()).status == 204
    assert call(mke, "DELETE", "/containers/worker3/probe?force=1", basic()).status == 204
    assert lab.nodes["worker3"].engine.find_container("probe") is None
    r = call(mke, "GET", "/volumes", basic())
    assert "worker1/dtr-ca-0000000000a1" in [v["Name"] for v in js(r)["Volumes"]]
    assert call(mke, "DELETE", "/containers/worker3/probe", basic()).status == 404


def test_the_scheduler_refuses_like_mke(lab, mke):
    config.set_admin_scheduling(lab, False)
    for node, name in [("manager1", "probe"), ("worker3", "dtr-phase2")]:
        r = _create(mke, node, name)
        # the raw body, which the docker client prints as it is (msr2.md §1.10)
        assert r.status == 500 and r.body.decode() == NO_NODES and header(r, "content-type") != "application/json"
    assert _create(mke, "worker3", "probe").status == 201        # a plain container on a plain worker
    config.set_admin_scheduling(lab, True)
    assert _create(mke, "manager1", "dtr-x").status == 201
    lab.nodes["worker2"].availability = "pause"
    assert _create(mke, "worker2", "dtr-y").body.decode() == NO_NODES


def test_mke_cannot_act_on_an_unreachable_node(lab, mke):
    lab.nodes["worker2"].partitioned = True
    r = _create(mke, "worker2", "probe")
    assert r.status == 500 and "the Docker engine of node worker2 (10.99.0.22:12376) is unreachable" in js(r)["message"]
    r = call(mke, "DELETE", "/containers/worker2/dtr-nginx-0000000000a2?force=1", basic())
    assert r.status == 500 and lab.nodes["worker2"].engine.find_container("dtr-nginx-0000000000a2") is not None
    assert not [v for v in js(call(mke, "GET", "/volumes", basic()))["Volumes"] if v["Name"].startswith("worker2/")]
    r = _create(mke, "nosuch", "probe")
    assert r.status == 404 and "node==nosuch" in js(r)["message"]


def test_config_render_round_trips():
    doc = make_lab().mke_config or config.current(make_lab())
    assert tomllib.loads(config.render(doc)) == doc
