# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""msr.replicas.replica: join and remove through both docker_host paths, with check mode, diff and
idempotence asserted at every step against the lab's own view (msr-lab status, docker ps on the node).

- unix:///var/run/docker.sock: the task runs ON manager1 (the controller has no docker.sock, so a
  successful bootstrapper run proves it ran on the node's engine);
- ssh://root@<manager1>: the task is delegated to localhost and the docker SDK reaches manager1's engine
  with paramiko (HOME is the `msr-lab ssh-config --home` dir, so only the lab's host keys are trusted).
"""

from __future__ import annotations

import re

import pytest

from msrint import replica_task

pytestmark = pytest.mark.timeout(180)

HEX12 = re.compile(r"^[0-9a-f]{12}$")


def dtr_containers(lab, node, rid):
    return [c for c in lab.containers(node) if c.startswith("dtr-") and c.endswith("-" + rid)]


def bootstrapper_leftovers(lab, node="manager1"):
    return [c for c in lab.containers(node) if c.startswith("msr-replicas-") or c == "dtr-phase2"]


def assert_state_diff(result, node, before, after, rid_before=None, rid_after=None):
    diff = result["diff"]
    assert diff["before"] == {"node": node, "replica_id": rid_before, "state": before}, diff
    assert diff["after"] == {"node": node, "replica_id": rid_after, "state": after}, diff


def four_steps(lab, task_yaml, host="manager1"):
    """Check, apply, again, again in check mode. Returns the four task results."""
    name = task_yaml["name"]
    play = lab.play([task_yaml])
    out = []
    for check in (True, False, False, True):
        run = lab.run(play, check=check)
        assert run.rc == 0, run.output
        rec = run.task(name, host)
        assert rec["status"] == "ok", rec
        out.append(rec)
    return out


def test_join_on_bootstrap_host_unix_socket(lab):
    lab.fresh(replicas=1)
    seeded = list(lab.replicas())
    assert lab.replica_on("worker2") is None
    task = replica_task("join worker2", node="worker2", docker_host="unix:///var/run/docker.sock")

    # 1. check mode: predicts the join, runs nothing.
    run = lab.run(lab.play([task]), check=True)
    assert run.rc == 0, run.output
    rec = run.task("join worker2", "manager1")
    assert rec["delegated_to"] is None
    r = rec["result"]
    assert r["changed"] is True and r["action"] == "join"
    assert_state_diff(r, "worker2", "absent", "present")
    # No random ID in check mode: a placeholder, the same on every run, until the bootstrapper assigns one.
    assert r["replica_id"] is None
    assert r["cmd"][r["cmd"].index("--replica-id") + 1] == "<new replica id>"
    assert r["existing_replica_id"] == seeded[0]
    assert r["cmd"][:4] == ["docker", "run", "--rm", "-e"] and "-H" not in r["cmd"]
    assert "--ucp-node" in r["cmd"] and r["cmd"][r["cmd"].index("--ucp-node") + 1] == "worker2"
    assert list(lab.replicas()) == seeded, "check mode changed the cluster"
    assert lab.containers("worker2") == []
    assert "phases" not in r      # no bootstrapper ran

    # 2. apply.
    run = lab.run(lab.play([task]))
    assert run.rc == 0, run.output
    r = run.result("join worker2", "manager1")
    assert r["changed"] is True and r["action"] == "join"
    rid = r["replica_id"]
    assert HEX12.match(rid)
    assert_state_diff(r, "worker2", "absent", "present", rid_after=rid)   # the real run knows the new ID
    assert r["health"] == "OK" and r["healthy"] is True
    assert r["phases"][0] == "Beginning Docker Trusted Registry replica join"
    assert "Join is complete" in r["phases"]
    now = lab.replicas()
    assert sorted(now) == sorted(seeded + [rid])
    assert now[rid]["node"] == "worker2" and now[rid]["state"] == "running" and now[rid]["health"] == "OK"
    assert now[rid]["ping"] == "OK"
    assert lab.status()["cluster"]["has_quorum"] is True
    running = lab.ssh("worker2", "docker ps --format '{{.Names}}'").stdout.split()
    assert "dtr-rethinkdb-%s" % rid in running and "dtr-nginx-%s" % rid in running, running
    assert all(c.endswith("-" + rid) for c in running if c.startswith("dtr-")), running
    assert bootstrapper_leftovers(lab) == []

    # 3. again: nothing to do.
    run = lab.run(lab.play([task]))
    assert run.rc == 0, run.output
    r = run.result("join worker2", "manager1")
    assert r["changed"] is False and r["action"] == "none"
    assert r["replica_id"] == rid and r["healthy"] is True
    assert_state_diff(r, "worker2", "present", "present", rid, rid)
    assert "cmd" not in r

    # 4. again in check mode: still nothing.
    run = lab.run(lab.play([task]), check=True)
    assert run.rc == 0, run.output
    r = run.result("join worker2", "manager1")
    assert r["changed"] is False and r["replica_id"] == rid
    assert_state_diff(r, "worker2", "present", "present", rid, rid)
    assert sorted(lab.replicas()) == sorted(seeded + [rid])
    assert "changed=0" in run.stdout


def test_join_and_remove_over_ssh_and_remove_over_unix(lab):
    lab.fresh(replicas=2)      # worker1, worker2
    start = lab.replicas()
    w2 = lab.replica_on("worker2")["id"]
    ssh_host = "ssh://root@%s" % lab.hosts["manager1"]

    # --- join worker3 through ssh://, delegated to the controller --------------------------------
    join = replica_task("join worker3 over ssh", node="worker3", docker_host=ssh_host)
    join["delegate_to"] = "localhost"
    steps = four_steps(lab, join)
    for rec in steps:
        assert rec["delegated_to"] == "localhost", rec
    check, apply, again, again_check = (s["result"] for s in steps)
    assert check["changed"] is True and check["action"] == "join"
    assert_state_diff(check, "worker3", "absent", "present")
    assert check["cmd"][:3] == ["docker", "-H", ssh_host]
    assert apply["changed"] is True and apply["healthy"] is True and apply["health"] == "OK"
    rid3 = apply["replica_id"]
    assert HEX12.match(rid3) and rid3 not in start
    assert_state_diff(apply, "worker3", "absent", "present", rid_after=rid3)
    assert apply["cmd"][:3] == ["docker", "-H", ssh_host]
    assert "Join is complete" in apply["phases"]
    for r in (again, again_check):
        assert r["changed"] is False and r["replica_id"] == rid3
        assert_state_diff(r, "worker3", "present", "present", rid3, rid3)
    assert sorted(lab.replicas()) == sorted(list(start) + [rid3])
    assert lab.replicas()[rid3]["health"] == "OK"
    assert len(dtr_containers(lab, "worker3", rid3)) >= 5
    assert bootstrapper_leftovers(lab) == []

    # --- remove worker2's replica through the unix socket on manager1 ------------------------------
    remove_unix = replica_task("remove worker2 over unix", node="worker2", state="absent")
    steps = four_steps(lab, remove_unix)
    check, apply, again, again_check = (s["result"] for s in steps)
    assert check["changed"] is True and check["action"] == "remove" and check["replica_id"] == w2
    assert_state_diff(check, "worker2", "present", "absent", w2, None)
    assert "--replica-ids" in check["cmd"] and check["cmd"][check["cmd"].index("--replica-ids") + 1] == w2
    assert check["existing_replica_id"] != w2
    assert apply["changed"] is True and apply["replica_id"] == w2
    assert_state_diff(apply, "worker2", "present", "absent", w2, None)
    for r in (again, again_check):
        assert r["changed"] is False and r["replica_id"] is None
        assert_state_diff(r, "worker2", "absent", "absent")
    assert w2 not in lab.replicas()
    assert dtr_containers(lab, "worker2", w2) == []

    # --- remove worker3's replica through ssh:// -------------------------------------------------
    remove_ssh = replica_task("remove worker3 over ssh", node="worker3", state="absent", docker_host=ssh_host)
    remove_ssh["delegate_to"] = "localhost"
    run = lab.run(lab.play([remove_ssh]), check=True)
    assert run.rc == 0, run.output
    r = run.result("remove worker3 over ssh")
    assert r["changed"] is True and r["replica_id"] == rid3
    assert_state_diff(r, "worker3", "present", "absent", rid3, None)
    assert rid3 in lab.replicas(), "check mode removed the replica"
    steps = four_steps(lab, remove_ssh)
    check, apply, again, again_check = (s["result"] for s in steps)
    assert apply["changed"] is True and apply["action"] == "remove"
    assert apply["cmd"][:3] == ["docker", "-H", ssh_host]
    for r in (again, again_check):
        assert r["changed"] is False
        assert_state_diff(r, "worker3", "absent", "absent")
    final = lab.replicas()
    assert sorted(final) == [lab.replica_on("worker1")["id"]]
    assert all(r["health"] == "OK" for r in final.values())
    assert dtr_containers(lab, "worker3", rid3) == []
    assert bootstrapper_leftovers(lab) == []
