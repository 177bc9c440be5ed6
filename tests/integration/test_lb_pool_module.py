# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""msr.replicas.lb_pool on the lab's LB nodes: lb1 (HAProxy) and lb3 (NGINX), the module running on them.

What the tests believe is HAProxy's own runtime API (``show stat`` over its admin socket), the config
file as the node holds it (after a reload, and after the node went down and booted again), NGINX's
processes and the TCP connections on the LB node; never the module's output alone. Each test starts
from the lab's own pool (written and reloaded by msr_lab) and leaves the lab touched, so the next
``lab.fresh`` recreates it.
"""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
from msr_lab.lb import haproxy as labhap
from msr_lab.lb import nginx as labngx
from msr_lab.lb.common import read_node_file
from msr_lab.nodes.netns import write_node_file

from msrint import STATE_DIR, until

pytestmark = pytest.mark.timeout(300)

HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
NGINX_CONF = "/etc/nginx/nginx.conf"
DEFAULT_LINE = "\tserver %s %s:%d check port 80 inter 2s fall 3 rise 2\n"


@pytest.fixture
def lab3(lab):
    lab.fresh(replicas=3)
    try:
        yield lab
    finally:
        lab.touched()


def member(lab, node):
    return {"name": node, "address": lab.hosts[node]}


def pool_task(name, **params):
    return {"name": name, "msr.replicas.lb_pool": params, "ignore_errors": True}


def run_pool(lab, lb, check=False, **params):
    """One lb_pool task on ``lb``; returns (status, result)."""
    run = lab.run(lab.play([pool_task("pool", **params)], hosts=lb), check=check)
    assert run.rc == 0, run.output
    rec = run.task("pool", lb)
    return rec["status"], rec["result"]


def wait_for(what, pred, timeout=30):
    return until(what, pred, timeout)


def runtime(lb="lb1"):
    """{(backend, server): show stat row} as HAProxy's admin socket reports it."""
    return {(s["backend"], s["name"]): s for s in labhap.haproxy_servers(STATE_DIR, lb)}


def status(lb="lb1"):
    return {k: s["status"] for k, s in runtime(lb).items()}


def names(lb="lb1"):
    return sorted({n for _b, n in runtime(lb)})


def config(lb, path=HAPROXY_CFG):
    return read_node_file(STATE_DIR, lb, path)


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def lab_servers(lab, *nodes):
    return [(n, lab.hosts[n]) for n in nodes]


def set_haproxy_pool(lab, *nodes):
    """The lab's own haproxy.cfg with these servers, reloaded, all UP."""
    labhap.reload_haproxy(STATE_DIR, "lb1", lab_servers(lab, *nodes))
    wait_for("lab pool UP", lambda: sorted(status().values()) == ["UP"] * (2 * len(nodes)))


def connect_until(lab, node, lb="lb1"):
    """TCP connections through lb:80 until HAProxy counts one session on node; returns the sockets."""
    socks = []
    for _ in range(8):
        socks.append(socket.create_connection((lab.hosts[lb], 80), timeout=5))
        wait_for("HAProxy to count the connection",
                 lambda: sum(int(s["raw"]["scur"]) for k, s in runtime(lb).items() if k[0] == "msr_http") == len(socks))
        if int(runtime(lb)[("msr_http", node)]["raw"]["scur"]) == 1:
            return socks
    raise AssertionError("no connection reached %s" % node)


def close(socks):
    for s in socks:
        s.close()


