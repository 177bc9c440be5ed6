# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability: traffic and nothing lost (issue 10, points 1 and 2).

On one lab, HTTPS traffic goes through an HAProxy LB (lb1) and the NGINX LB (lb3) at the same time while
the scale_up (3 -> 5), scale_down (5 -> 3) and replace (a replica whose containers were stopped, after the
LBs' health checks took it out, onto another node) playbooks run: at least 2,000 requests through each LB
during each run, and not one failed. Before each run the test writes repositories through the MSR API;
after it every repository written so far is served by every replica.
"""

from __future__ import annotations

import time

import pytest

import reliability
from pbutil import ev, settled_pools
from pools import runtime
from test_roles import nodes_of
from traffic import Traffic

pytestmark = pytest.mark.timeout(600)

THREE = ["worker1", "worker2", "worker3"]
FIVE = THREE + ["worker4", "worker5"]
LBS = {"lb1": "HAProxy", "lb3": "NGINX"}
MIN_REQUESTS = 2000
# Short lab clocks: a replica reports its health every second and starts in one (a join waits for both);
# the start period, in which a new replica answers 503, and the health reports are still there.
CLOCKS = ("--health-period", "1", "--starting-seconds", "1")


def through_lbs(lab, repos, playbook, inventory, extra_vars, long=False):
    """Run the playbook while traffic goes through every LB of LBS; returns (run, {label: Traffic}).
    ``long``: also, through each LB, clients whose connections last about 1.5 s (15 requests at 10/s, as a
    layer pull or push would hold one): a drain must wait for them, not cut them."""
    traffic = {lb: Traffic(lab, lb, repos=repos) for lb in LBS}
    if long:
        traffic.update({"%s long" % lb: Traffic(lab, lb, repos=repos, rate=40, threads=4, per_connection=15)
                        for lb in LBS})
    for t in traffic.values():
        t.start()
    try:
        time.sleep(0.5)             # every client is sending before the run starts
        run = lab.run(playbook, inventory=inventory, extra_vars=extra_vars, timeout=300)
    finally:
        for t in traffic.values():
            t.stop()
    for t in traffic.values():
        print(t.summary())
    return run, traffic


def check_and_record(lab, name, tried, run, traffic, names):
    """Assert the run, the traffic of each LB and that every repository is on every replica; record the rows."""
    assert run.rc == 0, run.output
    for label, t in traffic.items():
        long = label.endswith(" long")
        reliability.record(
            "Traffic", "traffic: %s via %s%s" % (name, LBS[t.lb], ", long connections" if long else ""),
            "%s; HTTPS through %s (%s) during the run, %d requests a connection" % (
                tried, t.lb, LBS[t.lb], t.per_connection),
            "playbook rc %d; %d requests in %.0f s, %d failed%s" % (
                run.rc, t.sent, t.seconds, t.failed, (": %s" % t.failures[:3]) if t.failures else ""),
            "answered by %s" % ", ".join("%s %d" % kv for kv in sorted(t.answered.items())),
            sent=t.sent, failed=t.failed, seconds=round(t.seconds, 1), connections=t.connections)
    for label, t in traffic.items():
        assert t.failed == 0, t.summary()
        assert label.endswith(" long") or t.sent >= MIN_REQUESTS, "only %s: make the client faster" % t.summary()
    seen = reliability.repos_everywhere(lab)
    reliability.record(
        "Nothing lost", "kept: %s" % name, "%d repositories written through the MSR API before %s" % (
            len(names), tried),
        "read back on the replicas of %s" % ", ".join(sorted(seen)),
        "every replica serves %s of them" % sorted({len(set(names) & set(have)) for have in seen.values()}),
        repos_before=len(names), repos_after=min(len(set(names) & set(have)) for have in seen.values()),
        replicas=len(seen))
    return reliability.assert_kept(lab, names)


def test_no_request_fails_and_no_repository_is_lost_during_scale_up_scale_down_and_replace(lab):
    lab.fresh(replicas=3, options=CLOCKS)
    backups = lab.workdir / "backups-rel-traffic"
    settled_pools(lab, THREE)
    names = []

    # scale_up 3 -> 5: each new replica enters the pools only once it serves
    names += reliability.write_repos(lab, "traffic-up", count=5)
    run, traffic = through_lbs(lab, names, "msr.replicas.scale_up", lab.inventory_with(FIVE), ev(lab, backups))
    assert check_and_record(lab, "scale_up 3->5", "scale_up 3 -> 5", run, traffic, names) == 5
    assert nodes_of(lab) == FIVE
    # the first new replica was in the pools while the second joined, and served
    assert all(t.answered["worker4"] > 0 for t in traffic.values()), [t.summary() for t in traffic.values()]
    settled_pools(lab, FIVE)

    # scale_down 5 -> 3: each replica drained and out of the pools before it is removed
    names += reliability.write_repos(lab, "traffic-down", count=5)
    run, traffic = through_lbs(lab, names, "msr.replicas.scale_down", lab.inventory_with(THREE), ev(
        lab, backups, msr_scale_down_nodes=["worker4", "worker5"], msr_skip_confirmation=True), long=True)
    assert check_and_record(lab, "scale_down 5->3", "scale_down 5 -> 3", run, traffic, names) == 3
    assert nodes_of(lab) == THREE
    # the replicas that went had been answering until they were drained
    assert all(t.answered["worker4"] > 0 and t.answered["worker5"] > 0 for t in traffic.values())

    # replace: worker2's containers stop, unannounced. The control: three clients per LB that each hold one
    # connection (round robin: one on each replica) see the one on worker2 fail, as a drain would have
    # spared them. Once the HAProxy checks took worker2 out, it is replaced on worker4.
    control = {lb: Traffic(lab, lb, repos=names, threads=3, per_connection=10 ** 6) for lb in LBS}
    for t in control.values():
        t.start()
    try:
        time.sleep(0.5)
        lab.fault("stop-replica", "worker2")
        deadline = time.time() + 20
        while not all(runtime(lb)["msr_https"].get("worker2") == "DOWN" for lb in ("lb1", "lb2")):
            assert time.time() < deadline, {lb: runtime(lb) for lb in ("lb1", "lb2")}
            time.sleep(0.3)
    finally:
        for t in control.values():
            t.stop()
    for lb, t in control.items():
        print("control:", t.summary())
        reliability.record(
            "Traffic", "traffic: control, replica stopped via %s" % LBS[lb],
            "worker2's containers stopped without a drain while 3 kept-alive HTTPS connections went through %s "
            "(%s), until the HAProxy checks marked it DOWN" % (lb, LBS[lb]),
            "%d requests, %d failed%s" % (t.sent, t.failed, (": %s" % t.failures[:2]) if t.failures else ""),
            "the client sees what a replica vanishing under its connection does",
            sent=t.sent, failed=t.failed, seconds=round(t.seconds, 1))
    for t in control.values():
        assert t.failed > 0 and t.answered["worker2"] > 0, t.summary()
    names += reliability.write_repos(lab, "traffic-replace", count=5)
    now = ["worker1", "worker3", "worker4"]
    run, traffic = through_lbs(lab, names, "msr.replicas.replace", lab.inventory_with(now), ev(
        lab, backups, msr_replace_node="worker2", msr_replace_with="worker4"))
    assert check_and_record(lab, "replace stopped", "replace of worker2's stopped replica onto worker4",
                            run, traffic, names) == 3
    assert nodes_of(lab) == now
