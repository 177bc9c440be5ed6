# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability, nothing lost (issue 10, point 2) across the two recoveries that may lose data by design:

- emergency_repair keeps what the survivor had: worker3 is cut off, repositories are written that only the
  majority gets, the majority stops (quorum lost), worker3 comes back and the repair keeps it; after a
  scale_up every replica has exactly the earlier repositories, the later ones are gone everywhere.
- restore brings back exactly what the backup held: the backup that scale_up made before its last join,
  more repositories, every replica destroyed, the documented `docker run -i --rm mirantis/dtr restore < backup.tar` on an MKE
  node (docs/docsite/rst/playbook_emergency_repair.rst, step 3.4; the collection has no restore playbook), then a
  scale_up: every replica has what was written before the backup and nothing written after it.

test_install_backup_repair.py covers the repair playbook's refusals, check mode and re-run on a quorum loss
whose survivor had everything; this file covers what the data looks like afterwards.
"""

from __future__ import annotations

import os
import subprocess

import pytest

import reliability
from msrint import STATE_DIR
from pbutil import backups_in, ev, settled_pools
from test_roles import nodes_of

pytestmark = pytest.mark.timeout(600)

THREE = ["worker1", "worker2", "worker3"]
# Short lab clocks: a replica reports its health every second and starts in one (a join waits for both);
# the start period, in which a new replica answers 503, and the health reports are still there.
CLOCKS = ("--health-period", "1", "--starting-seconds", "1")


def exactly(lab, expected):
    """{node: sorted repositories} of every replica, asserted to be exactly ``expected`` on each."""
    seen = reliability.repos_everywhere(lab)
    for node, have in seen.items():
        assert set(have) == set(expected), "replica on %s: extra %s, missing %s" % (
            node, sorted(set(have) - set(expected)), sorted(set(expected) - set(have)))
    return seen


def restore(lab, backup, node):
    """The documented restore on manager1 with the docker CLI: the tar on stdin, the password in the
    environment (UCP_PASSWORD), never in an argument."""
    env = dict(os.environ, DOCKER_HOST="unix://%s" % (STATE_DIR / "nodes" / "manager1" / "run" / "docker.sock"),
               UCP_PASSWORD=lab.password)
    args = ["docker", "run", "-i", "--rm", "-e", "UCP_PASSWORD", "%s:%s" % (lab.vars.get("msr_image", "mirantis/dtr"),
                                                                       lab.vars["msr_version"]),
            "restore", "--ucp-url", lab.vars["msr_mke_url"], "--ucp-username", lab.vars["msr_mke_username"],
            "--ucp-ca", lab.vars["msr_mke_ca"], "--ucp-node", node]
    with open(backup, "rb") as stdin:
        proc = subprocess.run(args, stdin=stdin, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Restore is complete" in proc.stderr, proc.stderr
    return proc


def test_repair_keeps_what_the_survivor_had_and_restore_what_the_backup_held(lab):
    lab.fresh(replicas=3, options=CLOCKS)
    backups = lab.workdir / "backups-rel-repair"
    base = reliability.repos_on(lab, "worker1")
    inv = lab.inventory_with(THREE)

    # -- emergency repair: the cut-off replica survives, what only the majority got is gone
    early = reliability.write_repos(lab, "repair-early", count=5)
    survivor = lab.replica_on("worker3")["id"]
    lab.fault("partition", "worker3")
    try:
        late = reliability.write_repos(lab, "repair-late", count=5)   # worker1 and worker2 are the majority
        lab.fault("stop-replica", "worker1")
        lab.fault("stop-replica", "worker2")
    finally:
        lab.fault("heal", "worker3")
    assert not lab.status()["cluster"]["has_quorum"]
    run = lab.run("msr.replicas.emergency_repair", inventory=inv,
                  extra_vars=ev(lab, backups, msr_emergency_repair=True, msr_emergency_repair_confirmed=True))
    assert run.rc == 0, run.output
    named = [r for r in run.records if r["task"].endswith("Name the replica that is kept")][0]["result"]["msg"]
    assert list(lab.replicas()) == [survivor], (named, lab.replicas())
    lab.wait_healthy()
    alone = exactly(lab, base + early)
    run = lab.run("msr.replicas.scale_up", inventory=inv, extra_vars=ev(lab, backups))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE
    seen = exactly(lab, base + early)
    reliability.record(
        "Nothing lost", "kept: emergency_repair",
        "%d repositories written on 3 replicas, worker3 partitioned, %d more written on the majority, the majority "
        "stopped (quorum lost), worker3 healed, emergency_repair, scale_up back to 3" % (len(early), len(late)),
        "the repair kept worker3's replica (%s); scale_up joined %s" % (
            named, ", ".join(sorted(set(seen) - set(alone)))),
        "every replica serves the %d earlier repositories and none of the %d later ones" % (len(early), len(late)),
        repos_before=len(early) + len(late), repos_after=min(len(set(h) & set(early + late)) for h in seen.values()),
        replicas=len(seen))

    # -- restore: exactly what the backup held. The backup is the one scale_up made before its last join
    # (msr_backup_before_change): the one a user would restore after that change went wrong.
    backup = backups_in(backups)[-1]
    held = base + early
    after = reliability.write_repos(lab, "restore-after", count=5)
    ca = lab.status()["cluster"]["msr_ca"]
    for node in THREE:                     # every replica lost (destroyed without remove): the cluster is gone
        lab.fault("ghost", node)
    assert not lab.status()["cluster"]["installed"]
    restore(lab, backup, "worker1")
    lab.wait_healthy()
    assert lab.status()["cluster"]["msr_ca"] == ca            # clients that trusted MSR's CA still do
    alone = exactly(lab, held)
    run = lab.run("msr.replicas.scale_up", inventory=inv, extra_vars=ev(lab, backups))
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE
    settled_pools(lab, THREE)
    seen = exactly(lab, held)
    reliability.record(
        "Nothing lost", "kept: restore",
        "%d repositories on the cluster when scale_up backed it up before its last join, %d written after it, "
        "every replica destroyed, the documented restore of that backup on worker1, scale_up back to 3" % (
            len(held), len(after)),
        "restore brought back one replica on %s with MSR's CA; scale_up joined %s" % (
            ", ".join(alone), ", ".join(sorted(set(seen) - set(alone)))),
        "every replica serves the %d repositories the backup held and none of the %d written after it" % (
            len(held), len(after)),
        repos_before=len(held + after), repos_after=min(len(set(h) & set(held + after)) for h in seen.values()),
        replicas=len(seen))
