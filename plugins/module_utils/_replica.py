# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the replica module does: join, install or remove one replica. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._cluster import (
    cluster_healthy,
    find_replica,
    replica_on_node,
)
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError, check_connection_params
from ansible_collections.msr.replicas.plugins.module_utils._mke import split_name
from ansible_collections.msr.replicas.plugins.module_utils._topology import EMERGENCY_REPAIR_HINT, keeps_quorum


class ReplicaManager:
    POLL_INTERVAL = 5

    def __init__(self, module, observe_fn, runner, phase2_fn=None):
        self.module = module
        self.p = module.params
        self.observe = observe_fn
        self.runner = runner
        # node -> whether MKE shows a dtr-phase2 container there (a killed join leaves it behind)
        self.phase2_fn = phase2_fn
        self.result = {"changed": False, "action": "none", "replica_id": None, "node": self.p["node"],
                       "health": None, "healthy": False}

    # -- helpers -------------------------------------------------------------------------------------

    def fail(self, msg, **extra):
        self.result.update(extra)
        self.module.fail_json(msg=msg, **self.result)

    def set_diff(self, before, after):
        self.result["diff"] = {"before": before, "after": after}

    @staticmethod
    def _state(node, rid, present):
        return {"node": node, "replica_id": rid, "state": "present" if present else "absent"}

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

    def _ucp_flags(self):
        return {"--ucp-url": self.p["mke_url"].rstrip("/"), "--ucp-username": self.p["mke_username"],
                "--ucp-insecure-tls": bool(self.p["mke_insecure_tls"]), "--debug": self.p["debug"]}

    def _env(self):
        return boot.environment(self.p["mke_password"], None if self.p["mke_insecure_tls"] else self.p["mke_ca"])

    def _argv(self, command, flags, version):
        for flag in ("--nocolor",):
            if boot.supports(command, flag, version):
                flags[flag] = True
        flags.update(self._ucp_flags())
        try:
            return boot.build_argv(command, flags, version)
        except MsrError as exc:
            self.fail(str(exc))

    def _need_docker(self):
        if not boot.HAS_DOCKER and self.runner is None:
            self.module.fail_json(msg=missing_required_lib("docker"), exception=boot.DOCKER_IMPORT_ERROR)

    def _run(self, image, version, argv):
        runner = self.runner or boot.Bootstrapper(self.p["docker_host"], timeout=self.p["bootstrap_timeout"])
        self.runner = runner
        name = "msr-replicas-%s-%s" % (argv[0], self.result.get("replica_id") or boot.new_replica_id())
        result = runner.run(image, version, argv, self._env(), name=name)
        self.result.update(phases=result.parser.phases, bootstrapper_warnings=result.parser.warnings,
                           log=result.parser.lines, cmd=result.cmd)
        for leftover in getattr(runner, "unremoved", []):
            self.module.warn("could not remove the bootstrapper container %s" % leftover)
        return result

    @staticmethod
    def _healthy_existing(view, target_id):
        candidates = [r for r in view["replicas"] if r["healthy"] and r["id"] != target_id]
        return sorted(candidates, key=lambda r: r["id"])

    def _pick_existing(self, view, target_id, allow_unhealthy=False):
        wanted = self.p["existing_replica_id"]
        if wanted:
            if wanted == target_id:
                self.fail("existing_replica_id %s is the replica being removed; it must be another, healthy replica"
                          % wanted)
            r = find_replica(view, wanted)
            if r is None:
                self.fail("existing_replica_id %s is not a replica of this cluster (replicas: %s)"
                          % (wanted, ", ".join(x["id"] for x in view["replicas"]) or "none"))
            if not r["healthy"]:
                if not allow_unhealthy:
                    self.fail("existing_replica_id %s is not healthy (health: %s, /_ping: %s)"
                              % (wanted, r["health"], r["ping"] or r["ping_error"]))
                self.module.warn("existing_replica_id %s is not healthy; continuing because unsafe_join is true" % wanted)
            return wanted
        healthy = self._healthy_existing(view, target_id)
        if healthy:
            return healthy[0]["id"]
        if allow_unhealthy:
            answering = [r for r in view["replicas"] if r["id"] != target_id and r["ping"] == 200]
            if answering:
                return sorted(answering, key=lambda r: r["id"])[0]["id"]
        return None

    def _wait(self, done, what):
        deadline = time.time() + self.p["wait_timeout"]
        view = None
        while True:
            try:
                view = self.observe()
                if done(view):
                    return view
            except MsrError as exc:
                self.result["last_error"] = str(exc)
            if time.time() >= deadline:
                return None if view is None or not done(view) else view
            time.sleep(self.POLL_INTERVAL)

    # -- states --------------------------------------------------------------------------------------

    def apply(self):
        try:
            view = self.observe()
            if self.p["state"] == "present":
                self.present(view)
            else:
                self.absent(view)
        except MsrError as exc:
            self.fail(str(exc))
        return self.result

    def present(self, view):
        node = self.p["node"]
        wanted_id = self.p["replica_id"]
        known_nodes = dict((n["name"], n) for n in view["nodes"])
        on_node = replica_on_node(view, node)
        if on_node:
            r = on_node[0]
            if wanted_id and r["id"] != wanted_id:
                self.fail("node %s already runs replica %s, not %s; remove it first to replace it"
                          % (node, r["id"], wanted_id))
            if len(on_node) > 1:
                self.module.warn("node %s runs several replicas: %s" % (node, ", ".join(x["id"] for x in on_node)))
            if not r["healthy"]:
                self.module.warn("replica %s on node %s is not healthy (health: %s, /_ping: %s)"
                                 % (r["id"], node, r["health"], r["ping"] or r["ping_error"]))
            self.result.update(replica_id=r["id"], health=r["health"], healthy=r["healthy"])
            state = self._state(node, r["id"], True)
            self.set_diff(state, dict(state))
            return
        if node not in known_nodes:
            self.fail("MKE has no node named '%s' (nodes: %s)" % (node, ", ".join(sorted(known_nodes)) or "none"))
        if known_nodes[node]["state"] != "ready":
            self.fail("MKE node %s is %s; a replica can only be added to a ready node" % (node, known_nodes[node]["state"]))
        if wanted_id:
            other = find_replica(view, wanted_id)
            if other is not None:
                self.fail("replica_id %s is already used by %s" % (
                    wanted_id, "the replica on node %s" % other["node"] if other["node"] else "a ghost replica"))

        if not view["replicas"]:
            if not self.p["install"]:
                self.fail("the cluster has no MSR replica; set install: true to install the first replica on node %s"
                          % node)
            if not self.p["version"]:
                self.fail("version is required to install the first replica")
            command, version, existing = "install", self.p["version"], None
        else:
            command, version = "join", self._version(view)
            unhealthy = [r for r in view["replicas"] if not r["healthy"]]
            problems = ["%s (%s)" % (r["id"], r["health"] if r["health"] != "OK" else "/_ping %s" % (r["ping"] or r["ping_error"]))
                        for r in unhealthy]
            if not view["status_available"]:
                problems.append("no replica answered cluster_status")
            if problems:
                if not self.p["unsafe_join"]:
                    self.fail("refusing to join a replica while the cluster is unhealthy: %s. Remove unhealthy or "
                              "ghost replicas first, or set unsafe_join: true (risks split brain and data loss)"
                              % "; ".join(problems))
                self.module.warn("UNSAFE JOIN: joining node %s while replicas are unhealthy (%s). This can cause "
                                 "split brain and data loss." % (node, "; ".join(problems)))
            existing = self._pick_existing(view, None, allow_unhealthy=self.p["unsafe_join"])
            if existing is None:
                self.fail("no healthy replica to join from (replicas: %s)"
                          % ", ".join(r["id"] for r in view["replicas"]))

        new_id = wanted_id or boot.new_replica_id()
        flags = {"--ucp-node": node, "--replica-id": new_id,
                 "--replica-http-port": self.p["replica_http_port"],
                 "--replica-https-port": self.p["replica_https_port"]}
        if command == "join":
            flags.update({"--existing-replica-id": existing, "--unsafe-join": self.p["unsafe_join"],
                          "--skip-network-test": self.p["skip_network_test"]})
        else:
            flags["--dtr-external-url"] = self.p["external_url"]
        argv = self._argv(command, flags, version)
        # Check mode cannot know a generated ID; a real run fills it in once the bootstrapper reports it.
        self.set_diff(self._state(node, None, False), self._state(node, wanted_id, True))
        if not self._announce(command, argv, version, replica_id=new_id, existing_replica_id=existing):
            return
        try:
            run = self._run(self.p["image"], version, argv)
        except MsrError as exc:
            # The bootstrapper may have got part of the way before the engine connection broke.
            cleanup = self.cleanup_join(new_id, existing, version) if self.runner is not None else None
            self.fail("%s of replica %s on node %s could not run: %s.%s" % (
                command, new_id, node, exc, (" " + cleanup["summary"]) if cleanup else ""), cleanup=cleanup)
        if run.parser.replica_id:
            new_id = run.parser.replica_id
            self.result["replica_id"] = new_id
        if not run.ok:
            cleanup = self.cleanup_join(new_id, existing, version)
            self.fail("%s of replica %s on node %s failed: %s. %s"
                      % (command, new_id, node, run.failure(), cleanup["summary"]), cleanup=cleanup)

        def joined(v):
            r = find_replica(v, new_id)
            if r is None or not r["healthy"] or r["ghost"]:
                return False
            return cluster_healthy(v) or self.p["unsafe_join"]
        after = self._wait(joined, "join")
        if after is None:
            self.fail("replica %s joined node %s but did not become healthy (/_ping 200 and all-OK cluster_status) "
                      "within %d s" % (new_id, node, self.p["wait_timeout"]))
        r = find_replica(after, new_id)
        self.result.update(health=r["health"], healthy=r["healthy"])
        self.result["diff"]["after"]["replica_id"] = new_id

    def _announce(self, action, argv, version, **extra):
        """Record the change and its redacted command. Returns False in check mode, where that is all."""
        self.result.update(changed=True, action=action, **extra)
        self.result["cmd"] = boot.redacted_cmd(self.p["image"], version, argv, self._env(), self.p["docker_host"])
        self._need_docker()
        return not self.module.check_mode

    def cleanup_join(self, new_id, existing, version):
        """Undo a failed join: remove the new ID from the cluster, destroy its containers, report the rest."""
        cleanup = self._cleanup_join(new_id, existing, version)
        node = self.p["node"]
        try:
            phase2 = bool(self.phase2_fn and self.phase2_fn(node))
        except MsrError:
            phase2 = False
        if phase2:
            # Not part of the replica, but a later join on the node may clash with it.
            cleanup["also_left"] = ["container dtr-phase2 on node %s" % node]
            cleanup["summary"] += (" Also left: the bootstrapper's dtr-phase2 container on node %s (the failed run "
                                   "did not remove it); remove it with 'docker rm -f dtr-phase2' on that node."
                                   % node)
        return cleanup

    def _cleanup_join(self, new_id, existing, version):
        steps = []
        try:
            view = self.observe()
        except MsrError as exc:
            return {"steps": steps, "left": "unknown",
                    "summary": "Could not check what the failed join left (%s); check replica %s with "
                               "msr.replicas.cluster_info" % (exc, new_id)}
        r = find_replica(view, new_id)
        if r is not None and r["in_cluster_status"]:
            helper = existing if existing and existing != new_id else None
            healthy = self._healthy_existing(view, new_id)
            if healthy and helper not in [h["id"] for h in healthy]:
                helper = healthy[0]["id"]
            if helper:
                argv = self._argv("remove", {"--replica-ids": new_id, "--existing-replica-id": helper}, version)
                steps.append(self._cleanup_step(version, argv))
                view = self._safe_observe(view)
                r = find_replica(view, new_id)
        if r is not None and not r["ghost"]:
            argv = self._argv("destroy", {"--replica-id": new_id}, version)
            steps.append(self._cleanup_step(version, argv))
            view = self._safe_observe(view)
            r = find_replica(view, new_id)
        if r is None:
            return {"steps": steps, "left": None,
                    "summary": "Nothing is left of replica %s." % new_id if steps else "The join left nothing behind."}
        todo = []
        if r["in_cluster_status"]:
            todo.append(boot.redacted_cmd(self.p["image"], version, self._argv(
                "remove", {"--replica-ids": new_id, "--existing-replica-id": existing or "<healthy replica id>"},
                version), self._env(), self.p["docker_host"]))
        if not r["ghost"]:
            todo.append(boot.redacted_cmd(self.p["image"], version, self._argv(
                "destroy", {"--replica-id": new_id}, version), self._env(), self.p["docker_host"]))
        left = "replica %s%s%s" % (new_id, " in cluster_status" if r["in_cluster_status"] else "",
                                   " with containers on node %s" % r["node"] if not r["ghost"] else "")
        return {"steps": steps, "left": left, "commands": todo,
                "summary": "Left behind: %s. Clear it with: %s" % (left, " ; then ".join(" ".join(c) for c in todo))}

    def _cleanup_step(self, version, argv):
        try:
            run = self.runner.run(self.p["image"], version, argv, self._env(),
                                  name="msr-replicas-%s-%s" % (argv[0], boot.new_replica_id()))
            return {"cmd": run.cmd, "rc": run.rc, "ok": run.ok, "error": run.failure(), "phases": run.parser.phases}
        except MsrError as exc:
            return {"cmd": boot.redacted_cmd(self.p["image"], version, argv, self._env(), self.p["docker_host"]),
                    "rc": None, "ok": False, "error": str(exc)}

    def _safe_observe(self, previous):
        try:
            return self.observe()
        except MsrError:
            return previous

    def absent(self, view):
        node, wanted_id = self.p["node"], self.p["replica_id"]
        if wanted_id:
            target = find_replica(view, wanted_id)
            if target is not None and node and target["node"] and target["node"] != node:
                self.fail("replica %s runs on node %s, not on node %s" % (wanted_id, target["node"], node))
        else:
            on_node = replica_on_node(view, node)
            if len(on_node) > 1:
                self.fail("node %s runs several replicas (%s); choose one with replica_id"
                          % (node, ", ".join(r["id"] for r in on_node)))
            target = on_node[0] if on_node else None
        if target is None:
            state = self._state(node, None, False)
            self.set_diff(state, dict(state))
            return
        rid = target["id"]
        self.result.update(replica_id=rid, node=target["node"] or node, health=target["health"],
                           healthy=target["healthy"])
        self.set_diff(self._state(target["node"] or node, rid, True), self._state(target["node"] or node, None, False))

        members = [r for r in view["replicas"] if r["in_cluster_status"]]
        if target["in_cluster_status"]:
            if len(members) == 1:
                self.fail("replica %s is the last replica; remove cannot remove the last one (destroy does, and this "
                          "module does not automate it)" % rid)
            healthy = sum(1 for r in members if r["healthy"])
            if not keeps_quorum(len(members), healthy, removing_healthy=1 if target["healthy"] else 0,
                                removing_unhealthy=0 if target["healthy"] else 1):
                self.fail("refusing to remove replica %s: %d of %d replicas are healthy, and after the removal the "
                          "remaining healthy replicas would not be a majority. %s"
                          % (rid, healthy, len(members), EMERGENCY_REPAIR_HINT))
        existing = self._pick_existing(view, rid)
        if existing is None:
            self.fail("no healthy replica other than %s to run remove from (existing_replica_id)" % rid)
        others = [r for r in view["replicas"] if r["id"] != rid and r.get("version")]
        version = self._version(view, others or [target])
        if self.p["force"] and not boot.supports("remove", "--force", version):
            self.fail("force needs MSR 2.9 or later (version %s)" % version)
        argv = self._argv("remove", {"--replica-ids": rid, "--existing-replica-id": existing,
                                     "--force": self.p["force"]}, version)
        if not self._announce("remove", argv, version, existing_replica_id=existing):
            return
        try:
            run = self._run(self.p["image"], version, argv)
        except MsrError as exc:
            self.fail("remove of replica %s could not run: %s" % (rid, exc))
        if not run.ok:
            self.fail("remove of replica %s failed: %s" % (rid, run.failure()))

        def gone(v):
            r = find_replica(v, rid)
            return r is None or not r["in_cluster_status"]
        after = self._wait(gone, "remove")
        if after is None:
            self.fail("remove of replica %s finished but the replica is still in cluster_status after %d s"
                      % (rid, self.p["wait_timeout"]))
        left = find_replica(after, rid)
        if left is not None and not left["ghost"]:
            self.module.warn("replica %s left the cluster but its containers are still on node %s; clear them with: %s"
                             % (rid, left["node"], " ".join(boot.redacted_cmd(
                                 self.p["image"], version, self._argv("destroy", {"--replica-id": rid}, version),
                                 self._env(), self.p["docker_host"]))))
        self.result.update(health=None, healthy=False)


def validate(module):
    check_connection_params(module)
    p = module.params
    for key in ("replica_id", "existing_replica_id"):
        if p[key] is not None:
            p[key] = p[key].strip().lower()
            if not boot.REPLICA_ID_RE.match(p[key]):
                module.fail_json(msg="%s must be 12 hexadecimal characters, got '%s'" % (key, p[key]))
    if p["version"] is not None and not boot.parse_version(p["version"]):
        module.fail_json(msg="version must look like 2.9.16, got '%s'" % p["version"])
    if p["docker_host"].split("://", 1)[0] not in ("unix", "ssh", "tcp"):
        module.fail_json(msg="docker_host must be unix:///path, ssh://user@host or tcp://host:port, got '%s'"
                         % p["docker_host"])
    if p["unsafe_join"] and p["state"] == "present":
        module.warn("unsafe_join is true: a join into an unhealthy cluster can cause split brain and data loss")


def phase2_on_node(mke, node):
    return any(split_name(c.get("Names"), "dtr-phase2")[0] == node for c in mke.containers("dtr-phase2"))