def test_haproxy_add_check_mode_apply_idempotent_and_persisted(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2")
    before, pid = config("lb1"), labhap.haproxy_pid(STATE_DIR, "lb1")
    lab.ssh("lb1", "chmod 640 %s && chgrp haproxy %s" % (HAPROXY_CFG, HAPROXY_CFG))
    add = dict(provider="haproxy", members=[member(lab, "worker3")])

    state, r = run_pool(lab, "lb1", check=True, **add)
    assert state == "ok" and r["changed"] is True and r["added"] == ["worker3"] and r["reloaded"] is True
    assert r["up"] == {}   # nothing waited for in check mode
    line = DEFAULT_LINE % ("worker3", lab.hosts["worker3"], 80)
    assert line in r["diff"][0]["after"] and line not in r["diff"][0]["before"]
    assert config("lb1") == before and labhap.haproxy_pid(STATE_DIR, "lb1") == pid
    assert names() == ["worker1", "worker2"]

    state, r = run_pool(lab, "lb1", **add)
    assert state == "ok" and r["changed"] is True and r["added"] == ["worker3"] and r["reloaded"] is True
    # the module waited for worker3 to pass its health check: it is UP now, in both backends
    assert status()[("msr_http", "worker3")] == "UP" and status()[("msr_https", "worker3")] == "UP"
    # the seconds from the reload until HAProxy's checks made it UP in both backends
    assert list(r["up"]) == ["worker3"] and r["up"]["worker3"]["state"] == "UP", r["up"]
    assert 0 < r["up"]["worker3"]["waited"] <= 30, r["up"]
    after = config("lb1")
    assert line in after and DEFAULT_LINE % ("worker3", lab.hosts["worker3"], 443) in after
    assert after == r["diff"][0]["after"] and labhap.haproxy_pid(STATE_DIR, "lb1") != pid
    assert lab.ssh("lb1", "stat -c '%%a %%U %%G' %s" % HAPROXY_CFG).stdout.split() == ["640", "root", "haproxy"]
    assert [m["name"] for m in r["pool"]] == ["worker1", "worker2", "worker3"]

    for check in (False, True):
        state, r = run_pool(lab, "lb1", check=check, **add)
        assert state == "ok" and r["changed"] is False and r["reloaded"] is False and r["added"] == []
    assert config("lb1") == after

    # persisted: a plain reload and a reboot of the LB node load worker3 from the file
    labhap.reload_haproxy(STATE_DIR, "lb1")
    assert "worker3" in names()
    lab.fault("lb-down", "lb1")
    lab.fault("lb-up", "lb1")
    wait_for("HAProxy back after lb-up", lambda: labhap.haproxy_pid(STATE_DIR, "lb1"))
    assert names() == ["worker1", "worker2", "worker3"] and config("lb1") == after
    wait_for("worker3 UP after the boot", lambda: status()[("msr_http", "worker3")] == "UP")


def test_haproxy_remove_drains_first_and_times_out_without_removing(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2", "worker3")
    before = config("lb1")
    remove = dict(provider="haproxy", state="absent", members=[member(lab, "worker3")])
    socks = connect_until(lab, "worker3")
    try:
        state, r = run_pool(lab, "lb1", check=True, drain_timeout=2, **remove)
        assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"]
        assert r["drained"] == {"worker3": {"sessions": 1, "waited": 0, "state": "pending"}}
        assert status()[("msr_http", "worker3")] == "UP"             # check mode drained nothing

        state, r = run_pool(lab, "lb1", drain_timeout=2, **remove)
        assert state == "failed" and r["changed"] is False
        assert r["msg"] == ("lb1: server worker3 still has 1 session(s) after drain_timeout 2 s; nothing was "
                            "removed: /etc/haproxy/haproxy.cfg is unchanged and worker3 is READY again")
        assert config("lb1") == before
        assert status()[("msr_http", "worker3")] == "UP" and status()[("msr_https", "worker3")] == "UP"

        # a real wait: the drain shows in HAProxy and the file keeps worker3 until the connection ends
        done = []
        worker = threading.Thread(target=lambda: done.append(run_pool(lab, "lb1", drain_timeout=120, **remove)))
        worker.start()
        wait_for("worker3 DRAIN", lambda: status()[("msr_http", "worker3")] == "DRAIN")
        assert status()[("msr_https", "worker3")] == "DRAIN"
        assert config("lb1") == before and not done
    finally:
        close(socks)
    worker.join(120)
    state, r = done[0]
    assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"] and r["drained"]["worker3"]["state"] == "drained"
    assert r["drained"]["worker3"]["sessions"] == 0
    assert names() == ["worker1", "worker2"]
    assert "worker3" not in config("lb1")
    state, r = run_pool(lab, "lb1", **remove)
    assert state == "ok" and r["changed"] is False and r["drained"] == {}


def test_haproxy_down_server_counts_as_drained(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2", "worker3")
    socks = connect_until(lab, "worker3")
    try:
        lab.fault("stop-replica", "worker3")
        wait_for("worker3 DOWN", lambda: status()[("msr_http", "worker3")] == "DOWN"
                 and status()[("msr_https", "worker3")] == "DOWN")
        assert int(runtime()[("msr_http", "worker3")]["raw"]["scur"]) == 1     # its session is still open
        state, r = run_pool(lab, "lb1", provider="haproxy", state="absent", members=[member(lab, "worker3")],
                            drain_timeout=2)
    finally:
        close(socks)
        lab.fault("start-replica", "worker3")
    assert state == "ok" and r["changed"] is True, r
    assert r["drained"]["worker3"]["state"] == "DOWN" and r["drained"]["worker3"]["sessions"] == 1
    assert names() == ["worker1", "worker2"] and "worker3" not in config("lb1")


def test_haproxy_invalid_server_options_keeps_the_file_and_the_service(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2")
    before, pid = config("lb1"), labhap.haproxy_pid(STATE_DIR, "lb1")
    bad = dict(provider="haproxy", members=[member(lab, "worker3")], server_options="check no-such-option")
    messages = []
    for check in (True, False):
        state, r = run_pool(lab, "lb1", check=check, **bad)
        assert state == "failed" and r["changed"] is False
        messages.append(r["msg"])
    assert messages[0] == messages[1]
    assert messages[1].startswith("lb1: `/usr/sbin/haproxy -c -f <new file>` rejected the new config, so "
                                  "/etc/haproxy/haproxy.cfg is unchanged: ")
    assert "unknown keyword 'no-such-option'" in messages[1]
    assert sha(config("lb1")) == sha(before)
    assert lab.ssh("lb1", "ls -A /etc/haproxy").stdout.split() == ["errors", "haproxy.cfg"]   # no temp file left
    assert labhap.haproxy_pid(STATE_DIR, "lb1") == pid and names() == ["worker1", "worker2"]
    with socket.create_connection((lab.hosts["lb1"], 80), timeout=5) as s:      # still serving
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: msr.lab\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_haproxy_exact_admin_state_and_lost_reload(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2", "worker3")
    two = dict(provider="haproxy", state="exact", members=[member(lab, "worker1"), member(lab, "worker2")])
    state, r = run_pool(lab, "lb1", **two)
    assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"] and names() == ["worker1", "worker2"]

    # an admin put worker1 in maintenance and worker2's HTTPS in drain: members go back to READY
    labhap.haproxy_cmd(STATE_DIR, "lb1", "set server msr_http/worker1 state maint")
    labhap.haproxy_cmd(STATE_DIR, "lb1", "set server msr_https/worker2 state drain")
    state, r = run_pool(lab, "lb1", check=True, **two)
    assert state == "ok" and r["changed"] is True and r["set_ready"] == ["worker1", "worker2"] and r["reloaded"] is False
    assert status()[("msr_http", "worker1")] == "MAINT"
    state, r = run_pool(lab, "lb1", **two)
    assert state == "ok" and r["changed"] is True and r["set_ready"] == ["worker1", "worker2"] and r["reloaded"] is False
    wait_for("worker1 UP", lambda: status()[("msr_http", "worker1")] == "UP")
    assert status()[("msr_https", "worker2")] == "UP"
    state, r = run_pool(lab, "lb1", **two)
    assert state == "ok" and r["changed"] is False

    # the file got worker3 but no reload followed (a lost reload): the module reloads
    text = config("lb1")
    labhap.write_haproxy_cfg(STATE_DIR, "lb1", lab_servers(lab, "worker1", "worker2", "worker3"))
    three = dict(two, members=two["members"] + [member(lab, "worker3")])
    state, r = run_pool(lab, "lb1", check=True, **three)
    assert state == "ok" and r["changed"] is True and r["reloaded"] is True and r["added"] == []
    assert "msr_http/worker3 is in the file, not in the runtime" in r["runtime_differences"]
    assert names() == ["worker1", "worker2"]
    state, r = run_pool(lab, "lb1", **three)
    assert state == "ok" and r["changed"] is True and r["reloaded"] is True and names() == ["worker1", "worker2", "worker3"]
    assert config("lb1") != text and run_pool(lab, "lb1", **three)[1]["changed"] is False


def test_haproxy_present_waits_only_for_its_own_members(lab3):
    lab = lab3
    set_haproxy_pool(lab, "worker1", "worker2")
    # someone else's line, in the file but never reloaded; worker4 runs no replica, so it never comes UP
    labhap.write_haproxy_cfg(STATE_DIR, "lb1", lab_servers(lab, "worker1", "worker2") + [("stale", lab.hosts["worker4"])])
    state, r = run_pool(lab, "lb1", provider="haproxy", members=[member(lab, "worker3")], up_timeout=8)
    assert state == "ok" and r["changed"] is True and r["reloaded"] is True and r["added"] == ["worker3"], r
    assert names() == ["stale", "worker1", "worker2", "worker3"]
    wait_for("worker3 UP", lambda: status()[("msr_http", "worker3")] == "UP")
    assert status()[("msr_http", "stale")] != "UP"


def nginx_peers(lab):
    """Backend addresses of lb3's established connections to replica port 80."""
    out = lab.ssh("lb3", "ss -Htn state established '( dport = :80 )'").stdout
    return sorted({line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()})


def test_nginx_remove_and_add_on_lb3(lab3):
    lab = lab3
    servers = lab_servers(lab, "worker1", "worker2", "worker3")
    labngx.reload_nginx(STATE_DIR, "lb3", servers)
    before = config("lb3", NGINX_CONF)
    master = labngx.nginx_pid(STATE_DIR, "lb3")
    remove = dict(provider="nginx", state="absent", members=[member(lab, "worker3")])

    state, r = run_pool(lab, "lb3", check=True, **remove)
    assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"] and r["reloaded"] is True
    assert config("lb3", NGINX_CONF) == before

    workers = labngx.nginx_workers(STATE_DIR, "lb3")
    state, r = run_pool(lab, "lb3", **remove)
    assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"]
    assert r["drained"]["worker3"]["state"] == "drained" and r["drained"]["worker3"]["workers"] >= 1, r["drained"]
    assert not labngx.nginx_workers(STATE_DIR, "lb3") & workers                # the old workers are gone
    assert config("lb3", NGINX_CONF) == labngx.render_nginx_conf(servers[:2])
    assert labngx.nginx_pid(STATE_DIR, "lb3") == master                      # graceful: same master
    assert labngx.nginx_workers(STATE_DIR, "lb3") - workers                   # new workers took the config
    socks = [socket.create_connection((lab.hosts["lb3"], 80), timeout=5) for _ in range(6)]
    try:
        wait_for("six proxied connections", lambda: len(lab.ssh(
            "lb3", "ss -Htn state established '( dport = :80 )'").stdout.splitlines()) == 6)
        assert nginx_peers(lab) == sorted([lab.hosts["worker1"], lab.hosts["worker2"]])
    finally:
        close(socks)
    state, r = run_pool(lab, "lb3", **remove)
    assert state == "ok" and r["changed"] is False

    bad = dict(provider="nginx", members=[member(lab, "worker3")], server_options="max_fails=x")
    state, r = run_pool(lab, "lb3", **bad)
    assert state == "failed" and "rejected the new config, so /etc/nginx/nginx.conf is unchanged" in r["msg"]
    assert config("lb3", NGINX_CONF) == labngx.render_nginx_conf(servers[:2])

    add = dict(provider="nginx", members=[member(lab, "worker3")], server_options="max_fails=2 fail_timeout=30s")
    state, r = run_pool(lab, "lb3", **add)
    assert state == "ok" and r["changed"] is True and r["added"] == ["worker3"]
    assert config("lb3", NGINX_CONF) == before                                 # the lab's own 3-server file
    assert [m["name"] for m in r["pool"]] == sorted([lab.hosts["worker1"], lab.hosts["worker2"], "worker3"])
    state, r = run_pool(lab, "lb3", **add)
    assert state == "ok" and r["changed"] is False

    # a connection that outlives the drain: the old worker that carries it keeps running, the task fails
    sock = socket.create_connection((lab.hosts["lb3"], 80), timeout=5)
    try:
        wait_for("a proxied connection", lambda: nginx_peers(lab))
        workers = labngx.nginx_workers(STATE_DIR, "lb3")
        state, r = run_pool(lab, "lb3", drain_timeout=2, **remove)
        assert state == "failed" and "still carry connections after drain_timeout 2 s" in r["msg"], r
        assert "no longer has worker3, so new connections do not reach it" in r["msg"] and "raise drain_timeout" in r["msg"]
        assert labngx.nginx_workers(STATE_DIR, "lb3") & workers                 # still serving that connection
    finally:
        sock.close()
    wait_for("the old workers gone", lambda: not labngx.nginx_workers(STATE_DIR, "lb3") & workers)
    assert config("lb3", NGINX_CONF) == labngx.render_nginx_conf(servers[:2])


def test_nginx_upstream_include_file_is_validated_through_the_main_config(lab3):
    lab = lab3
    servers = lab_servers(lab, "worker1", "worker2", "worker3")
    full = labngx.render_nginx_conf(servers)
    start, end = full.index("\tupstream msr_80"), full.index("\tserver {")
    include = "/etc/nginx/msr-upstreams.conf"
    write_node_file((STATE_DIR, "lb3"), include, "# MSR pool, included by nginx.conf\n" + full[start:end])
    write_node_file((STATE_DIR, "lb3"), NGINX_CONF, full[:start] + "\tinclude %s;\n" % include + full[end:])
    labngx.reload_nginx(STATE_DIR, "lb3")
    main, upstreams = config("lb3", NGINX_CONF), config("lb3", include)
    common = dict(provider="nginx", config=include, members=[member(lab, "worker3")])

    state, r = run_pool(lab, "lb3", state="absent", **common)
    assert state == "ok" and r["changed"] is True and r["removed"] == ["worker3"]
    assert config("lb3", include) == upstreams.replace(
        "\t\tserver %s:80 max_fails=2 fail_timeout=30s;\n" % lab.hosts["worker3"], "").replace(
        "\t\tserver %s:443 max_fails=2 fail_timeout=30s;\n" % lab.hosts["worker3"], "")
    assert config("lb3", NGINX_CONF) == main

    # nginx -t -c nginx.conf refuses the new include file: the old one is put back byte for byte
    after = config("lb3", include)
    state, r = run_pool(lab, "lb3", server_options="max_fails=x", **common)
    assert state == "failed" and r["changed"] is False
    assert r["msg"].startswith("lb3: nginx -t -c /etc/nginx/nginx.conf rejected the new %s, so the old one was "
                               "put back: " % include)
    assert sha(config("lb3", include)) == sha(after)
    assert lab.ssh("lb3", "ls -A /etc/nginx | grep -c lb_pool", check=False).stdout.strip() == "0"

    state, r = run_pool(lab, "lb3", server_options="max_fails=2 fail_timeout=30s", **common)
    assert state == "ok" and r["changed"] is True and config("lb3", include) == upstreams
