# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's playbook replace (and every playbook on a lost quorum), run as `ansible-playbook msr.replicas.<name>`
on the lab: the cluster (msr-lab status) and every LB pool (HAProxy's runtime and file, NGINX's file)
after each run, check mode changing nothing, a second run changed=0, a valid backup before each change,
and bad variables refused before anything, with a message naming the variable."""

from __future__ import annotations

import pytest

from pbutil import backups_in, ev, settled_pools
from test_roles import nodes_of, pools, recap_changed

pytestmark = pytest.mark.timeout(900)

THREE = ["worker1", "worker2", "worker3"]


def test_replace_a_stopped_replica_on_its_node_and_a_ghost_on_a_new_node(lab):
    lab.fresh(replicas=3)
    backups = lab.workdir / "backups-replace"
    inv = lab.inventory_with(THREE)
    run = lab.run("msr.replicas.scale_up", inventory=inv, extra_vars=ev(lab, backups))   # pools hold all three
    assert run.rc == 0, run.output

    stopped = lab.replica_on("worker2")["id"]
    lab.fault("stop-replica", "worker2")
    run = lab.run("msr.replicas.replace", inventory=inv, extra_vars=ev(lab, backups, msr_replace_node="worker2"))
    assert run.rc == 0, run.output
    assert stopped not in lab.replicas() and nodes_of(lab) == THREE
    assert all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, THREE)
    run = lab.run("msr.replicas.replace", inventory=inv, extra_vars=ev(lab, backups, msr_replace_node="worker2"))
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    assert "nothing to do" in run.stdout

    ghost = lab.replica_on("worker3")["id"]
    lab.fault("ghost", "worker3")
    inv4 = lab.inventory_with(["worker1", "worker2", "worker4"])
    replace = ev(lab, backups, msr_replace_replica_id=ghost, msr_replace_with="worker4")
    run = lab.run("msr.replicas.replace", check=True, inventory=inv4, extra_vars=replace)
    assert run.rc == 0 and recap_changed(run) > 0, run.output
    assert ghost in lab.replicas()
    run = lab.run("msr.replicas.replace", inventory=inv4, extra_vars=replace)
    assert run.rc == 0, run.output
    now = ["worker1", "worker2", "worker4"]
    assert ghost not in lab.replicas() and nodes_of(lab) == now
    assert pools(lab) == settled_pools(lab, now)
    run = lab.run("msr.replicas.replace", inventory=inv4, extra_vars=replace)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    assert len(backups_in(backups)) >= 2


def test_replace_refuses_bad_input_before_anything(lab):
    lab.fresh(replicas=3)
    before = lab.replicas()
    for extra, message in [
        ({}, "set exactly one of msr_replace_node"),
        ({"msr_replace_node": "worker1", "msr_replace_replica_id": "0123456789ab"}, "set exactly one of msr_replace_node"),
        ({"msr_replace_replica_id": "xyz"}, "msr_replace_replica_id xyz is not a 12-hex replica ID"),
        ({"msr_replace_node": "worker1", "msr_replace_with": "worker4"}, "is healthy; replacing it is a planned move"),
    ]:
        run = lab.run("msr.replicas.replace", inventory=lab.inventory_with(THREE), touches=False, extra_vars=extra)
        assert run.rc != 0 and message in run.stdout, (extra, run.output)
        assert lab.replicas() == before


def test_every_playbook_stops_on_lost_quorum_and_points_at_emergency_repair(lab):
    lab.fresh(replicas=3)
    lab.fault("quorum-loss")
    before = lab.replicas()
    inv = lab.inventory_with(THREE)
    for playbook, extra in [
        ("msr.replicas.scale_up", {"msr_preflight": False}),
        ("msr.replicas.scale_down", {"msr_scale_down_nodes": ["worker3"], "msr_skip_confirmation": True}),
        ("msr.replicas.replace", {"msr_replace_node": "worker2"}),
        ("msr.replicas.install", {}),
        ("msr.replicas.backup", {"msr_backup_dir": str(lab.workdir / "backups-quorum")}),
        ("msr.replicas.reconcile", {"msr_remediate": True}),
    ]:
        run = lab.run(playbook, inventory=inv, extra_vars=extra)
        assert run.rc != 0, (playbook, run.output)
        out = " ".join(run.stdout.split())
        assert "replicas are healthy" in out and "are needed" in out, (playbook, run.output)
        assert "ansible-playbook msr.replicas.emergency_repair" in out, (playbook, run.output)
        assert lab.replicas() == before, playbook
