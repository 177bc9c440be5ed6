# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles replica and lb_pool on the lab: DESIGN §4's order, asserted on the cluster (msr-lab status)
and on the pools as the LBs hold them (HAProxy's runtime socket and file on lb1 and lb2, NGINX's file on
lb3), in check mode, for real and again (idempotent)."""

from __future__ import annotations

import pytest
import yaml

from pools import haproxy_file, nginx_file, runtime, runtime_names, wait_up

pytestmark = pytest.mark.timeout(300)

DESIRED = ["worker1", "worker2", "worker3"]
HAPROXY_LBS = ("lb1", "lb2")


def role_play(lab, entry="main", role="replica", **role_vars):
    task = {"name": "run %s %s" % (role, entry),
            "ansible.builtin.include_role": {"name": "msr.replicas.%s" % role, "tasks_from": entry}}
    if role_vars:
        task["vars"] = role_vars
    return yaml.safe_dump([{"name": "roles", "hosts": "localhost", "gather_facts": False, "tasks": [task]}],
                          sort_keys=False)


def extra(lab, **kw):
    # every test its own backup directory (the first test asserts what its runs left there)
    lab.backups = lab.workdir / ("backups-%d" % lab._runs)
    out = {"msr_backup_dir": str(lab.backups), "lb_pool_up_timeout": 20}
    out.update(kw)
    return out


def pools(lab):
    """Every LB's pool, by node name: HAProxy's runtime view and file, NGINX's file mapped to nodes."""
    by_addr = {"%s:%d" % (addr, port): name for name, addr in lab.hosts.items() for port in (80, 443)}
    out = {}
    for lb in HAPROXY_LBS:
        f = haproxy_file(lab, lb)
        out[lb] = {"runtime": runtime_names(lb), "file": sorted(n for n, _a in f.get("msr_https", []))}
        assert sorted(n for n, _a in f.get("msr_http", [])) == out[lb]["file"], f
    up = nginx_file(lab, "lb3")
    out["lb3"] = sorted(by_addr[a] for a in up.get("msr_443", []))
    assert sorted(by_addr[a] for a in up.get("msr_80", [])) == out["lb3"], up
    return out


def nodes_of(lab):
    return sorted(r["node"] for r in lab.replicas().values())


def tname(record):
    """A task's name without the "<role> : " prefix the callback records."""
    return record["task"].split(" : ", 1)[-1]


def recap_changed(run):
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("localhost")][-1]
    return int(line.split("changed=")[1].split()[0])


def test_main_scales_up_one_at_a_time_each_into_every_pool_once_healthy(lab):
    lab.fresh(replicas=1)
    before_cluster, before_pools = lab.replicas(), pools(lab)
    assert nodes_of(lab) == ["worker1"] and before_pools["lb1"]["runtime"] == ["worker1"]
    play = role_play(lab)
    ev = extra(lab, replica_nodes=DESIRED)
    backups = lab.backups

    run = lab.run(play, check=True, extra_vars=ev)
    assert run.rc == 0, run.output
    assert recap_changed(run) > 0
    assert lab.replicas() == before_cluster and pools(lab) == before_pools, "check mode changed something"
    assert not backups.exists()
    predicted = [r for r in run.records if tname(r).startswith("Keep the pool of") and r["result"].get("changed")]
    assert {r["delegated_to"] for r in predicted} == set(HAPROXY_LBS) | {"lb3"}, [r["task"] for r in predicted]

    run = lab.run(play, extra_vars=ev)
    assert run.rc == 0, run.output
    assert nodes_of(lab) == DESIRED
    assert all(r["health"] == "OK" for r in lab.replicas().values())
    # joins one at a time: each join's pool additions come after that join and before the next join
    order = [(tname(r), r.get("delegated_to")) for r in run.records
             if tname(r).startswith(("Join and wait", "Keep the pool of"))
             and r["status"] == "ok"]
    assert [t for t, _d in order] == (["Join and wait until every replica is healthy, worker2"]
                                      + ["Keep the pool of lb1 (HAProxy)", "Keep the pool of lb2 (HAProxy)",
                                         "Keep the pool of lb3 (NGINX)"]
                                      + ["Join and wait until every replica is healthy, worker3"]
                                      + ["Keep the pool of lb1 (HAProxy)", "Keep the pool of lb2 (HAProxy)",
                                         "Keep the pool of lb3 (NGINX)"] * 2), order   # then lb_pool main
    for lb in HAPROXY_LBS:
        wait_up(lb, DESIRED)
    assert pools(lab) == {"lb1": {"runtime": DESIRED, "file": DESIRED}, "lb2": {"runtime": DESIRED, "file": DESIRED},
                          "lb3": DESIRED}
    # rule 11: a backup before each of the two joins
    assert len(list(backups.glob("dtr-metadata-*-backup-*.tar"))) == 2

    # a reload keeps the pool: it lives in the file
    lab.ssh("lb1", "service haproxy reload")
    wait_up("lb1", DESIRED)

    run = lab.run(play, extra_vars=ev)
    assert run.rc == 0, run.output
    assert "changed=0" in run.stdout, run.output
    run = lab.run(play, check=True, extra_vars=ev)
    assert run.rc == 0 and "changed=0" in run.stdout, run.output


