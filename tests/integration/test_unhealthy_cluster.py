# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Safety rule 1: no join while a replica is unhealthy, unless unsafe_join (which warns loudly)."""

from __future__ import annotations

import pytest

from msrint import replica_task

pytestmark = pytest.mark.timeout(150)


def test_join_refused_while_a_replica_is_stopped_then_unsafe_join(lab):
    lab.fresh(replicas=3)                      # worker1..3, quorum 3: majority 2
    stopped = lab.replica_on("worker2")["id"]
    lab.fault("stop-replica", "worker2")
    try:
        before = lab.replicas()
        assert before[stopped]["health"] != "OK"
        assert lab.status()["cluster"]["has_quorum"] is True      # 2 of 3 still healthy
        join = replica_task("join worker4", node="worker4")
        join["ignore_errors"] = True

        for check in (True, False):
            run = lab.run(lab.play([join]), check=check, touches=False)
            assert run.rc == 0, run.output
            rec = run.task("join worker4")
            assert rec["status"] == "failed", rec
            msg = rec["result"]["msg"]
            assert msg.startswith("refusing to join a replica while the cluster is unhealthy: %s (" % stopped), msg
            assert msg.endswith("Remove unhealthy or ghost replicas first, or set unsafe_join: true "
                                "(risks split brain and data loss)"), msg
            assert rec["result"]["changed"] is False
            assert "phases" not in rec["result"]
            assert lab.replicas() == before
            assert lab.containers("worker4") == []
            assert [c for c in lab.containers("manager1") if c.startswith("msr-replicas-")] == []

        # unsafe_join: the join goes ahead (the lab still has quorum, 2/3), with loud warnings.
        unsafe = replica_task("unsafe join worker4", node="worker4", unsafe_join=True)
        run = lab.run(lab.play([unsafe]))
        assert run.rc == 0, run.output
        r = run.result("unsafe join worker4")
        assert r["changed"] is True and r["action"] == "join" and r["healthy"] is True
        assert "--unsafe-join" in r["cmd"]
        assert r["existing_replica_id"] != stopped
        warnings = r.get("warnings") or []
        assert any(w.startswith("UNSAFE JOIN: joining node worker4 while replicas are unhealthy (%s" % stopped)
                   and "split brain and data loss" in w for w in warnings), warnings
        assert any("unsafe_join is true" in w for w in warnings), warnings
        assert "[WARNING]: UNSAFE JOIN" in run.stdout + run.stderr
        after = lab.replicas()
        assert sorted(after) == sorted(list(before) + [r["replica_id"]])
        assert after[r["replica_id"]]["node"] == "worker4" and after[r["replica_id"]]["health"] == "OK"
    finally:
        lab.fault("start-replica", "worker2")
    lab.wait_healthy()       # its start period, then its next health report

    # With worker2 back, all four replicas are healthy (the even count is reported, not hidden).
    info = lab.run(lab.play([{"name": "read", "msr.replicas.cluster_info": {}}]), check=True)
    assert info.rc == 0, info.output
    view = info.result("read")
    assert all(x["healthy"] for x in view["replicas"]) and len(view["replicas"]) == 4
    assert [i["kind"] for i in view["issues"]] == ["even_count"]
