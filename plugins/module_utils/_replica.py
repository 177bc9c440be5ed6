# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the replica module does: join, install, remove or destroy one replica. PRIVATE to this collection.

It decides nothing itself: every gate is _topology's (join_gate, remove_gate, node_problem), the same the
planner uses, so check mode refuses exactly what a real run would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._cleanup import cleanup_join
from ansible_collections.msr.replicas.plugins.module_utils._cluster import find_replica, replica_on_node
from ansible_collections.msr.replicas.plugins.module_utils._common import (
    DeadlineError,
    MsrError,
    check_connection_params,
    poll_pause,
)
from ansible_collections.msr.replicas.plugins.module_utils._engine import tls_from_params, validate_docker_params
from ansible_collections.msr.replicas.plugins.module_utils._mke import BOOTSTRAPPER_NAME, split_name
from ansible_collections.msr.replicas.plugins.module_utils._topology import (
    Cluster,
    describe,
    join_gate,
    node_problem,
    problems,
    remove_gate,
    running_bootstrapper,
    running_bootstrappers,
)

# Check mode cannot know the ID a real run generates; this stands in for it, the same on every run.
NEW_ID = "<new replica id>"


class ReplicaManager:
    POLL_INTERVAL = 5      # the longest pause between two reads of a wait
    POLL_FIRST = 0.5       # the first pause (a constant 5 s added up to 5 s to each join and removal)

    def __init__(self, module, observe_fn, runner, phase2_fn=None, set_deadline=None, progress=None):
        self.module = module
        # hears the bootstrapper's phases as they happen (_progress.ProgressWriter); None: nobody listens
        self.progress = progress
        self.p = module.params
        self.observe = observe_fn
        self.runner = runner
        # node -> whether MKE shows a dtr-phase2 container there (a killed join leaves it behind)
        self.phase2_fn = phase2_fn
        # bounds every API request of the waits by the time left
        self.set_deadline = set_deadline or (lambda deadline: None)
        self.result = {"changed": False, "action": "none", "replica_id": None, "node": self.p["node"],
                       "health": None, "healthy": False, "state": None}

    # -- helpers -------------------------------------------------------------------------------------

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def set_diff(self, before, after):
        self.result["diff"] = {"before": before, "after": after}

    @staticmethod
    def _state(node, rid, state):
        return {"node": node, "replica_id": rid, "state": state}

    def _version(self, view, replicas=None):
        known = sorted(set(r["version"] for r in (replicas or view["replicas"]) if r.get("version")))
        if self.p["version"]:
            if known and self.p["version"] not in known:
                self.fail("version %s differs from the cluster's MSR version %s; use the cluster's version "
                          "(this module does not upgrade)" % (self.p["version"], ", ".join(known)))
            return self.p["version"]
        if len(known) == 1:
            return known[0]
        self.fail("cannot tell which MSR version to use (replicas report %s); set version"
                  % (", ".join(known) or "none"))

    def env(self, install_version=None):
        env = boot.environment(self.p["mke_password"], None if self.p["mke_insecure_tls"] else self.p["mke_ca"])
        if install_version:
            # MSR's own CA, certificate and key (the key is secret): by environment, never in argv.
            env.update(boot.flag_environment("install", {"--dtr-ca": self.p["dtr_ca"], "--dtr-cert": self.p["dtr_cert"],
                                                         "--dtr-key": self.p["dtr_key"]}, install_version))
        return env

    def argv(self, command, flags, version):
        if boot.supports(command, "--nocolor", version):
            flags["--nocolor"] = True
        flags.update({"--ucp-url": self.p["mke_url"].rstrip("/"), "--ucp-username": self.p["mke_username"],
                      "--ucp-insecure-tls": bool(self.p["mke_insecure_tls"]), "--debug": self.p["debug"]})
        try:
            return boot.build_argv(command, flags, version)
        except MsrError as exc:
            self.fail(str(exc))

    def audit(self, version, argv):
        env = self.env(version if argv[0] == "install" else None)
        return boot.redacted_cmd(self.p["image"], version, argv, env, self.p["docker_host"])

    def _need_docker(self):
        if not engine.HAS_DOCKER and self.runner is None:
            self.module.fail_json(msg=missing_required_lib("docker"), exception=engine.DOCKER_IMPORT_ERROR)

    def _run(self, version, argv, rid):
        runner = self.runner or boot.Bootstrapper(self.p["docker_host"], timeout=self.p["bootstrap_timeout"],
                                                  tls=tls_from_params(self.p), progress=self.progress)
        self.runner = runner
        env = self.env(version if argv[0] == "install" else None)
        run = runner.run(self.p["image"], version, argv, env, name=BOOTSTRAPPER_NAME % (argv[0], rid))
        self.result.setdefault("runs", []).append({"command": argv[0], "cmd": run.cmd, "rc": run.rc,
                                                   "phases": run.parser.phases})
        self.result.update(phases=run.parser.phases, bootstrapper_warnings=run.parser.warnings,
                           log=run.parser.lines, cmd=run.cmd)
        for leftover in getattr(runner, "unremoved", []):
            self.module.warn("could not remove the bootstrapper container %s" % leftover)
        cleared = getattr(runner, "cleared", [])
        if cleared:
            self.result["cleared_bootstrappers"] = list(cleared)
            for name in cleared:
                self.module.warn("removed the bootstrapper container %s left by an earlier run" % name)
            del cleared[:]
        return run

    def _announce(self, action, cmds, **extra):
        """Record the change and its redacted commands. Returns False in check mode, where that is all."""
        self.result.update(changed=True, action=action, **extra)
        self.result["cmd"] = cmds[-1]
        self.result["cmds"] = cmds
        self._need_docker()
        return not self.module.check_mode

    def _wait(self, done):
        """(view, None) once ``done(view)`` returns None, or (None, the last reason) after wait_timeout."""
        deadline = time.time() + self.p["wait_timeout"]
        self.set_deadline(deadline)
        last, read, reads = "nothing was read", False, 0
        try:
            while True:
                reads += 1
                try:
                    view = self.observe()
                    last = done(view)
                    if last is None:
                        return view, None
                except DeadlineError as exc:
                    # Time is up during a read: why the wait went on (the last read's reason) says more than
                    # the read cut short by the deadline.
                    return None, last if read else str(exc)
                except MsrError as exc:
                    last = str(exc)
                read = True
                left = deadline - time.time()
                if left <= 0:
                    return None, last
                time.sleep(min(poll_pause(reads, self.POLL_FIRST, self.POLL_INTERVAL), left))
        finally:
            self.set_deadline(None)

    def _refuse(self, refusals):
        if refusals:
            self.fail(" ".join(refusals))

    # -- states --------------------------------------------------------------------------------------

    def apply(self):
        try:
            view = self.observe()
            # One bootstrapper at a time: a join or remove still running (a killed run's) changes the cluster
            # under whatever this run would decide.
            self._refuse([running_bootstrapper(b) for b in running_bootstrappers(view)])
            if self.p["state"] == "present":
                self.present(view)
            else:
                self.absent(view)
        except MsrError as exc:
            self.fail(str(exc))
        return self.result

    def _report(self, r):
        self.result.update(replica_id=r["id"], node=r["node"] or self.p["node"], health=r["health"],
                           healthy=r["healthy"], state=r["state"])

    def present(self, view):
        node, wanted_id = self.p["node"], self.p["replica_id"]
        cluster = Cluster.from_observed(view)
        here = replica_on_node(view, node)
        members = [r for r in here if r["state"] != "partial"]
        partials = [r for r in here if r["state"] == "partial"]
        if members:
            r = members[0]
            if wanted_id and r["id"] != wanted_id:
                self.fail("node %s already runs replica %s, not %s; remove it first to replace it"
                          % (node, r["id"], wanted_id))
            if len(members) > 1:
                self.module.warn("node %s runs several replicas: %s" % (node, ", ".join(x["id"] for x in members)))
            if not r["healthy"]:
                self.module.warn("replica %s on node %s is %s" % (r["id"], node, describe(cluster.find(r["id"]))))
            self._report(r)
            state = self._state(node, r["id"], "present")
            self.set_diff(state, dict(state))
            return
        if wanted_id and find_replica(view, wanted_id) is not None and wanted_id not in [r["id"] for r in partials]:
            other = find_replica(view, wanted_id)
            self.fail("replica_id %s is already used by %s: give a replica_id no replica has, or leave it unset "
                      "so the bootstrapper picks one" % (
                          wanted_id, "the replica on node %s" % other["node"] if other["node"] else "a ghost replica"))
        bad_node = node_problem(cluster, node)
        if bad_node:
            self.fail(bad_node)
        for r in partials:
            # Rule 12: the partial join's containers go first (destroy, never remove); the cluster without
            # them decides the join.
            cluster.remove(cluster.find(r["id"]))
        if not view["replicas"]:
            if not self.p["install"]:
                self.fail("the cluster has no MSR replica; set install: true to install the first replica on node %s"
                          % node)
            if not self.p["version"]:
                self.fail("version is required to install the first replica")
            command, version, existing = "install", self.p["version"], None
        else:
            command, version = "join", self._version(view)
            gate = join_gate(cluster, node, {"unsafe_join": self.p["unsafe_join"]},
                             wanted_existing=self.p["existing_replica_id"])
            self._refuse(gate["refusals"])
            for text in gate["warnings"]:
                self.module.warn(text)
            existing = gate["existing"]["replica_id"]

        new_id = wanted_id or (NEW_ID if self.module.check_mode else boot.new_replica_id())
        flags = {"--ucp-node": node, "--replica-id": new_id,
                 "--replica-http-port": self.p["replica_http_port"],
                 "--replica-https-port": self.p["replica_https_port"]}
        if command == "join":
            flags.update({"--existing-replica-id": existing, "--unsafe-join": self.p["unsafe_join"],
                          "--skip-network-test": self.p["skip_network_test"]})
        else:
            flags["--dtr-external-url"] = self.p["external_url"]
            flags["--nfs-storage-url"] = self.p["nfs_storage_url"]
        argv = self.argv(command, flags, version)
        destroys = [self.argv("destroy", {"--replica-id": r["id"]}, version) for r in partials]
        before = self._state(node, partials[0]["id"], "partial") if partials else self._state(node, None, "absent")
        self.set_diff(before, self._state(node, wanted_id, "present"))
        cmds = [self.audit(version, a) for a in destroys + [argv]]
        extra = {"replica_id": wanted_id, "existing_replica_id": existing}
        if partials:
            extra["destroyed"] = [r["id"] for r in partials]
        if not self._announce(command, cmds, **extra):
            return
        self.result["replica_id"] = new_id
        for r, destroy in zip(partials, destroys):
            self._destroy(r["id"], destroy, version)
        self._join(command, node, new_id, existing, argv, version)

    def _join(self, command, node, new_id, existing, argv, version):
        try:
            run = self._run(version, argv, new_id)
        except MsrError as exc:
            # The bootstrapper may have got part of the way before the engine connection broke.
            cleanup = cleanup_join(self, new_id, existing, version) if getattr(exc, "started", True) else None
            self.fail("%s of replica %s on node %s could not run: %s.%s" % (
                command, new_id, node, exc, (" " + cleanup["summary"]) if cleanup else ""), cleanup=cleanup)
        if run.parser.replica_id:
            new_id = run.parser.replica_id
            self.result["replica_id"] = new_id
        if not run.ok:
            cleanup = cleanup_join(self, new_id, existing, version)
            self.fail("%s of replica %s on node %s failed: %s. %s"
                      % (command, new_id, node, run.failure(), cleanup["summary"]), cleanup=cleanup)

        def joined(v):
            r = find_replica(v, new_id)
            if r is None or not r["healthy"]:
                return "replica %s is %s" % (new_id, r["state"] + (": %s" % r["detail"] if r["detail"] else "")
                                             if r else "not seen yet")
            if self.p["unsafe_join"]:
                return None
            return "; ".join(v["problems"]) or None
        after, why = self._wait(joined)
        if after is None:
            self.fail("replica %s joined node %s but did not become healthy (/_ping 200 and an all-OK cluster) "
                      "within %d s: %s. It stays in the cluster: once it is healthy, run the join again (the playbooks "
                      "then put it into the load-balancer pools), or remove it (state: absent)"
                      % (new_id, node, self.p["wait_timeout"], why))
        self._report(find_replica(after, new_id))
        self.result["diff"]["after"]["replica_id"] = new_id
        self._phase2_left(node)

    def _phase2_left(self, node):
        """A join that succeeded can still leave dtr-phase2 behind (its MKE token expired before it removed it);
        the next join on that node clashes with it."""
        try:
            left = bool(self.phase2_fn and self.phase2_fn(node))
        except MsrError:
            return
        if left:
            self.result["also_left"] = ["container dtr-phase2 on node %s" % node]
            self.module.warn("the bootstrapper's dtr-phase2 container is still on node %s after the join; remove it "
                             "with 'docker rm -f dtr-phase2' on that node before the next join there" % node)

    def _destroy(self, rid, argv, version):
        try:
            run = self._run(version, argv, rid)
        except MsrError as exc:
            self.fail("destroy of replica %s could not run: %s" % (rid, exc))
        if not run.ok:
            self.fail("destroy of replica %s failed: %s" % (rid, run.failure()))

        def gone(v):
            r = find_replica(v, rid)
            return None if r is None else "replica %s still has containers on node %s" % (rid, r["node"])
        after, why = self._wait(gone)
        if after is None:
            self.fail("destroy of replica %s finished but %s after %d s" % (rid, why, self.p["wait_timeout"]))

    def _targets(self, view):
        node, wanted = self.p["node"], self.p["replica_ids"] or ([self.p["replica_id"]] if self.p["replica_id"] else [])
        if wanted:
            targets = []
            for rid in wanted:
                r = find_replica(view, rid)
                if r is not None and node and r["node"] and r["node"] != node:
                    self.fail("replica %s runs on node %s, not on node %s: give that replica's node, or the ID of the "
                              "replica on node %s (msr.replicas.cluster_info lists them)" % (rid, r["node"], node, node))
                if r is not None:
                    targets.append(r)
            return targets
        here = replica_on_node(view, node)
        if len(here) > 1:
            self.fail("node %s runs several replicas (%s); choose one with replica_id"
                      % (node, ", ".join(r["id"] for r in here)))
        return here

    def absent(self, view):
        node = self.p["node"]
        targets = self._targets(view)
        if not targets:
            state = self._state(node, None, "absent")
            self.set_diff(state, dict(state))
            return
        first = targets[0]
        self._report(first)
        ids = [t["id"] for t in targets]
        where = first["node"] or node
        self.set_diff(self._state(where, ",".join(ids), first["state"] if first["state"] == "partial" else "present"),
                      self._state(where, None, "absent"))
        cluster = Cluster.from_observed(view)
        gate = remove_gate(cluster, [cluster.find(rid) for rid in ids], {"force": self.p["force"]},
                           wanted_existing=self.p["existing_replica_id"])
        self._refuse(gate["refusals"])
        for text in gate["warnings"]:
            self.module.warn(text)
        others = [r for r in view["replicas"] if r["id"] not in ids and r.get("version")]
        version = self._version(view, others or targets)
        if gate["action"] == "destroy":
            argv = self.argv("destroy", {"--replica-id": first["id"]}, version)
            if self._announce("destroy", [self.audit(version, argv)], replica_ids=ids):
                self._destroy(first["id"], argv, version)
                self.result.update(health=None, healthy=False, state=None)
            return
        if self.p["force"] and not boot.supports("remove", "--force", version):
            self.fail("force needs MSR 2.9 or later (version %s)" % version)
        existing = gate["existing"]["replica_id"]
        argv = self.argv("remove", {"--replica-ids": ",".join(ids), "--existing-replica-id": existing,
                                    "--force": self.p["force"]}, version)
        if not self._announce("remove", [self.audit(version, argv)], existing_replica_id=existing, replica_ids=ids):
            return
        self._remove(ids, argv, version, all_ok=not gate["warnings"])

    def _remove(self, ids, argv, version, all_ok):
        try:
            run = self._run(version, argv, ids[0])
        except MsrError as exc:
            self.fail("remove of replica %s could not run: %s" % (",".join(ids), exc))
        if not run.ok:
            self.fail("remove of replica %s failed: %s" % (",".join(ids), run.failure()))

        def settled(v):
            still = [rid for rid in ids if (find_replica(v, rid) or {}).get("in_cluster_status")]
            if still:
                return "replica %s is still in cluster_status" % ", ".join(still)
            if not v["status_available"]:
                return "no replica answered cluster_status"
            # Rule 4: the next change waits for an all-OK cluster (unless force removed next to broken ones).
            rest = problems(Cluster.from_observed(dict(v, replicas=[r for r in v["replicas"] if r["id"] not in ids])))
            return "; ".join(rest) if rest and all_ok else None
        after, why = self._wait(settled)
        if after is None:
            self.fail("remove of replica %s finished but the cluster did not settle within %d s: %s"
                      % (",".join(ids), self.p["wait_timeout"], why))
        for rid in ids:
            left = find_replica(after, rid)
            if left is not None and left["node"]:
                self.module.warn("replica %s left the cluster but its containers are still on node %s; clear them "
                                 "with: %s" % (rid, left["node"], " ".join(self.audit(
                                     version, self.argv("destroy", {"--replica-id": rid}, version)))))
        self.result.update(health=None, healthy=False, state=None)