def test_remove_refused_first_then_drained_and_out_of_every_pool_before_the_remove(lab):
    lab.fresh(replicas=3)
    run = lab.run(role_play(lab, "main", "lb_pool"), extra_vars=extra(lab))   # the seeded pools hold only worker1
    assert run.rc == 0, run.output
    for lb in HAPROXY_LBS:
        wait_up(lb, DESIRED)
    before_cluster, before_pools = lab.replicas(), pools(lab)
    play = role_play(lab, "remove", replica_node="worker3")

    # 3 -> 2 is even: refused before anything, the LB included
    for check in (True, False):
        run = lab.run(play, check=check, extra_vars=extra(lab), touches=False)
        assert run.rc != 0
        assert "replica remove: 2 replicas would remain, an even number that tolerates no more failures than 1; " \
               "remove another one too, or set msr_allow_even=true" in run.stdout, run.output
        assert lab.replicas() == before_cluster and pools(lab) == before_pools

    ev = extra(lab, msr_allow_even=True)
    run = lab.run(play, check=True, extra_vars=ev)
    assert run.rc == 0 and recap_changed(run) > 0, run.output
    assert lab.replicas() == before_cluster and pools(lab) == before_pools

    run = lab.run(play, extra_vars=ev)
    assert run.rc == 0, run.output
    names = [tname(r) for r in run.records if r["status"] == "ok"]
    lb_steps = [i for i, n in enumerate(names) if n.startswith("Keep the ")]
    removed = names.index("Remove the replica")
    assert lb_steps and max(lb_steps) < removed, names
    assert nodes_of(lab) == ["worker1", "worker2"]
    left = ["worker1", "worker2"]
    assert pools(lab) == {"lb1": {"runtime": left, "file": left}, "lb2": {"runtime": left, "file": left}, "lb3": left}
    assert lab.containers("worker3") == []

    run = lab.run(play, extra_vars=ev)
    assert run.rc == 0 and "changed=0" in run.stdout, run.output


def test_replace_a_dead_replica_removes_it_first_then_joins_the_new_one_into_the_pools(lab):
    lab.fresh(replicas=3)
    run = lab.run(role_play(lab, "main", "lb_pool"), extra_vars=extra(lab))
    assert run.rc == 0, run.output
    dead = lab.replica_on("worker2")["id"]
    lab.fault("stop-replica", "worker2")
    for lb in HAPROXY_LBS:
        pools_now = runtime(lb)
        assert "worker2" in pools_now["msr_https"]
    play = role_play(lab, "replace", replica_replace_node="worker2", replica_replace_with="worker4")

    run = lab.run(play, check=True, extra_vars=extra(lab), touches=False)
    assert run.rc == 0 and recap_changed(run) > 0, run.output
    assert dead in lab.replicas() and "worker4" not in nodes_of(lab)

    run = lab.run(play, extra_vars=extra(lab))
    assert run.rc == 0, run.output
    names = [tname(r) for r in run.records if r["status"] == "ok"]
    assert names.index("Remove the replica") < names.index("Join and wait until every replica is healthy, worker4")
    assert dead not in lab.replicas()
    assert nodes_of(lab) == ["worker1", "worker3", "worker4"]
    now = ["worker1", "worker3", "worker4"]
    for lb in HAPROXY_LBS:
        wait_up(lb, now)
    assert pools(lab) == {"lb1": {"runtime": now, "file": now}, "lb2": {"runtime": now, "file": now}, "lb3": now}


