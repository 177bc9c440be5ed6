# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Undoing a failed join, and saying exactly what is left. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._cluster import find_replica
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._mke import BOOTSTRAPPER_NAME
from ansible_collections.msr.replicas.plugins.module_utils._topology import Cluster, pick_existing


def cleanup_join(mgr, new_id, existing, version):
    """Remove the new ID from the cluster when it became a member, destroy its containers, report the rest."""
    cleanup = _cleanup(mgr, new_id, existing, version)
    node = mgr.p["node"]
    try:
        phase2 = bool(mgr.phase2_fn and mgr.phase2_fn(node))
    except MsrError:
        phase2 = False
    if phase2:
        # Not part of the replica, but a later join on the node may clash with it.
        cleanup["also_left"] = ["container dtr-phase2 on node %s" % node]
        cleanup["summary"] += (" Also left: the bootstrapper's dtr-phase2 container on node %s (the failed run "
                               "did not remove it); remove it with 'docker rm -f dtr-phase2' on that node." % node)
    return cleanup


def _cleanup(mgr, new_id, existing, version):
    steps = []
    try:
        view = mgr.observe()
    except MsrError as exc:
        return {"steps": steps, "left": "unknown",
                "summary": "Could not check what the failed join left (%s); check replica %s with "
                           "msr.replicas.cluster_info" % (exc, new_id)}
    r = find_replica(view, new_id)
    if r is not None and r["in_cluster_status"]:
        cluster = Cluster.from_observed(view)
        # The join's own existing replica first, while it is healthy; otherwise the usual choice.
        helper = cluster.find(existing) if existing and existing != new_id else None
        if not (helper and helper["healthy"]):
            helper = pick_existing(cluster, exclude=[new_id])[0]
        if helper:
            argv = mgr.argv("remove", {"--replica-ids": new_id, "--existing-replica-id": helper["replica_id"]},
                            version)
            steps.append(_step(mgr, version, argv))
            view = _safe_observe(mgr, view)
            r = find_replica(view, new_id)
    if r is not None and not r["ghost"] and r["node"]:
        argv = mgr.argv("destroy", {"--replica-id": new_id}, version)
        steps.append(_step(mgr, version, argv))
        view = _safe_observe(mgr, view)
        r = find_replica(view, new_id)
    if r is None:
        return {"steps": steps, "left": None,
                "summary": "Nothing is left of replica %s." % new_id if steps else "The join left nothing behind."}
    todo = []
    if r["in_cluster_status"]:
        todo.append(mgr.audit(version, mgr.argv(
            "remove", {"--replica-ids": new_id, "--existing-replica-id": existing or "<healthy replica id>"}, version)))
    if not r["ghost"]:
        todo.append(mgr.audit(version, mgr.argv("destroy", {"--replica-id": new_id}, version)))
    left = "replica %s%s%s" % (new_id, " in cluster_status" if r["in_cluster_status"] else "",
                               " with containers on node %s" % r["node"] if not r["ghost"] else "")
    return {"steps": steps, "left": left, "commands": todo,
            "summary": "Left behind: %s. Clear it with: %s" % (left, " ; then ".join(" ".join(c) for c in todo))}


def _step(mgr, version, argv):
    try:
        run = mgr.runner.run(mgr.p["image"], version, argv, mgr.env(),
                             name=BOOTSTRAPPER_NAME % (argv[0], boot.new_replica_id()))
        return {"cmd": run.cmd, "rc": run.rc, "ok": run.ok, "error": run.failure(), "phases": run.parser.phases}
    except MsrError as exc:
        return {"cmd": mgr.audit(version, argv), "rc": None, "ok": False, "error": str(exc)}


def _safe_observe(mgr, previous):
    try:
        return mgr.observe()
    except MsrError:
        return previous
