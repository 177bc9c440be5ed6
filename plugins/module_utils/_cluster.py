# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Observed MSR cluster state from the MKE and MSR APIs (no SSH). PRIVATE to this collection.

``observe()`` does the I/O; ``build_view()`` is pure so the health rules can be tested on recorded JSON.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError, msr_tls
from ansible_collections.msr.replicas.plugins.module_utils._mke import BOOTSTRAPPER_NAME, MkeClient
from ansible_collections.msr.replicas.plugins.module_utils._msr import MsrClient
from ansible_collections.msr.replicas.plugins.module_utils._topology import (
    Cluster,
    problems,
    replica_state,
    running_bootstrapper,
)
from ansible_collections.msr.replicas.plugins.module_utils._workloads import nfs_storage, workloads_by_node

DEFAULT_HTTPS_PORT = 443


def clients_from_params(params):
    """(MkeClient, factory url -> MsrClient) from the shared connection options."""
    mke = MkeClient(params["mke_url"], params["mke_username"], params["mke_password"],
                    ca_pem=params.get("mke_ca"), insecure=params.get("mke_insecure_tls"),
                    timeout=params["api_timeout"], retries=params["api_retries"])
    ca_pem, insecure = msr_tls(params)
    bound = {"deadline": None}
    # One client per replica URL for the whole task: a wait that observes the cluster again and again
    # keeps one connection to each replica instead of a TLS handshake per request.
    clients = {}

    def msr_factory(url):
        client = clients.get(url)
        if client is None:
            client = clients[url] = MsrClient(url, params["mke_username"], params["mke_password"], ca_pem=ca_pem,
                                              insecure=insecure, timeout=params["api_timeout"],
                                              retries=params["api_retries"])
        client.http.deadline = bound["deadline"]
        return client

    def set_deadline(deadline):
        # A wait bounds every request (MKE and each replica) by the time it has left.
        bound["deadline"] = deadline
        mke.http.deadline = deadline
    msr_factory.set_deadline = set_deadline
    return mke, msr_factory


def replica_url(address, port):
    host = "[%s]" % address if address and ":" in address else address
    return "https://%s:%d" % (host, port) if port != 443 else "https://%s" % host


def observe(mke, msr_factory, msr_url=None, default_https_port=DEFAULT_HTTPS_PORT, mke_config=False,
            workloads=False, bootstrappers=None):
    """One read of the whole cluster: MKE nodes and MSR's containers (one filtered listing), then each
    replica's /_ping, then cluster_status and storage from the first replica (or msr_url) that answers.
    Also whether image storage is MSR's NFS volume (from the dtr-registry-<id> containers).

    ``workloads``: also read every container MKE sees (one more request, as large as the cluster) for each
    node's workloads. ``bootstrappers``: a bootstrappers() answer the caller has just read (not asked again)."""
    nodes = mke.nodes()
    listing = mke.service_containers()
    containers = mke.replica_containers(listing)
    ports = mke.replica_ports(listing)
    by_name = dict((n["name"], n) for n in nodes)
    urls = {}
    for c in containers:
        node = by_name.get(c["node"]) or {}
        c["ports"] = ports.get(c["id"]) or {}
        if node.get("address"):
            urls[c["id"]] = replica_url(node["address"], c["ports"].get("https") or default_https_port)
    pings = ping_all(msr_factory, urls)

    sources = [msr_url] if msr_url else []
    # Ask healthy replicas first: cluster_status is "as observed by the replica being queried".
    sources += [urls[r] for r in sorted(urls, key=lambda r: (not pings[r]["healthy"], r))]
    status, storage, observer, errors = None, None, None, []
    for url in sources:
        client = msr_factory(url)
        try:
            status = client.cluster_status()
        except MsrError as exc:
            errors.append(str(exc))
            continue
        observer = url
        try:
            storage = client.storage()
        except MsrError as exc:
            storage = {"driver": None, "drivers": [], "error": str(exc)}
        break
    view = build_view(nodes, containers, urls, pings, status, storage, observer, errors,
                      bootstrappers=mke.bootstrappers() if bootstrappers is None else bootstrappers)
    view["storage"] = dict(view["storage"], nfs=nfs_storage(listing["dtr-registry-"]))
    if mke_config:
        # MKE's scheduling settings (config TOML); scheduling() reports a failure instead of raising.
        view["mke"] = mke.scheduling()
    if workloads:
        add_workloads(view, mke.all_containers())
    return view


def ping_all(msr_factory, urls):
    """{replica id: ping()} of every replica at once: each waits on its own replica, and a replica that
    does not answer costs its timeout once, not once more for every replica after it."""
    clients = dict((rid, msr_factory(url)) for rid, url in urls.items())
    if len(clients) < 2:
        return dict((rid, client.ping()) for rid, client in clients.items())
    with ThreadPoolExecutor(max_workers=min(8, len(clients))) as pool:
        futures = dict((rid, pool.submit(client.ping)) for rid, client in clients.items())
        return dict((rid, future.result()) for rid, future in futures.items())


