# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the emergency_repair module does. PRIVATE to this collection.

The decision (quorum lost, both confirmations, which replica survives) is _plan.plan_emergency_repair's,
the same the planner and the playbooks use; running the bootstrapper and waiting is ReplicaManager's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.msr.replicas.plugins.module_utils._cluster import find_replica
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._plan import plan_emergency_repair
from ansible_collections.msr.replicas.plugins.module_utils._replica import ReplicaManager


class RepairManager(ReplicaManager):
    def __init__(self, module, observe_fn, runner, set_deadline=None):
        # Not ReplicaManager.__init__: its result is about one node, this one about the cluster.
        self.module, self.p, self.observe, self.runner = module, module.params, observe_fn, runner
        self.phase2_fn = None
        self.progress = None    # the replica module's action plugin streams phases; this module has none
        self.set_deadline = set_deadline or (lambda deadline: None)
        self.result = {"changed": False, "action": "none", "replica_id": None, "node": None, "removed": [],
                       "survivors": [], "quorum": None}

    def apply(self):
        try:
            self.repair(self.observe())
        except MsrError as exc:
            self.fail(str(exc))
        return self.result

    def repair(self, view):
        p = self.p
        plan = plan_emergency_repair(view, {"emergency_repair": p["emergency_repair"],
                                            "emergency_repair_confirmed": p["emergency_repair_confirmed"]},
                                     desired=p["desired"], replica_id=p["replica_id"])
        q = plan["quorum"]
        self.result.update(survivors=plan["survivors"], quorum=q)
        members = sorted(r["id"] for r in view["replicas"] if r["state"] != "partial")
        self._refuse(plan["refusals"])
        if not plan["actions"]:
            # After a repair the one replica is a healthy majority: a second run has nothing to do.
            self.result["msg"] = ("the cluster has quorum (%d of %d replicas healthy, %d needed): nothing to repair"
                                  % (q["healthy"], q["size"], q["majority"]))
            self.set_diff({"replicas": members}, {"replicas": members})
            return
        for text in plan["warnings"]:
            self.module.warn(text)
        step = plan["actions"][0]
        keep, removed = step["existing_replica_id"], step["removed"]
        self.result.update(replica_id=keep, node=step["existing_node"], removed=removed)
        version = self._version(view, [r for r in view["replicas"] if r["id"] == keep])
        argv = self.argv("emergency-repair", {"--existing-replica-id": keep}, version)
        self.set_diff({"replicas": members}, {"replicas": [keep]})
        self.result["msg"] = "replica %s on %s %s the only replica; %s %s the cluster" % (
            keep, step["existing_node"], "would be" if self.module.check_mode else "is",
            ", ".join(removed) or "no other replica", "would leave" if self.module.check_mode else "left")
        if not self._announce("emergency_repair", [self.audit(version, argv)]):
            return
        try:
            run = self._run(version, argv, keep)
        except MsrError as exc:
            self.fail("emergency-repair with replica %s could not run: %s" % (keep, exc))
        if not run.ok:
            self.fail("emergency-repair with replica %s failed: %s" % (keep, run.failure()))

        def repaired(v):
            r = find_replica(v, keep)
            if r is None or not r["healthy"]:
                return "replica %s is %s" % (keep, r["state"] + (": %s" % r["detail"] if r["detail"] else "")
                                             if r else "not seen")
            left = [x["id"] for x in v["replicas"] if x["id"] != keep and x["state"] != "partial"]
            if left:
                return "replicas %s are still members" % ", ".join(left)
            return "; ".join(v["problems"]) or None
        after, why = self._wait(repaired)
        if after is None:
            self.fail("emergency-repair with replica %s finished but the cluster is not one healthy replica within "
                      "%d s: %s" % (keep, p["wait_timeout"], why))
        self._report(find_replica(after, keep))
        self.result["quorum"] = after["quorum"]
