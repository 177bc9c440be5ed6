# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Load-balancer pool members from cluster_info replicas, and the pools lb_pool_info read; documented in
msr_lb_members.yml and msr_lb_observed.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

DEFAULT_PORTS = {"http_port": 80, "https_port": 443}


def member(replica):
    """The pool member of one replica: named after its MKE node, at the node's address."""
    out = {"name": replica["node"], "address": replica.get("address")}
    for key, default in DEFAULT_PORTS.items():
        out[key] = replica.get(key) or default
    return out


def msr_lb_members(replicas, healthy=True):
    """Members of the healthy replicas (healthy=True), of the replicas on a node that are not healthy
    (False), or of every replica on a node (None)."""
    if isinstance(replicas, dict):
        replicas = replicas.get("replicas")
    if not isinstance(replicas, (list, tuple)):
        raise AnsibleFilterError("msr_lb_members: expected cluster_info's replicas (a list), got %s"
                                 % type(replicas).__name__)
    out = []
    seen = set()
    for r in replicas:
        if not r.get("node") or r["node"] in seen:
            continue
        if healthy is not None and (r.get("state") == "healthy") != bool(healthy):
            continue
        if healthy is not False and not r.get("address"):
            continue
        seen.add(r["node"])
        out.append(member(r))
    return sorted(out, key=lambda m: m["name"])


def msr_lb_observed(results, hostvars):
    """{LB host: {provider, pool, runtime}} from a loop of lb_pool_info over the LB hosts (loop_var
    __lb_pool_host); {provider} alone for a host whose pool was not read (a custom or none provider)."""
    if isinstance(results, dict):
        results = results.get("results")
    if not isinstance(results, (list, tuple)):
        raise AnsibleFilterError("msr_lb_observed: expected the registered loop of lb_pool_info, got %s"
                                 % type(results).__name__)
    out = {}
    for r in results:
        host = r.get("__lb_pool_host")
        if not host:
            raise AnsibleFilterError("msr_lb_observed: a result without its __lb_pool_host (the loop's loop_var)")
        provider = r.get("provider") or (hostvars.get(host) or {}).get("msr_lb_provider") or "haproxy"
        out[host] = {"provider": provider, "pool": r["pool"], "runtime": r.get("runtime")} if "pool" in r \
            else {"provider": provider}
    return out


class FilterModule(object):
    def filters(self):
        return {"msr_lb_members": msr_lb_members, "msr_lb_observed": msr_lb_observed}
