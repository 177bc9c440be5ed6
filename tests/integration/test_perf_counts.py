# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a no-op reconcile costs, counted (never timed) from the lab's own logs: the API requests it makes
(<state>/requests.log) and the SSH connections every node's sshd accepted, on a lab of 58 MKE nodes (50
of them virtual workers with 10 containers each). The counts must not grow with the cluster: one login,
one /nodes, one filtered listing of MSR's containers and one of the bootstrappers (never every container of
the cluster), one /_ping per replica, one cluster_status; no SSH to an MKE node, at most one per LB host;
no module run at all: cluster_info in the controller's process, one command per LB host, report_file in-process."""

from __future__ import annotations

import collections
import json
import re
import time

import pytest
from test_reconcile import reconcile

from msrint import LAB_SUBNET, STATE_DIR

pytestmark = pytest.mark.timeout(300)

VIRTUAL = ("--mke-nodes", "50", "--mke-node-containers", "10")


def accepted():
    """{node: sshd 'Accepted' lines so far}, from each node's own sshd log."""
    return {log.parent.parent.name: log.read_text(errors="replace").count("Accepted publickey")
            for log in STATE_DIR.glob("nodes/*/run/sshd.log")}


def requests_between(t0, t1):
    host = LAB_SUBNET.rsplit(".", 1)[0] + ".1"   # the controller; the LB's health checks come from the LB
    time.sleep(0.6)                              # the daemon writes its log a few times a second
    out = []
    for line in (STATE_DIR / "requests.log").read_text().splitlines():
        e = json.loads(line)
        if t0 <= e["t"] <= t1 and e["client"] == host:
            out.append(e)
    return out


def test_noop_reconcile_requests_and_ssh_do_not_grow_with_the_cluster(lab):
    started = time.time()
    lab.fresh(replicas=3, options=VIRTUAL)
    status = lab.status()
    assert sum(1 for n in status["nodes"] if n.get("virtual")) == 50
    lab.wait_healthy()
    before, t0 = accepted(), time.time()
    rc, out, report = reconcile(lab)
    t1 = time.time()
    assert rc == 0 and report["status"] == "in_sync", out
    reqs = requests_between(t0, t1)
    by = collections.Counter((e["server"].split()[0], e["method"], e["path"].split("?")[0]) for e in reqs)
    containers = [e["path"] for e in reqs if e["path"].split("?")[0].endswith("/containers/json")]
    assert by[("mke", "POST", "/auth/login")] == 1, by
    assert by[("mke", "GET", "/nodes")] == 1, by
    assert all("filters=" in p for p in containers), containers     # an unfiltered listing grows with the cluster
    assert len(containers) == 2, containers                         # MSR's services, the bootstrappers
    pings = collections.Counter(e["server"] for e in reqs if e["path"] == "/_ping")
    assert len(pings) == 3 and set(pings.values()) == {1}, pings
    assert by[("msr", "GET", "/api/v0/meta/cluster_status")] == 1, by
    assert len(reqs) == 10, by
    after = accepted()
    opened = {node: after.get(node, 0) - before.get(node, 0) for node in after}
    lbs = {n["name"] for n in status["nodes"] if n["role"] == "lb"}
    assert all(opened[n] == 0 for n in opened if n not in lbs), opened
    assert all(opened[n] <= 1 for n in lbs), opened

    # No module run at all: cluster_info runs in the controller's process, each LB host's pool is one command of
    # its Python (lb_pool_info), the report is written by report_file in the controller's process.
    path = lab.workdir / "perf-report.json"
    run = lab.run("msr.replicas.reconcile", verbosity=3, diff=False, touches=False,
                  extra_vars={"msr_reconcile_report": str(path)})
    assert run.rc == 0, run.output
    local_modules = re.findall(r"^<(?:localhost|127\.0\.0\.1)> EXEC /bin/sh -c '\S*python\S* && sleep 0'$", run.stdout, re.M)
    assert local_modules == [], run.stdout[-3000:]
    remote = re.findall(r"^<([\d.]+)> SSH: EXEC ssh ", run.stdout, re.M)
    lb_addresses = sorted(n["addr"] for n in status["nodes"] if n["role"] == "lb")
    assert sorted(remote) == lb_addresses, (remote, lb_addresses)        # one command per LB host, nothing else
    assert "AnsiballZ" not in run.stdout and "PUT " not in run.stdout
    assert json.loads(path.read_text())["status"] == "in_sync" and path.stat().st_mode & 0o777 == 0o600

    # The collection's filter plugins are loaded once, by ansible-playbook's own process (the selection play's
    # hosts: goes through one), and inherited by every task's forked worker, not loaded again by each task.
    run = lab.run("msr.replicas.reconcile", diff=False, touches=False, env={"ANSIBLE_DEBUG": "1"},
                  extra_vars={"msr_reconcile_report": str(path)})
    assert run.rc == 0, run.rc
    # workers' debug lines reach the output through the parent, under its pid: count the loads, not the pids
    loads = collections.Counter(re.findall(r"^\s*\d+ [\d.]+: Loading FilterModule "
                                           r"'ansible_collections\.msr\.replicas\.plugins\.filter\.(\w+)' from \S+$",
                                           run.stdout + run.stderr, re.M))
    assert "lb" in loads and "reconcile" in loads, sorted(loads)
    assert set(loads.values()) == {1}, loads
    print("no-op reconcile on %d MKE nodes: %d requests, %d SSH connections, %d remote command(s), test %.1f s"
          % (sum(1 for n in status["nodes"] if n["role"] != "lb"), len(reqs), sum(opened.values()), len(remote),
             time.time() - started))


def test_noop_reconcile_tells_nfs_from_local_disk_without_listing_every_container(lab):
    """NFS storage shows as the filesystem driver: the filtered listing's dtr-registry-<id> mounts tell it
    apart (in sync), as the whole cluster's listing did before."""
    lab.fresh(replicas=3, options=("--storage", "nfs"))
    lab.wait_healthy()
    t0 = time.time()
    rc, out, report = reconcile(lab)
    assert rc == 0 and report["status"] == "in_sync" and report["drift"] == [], out
    assert all("filters=" in e["path"] for e in requests_between(t0, time.time())
               if e["path"].split("?")[0].endswith("/containers/json"))
