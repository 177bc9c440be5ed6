# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy runtime API: replies recorded from HAProxy 2.6 in the lab, and a unix socket server that
answers like it, so the socket code runs for real."""

from __future__ import annotations


import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy as H
from ansible_collections.msr.replicas.plugins.module_utils._lbpool import PoolRun

# Recorded in the lab: worker1 drained, worker2 forced MAINT, worker4 DOWN (no replica), worker5 after
# `set server state ready` of a `disabled` line (CMAINT stays set), worker6 just added (check pending).
HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
          "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
          "srv_check_port srv_check_addr srv_agent_addr srv_agent_port")
SERVERS_STATE = "\n".join([
    "1", HEADER,
    "4 msr_http 1 worker1 10.85.0.21 2 8 1 1 0 15 3 3 6 0 0 0 - 80 - 0 80 - - 80",
    "4 msr_http 2 worker2 10.85.0.22 0 1 1 1 0 15 3 0 14 0 0 0 - 80 - 0 80 - - 80",
    "4 msr_http 4 worker4 10.85.0.24 0 0 1 1 1 8 2 0 6 0 0 0 - 80 - 0 80 - - 80",
    "4 msr_http 5 worker5 10.85.0.25 2 4 1 1 0 1 0 2 6 0 0 0 - 80 - 0 80 - - 80",
    "4 msr_http 6 worker6 10.85.0.26 2 0 1 1 0 1 0 2 6 0 0 0 - 80 - 0 80 - - 80",
    "5 msr_https 1 worker1 10.85.0.21 2 0 1 1 11 15 3 3 6 0 0 0 - 443 - 0 80 - - 80",
    "6 other 1 web1 10.1.1.1 2 0 1 1 11 15 3 3 6 0 0 0 - 443 - 0 80 - - 80", ""])
STAT = "\n".join([
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,type",
    "fe_msr_http,FRONTEND,,,3,3,9979,3,OPEN,0",
    "msr_http,worker1,0,0,2,2,,2,DRAIN,2",
    "msr_http,worker4,0,0,1,1,,1,DOWN,2",
    "msr_http,BACKEND,0,0,3,3,998,3,UP,1",
    "msr_https,worker1,0,0,0,0,,0,UP,2", ""])


def test_servers_state_names_admin_and_operational_state():
    state = H.parse_servers_state(SERVERS_STATE)
    http = state["msr_http"]
    assert [(n, s["admin"], s["operational"], s["checked"]) for n, s in sorted(http.items())] == [
        ("worker1", "DRAIN", "UP", True), ("worker2", "MAINT", "DOWN", True), ("worker4", "READY", "DOWN", False),
        ("worker5", "READY", "UP", False), ("worker6", "READY", "UP", False)]
    assert http["worker1"]["admin_bits"] & H.FORCED and http["worker2"]["admin_bits"] & H.FORCED
    assert not http["worker5"]["admin_bits"] & H.FORCED       # CMAINT alone: `state ready` has nothing to clear
    assert (state["msr_https"]["worker1"]["address"], state["msr_https"]["worker1"]["port"]) == ("10.85.0.21", 443)
    with pytest.raises(H.HaproxyError, match="unexpected reply"):
        H.parse_servers_state("Unknown command\n")


def test_stat_sessions_per_server_only():
    assert H.parse_stat(STAT) == {("msr_http", "worker1"): 2, ("msr_http", "worker4"): 1, ("msr_https", "worker1"): 0}


def test_membership_differences_and_arrivals():
    live = H.parse_servers_state(SERVERS_STATE)
    expected = {"msr_http": {"worker1": ("10.85.0.21", 80), "worker2": ("10.85.0.99", 80), "worker3": ("10.85.0.23", 80),
                             "worker4": ("10.85.0.24", 80), "worker5": ("dns.name", 8080),
                             "worker6": ("10.85.0.26", None)},
                "msr_https": {"worker1": ("10.85.0.21", 443)}}
    assert H.membership_differences(expected, live) == [
        "msr_http/worker2 is 10.85.0.22:80 in the runtime, 10.85.0.99:80 in the file",
        "msr_http/worker3 is in the file, not in the runtime"]
    del expected["msr_http"]["worker6"]
    assert H.membership_differences(expected, live)[-1] == "msr_http/worker6 is in the runtime, not in the file"
    assert H.arrivals(expected, live) == [("msr_http", "worker2"), ("msr_http", "worker3")]


@pytest.mark.parametrize("entries, sessions, expect", [
    ({"msr_http": ("UP", "DRAIN"), "msr_https": ("UP", "DRAIN")}, {"msr_http": 0, "msr_https": 0}, (0, False)),
    ({"msr_http": ("UP", "DRAIN"), "msr_https": ("UP", "DRAIN")}, {"msr_http": 0, "msr_https": 2}, (2, None)),
    ({"msr_http": ("DOWN", "DRAIN"), "msr_https": ("DOWN", "DRAIN")}, {"msr_http": 1, "msr_https": 0}, (1, True)),
    ({"msr_http": ("DOWN", "MAINT")}, {"msr_http": 1}, (1, None)),      # maintenance is not DOWN by its check
    ({}, {"msr_http": 1}, (0, False)),                                   # gone from the runtime
])
def test_drain_status(entries, sessions, expect):
    servers = {b: {"w": {"operational": op, "admin": admin}} for b, (op, admin) in entries.items()}
    scur = {(b, "w"): n for b, n in sessions.items()}
    assert PoolRun.drain_status(servers, scur, "w", ["msr_http", "msr_https"]) == expect


def test_runtime_over_a_real_socket(fake_haproxy):
    path, seen = fake_haproxy
    rt = H.Runtime(path, ["msr_http", "msr_https", "missing"])
    servers = rt.servers()
    assert sorted(servers) == ["missing", "msr_http", "msr_https"] and servers["missing"] == {}
    assert rt.sessions()[("msr_http", "worker1")] == 2
    assert rt.pid() == "42"
    rt.set_state("msr_http", "worker1", "ready")
    with pytest.raises(H.HaproxyError, match="set server msr_http/nope state ready: No such server."):
        rt.set_state("msr_http", "nope", "ready")
    assert seen == ["show servers state", "show stat", "show info", "set server msr_http/worker1 state ready",
                    "set server msr_http/nope state ready"]
    assert H.runtime_view({"msr_http": {"worker1": servers["msr_http"]["worker1"]}}) == [
        {"backend": "msr_http", "name": "worker1", "address": "10.85.0.21", "port": 80, "admin": "DRAIN",
         "operational": "UP"}]


def test_no_socket_names_it():
    with pytest.raises(H.HaproxyError, match="admin socket /nonexistent/admin.sock does not answer 'show stat'"):
        H.command("/nonexistent/admin.sock", "show stat")
