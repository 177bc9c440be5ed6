# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drift between the inventory and the cluster, for the reconcile playbook. PRIVATE to this collection.

The replica actions come from _plan.plan (one source of truth for the safety rules); this module adds
the drifts the planner does not act on (per-LB-host pools, versions, local storage) and a text table.
No I/O: the playbook passes what cluster_info and lb_pool (check mode) observed.

Report::

    {"in_sync": bool, "actions": [...], "blocked_actions": [...], "refusals": [...], "warnings": [...],
     "skipped": [...], "drift": [{"kind", "message", "fixable", ...}], "quorum": {...},
     "replicas": [{"id", "node", "state", "version"}], "lb_pools": {lb_host: [node, ...] or None}}
"""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.msr.replicas.plugins.module_utils._plan import plan

# Drift kinds, in the order the report lists them.
KINDS = ("quorum_lost", "status_unavailable", "partial_join", "ghost", "unreachable", "unhealthy",
         "missing_replica", "duplicate_replica", "outside_desired", "lb_missing", "lb_extra", "lb_unhealthy",
         "version", "local_storage")
UNFIXABLE = ("quorum_lost", "status_unavailable", "version", "local_storage")
BROKEN_KINDS = {"partial": "partial_join", "ghost": "ghost", "unreachable": "unreachable", "unhealthy": "unhealthy"}


def _replica_id(r):
    return r.get("id") or r.get("replica_id")


def _as_set(values, name):
    if values is None or isinstance(values, (str, bytes, dict)):
        raise ValueError("%s must be a list of node names" % name)
    return set(values)


def observed_pool(observation, cluster=None):
    """Node names in one LB host's pool, from lb_pool's check-mode result (state present, no member).

    ``observation``: {"provider", "pool", "runtime"}; None or a provider other than haproxy/nginx
    (custom, none) means "not observable" and gives None. NGINX names servers by address, mapped to
    the MKE node of that address. HAProxy: a healthy replica counts as in the pool only when it serves
    - its file line exists and the runtime has it READY in every backend (DRAIN, MAINT or deleted over
    the admin socket takes no new traffic); any other server counts when the file or the runtime
    holds it (it would serve after the next reload, or serves now), so it is reported for removal.
    """
    if not isinstance(observation, dict) or observation.get("provider") not in ("haproxy", "nginx"):
        return None
    cluster = cluster or {}
    by_address = {}
    for n in cluster.get("nodes") or ():
        if n.get("address") and n.get("name"):
            by_address[n["address"]] = n["name"]
    for r in cluster.get("replicas") or ():
        if r.get("address") and r.get("node"):
            by_address.setdefault(r["address"], r["node"])
    in_file = set()
    for p in observation.get("pool") or ():
        name = p.get("name")
        if observation["provider"] == "nginx":
            name = by_address.get(p.get("address"), name)
        if name:
            in_file.add(name)
    if observation["provider"] != "haproxy" or observation.get("runtime") is None:
        return sorted(in_file)
    admin = {}
    for s in observation["runtime"]:
        admin.setdefault(s.get("name"), []).append(s.get("admin"))
    serving = set(n for n in in_file if n in admin and all(a == "READY" for a in admin[n]))
    healthy = set(r.get("node") for r in cluster.get("replicas") or () if r.get("state") == "healthy" and r.get("node"))
    others = (in_file | set(n for n in admin if n)) - healthy
    return sorted(serving | others)


def _drift(kind, message, fixable=True, **fields):
    entry = {"kind": kind, "message": message, "fixable": bool(fixable)}
    entry.update(fields)
    return entry


def _merge_lb(replica_steps, host_steps, lb_host):
    """Insert one host's lb steps (from a plan that had that host's pool) among the replica steps.

    The planner's replica steps do not depend on the pool, so step i of each plan is the same; an lb
    step goes right before the replica step it preceded there."""
    slots = [[] for dummy in range(len(replica_steps) + 1)]
    i = 0
    for step in host_steps:
        if step["action"] in ("lb_add", "lb_remove"):
            slots[i].append(dict(step, lb_host=lb_host))
        else:
            i += 1
    return slots


def _actions(desired, cluster, policy, pools):
    base = plan(sorted(desired), cluster, policy=policy)
    steps = base["refusals"] and base["blocked_actions"] or base["actions"]
    slots = [[] for dummy in range(len(steps) + 1)]
    for host in sorted(pools):
        if pools[host] is None:
            continue
        host_plan = plan(sorted(desired), cluster, policy=policy, lb_pool=pools[host])
        host_steps = host_plan["refusals"] and host_plan["blocked_actions"] or host_plan["actions"]
        for i, extra in enumerate(_merge_lb(steps, host_steps, host)):
            slots[i].extend(extra)
    merged = []
    for i, step in enumerate(steps):
        merged.extend(slots[i])
        merged.append(step)
    merged.extend(slots[len(steps)])
    return base, merged


def reconcile(desired, cluster, lb_pools=None, msr_version=None, policy=None):
    """The drift report; see the module docstring.

    desired: MKE node names (group msr). cluster: a cluster_info result. lb_pools: {lb_host:
    [node names] or None (not observable)}; or lb_pool observations (dicts, see observed_pool).
    msr_version: the inventory's version. policy: allow_scale_down, allow_even (and the other keys of
    _topology.DEFAULT_POLICY).
    """
    desired = _as_set(desired, "desired")
    if not isinstance(cluster, dict):
        raise ValueError("cluster must be a cluster_info result (a dict)")
    pools = {}
    for host, value in sorted((lb_pools or {}).items()):
        if isinstance(value, dict):
            pools[host] = observed_pool(value, cluster)
        elif value is None:
            pools[host] = None
        else:
            pools[host] = sorted(_as_set(value, "lb_pools[%s]" % host))
    policy = dict(policy or {})
    base, steps = _actions(desired, cluster, policy, pools)

    replicas = cluster.get("replicas") or []
    quorum = base["quorum"]
    drift = []
    if not cluster.get("status_available", True):
        drift.append(_drift("status_unavailable", "No replica answered cluster_status: membership and health "
                            "are unknown.", False))
    elif quorum.get("has_quorum") is False:
        drift.append(_drift("quorum_lost", "Quorum is lost: %s of %s replicas are healthy, %s are needed."
                            % (quorum.get("healthy"), quorum.get("size"), quorum.get("majority")), False))
    healthy_on = {}
    for r in sorted(replicas, key=lambda r: (r.get("node") or "", _replica_id(r) or "")):
        rid, node, state = _replica_id(r), r.get("node"), r.get("state")
        if state in BROKEN_KINDS:
            why = {"partial": "containers but not a cluster member (a partial join): destroy it",
                   "ghost": "a cluster member without containers (a ghost): remove it",
                   "unreachable": "its MKE node is down or cannot be reached",
                   "unhealthy": "it is unhealthy"}[state]
            detail = r.get("detail")
            drift.append(_drift(BROKEN_KINDS[state], "Replica %s on %s: %s%s." % (
                rid, node or "no node", why, " (%s)" % detail if detail else ""), replica_id=rid, node=node))
        elif state == "healthy" and node:
            healthy_on.setdefault(node, []).append(rid)
    for node in sorted(desired - set(healthy_on)):
        drift.append(_drift("missing_replica", "Node %s is in the msr group but runs no healthy replica." % node,
                            node=node))
    scale_down = bool(policy.get("allow_scale_down"))
    for node, ids in sorted(healthy_on.items()):
        if node not in desired:
            for rid in ids:
                drift.append(_drift("outside_desired", "Healthy replica %s runs on %s, which is not in the msr group%s."
                                    % (rid, node, "" if scale_down else " (removed only with msr_allow_scale_down)"),
                                    scale_down, replica_id=rid, node=node))
        elif len(ids) > 1:
            drift.append(_drift("duplicate_replica", "Node %s runs %d healthy replicas (%s)%s."
                                % (node, len(ids), ", ".join(ids),
                                   "" if scale_down else "; the extra goes only with msr_allow_scale_down"),
                                scale_down, node=node, replica_ids=ids))
    replica_nodes = set(r.get("node") for r in replicas if r.get("node"))
    for host, pool in sorted(pools.items()):
        if pool is None:
            continue
        for node in sorted(set(healthy_on) - set(pool)):
            drift.append(_drift("lb_missing", "Healthy replica on %s is missing from the pool of %s." % (node, host),
                                node=node, lb_host=host))
        for node in sorted(set(pool) - set(healthy_on)):
            if node in replica_nodes:
                drift.append(_drift("lb_unhealthy", "The pool of %s holds %s, whose replica is not healthy."
                                    % (host, node), node=node, lb_host=host))
            else:
                drift.append(_drift("lb_extra", "The pool of %s holds %s, which runs no replica." % (host, node),
                                    node=node, lb_host=host))
    if msr_version:
        for r in replicas:
            if r.get("version") and r.get("state") != "ghost" and str(r["version"]) != str(msr_version):
                text = ("Replica %s on %s runs MSR %s, the inventory says %s: reconcile does not change versions, "
                        "run an upgrade." % (_replica_id(r), r.get("node"), r["version"], msr_version))
                drift.append(_drift("version", text, False, replica_id=_replica_id(r), node=r.get("node"),
                                    version=r["version"]))
    storage = cluster.get("storage") or {}
    members = quorum.get("size") or len([r for r in replicas if r.get("state") != "partial"])
    if storage.get("driver") == "filesystem" and storage.get("nfs") is not True and members > 1:
        drift.append(_drift("local_storage", "Image storage is the local filesystem of each replica while %d replicas "
                            "run: an image pushed to one is missing on the others. Configure shared storage (NFS, "
                            "S3, ...); reconcile does not change storage." % members, False, replicas=members))
    order = {k: i for i, k in enumerate(KINDS)}
    drift.sort(key=lambda d: order[d["kind"]])

    refusals = list(base["refusals"])
    return {
        "in_sync": not drift and not refusals,
        "actions": [] if refusals else steps,
        "blocked_actions": steps if refusals else [],
        "refusals": refusals,
        "warnings": list(base["warnings"]),
        "skipped": list(base["skipped"]),
        "drift": drift,
        "quorum": quorum,
        "replicas": [{"id": _replica_id(r), "node": r.get("node"), "state": r.get("state"),
                      "version": r.get("version")}
                     for r in sorted(replicas, key=lambda r: (r.get("node") or "", _replica_id(r) or ""))],
        "lb_pools": pools,
    }


def status(before, after=None, failed=False):
    """in_sync (nothing to do), converged (drift fixed), drift (some left), error (refused or failed).

    before: the first report (None when observing failed); after: the report after remediation."""
    last = after if after is not None else before
    if failed or not last or last.get("refusals"):
        return "error"
    if not last.get("in_sync"):
        return "drift"
    return "converged" if after is not None and not before.get("in_sync") else "in_sync"


BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")


def input_problems(given):
    """What is wrong with a reconcile run's variables, one message each naming its variable; empty when nothing is.

    ``given``: msr_remediate, msr_allow_scale_down, msr_allow_even, msr_reconcile_report (None when unset),
    msr_version, desired (the desired node names), mke_login (whether the MKE URL, user and password are all
    set), msr_mke_ca, msr_mke_insecure_tls, msr_ca and msr_insecure_tls."""
    out = ["%s must be true or false" % name for name in ("msr_remediate", "msr_allow_scale_down", "msr_allow_even")
           if str(given.get(name, False)).lower() not in BOOL_WORDS]
    report = given.get("msr_reconcile_report")
    if report is not None and not (isinstance(report, str) and report.startswith("/")):
        out.append("msr_reconcile_report must be an absolute path on the controller")
    if given.get("msr_version") in (None, ""):
        out.append("msr_version must be set")
    if not given.get("desired"):
        out.append("the msr group (the desired replicas) is empty; reconcile never removes every replica")
    if not given.get("mke_login"):
        out.append("msr_mke_url, msr_mke_username and msr_mke_password must be set")
    if not given.get("msr_mke_ca") and not boolean(given.get("msr_mke_insecure_tls", False), strict=False):
        out.append("set msr_mke_ca (MKE CA PEM) or msr_mke_insecure_tls=true")
    if not given.get("msr_ca") and not boolean(given.get("msr_insecure_tls", False), strict=False):
        out.append("set msr_ca (MSR CA PEM) or msr_insecure_tls=true")
    return out


# The keys every written report has, with their values when the run stopped before they were known.
REPORT_DEFAULTS = (("in_sync", False), ("actions", []), ("blocked_actions", []), ("refusals", []),
                   ("warnings", []), ("skipped", []), ("drift", []), ("quorum", {}), ("replicas", []),
                   ("lb_pools", {}), ("sizing", None))
OUTCOME_KEYS = ("status", "in_sync", "remediated", "drift", "drift_found", "error")


def run_report(before, after=None, failed=False, remediated=False, error="", sizing=None, started_at=None,
               duration_s=None):
    """The run's report: the last drift report (after remediation, else the first) with the run's outcome, and
    every key of REPORT_DEFAULTS (its default when the run stopped before the key was known)."""
    before, after = before or {}, after or {}
    report = {key: (list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value)
              for key, value in REPORT_DEFAULTS}
    report.update(after or before)
    report.update(status=status(before or None, after or None, failed), remediated=bool(remediated),
                  drift_found=before.get("drift", []), error=error or None, sizing=sizing, started_at=started_at,
                  duration_s=duration_s)
    return report


def outcome(report):
    """The part of a run's report that a scheduler or an AWX workflow acts on."""
    return {key: report.get(key) for key in OUTCOME_KEYS}


