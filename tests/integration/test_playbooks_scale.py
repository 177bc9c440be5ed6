# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's playbooks scale_up and scale_down, run as `ansible-playbook msr.replicas.<name>`
on the lab: the cluster (msr-lab status) and every LB pool (HAProxy's runtime and file, NGINX's file)
after each run, check mode changing nothing, a second run changed=0, a valid backup before each change,
and bad variables refused before anything, with a message naming the variable."""

from __future__ import annotations

import pytest

from pbutil import backups_in, ev, settled_pools
from test_roles import nodes_of, pools, recap_changed

pytestmark = pytest.mark.timeout(900)

THREE = ["worker1", "worker2", "worker3"]
FIVE = THREE + ["worker4", "worker5"]


STORAGE = {"driver": "s3", "options": {"bucket": "lifecycle", "region": "eu-west-1"},
           "secret_options": {"accesskey": "AKIALIFECYCLE", "secretkey": "s3-Secret-of-the-lifecycle"}}


def test_install_one_then_scale_up_to_three_then_five_then_scale_down_to_three(lab):
    lab.fresh(replicas=0, options=("--admin-scheduling", "on"))
    backups = lab.workdir / "backups-lifecycle"
    run = lab.run("msr.replicas.install", inventory=lab.inventory_with(["worker1"]),
                  extra_vars=ev(lab, backups, msr_storage=STORAGE))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == ["worker1"] and lab.status()["cluster"]["storage"] == "s3"
    assert "s3-Secret-of-the-lifecycle" not in run.stdout
    # from here on, as a user would: the inventory's MSR CA is the one MSR now serves
    lab.cli("inventory", "-o", str(lab.inventory))
    settled_pools(lab, ["worker1"])
    before, before_pools = lab.replicas(), pools(lab)

    inv3 = lab.inventory_with(THREE)
    run = lab.run("msr.replicas.scale_up", check=True, inventory=inv3, extra_vars=ev(lab, backups))
    assert run.rc == 0 and recap_changed(run) > 0, run.output
    assert lab.replicas() == before and pools(lab) == before_pools, "check mode changed something"
    assert not backups.exists()

    run = lab.run("msr.replicas.scale_up", inventory=inv3, extra_vars=ev(lab, backups))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE and all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, THREE)
    assert len(backups_in(backups)) == 2          # one before each join
    run = lab.run("msr.replicas.scale_up", inventory=inv3, extra_vars=ev(lab, backups))
    assert run.rc == 0 and recap_changed(run) == 0, run.output

    inv5 = lab.inventory_with(FIVE)
    run = lab.run("msr.replicas.scale_up", inventory=inv5, extra_vars=ev(lab, backups))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == FIVE
    assert pools(lab) == settled_pools(lab, FIVE)
    assert len(backups_in(backups)) == 4

    # 5 -> 4 is even: refused before anything, naming msr_allow_even
    now, now_pools = lab.replicas(), pools(lab)
    run = lab.run("msr.replicas.scale_down", inventory=inv5, touches=False,
                  extra_vars=ev(lab, backups, msr_scale_down_nodes=["worker5"], msr_skip_confirmation=True))
    assert run.rc != 0 and "allow_even" in run.stdout, run.output
    assert lab.replicas() == now and pools(lab) == now_pools

    down = ev(lab, backups, msr_scale_down_nodes=["worker4", "worker5"], msr_skip_confirmation=True)
    run = lab.run("msr.replicas.scale_down", check=True, inventory=inv5, extra_vars=down)
    assert run.rc == 0 and recap_changed(run) > 0, run.output
    assert lab.replicas() == now and pools(lab) == now_pools, "check mode changed something"

    run = lab.run("msr.replicas.scale_down", inventory=inv5, extra_vars=down)
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE
    assert pools(lab) == settled_pools(lab, THREE)
    assert lab.containers("worker4") == [] and lab.containers("worker5") == []
    assert len(backups_in(backups)) == 5          # msr_backup_keep: the newest five
    assert "still in the msr group" in run.stdout, run.output
    # drained and out of the pools before each remove
    names = [r["task"].split(" : ", 1)[-1] for r in run.records if r["status"] == "ok"]
    removes = [i for i, n in enumerate(names) if n == "Remove the replica"]
    assert len(removes) == 2, names
    assert any(n.startswith("Keep the pool of") for n in names[:removes[0]]), names

    run = lab.run("msr.replicas.scale_down", inventory=lab.inventory_with(THREE), extra_vars=down)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    assert "already run no replica" in run.stdout


def test_scale_down_refuses_bad_input_and_no_confirmation_before_anything(lab):
    lab.fresh(replicas=3)
    backups = lab.workdir / "backups-refusals"
    before = lab.replicas()
    inv = lab.inventory_with(THREE)
    cases = [
        ({}, "msr_scale_down_nodes must be a non-empty list"),
        ({"msr_scale_down_nodes": []}, "msr_scale_down_nodes must be a non-empty list"),
        ({"msr_scale_down_nodes": "worker3"}, "msr_scale_down_nodes must be a non-empty list"),
        ({"msr_scale_down_nodes": ["worker9"], "msr_skip_confirmation": True}, "worker9 is not an MKE node"),
        # 3 -> 1 keeps an odd count but 2 -> ... quorum: removing two of three healthy replicas at once is fine
        # for the count, and the plan removes them one at a time; 3 -> 2 is even:
        ({"msr_scale_down_nodes": ["worker3"], "msr_skip_confirmation": True}, "allow_even"),
        # no confirmation: stdin is not a terminal, nothing typed
        ({"msr_scale_down_nodes": ["worker2", "worker3"]}, "not confirmed"),
    ]
    for extra, message in cases:
        run = lab.run("msr.replicas.scale_down", inventory=inv, touches=False, extra_vars=ev(lab, backups, **extra))
        assert run.rc != 0 and message in run.stdout, (extra, run.output)
        assert lab.replicas() == before, extra
    assert not backups.exists()
