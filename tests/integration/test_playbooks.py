# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's playbooks scale_up, scale_down and replace, run as `ansible-playbook msr.replicas.<name>`
on the lab: the cluster (msr-lab status) and every LB pool (HAProxy's runtime and file, NGINX's file)
after each run, check mode changing nothing, a second run changed=0, a valid backup before each change,
and bad variables refused before anything, with a message naming the variable."""

from __future__ import annotations

import tarfile

import pytest

from pools import wait_up
from test_roles import HAPROXY_LBS, nodes_of, pools, recap_changed

pytestmark = pytest.mark.timeout(420)

THREE = ["worker1", "worker2", "worker3"]
FIVE = THREE + ["worker4", "worker5"]


def ev(lab, backups, **kw):
    out = {"msr_backup_dir": str(backups), "lb_pool_up_timeout": 20}
    out.update(kw)
    return out


def settled_pools(lab, nodes):
    for lb in HAPROXY_LBS:
        wait_up(lb, nodes)
    return {"lb1": {"runtime": nodes, "file": nodes}, "lb2": {"runtime": nodes, "file": nodes}, "lb3": nodes}


def backups_in(directory):
    files = sorted(directory.glob("dtr-metadata-2.9.16-backup-*.tar"))
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, f
        with tarfile.open(f, mode="r:") as tar:
            assert tar.getmembers(), "%s is an empty tar" % f
    return files


def test_scale_up_to_three_then_five_then_scale_down_to_three(lab):
    lab.fresh(replicas=1)
    backups = lab.workdir / "backups-lifecycle"
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
    assert any(n.startswith("Keep the HAProxy pool of") for n in names[:removes[0]]), names

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
    ]:
        run = lab.run(playbook, inventory=inv, extra_vars=extra)
        assert run.rc != 0, (playbook, run.output)
        out = " ".join(run.stdout.split())
        assert "replicas are healthy" in out and "are needed" in out, (playbook, run.output)
        assert "ansible-playbook msr.replicas.emergency_repair" in out, (playbook, run.output)
        assert lab.replicas() == before, playbook
