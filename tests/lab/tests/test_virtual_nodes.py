"""Virtual MKE workers (`msr-lab up --mke-nodes N`), without namespaces: the plan of `up`, MKE's /nodes and
/containers/json (filters honoured as by the real proxy, so only an unfiltered listing grows with the
cluster), placement refused, the inventory and the status summary."""
from __future__ import annotations

import ipaddress
import json
from types import SimpleNamespace

import pytest
from test_mke_msr import PASSWORD, basic, call, js, make_lab

from msr_lab import inventory, lifecycle
from msr_lab.common.model import Node
from msr_lab.engine.state import EngineState
from msr_lab.faults import inject
from msr_lab.mke import proxy
from msr_lab.mke.app import MkeApp
from msr_lab.mke.scheduler import PlacementError


def up_args(**kw):
    args = dict(managers=3, workers=3, replicas=1, lbs=1, lb_kind=None, mke_nodes=0, health_period=3.0,
                health_stale=0.0, starting_seconds=2.0, heartbeat_seconds=10.0)
    args.update(kw)
    return SimpleNamespace(**args)


def with_virtual(count: int, containers: int = 2):
    lab = make_lab()
    for i in range(count):
        node = lab.nodes[f"mkenode{i + 1}"] = Node(name=f"mkenode{i + 1}", role="worker", addr=f"10.99.0.{51 + i}",
                                                   virtual=True)
        node.engine = EngineState(lab, node)
        inject.seed_virtual_node(node, containers)
    return lab, MkeApp(lab)


def test_plan_puts_virtual_workers_above_every_real_address():
    net = ipaddress.ip_network("10.96.0.0/24")
    nodes = lifecycle.plan_nodes(up_args(mke_nodes=200), net)
    virtual = {n: i for n, i in nodes.items() if i.get("virtual")}
    real = {i["addr"] for i in nodes.values() if not i.get("virtual")}
    assert len(virtual) == 200 and all(i["role"] == "worker" for i in virtual.values())
    addrs = [ipaddress.ip_address(i["addr"]) for i in virtual.values()]
    assert min(addrs) == ipaddress.ip_address("10.96.0.51") and max(addrs) == ipaddress.ip_address("10.96.0.250")
    assert len(set(addrs)) == 200 and not real & {str(a) for a in addrs}
    with pytest.raises(SystemExit, match="--mke-nodes must be 0-200"):
        lifecycle.plan_nodes(up_args(mke_nodes=201), net)


def test_mke_lists_virtual_nodes_ready_with_hostname_address_labels_resources():
    lab, mke = with_virtual(3)
    auth = basic("admin", PASSWORD)
    nodes = js(call(mke, "GET", "/nodes", auth))
    virtual = [n for n in nodes if n["Description"]["Hostname"].startswith("mkenode")]
    assert [n["Description"]["Hostname"] for n in virtual] == ["mkenode1", "mkenode2", "mkenode3"]
    for n in virtual:
        assert n["Status"]["State"] == "ready" and n["Spec"]["Availability"] == "active"
        assert n["Spec"]["Role"] == "worker" and n["Status"]["Addr"].startswith("10.99.0.5")
        assert n["Spec"]["Labels"]["com.docker.ucp.collection"] == "shared"
        assert n["Description"]["Resources"]["NanoCPUs"] > 0
    # heartbeats as for a real node: the partition fault cuts MKE off it (it has no link to cut)
    inject.apply(lab, {"nodes": {}}, {"kind": "partition", "target": "mkenode2"})
    assert not any(c["Names"][0].startswith("/mkenode2/") for c in js(call(mke, "GET", "/containers/json", auth)))
    start = lab.now()
    lab.clock = lambda: start + 11
    states = {n["Description"]["Hostname"]: n["Status"]["State"] for n in js(call(mke, "GET", "/nodes", auth))}
    assert states["mkenode2"] == "down" and states["mkenode1"] == "ready"
    workers = js(call(mke, "GET", '/nodes?filters={"role":["worker"]}', auth))
    assert len(workers) == 6
    assert js(call(mke, "GET", "/info", auth))["Swarm"]["Nodes"] == 8


def test_containers_json_grows_unfiltered_and_not_filtered():
    auth = basic("admin", PASSWORD)
    filtered = '/containers/json?all=1&filters={"name":{"dtr-rethinkdb-":true}}'
    sizes = {}
    for count in (2, 20):
        lab, mke = with_virtual(count, containers=3)
        lab.cluster.seed_install("worker1", "2.9.16")
        every = js(call(mke, "GET", "/containers/json?all=1", auth))
        mine = js(call(mke, "GET", filtered, auth))
        sizes[count] = (len(every), len(mine))
        assert sum(1 for c in every if c["Names"][0].startswith("/mkenode")) == 3 * count
        assert {c["Names"][0] for c in every if c["Names"][0].startswith("/mkenode1/")} == {
            "/mkenode1/app-1", "/mkenode1/app-2", "/mkenode1/app-3"}
        assert [c["Names"][0] for c in mine] == [f"/worker1/dtr-rethinkdb-{next(iter(lab.cluster.replicas))}"]
        # the SDK's map-of-lists form and a label filter too
        labelled = js(call(mke, "GET", '/containers/json?filters={"label":["msr-lab.virtual=true"]}', auth))
        assert len(labelled) == 3 * count
    assert sizes[20][0] - sizes[2][0] == 3 * 18 and sizes[20][1] == sizes[2][1] == 1


def test_nothing_is_placed_on_a_virtual_node():
    lab, _mke = with_virtual(1)
    with pytest.raises(PlacementError, match="mkenode1 is a virtual MKE node"):
        proxy.create_container(lab, "probe", {"Image": "mirantis/dtr:2.9.16",
                                              "Env": ["constraint:node==mkenode1"]})


def test_inventory_and_status_leave_virtual_nodes_out_of_the_hosts(tmp_path, monkeypatch):
    from msr_lab.common.labfiles import LabFiles
    files = LabFiles(tmp_path)
    nodes = lifecycle.plan_nodes(up_args(mke_nodes=4), ipaddress.ip_network("10.96.0.0/24"))
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_text("ca")
    files.save({"config": {"msr_version": "2.9.16", "msr_image": "mirantis/dtr", "mke_url": "https://10.96.0.11",
                           "mke_username": "admin", "mke_password": "pw", "seed_replicas": ["worker1"]},
                "nodes": nodes})
    inv = inventory.build(files, ["worker1"])
    hosts = {h for g in inv["all"]["children"].values() for h in g["hosts"]}
    assert hosts == {"manager1", "manager2", "manager3", "worker1", "worker2", "worker3", "lb1"}
    assert lifecycle.write_inventory(files, str(tmp_path / "inv.yml"), "mkenode1") == 2   # not a real worker

    lab, mke = with_virtual(4, containers=2)
    data = {"nodes": [{"name": n.name, "role": n.role, "addr": n.addr, "state": n.state, "availability": "active",
                       "partitioned": False, "virtual": n.virtual, "engine": "up",
                       "containers": len(n.engine.containers) if n.engine else None,
                       "mke_state": "ready" if n.in_mke else None} for n in lab.nodes.values()],
            "cluster": {"replicas": []}, "faults_active": {}, "mke_url": "https://10.99.0.11"}
    text = lifecycle.format_status(data)
    assert "mkenode1..mkenode4 (4 virtual MKE workers, 10.99.0.51-10.99.0.54, no namespace or sshd): " \
           "4 ready in MKE, 8 containers" in text
    assert not any(line.startswith("mkenode") and "worker " in line[:22] for line in text.splitlines())
    json.dumps(data)
