# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A join killed half-way (msr-lab fault kill-bootstrapper rethink) leaves no half-made replica."""

from __future__ import annotations

import pytest

from msrint import replica_task

pytestmark = pytest.mark.timeout(150)


def test_killed_join_is_cleaned_up(lab):
    lab.fresh(replicas=1)
    before = lab.replicas()
    before_ids = sorted(before)
    lab.fault("kill-bootstrapper", "rethink")
    join = replica_task("join worker2", node="worker2", replica_id="0123456789ab")
    join["ignore_errors"] = True
    run = lab.run(lab.play([join]))
    assert run.rc == 0, run.output
    rec = run.task("join worker2")
    assert rec["status"] == "failed", rec
    r = rec["result"]
    assert r["msg"].startswith("join of replica 0123456789ab on node worker2 failed: "), r["msg"]
    cleanup = r["cleanup"]
    assert cleanup["left"] is None, cleanup
    # The killed run's dtr-phase2 container stays on the target node (the bootstrapper removes it only
    # when it finishes); the module reports it with the command that clears it.
    assert r["msg"].endswith(
        "Nothing is left of replica 0123456789ab. Also left: the bootstrapper's dtr-phase2 container on node "
        "worker2 (the failed run did not remove it); remove it with 'docker rm -f dtr-phase2' on that node."
    ), r["msg"]
    assert cleanup["also_left"] == ["container dtr-phase2 on node worker2"]
    assert cleanup["steps"] and all(step["ok"] for step in cleanup["steps"]), cleanup
    # remove of a replica that has containers also deletes them, so no destroy step is needed.
    steps = [s["cmd"][s["cmd"].index("mirantis/dtr:2.9.16") + 1:] for s in cleanup["steps"]]
    assert steps[0][:3] == ["remove", "--replica-ids", "0123456789ab"], steps
    assert steps[0][3:5] == ["--existing-replica-id", before_ids[0]], steps
    assert "Establishing connection with Rethinkdb" not in r["phases"]     # killed at the rethink phase
    assert "Creating dtr-rethinkdb-0123456789ab" in r["phases"]

    # The lab agrees: membership back to what it was, nothing of the new replica on worker2, no
    # bootstrapper container left on manager1.
    after = lab.replicas()
    assert sorted(after) == sorted(before)
    assert all(x["health"] == "OK" for x in after.values())
    assert lab.containers("worker2") == ["dtr-phase2"]      # exactly what the module reported
    vols = lab.ssh("worker2", "docker volume ls --format '{{.Name}}'").stdout.split()
    assert [v for v in vols if v.endswith("0123456789ab")] == []
    assert [c for c in lab.containers("manager1") if c.startswith("msr-replicas-")] == []

    # The fault fired once; the same join now succeeds (the ID is free again).
    run = lab.run(lab.play([replica_task("join worker2 again", node="worker2", replica_id="0123456789ab")]))
    assert run.rc == 0, run.output
    r = run.result("join worker2 again")
    assert r["changed"] and r["healthy"] and r["replica_id"] == "0123456789ab"
