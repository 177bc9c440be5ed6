# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's LB pools as the LBs themselves hold them: HAProxy's runtime socket and config file, NGINX's file."""

from __future__ import annotations

import re
import time

from msr_lab.lb.haproxy import haproxy_servers

from msrint import STATE_DIR

HAPROXY_BACKENDS = ("msr_http", "msr_https")


def runtime(lb):
    """{backend: {server: status}} from HAProxy's runtime API (`show stat` on the admin socket)."""
    out = {b: {} for b in HAPROXY_BACKENDS}
    for s in haproxy_servers(STATE_DIR, lb):
        out.setdefault(s["backend"], {})[s["name"]] = s["status"]
    return out


def runtime_names(lb):
    pools = runtime(lb)
    names = {b: sorted(pools[b]) for b in HAPROXY_BACKENDS}
    assert names["msr_http"] == names["msr_https"], pools
    return names["msr_http"]


def wait_up(lb, names, timeout=20):
    """Until exactly ``names`` are in both backends and all UP (health checks pass)."""
    deadline = time.time() + timeout
    while True:
        pools = runtime(lb)
        if all(sorted(pools[b]) == sorted(names) and all(v == "UP" for v in pools[b].values())
               for b in HAPROXY_BACKENDS):
            return pools
        if time.time() > deadline:
            raise AssertionError("%s: pools %s, wanted %s all UP" % (lb, pools, sorted(names)))
        time.sleep(0.3)


def haproxy_file(lab, lb):
    """{backend: [(server, address:port)]} from the config file on the LB host."""
    text = lab.ssh(lb, "cat /etc/haproxy/haproxy.cfg").stdout
    out, backend = {}, None
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["backend"]:
            backend = words[1]
            out[backend] = []
        elif words[:1] == ["server"] and backend:
            out[backend].append((words[1], words[2]))
    return out


def nginx_file(lab, lb):
    """{upstream: [address:port]} from the NGINX config on the LB host (servers marked down excluded)."""
    text = lab.ssh(lb, "cat /etc/nginx/nginx.conf").stdout
    out = {}
    for name, body in re.findall(r"upstream\s+(\S+)\s*\{(.*?)\}", text, re.S):
        out[name] = sorted(m.group(1) for m in re.finditer(r"^\s*server\s+(\S+?)(?:\s[^;]*)?;", body, re.M)
                           if " down" not in m.group(0))
    return out