def validate(module):
    check_connection_params(module)
    p = module.params
    boot.check_replica_ids(module, ("replica_id", "existing_replica_id"))
    if p["replica_ids"] is not None:
        p["replica_ids"] = [x.strip().lower() for x in p["replica_ids"]]
        bad = [x for x in p["replica_ids"] if not boot.REPLICA_ID_RE.match(x)]
        if bad or not p["replica_ids"]:
            module.fail_json(msg="replica_ids must be a non-empty list of 12 hexadecimal characters, got %s"
                             % (", ".join(bad) or "an empty list"))
        if p["state"] != "absent":
            module.fail_json(msg="replica_ids is only for state: absent")
    boot.check_version(module)
    validate_docker_params(module)
    tls = [k for k in ("dtr_ca", "dtr_cert", "dtr_key") if p[k]]
    if tls and len(tls) != 3:
        module.fail_json(msg="dtr_ca, dtr_cert and dtr_key must be given together (missing: %s)"
                         % ", ".join(k for k in ("dtr_ca", "dtr_cert", "dtr_key") if not p[k]))
    if p["unsafe_join"] and p["state"] == "present":
        module.warn("unsafe_join is true: a join into an unhealthy cluster can cause split brain and data loss")


def phase2_on_node(mke, node):
    return any(split_name(c.get("Names"), "dtr-phase2")[0] == node for c in mke.containers("dtr-phase2"))
