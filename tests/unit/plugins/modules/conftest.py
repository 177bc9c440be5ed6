# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory MSR cluster for module tests: the module's real view logic (build_view) runs on it,
and a fake bootstrapper runner changes it the way join/remove/destroy would."""

from __future__ import annotations

import json
import types

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._cluster import build_view, replica_url
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError


class FakeCluster:
    def __init__(self, replicas=None, nodes=("worker-1", "worker-2", "worker-3", "worker-4", "worker-5"),
                 version="2.9.16", driver="s3"):
        self.nodes = [{"id": "id-" + n, "name": n, "role": "worker", "availability": "active", "state": "ready",
                       "message": "", "address": "10.0.0.%d" % (i + 10), "labels": {}, "leader": False,
                       "reachability": None} for i, n in enumerate(nodes)]
        self.version = version
        self.driver = driver
        # id -> {"node": name or None (ghost), "health": "OK"/text, "ping": 200/503/None, "in_status": bool}
        self.replicas = {}
        for rid, node in (replicas or {}).items():
            self.add(rid, node)
        self.observations = 0

    def add(self, rid, node, health="OK", ping=200, in_status=True):
        self.replicas[rid] = {"node": node, "health": health, "ping": ping, "in_status": in_status}

    def node(self, name):
        return [n for n in self.nodes if n["name"] == name][0]

    def view(self):
        self.observations += 1
        containers, urls, pings, health = [], {}, {}, {}
        for rid, r in sorted(self.replicas.items()):
            if r["node"]:
                containers.append({"id": rid, "node": r["node"], "version": self.version, "container_state": "running",
                                   "container_status": "Up", "image": "mirantis/dtr-rethink:" + self.version})
                addr = [n for n in self.nodes if n["name"] == r["node"]]
                if addr:
                    urls[rid] = replica_url(addr[0]["address"], 443)
                    pings[rid] = {"status": r["ping"], "healthy": r["ping"] == 200, "error": "" if r["ping"] == 200 else "down"}
            if r["in_status"]:
                health[rid] = r["health"]
        status = {"replica_health": health, "current_issues": [], "replica_timestamp": {}} if self.replicas else None
        return build_view(self.nodes, containers, urls, pings, status, {"driver": self.driver, "drivers": [self.driver]},
                          observer=None)


class FakeRunner:
    """Stands in for _bootstrapper.Bootstrapper."""

    def __init__(self, cluster, fail_join=None, fail_remove=None):
        self.cluster = cluster
        self.calls = []
        self.fail_join = fail_join      # None | "before" (nothing made) | "partial" (containers + status) | "containers"
        self.fail_remove = fail_remove
        self.unremoved = []

    def run(self, image, version, argv, env, name=None):
        flags, i = {}, 1
        while i < len(argv):
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                flags[argv[i]] = argv[i + 1]
                i += 2
            else:
                flags[argv[i]] = True
                i += 1
        self.calls.append({"image": image, "version": version, "argv": list(argv), "env": dict(env), "name": name,
                           "flags": flags})
        parser = boot.LogParser(secrets=list(env.values()))
        command = argv[0]
        lines = ["INFO[0000] Beginning Docker Trusted Registry replica %s" % command]
        rc = 0
        if command in ("join", "install"):
            rid = flags["--replica-id"]
            if self.fail_join:
                if self.fail_join in ("partial", "containers"):
                    self.cluster.add(rid, flags["--ucp-node"], health="joining", ping=503,
                                     in_status=self.fail_join == "partial")
                lines.append("FATA[0030] Failed to execute phase2: Phase 2 returned non-zero status: 1")
                rc = 1
            else:
                self.cluster.add(rid, flags["--ucp-node"])
                lines += ["INFO[0040] Join is complete", "INFO[0040] Replica ID is set to: %s" % rid]
        elif command == "remove":
            if self.fail_remove:
                lines.append("FATA[0001] %s" % self.fail_remove)
                rc = 1
            else:
                for rid in flags["--replica-ids"].split(","):
                    self.cluster.replicas.pop(rid, None)
        elif command == "destroy":
            rid = flags["--replica-id"]
            r = self.cluster.replicas.get(rid)
            if r is not None:
                if r["in_status"]:
                    r["node"] = None  # destroy does not tell the cluster: a ghost stays
                else:
                    self.cluster.replicas.pop(rid)
        parser.feed("\n".join(lines) + "\n")
        parser.close()
        return boot.RunResult(rc, parser, boot.redacted_cmd(image, version, argv, env), name)


class FailingRunner(FakeRunner):
    def run(self, *args, **kwargs):
        raise MsrError("cannot reach the Docker engine at unix:///var/run/docker.sock: connection refused")


def dumps(obj):
    return json.dumps(obj, sort_keys=True)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    # ansible-core keeps warnings in a process-wide dict and reports each text once; tests run many
    # modules in one process, so start each with an empty one. Tests that load controller code (filter
    # plugins) flip the process into "controller" mode, where warnings go to the display instead of the
    # module result: modules run on targets, so pretend to be one.
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings as w
    if hasattr(_internal, "is_controller"):
        monkeypatch.setattr(_internal, "is_controller", False)
    store = getattr(w, "_global_warnings", None)
    if isinstance(store, dict):
        store.clear()
    yield


@pytest.fixture
def fakes():
    return types.SimpleNamespace(FakeCluster=FakeCluster, FakeRunner=FakeRunner, FailingRunner=FailingRunner,
                                 dumps=dumps)