def add_workloads(view, containers):
    """Each node's ``workloads`` (containers neither MSR's nor MKE's), from every container."""
    found = workloads_by_node(containers)
    for node in view["nodes"]:
        node["workloads"] = found.get(node["name"], [])


def _detail(state, c, node, health_text, ping, down_nodes):
    if state == "unhealthy":
        return "health: %s, /_ping: %s" % (health_text, ping["status"] or ping["error"])
    if state == "unreachable":
        if c:
            return "its MKE node %s is %s" % (c["node"], node.get("state"))
        return ("in cluster_status (%s) but no container of it is seen; MKE cannot reach node(s) %s"
                % (health_text, ", ".join(down_nodes) or "(heartbeat pending)"))
    if state == "ghost":
        return "in cluster_status (%s) but without containers in MKE" % health_text
    if state == "partial":
        return "containers on node %s but not in cluster_status" % c["node"]
    return None


def build_view(nodes, containers, urls, pings, status, storage, observer=None, errors=(), bootstrappers=()):
    by_name = dict((n["name"], n) for n in nodes)
    health = (status or {}).get("replica_health") or {}
    stamps = (status or {}).get("replica_timestamp") or {}
    down_nodes = sorted(n["name"] for n in nodes if n.get("state") != "ready")
    by_id = dict((c["id"], c) for c in containers)
    replicas = []
    for rid in sorted(set(by_id) | set(health)):
        c = by_id.get(rid)
        ping = pings.get(rid) or {"status": None, "healthy": False, "error": "no address"}
        node = (by_name.get(c["node"]) if c else None) or {}
        reported = health.get(rid)
        if status is None:
            health_text = "unknown"
        elif reported is None:
            health_text = "not in cluster_status"
        else:
            health_text = reported
        state = replica_state(c is not None, (c or {}).get("container_state") in (None, "running"),
                              node.get("state"), status is not None, reported, ping["healthy"], not down_nodes)
        ports = (c or {}).get("ports") or {}
        replicas.append({
            "id": rid,
            "node": c["node"] if c else None,
            "state": state,
            "detail": _detail(state, c, node, health_text, ping, down_nodes),
            "node_exists": bool(node),
            "node_state": node.get("state"),
            "address": node.get("address"),
            "http_port": ports.get("http"),
            "https_port": ports.get("https"),
            "image": c.get("image") if c else None,
            "version": c.get("version") if c else None,
            "timestamp": stamps.get(rid),
            "url": urls.get(rid),
            "container_state": c.get("container_state") if c else None,
            "health": health_text,
            "ping": ping["status"],
            "ping_error": ping["error"],
            "ghost": state == "ghost",
            "in_cluster_status": (reported is not None) if status is not None else None,
            "healthy": state == "healthy",
        })
    node_ids = {}
    for r in replicas:
        if r["node"]:
            node_ids.setdefault(r["node"], r["id"])
    nodes = [dict(n, replica_id=node_ids.get(n["name"])) for n in nodes]
    view = {
        "nodes": nodes,
        "replicas": replicas,
        "storage": storage or {"driver": None, "drivers": []},
        "current_issues": (status or {}).get("current_issues") or [],
        "observer": observer,
        "status_available": status is not None,
        "version": _version(replicas),
        "bootstrappers": list(bootstrappers),
    }
    cluster = Cluster.from_observed(view)
    view["quorum"] = cluster.quorum()
    view["problems"] = problems(cluster)
    view["healthy"] = not view["problems"]
    view["issues"] = derive_issues(view, list(errors))
    return view


def _version(replicas):
    known = sorted(set(r["version"] for r in replicas if r.get("version")))
    return known[0] if len(known) == 1 else None


def _issue(kind, severity, message, replica_id=None):
    return {"kind": kind, "severity": severity, "message": message, "replica_id": replica_id}


