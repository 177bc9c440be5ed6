#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: replica
short_description: Join, install or remove one MSR 2.x replica on an MKE node
version_added: 0.1.0
description:
  - Makes sure an MKE node runs an MSR (ex DTR) replica (O(state=present)) or does not (O(state=absent)).
  - Reads the cluster through the MKE and MSR APIs first and acts only on a difference, by running the
    C(mirantis/dtr) bootstrapper (C(join), C(install) or C(remove)) with the docker SDK on the engine at
    O(docker_host). The bootstrapper acts through MKE, so it can run on any MKE node.
  - The MKE password and CA reach the bootstrapper only through its environment (C(UCP_PASSWORD),
    C(UCP_CA)); the returned O(ignore:cmd) never contains them.
  - Joins only while every replica is healthy (unless O(unsafe_join=true)), always from a healthy replica
    that is not the one being removed, and waits for the new replica's C(/_ping) and an all-OK
    C(cluster_status). A failed join is cleaned up (C(remove), then C(destroy) of the new replica ID), or
    the module reports exactly what is left and how to clear it.
  - Removing refuses to break quorum (see the emergency-repair runbook when quorum is already lost).
author:
  - msr.replicas contributors (!UNKNOWN)
requirements:
  - docker (the Docker SDK for Python), when a replica has to be joined, installed or removed
  - paramiko, when O(docker_host) is an C(ssh://) URL
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the cluster and predicts C(changed), the diff, the bootstrapper command and the
        refusals exactly as a real run would, without running anything.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  node:
    description:
      - MKE node name (its hostname, as in C(docker node ls)), passed as C(--ucp-node).
      - Required except for O(state=absent) with O(replica_id) (for a ghost replica, or one whose node is gone).
    type: str
  state:
    description:
      - V(present) joins a replica to O(node) when it has none (or installs the first replica with O(install=true)).
      - V(absent) removes the replica on O(node), or the replica O(replica_id).
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - MSR version, the bootstrapper image tag (for example V(2.9.16)).
      - Defaults to the version of the existing replicas (label C(com.docker.dtr.version)). Required for O(install=true).
    type: str
  image:
    description:
      - Bootstrapper image repository.
    type: str
    default: mirantis/dtr
  existing_replica_id:
    description:
      - Replica whose database the bootstrapper uses (C(--existing-replica-id)). It must be healthy and is never
        the replica being removed.
      - Default is the healthy replica with the lowest ID that is not the target.
    type: str
  replica_id:
    description:
      - 12 hexadecimal characters. With O(state=present), the ID for the new replica (default random; the module
        always passes one so that a failed join can be cleaned up). With O(state=absent), the replica to remove.
    type: str
  install:
    description:
      - Allow C(install) of the first replica when the cluster has none. Without it, O(state=present) fails on
        an empty cluster.
    type: bool
    default: false
  external_url:
    description:
      - C(--dtr-external-url) for C(install) (the MSR load balancer URL, C(https://host[:port])).
    type: str
  docker_host:
    description:
      - Engine that runs the bootstrapper, V(unix:///var/run/docker.sock) or V(ssh://user@host).
      - Over SSH the docker SDK uses paramiko with C(~/.ssh/config) and C(~/.ssh/known_hosts); unknown host
        keys are rejected. Trust a host once with C(ssh-keyscan host >> ~/.ssh/known_hosts) after checking
        its fingerprint; for msr-lab, C(msr-lab ssh-config --home DIR) writes DIR/.ssh/config, known_hosts and
        the key, and the controller then runs with C(HOME=DIR).
    type: str
    default: unix:///var/run/docker.sock
  unsafe_join:
    description:
      - Join even though some replica is unhealthy (C(--unsafe-join)). This risks split brain and data loss;
        the module warns.
    type: bool
    default: false
  skip_network_test:
    description:
      - Skip the overlay network test of C(join) (C(--skip-network-test)).
    type: bool
    default: false
  replica_http_port:
    description:
      - C(--replica-http-port) of the new replica.
    type: int
  replica_https_port:
    description:
      - C(--replica-https-port) of the new replica; also the port used to reach it for health checks.
    type: int
  force:
    description:
      - Pass C(--force) to C(remove) (skip the bootstrapper's pre-checks; MSR 2.9 or later). The module's own
        quorum guard still applies.
    type: bool
    default: false
  debug:
    description:
      - Pass C(--debug) to the bootstrapper.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait after a join or install for the replica's C(/_ping) 200 and an all-OK C(cluster_status),
        and after a remove for the replica to leave the cluster.
    type: int
    default: 600
  bootstrap_timeout:
    description:
      - Seconds the bootstrapper may stay silent before the module gives up on it (Docker API read timeout).
    type: int
    default: 1800
notes:
  - The bootstrapper runs as a container named C(msr-replicas-<command>-<replica id>), which is always removed.
seealso:
  - module: msr.replicas.cluster_info
"""

EXAMPLES = r"""
---
- name: Join a replica on worker-4 (the bootstrapper runs on this host's engine)
  msr.replicas.replica:
    node: worker-4
    version: 2.9.16
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"

- name: Remove the replica of worker-2, running the bootstrapper on a manager over SSH
  msr.replicas.replica:
    node: worker-2
    state: absent
    docker_host: ssh://root@manager-1
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  delegate_to: localhost

- name: Remove a ghost replica whose node is gone
  msr.replicas.replica:
    replica_id: b9954c115ff1
    state: absent
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"

- name: Install the first replica, with the MKE options set once for the group
  module_defaults:
    group/msr.replicas.msr:
      mke_url: https://mke.example.com
      mke_password: "{{ vault_mke_password }}"
      mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  block:
    - name: Install
      msr.replicas.replica:
        node: worker-1
        version: 2.9.16
        install: true
        external_url: https://msr.example.com
      register: first
    - name: Show the new replica ID
      ansible.builtin.debug:
        var: first.replica_id
"""

RETURN = r"""
replica_id:
  description: ID of the replica on O(node) (new, existing or removed); null when there is none.
  returned: always
  type: str
  sample: f2277ad178f7
node:
  description: MKE node of the replica.
  returned: always
  type: str
  sample: worker-4
action:
  description: What was done (or would be done in check mode).
  returned: always
  type: str
  sample: join
  choices: [none, join, install, remove]
existing_replica_id:
  description: Replica whose database the bootstrapper used.
  returned: when a bootstrapper command ran or would run
  type: str
  sample: f3712d9c419a
health:
  description: C(replica_health) of the replica after the run (C(OK) or the error), null when absent.
  returned: always
  type: str
  sample: OK
healthy:
  description: Whether the replica is healthy (container running, C(/_ping) 200, health C(OK)).
  returned: always
  type: bool
phases:
  description: The bootstrapper's INFO log messages, in order.
  returned: when a bootstrapper command ran
  type: list
  elements: str
  sample: ["Beginning Docker Trusted Registry replica join", "Join is complete"]
bootstrapper_warnings:
  description: The bootstrapper's WARN log messages.
  returned: when a bootstrapper command ran
  type: list
  elements: str
log:
  description: Every output line of the bootstrapper.
  returned: when a bootstrapper command ran
  type: list
  elements: str
cmd:
  description: The equivalent docker CLI command, for the audit log. Secrets are passed as bare C(-e NAME).
  returned: when a bootstrapper command ran or would run
  type: list
  elements: str
  sample: [docker, run, --rm, -e, UCP_CA, -e, UCP_PASSWORD, "mirantis/dtr:2.9.16", join, --ucp-node, worker-4]
cleanup:
  description:
    - After a failed join, the cleanup commands that ran and what is left of the new replica (C(left), with the
      C(commands) that clear it).
    - C(also_left) lists other leftovers of the failed run, such as the bootstrapper's C(dtr-phase2) container on
      the target node.
  returned: on a failed join
  type: dict
diff:
  description:
    - Membership of O(node) before and after (C(node), C(replica_id), C(state)).
    - For a join without O(replica_id), C(after.replica_id) is null in check mode (the ID is generated at
      run time) and the new ID after a real run.
  returned: always
  type: dict
  sample: {before: {node: worker-4, replica_id: null, state: absent}, after: {node: worker-4, replica_id: null, state: present}}
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._cluster import (
    cluster_healthy,
    clients_from_params,
    find_replica,
    observe,
    replica_on_node,
)
from ansible_collections.msr.replicas.plugins.module_utils._common import (
    MsrError,
    check_connection_params,
    connection_argument_spec,
)
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


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        node=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        version=dict(type="str"),
        image=dict(type="str", default="mirantis/dtr"),
        existing_replica_id=dict(type="str"),
        replica_id=dict(type="str"),
        install=dict(type="bool", default=False),
        external_url=dict(type="str"),
        docker_host=dict(type="str", default=boot.DEFAULT_DOCKER_HOST),
        unsafe_join=dict(type="bool", default=False),
        skip_network_test=dict(type="bool", default=False),
        replica_http_port=dict(type="int"),
        replica_https_port=dict(type="int"),
        force=dict(type="bool", default=False),
        debug=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        bootstrap_timeout=dict(type="int", default=1800),
    )
    return spec


def make_module():
    return AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("state", "present", ["node"]), ("state", "absent", ["node", "replica_id"], True)],
    )


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


def main():
    module = make_module()
    validate(module)
    p = module.params
    mke, msr_factory = clients_from_params(p)

    def observe_fn():
        return observe(mke, msr_factory, msr_url=p["msr_url"], default_https_port=p["replica_https_port"] or 443)

    def phase2_fn(node):
        return any(split_name(c.get("Names"), "dtr-phase2")[0] == node for c in mke.containers("dtr-phase2"))
    manager = ReplicaManager(module, observe_fn, None, phase2_fn if mke is not None else None)
    try:
        view = observe_fn()
        if p["state"] == "present":
            manager.present(view)
        else:
            manager.absent(view)
    except MsrError as exc:
        manager.fail(str(exc))
    module.exit_json(**manager.result)


if __name__ == "__main__":
    main()