def _cell(value, width):
    text = "-" if value is None or value == "" else str(value)
    return text if len(text) <= width else text[:width - 1] + "~"


def _rows(headers, rows, widths):
    # The last column (a message) is never cut: the report must say everything it found.
    def line(cells):
        fixed = [_cell(c, w).ljust(w) for c, w in zip(cells[:-1], widths)]
        return "  ".join(fixed + [_cell(cells[-1], 10 ** 6)]).rstrip()
    return [line(headers)] + [line(row) for row in rows]


def _where(d):
    if d.get("lb_host"):
        return "%s:%s" % (d["lb_host"], d.get("node"))
    return d.get("node") or d.get("replica_id")


def table(report):
    """The report as fixed-width text lines (for the play's output and the wrapper's summary)."""
    drift = report.get("drift") or []
    q = report.get("quorum") or {}
    head = "IN SYNC" if report.get("in_sync") else ("REFUSED" if report.get("refusals") else
                                                    "DRIFT: %d finding(s)" % len(drift))
    if report.get("status"):
        head += " (status %s)" % report["status"]
    lines = ["MSR reconcile: " + head,
             "quorum: %s of %s healthy, majority %s, has_quorum %s" % (
                 q.get("healthy"), q.get("size"), q.get("majority"), q.get("has_quorum"))]
    lines.append("")
    lines += _rows(("REPLICA", "NODE", "STATE", "VERSION"),
                   [(r.get("id"), r.get("node"), r.get("state"), r.get("version")) for r in report.get("replicas") or []],
                   (12, 24, 11))
    for host, pool in sorted((report.get("lb_pools") or {}).items()):
        lines.append("pool %s: %s" % (host, "not observed" if pool is None else (" ".join(pool) or "(empty)")))
    if drift:
        lines.append("")
        lines += _rows(("DRIFT", "WHERE", "FIXABLE", "MESSAGE"),
                       [(d["kind"], _where(d),
                         "yes" if d.get("fixable") else "no", d["message"]) for d in drift],
                       (17, 24, 7))
    for title, steps in (("ACTIONS", report.get("actions")), ("BLOCKED", report.get("blocked_actions"))):
        if steps:
            lines.append("")
            lines += _rows(("#", title, "NODE", "REPLICA", "LB HOST", "REASON"),
                           [(i + 1, s["action"], s.get("node"), s.get("replica_id"), s.get("lb_host"),
                             s.get("reason")) for i, s in enumerate(steps)],
                           (3, 16, 16, 12, 10))
    for title, texts in (("REFUSED", report.get("refusals")), ("WARNING", report.get("warnings"))):
        for text in texts or ():
            lines.append("%s: %s" % (title, text))
    return lines
