"""System test: a real lab with virtual MKE workers (`msr-lab up --mke-nodes 4`) and the lab's own logs.

MKE over HTTPS lists the virtual workers and their containers; nothing answers at their addresses and no
namespace, ssh entry or inventory host exists for them; `status` summarises them; the daemon's request
log (<state>/requests.log), event log (<state>/events.log) and every node's sshd log record what happened.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import yaml

from system_lab import IMAGE, STATE, cli, lab_fixture, wait_for

pytestmark = pytest.mark.timeout(120)

lab = lab_fixture("--managers", "1", "--workers", "2", "--replicas", "1", "--lbs", "0",
                  "--mke-nodes", "4", "--mke-node-containers", "3")


def log_entries(name: str) -> list[dict]:
    path = STATE / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_mke_lists_them_and_nothing_answers_there(lab):
    status, nodes, _ = lab.mke("/nodes", auth="admin")
    assert status == 200
    virtual = {n["Description"]["Hostname"]: n for n in nodes if n["Description"]["Hostname"].startswith("mkenode")}
    assert sorted(virtual) == ["mkenode1", "mkenode2", "mkenode3", "mkenode4"]
    assert all(n["Status"]["State"] == "ready" for n in virtual.values())
    _, every, _ = lab.mke("/containers/json?all=1", auth="admin")
    _, mine, _ = lab.mke('/containers/json?all=1&filters={"name":["dtr-nginx-"]}', auth="admin")
    assert sum(1 for c in every if c["Names"][0].startswith("/mkenode")) == 12
    assert [c["Names"][0].split("/")[1] for c in mine] == ["worker1"]
    for n in virtual.values():
        addr = n["Status"]["Addr"]
        assert addr not in {i["addr"] for name, i in lab.nodes.items() if not i.get("virtual")}
        with pytest.raises(OSError):
            socket.create_connection((addr, 22), timeout=0.5).close()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "-worker1" in netns and "mkenode" not in netns
    assert "mkenode" not in (STATE / "ssh" / "config").read_text()
    inv = yaml.safe_load(cli("inventory").stdout)
    assert all("mkenode" not in h for g in inv["all"]["children"].values() for h in g["hosts"])
    text = cli("status").stdout
    assert "mkenode1..mkenode4 (4 virtual MKE workers" in text and "4 ready in MKE, 12 containers" in text


def test_request_event_and_sshd_logs(lab):
    t0 = time.time()
    status, _, _ = lab.mke('/containers/json?filters={"name":["dtr-"]}', auth="admin")
    assert status == 200
    assert lab.mke("/nodes")[0] == 401

    def mine():
        return [e for e in log_entries("requests.log") if e["t"] >= t0 and e["server"] == "mke manager1"]
    got, _ = wait_for(lambda: len(mine()) >= 2 and mine(), timeout=5, what="the request log")
    assert [(e["method"], e["path"], e["status"]) for e in got[:2]] == [
        ("GET", '/containers/json?filters={"name":["dtr-"]}', 200), ("GET", "/nodes", 401)]
    host = lab.config["subnet"].rsplit(".", 1)[0] + ".1"
    assert {e["client"] for e in got} == {host}
    # the seeded replica's first OK report, and a bootstrapper run with its start and end
    assert any(e["event"] == "reported-ok" for e in log_entries("events.log"))
    r = lab.docker("manager1", "run", "--rm", IMAGE, "images")
    assert r.returncode == 0, r.stderr
    runs, _ = wait_for(lambda: [e for e in log_entries("events.log") if e["event"] == "program"
                                and e["started"] >= t0 and e["cmd"][:1] == ["images"]], timeout=5, what="the event log")
    assert runs[0]["finished"] >= runs[0]["started"] and runs[0]["exit"] == 0 and runs[0]["node"] == "manager1"
    # sshd logs each accepted connection (what the benchmark counts)
    before = (STATE / "nodes" / "worker2" / "run" / "sshd.log").read_text().count("Accepted publickey")
    assert lab.ssh("worker2", "true").returncode == 0
    after = (STATE / "nodes" / "worker2" / "run" / "sshd.log").read_text().count("Accepted publickey")
    assert after == before + 1
