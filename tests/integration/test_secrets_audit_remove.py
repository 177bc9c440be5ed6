# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The argv/output audit of test_secrets_audit, for remove and destroy (backup's is in test_backup).

A replica on a partitioned node is removed (its containers stay on the node it cannot reach); once the
node is back they are a partial join, which the module destroys. Both runs at -vvv, sampled.
"""

from __future__ import annotations

import json
import time

import pytest
from argv import ArgvSampler, net_ns_of

from msrint import replica_task

pytestmark = pytest.mark.timeout(200)


def state_of(lab, rid):
    run = lab.run(lab.play([{"name": "read", "msr.replicas.cluster_info": {}}]), check=True, touches=False)
    found = [r for r in run.result("read")["replicas"] if r["id"] == rid]
    return found[0]["state"] if found else None


def wait_for(lab, rid, state, timeout=40):
    deadline = time.time() + timeout
    while state_of(lab, rid) != state:
        assert time.time() < deadline, "replica %s never became %s" % (rid, state)
        time.sleep(1)


def test_password_never_in_argv_or_output_of_remove_and_destroy(lab):
    lab.fresh(replicas=3)
    password = lab.password
    rid = lab.replica_on("worker3")["id"]
    sampler = ArgvSampler({"password": password.encode()})
    sampler.start()
    try:
        lab.fault("partition", "worker3")
        wait_for(lab, rid, "unreachable")
        removed = lab.run(lab.play([replica_task("remove", state="absent", replica_id=rid)]), verbosity=3)
        lab.fault("heal", "worker3")
        wait_for(lab, rid, "partial")
        destroyed = lab.run(lab.play([replica_task("destroy", state="absent", node="worker3")]), verbosity=3)
    finally:
        sampler.stop()
        lab.fault("heal", "worker3")
    assert removed.rc == 0, removed.output
    assert destroyed.rc == 0, destroyed.output
    r, d = removed.result("remove"), destroyed.result("destroy")
    assert r["changed"] and r["action"] == "remove" and d["changed"] and d["action"] == "destroy"
    assert rid not in lab.replicas() and [c for c in lab.containers("worker3") if c.endswith(rid)] == []
    # Control: the sampler saw the module run on manager1.
    assert any("python" in c for c in sampler.commands_in(net_ns_of("manager1")))
    assert sampler.hits["password"] == [], sampler.hits["password"][:3]
    for run, res in ((removed, r), (destroyed, d)):
        assert "ESTABLISH SSH CONNECTION" in run.stdout
        assert password not in run.stdout and password not in run.stderr
        for rec in run.records:
            assert password not in json.dumps(rec), rec["task"]
        assert "UCP_PASSWORD" in res["cmd"] and not any("UCP_PASSWORD=" in part for part in res["cmd"])
