"""The workload fault: an application container on an MKE node's engine, as MKE's /containers/json lists
it (what the preflight role's dedicated-node check reads), removed by `clear`."""
from __future__ import annotations

import pytest
from test_mke_msr import basic, call, js, make_lab

from msr_lab.cli import fault_request
from msr_lab.faults import inject
from msr_lab.mke.app import MkeApp


@pytest.fixture
def lab():
    lab = make_lab()
    lab.cluster.seed_install("worker1", "2.9.16", "0000000000a1")
    return lab


def listed(lab) -> dict[str, str]:
    """name -> image of every container MKE lists, named as MKE names them (/<node>/<name>)."""
    return {c["Names"][0]: c["Image"] for c in js(call(MkeApp(lab), "GET", "/containers/json?all=1", basic()))}


def test_workload_runs_on_the_node_and_clear_removes_it(lab):
    before = listed(lab)
    assert not [n for n in before if not n.split("/")[2].startswith("dtr-")]   # only MSR's containers
    inject.apply(lab, {"nodes": {}}, {"kind": "workload", "target": "worker2"})
    inject.apply(lab, {"nodes": {}}, {"kind": "workload", "target": "worker1", "name": "cache"})
    after = listed(lab)
    assert {n: i for n, i in after.items() if n not in before} == {"/worker2/web": "nginx:1.25",
                                                                  "/worker1/cache": "nginx:1.25"}
    c = lab.nodes["worker2"].engine.find_container("web")
    assert c.running and c.host_config["RestartPolicy"]["Name"] == "unless-stopped"
    assert lab.nodes["worker2"].workloads == ["web"]
    inject.apply(lab, {"nodes": {}}, {"kind": "clear"})
    assert listed(lab) == before      # the replica's containers stay, only the workloads go
    assert lab.nodes["worker2"].workloads == [] and lab.nodes["worker2"].engine.find_container("web") is None


def test_workload_refusals(lab):
    with pytest.raises(ValueError, match="'lb1' is not an MKE node"):
        inject.apply(lab, {"nodes": {}}, {"kind": "workload", "target": "lb1"})
    inject.apply(lab, {"nodes": {}}, {"kind": "workload", "target": "worker2"})
    with pytest.raises(Exception, match='container name "/web" is already in use'):
        inject.apply(lab, {"nodes": {}}, {"kind": "workload", "target": "worker2"})
    assert lab.nodes["worker2"].workloads == ["web"]


def test_workload_cli_arguments():
    assert fault_request("workload", ["worker2"]) == {"target": "worker2"}
    assert fault_request("workload", ["worker2", "app"]) == {"target": "worker2", "name": "app"}
    with pytest.raises(SystemExit, match="expects TARGET NAME"):
        fault_request("workload", [])