def derive_issues(view, errors):
    issues = []
    for item in view["current_issues"]:
        issues.append(_issue("current_issue", "critical" if item.get("critical") else "warning",
                             item.get("description") or str(item)))
    if view["replicas"] and not view["status_available"]:
        issues.append(_issue("no_cluster_status", "critical",
                             "no replica answered /api/v0/meta/cluster_status: %s" % "; ".join(errors)))
    for r in view["replicas"]:
        rid = r["id"]
        if r["state"] == "ghost":
            issues.append(_issue("ghost_replica", "critical",
                                 "replica %s is in cluster_status but has no dtr-rethinkdb container in MKE "
                                 "(ghost); remove it with remove --replica-ids %s" % (rid, rid), rid))
            continue
        if r["state"] == "unreachable" and not r["node"]:
            issues.append(_issue("replica_unreachable", "critical",
                                 "replica %s is %s; it may come back with its containers: bring the node back, "
                                 "or remove the replica and join a new one" % (rid, r["detail"]), rid))
            continue
        if r["state"] == "partial":
            issues.append(_issue("partial_join", "critical",
                                 "replica %s has containers on node %s but is not in cluster_status (a partial "
                                 "join); clear it with destroy --replica-id %s" % (rid, r["node"], rid), rid))
        if not r["node_exists"]:
            issues.append(_issue("node_missing", "critical",
                                 "replica %s runs on node %s, which MKE does not list" % (rid, r["node"]), rid))
        elif r["node_state"] != "ready":
            issues.append(_issue("node_not_ready", "critical",
                                 "node %s of replica %s is %s" % (r["node"], rid, r["node_state"]), rid))
        if r["in_cluster_status"] and r["health"] != "OK":
            issues.append(_issue("replica_unhealthy", "critical",
                                 "replica %s is unhealthy: %s" % (rid, r["health"]), rid))
        if r["ping"] != 200:
            issues.append(_issue("ping_failed", "critical",
                                 "replica %s /_ping: %s" % (rid, r["ping_error"] or r["ping"]), rid))
    for b in view.get("bootstrappers") or []:
        if b["running"]:
            issues.append(_issue("bootstrapper_running", "critical", running_bootstrapper(b)))
        else:
            issues.append(_issue("bootstrapper_left", "warning",
                                 "the bootstrapper container %s (%s) on node %s is left from an earlier run (%s); "
                                 "the next run of the replica role (any playbook but reconcile's report) removes it, or "
                                 "remove it with 'docker rm %s' on that node"
                                 % (b["name"], b["command"], b["node"], b["status"] or b["state"], b["name"])))
    q = view["quorum"]
    if q["size"] and q["has_quorum"] is False:
        issues.append(_issue("quorum_lost", "critical",
                             "only %d of %d replicas are healthy; %d are needed for quorum (see the "
                             "emergency-repair runbook)" % (q["healthy"], q["size"], q["majority"])))
    if q["size"] and q["size"] % 2 == 0:
        issues.append(_issue("even_count", "warning",
                             "%d replicas: an even count tolerates no more failures than %d; use 3, 5 or 7"
                             % (q["size"], q["size"] - 1)))
    if q["size"] > 7:
        issues.append(_issue("too_many", "warning", "%d replicas: more than 7 degrades performance" % q["size"]))
    if view["storage"].get("driver") == "filesystem" and q["size"] > 1:
        issues.append(_issue("filesystem_storage", "warning",
                             "the filesystem storage driver with %d replicas: images pushed to one replica are "
                             "not visible on the others unless the volume is shared (NFS)" % q["size"]))
    if view["storage"].get("error"):
        issues.append(_issue("storage_unknown", "warning", view["storage"]["error"]))
    return issues


def replica_on_node(view, node):
    return [r for r in view["replicas"] if r["node"] == node and not r["ghost"]]


def find_replica(view, rid):
    for r in view["replicas"]:
        if r["id"] == rid:
            return r
    return None


_EXITED = re.compile(r"^Exited \((\d+)\)")


def unsettled(view, finished):
    """Why the changes of ``finished`` (bootstrapper containers this read waited for, as listed once they
    ended) are not done yet; [] once they are. A join or install ends before its replica reports healthy, and
    a remove before its replica leaves cluster_status: the run that started it would have waited for that too.
    Only this collection's containers (msr-replicas-<command>-<replica id>) that exited 0 are waited for: a
    failed command, or a replica its join left partial, is the plan's to deal with."""
    why = []
    for b in finished:
        name, command = b.get("name") or "", b.get("command")
        exited = _EXITED.match(b.get("status") or "")
        prefix = BOOTSTRAPPER_NAME % (command, "")
        if b.get("running") or not exited or exited.group(1) != "0" or not name.startswith(prefix):
            continue
        r = find_replica(view, name[len(prefix):])
        if command in ("join", "install") and r is not None and not r["healthy"]:
            why.append("replica %s, joined by %s, is %s" % (r["id"], name, r["state"]))
        elif command == "remove" and r is not None and r["in_cluster_status"]:
            why.append("replica %s, removed by %s, is still in cluster_status" % (r["id"], name))
    return why


def public_view(view):
    """What cluster_info returns."""
    keys = ("healthy", "problems", "status_available", "nodes", "replicas", "storage", "version", "quorum",
            "current_issues", "issues", "mke", "bootstrappers")
    return dict((k, view[k]) for k in keys if k in view)