def test_lb_pool_main_follows_health_and_refuses_when_health_is_unknown(lab):
    lab.fresh(replicas=3)
    play = role_play(lab, "main", "lb_pool")
    run = lab.run(play, extra_vars=extra(lab))
    assert run.rc == 0, run.output
    lab.fault("stop-replica", "worker3")
    try:
        run = lab.run(play, extra_vars=extra(lab, lb_pool_drain_timeout=10))
        assert run.rc == 0, run.output
        two = ["worker1", "worker2"]
        assert pools(lab) == {"lb1": {"runtime": two, "file": two}, "lb2": {"runtime": two, "file": two}, "lb3": two}
    finally:
        lab.fault("start-replica", "worker3")
    lab.wait_healthy()
    run = lab.run(play, extra_vars=extra(lab))
    assert run.rc == 0, run.output
    for lb in HAPROXY_LBS:
        wait_up(lb, DESIRED)

    lab.fault("mke-error", "503", "0")
    try:
        before = pools(lab)
        run = lab.run(play, extra_vars=extra(lab), touches=False)
        assert run.rc != 0
        assert run.task("msr.replicas.lb_pool : Read the cluster")["status"] == "failed"
        assert pools(lab) == before
    finally:
        lab.fault("clear")


def test_custom_provider_runs_the_users_task_files(lab):
    lab.fresh(replicas=3)
    book = lab.workdir / "custom"
    book.mkdir(exist_ok=True)
    log = book / "log"
    for verb in ("add", "remove"):
        (book / ("%s.yml" % verb)).write_text(yaml.safe_dump([{
            "name": "record %s" % verb,
            "ansible.builtin.lineinfile": {"path": str(log), "line": "%s {{ lb_pool_lb_host }} {{ lb_pool_member.name }}"
                                           " {{ lb_pool_member.address | default('') }}" % verb, "create": True,
                                           "mode": "0600"},
            "delegate_to": "localhost"}]))
    ev = extra(lab, msr_lb_provider="custom", lb_pool_hosts=["lb1"], lb_pool_custom_add_tasks=str(book / "add.yml"),
               lb_pool_custom_remove_tasks=str(book / "remove.yml"))
    cfg = lab.ssh("lb1", "cat /etc/haproxy/haproxy.cfg").stdout
    before = runtime_names("lb1")
    run = lab.run(role_play(lab, "main", "lb_pool"), extra_vars=ev, touches=False)
    assert run.rc == 0, run.output
    lines = sorted(log.read_text().splitlines())
    assert lines == ["add lb1 %s %s" % (n, lab.hosts[n]) for n in DESIRED], lines
    # the HAProxy of lb1 was not touched: the custom tasks are the provider
    assert runtime_names("lb1") == before and lab.ssh("lb1", "cat /etc/haproxy/haproxy.cfg").stdout == cfg

    # A provider the role cannot use is refused before any LB host is touched, whichever entry point runs.
    member = {"name": "worker1", "address": lab.hosts["worker1"], "http_port": 80, "https_port": 443}
    for entry, bad, provider in (("main", {"msr_lb_provider": "f5"}, "f5"),
                                 ("add", {"lb_pool_custom_remove_tasks": ""}, "custom")):
        play = role_play(lab, entry, "lb_pool", lb_pool_member=member) if entry == "add" else role_play(lab, entry,
                                                                                                          "lb_pool")
        run = lab.run(play, extra_vars={**ev, **bad}, touches=False)
        assert run.rc != 0
        assert ("lb_pool: lb1 has msr_lb_provider=%s; use haproxy, nginx, custom (with lb_pool_custom_add_tasks and "
                "lb_pool_custom_remove_tasks) or none" % provider) in run.output, run.output
        assert sorted(log.read_text().splitlines()) == lines
        assert runtime_names("lb1") == before and lab.ssh("lb1", "cat /etc/haproxy/haproxy.cfg").stdout == cfg
