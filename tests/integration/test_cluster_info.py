# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""msr.replicas.cluster_info on a fresh lab (3 managers, 5 workers, 1 seeded replica on s3 storage)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

INFO = [{"name": "read the cluster", "msr.replicas.cluster_info": {}, "register": "info"}]


def check_fresh_view(info, lab, seeded):
    assert info.get("failed") is not True, info
    assert info["changed"] is False

    nodes = {n["name"]: n for n in info["nodes"]}
    managers = sorted(n for n, v in nodes.items() if v["role"] == "manager")
    workers = sorted(n for n, v in nodes.items() if v["role"] == "worker")
    assert managers == ["manager1", "manager2", "manager3"]
    assert workers == ["worker%d" % i for i in range(1, 6)]
    assert "lb1" not in nodes          # the LB host is not an MKE node
    for name, node in nodes.items():
        assert node["state"] == "ready", node
        assert node["availability"] == "active", node
        assert node["address"] == lab.hosts[name], node
    assert sum(1 for n in nodes.values() if n["leader"]) == 1
    assert all(nodes[m]["reachability"] == "reachable" for m in managers)

    assert len(info["replicas"]) == 1
    r = info["replicas"][0]
    assert r["id"] == seeded["id"]
    assert r["node"] == seeded["node"] == "worker1"
    assert r["version"] == lab.vars["msr_version"] == "2.9.16"
    assert r["health"] == "OK"
    assert r["healthy"] is True
    assert r["ping"] == 200
    assert r["ghost"] is False and r["in_cluster_status"] is True
    assert r["container_state"] == "running"
    assert r["url"] == "https://%s" % lab.hosts["worker1"]

    assert info["storage"]["driver"] == "s3"
    q = info["quorum"]
    assert (q["size"], q["healthy"], q["majority"], q["failures_tolerated"], q["has_quorum"]) == (1, 1, 1, 0, True)
    assert info["issues"] == []


@pytest.mark.parametrize("check", [False, True], ids=["normal", "check_mode"])
def test_cluster_info_fresh_lab(lab, check):
    lab.fresh(replicas=1)
    seeded = list(lab.replicas().values())
    assert len(seeded) == 1
    run = lab.run(lab.play(INFO), check=check, touches=False)
    assert run.rc == 0, run.output
    check_fresh_view(run.result("read the cluster"), lab, seeded[0])
    # Reading changed nothing.
    assert list(lab.replicas()) == [seeded[0]["id"]]


def test_cluster_info_reports_a_stopped_replica(lab):
    """Issues and quorum follow a real fault: one of 3 replicas stopped -> unhealthy, quorum kept."""
    lab.fresh(replicas=3)
    before = lab.replicas()
    stopped = lab.replica_on("worker2")["id"]
    lab.fault("stop-replica", "worker2")
    try:
        run = lab.run(lab.play(INFO), check=True)
        assert run.rc == 0, run.output
        info = run.result("read the cluster")
        assert sorted(r["id"] for r in info["replicas"]) == sorted(before)
        bad = [r for r in info["replicas"] if not r["healthy"]]
        assert [r["id"] for r in bad] == [stopped]
        q = info["quorum"]
        assert (q["size"], q["healthy"], q["majority"], q["failures_tolerated"], q["has_quorum"]) == (3, 2, 2, 1, True)
        kinds = {(i["kind"], i["replica_id"]) for i in info["issues"]}
        assert any(rid == stopped for _kind, rid in kinds), info["issues"]
        assert all(i["severity"] in ("critical", "warning") for i in info["issues"])
    finally:
        lab.fault("start-replica", "worker2")
