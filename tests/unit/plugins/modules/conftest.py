# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""An in-memory MSR cluster for module tests: the module's real view logic (build_view) runs on it,
and a fake bootstrapper runner changes it the way join/remove/destroy would."""

from __future__ import annotations

import json
import types

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._cluster import build_view, replica_url
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.modules import replica

PASSWORD = "Sup3r-secret-pw"
CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
MSR_CA = "-----BEGIN CERTIFICATE-----\nMIIBmsr\n-----END CERTIFICATE-----\n"
BASE = {"mke_url": "https://mke.example.com", "mke_password": PASSWORD, "mke_ca": CA, "msr_ca": MSR_CA}
A, B, C, D = "aaaaaaaaaaa1", "bbbbbbbbbbb2", "ccccccccccc3", "ddddddddddd4"


class FakeCluster:
    def __init__(self, replicas=None, nodes=("worker-1", "worker-2", "worker-3", "worker-4", "worker-5"),
                 version="2.9.16", driver="s3"):
        self.nodes = [{"id": "id-" + n, "name": n, "role": "manager" if n.startswith("manager") else "worker",
                       "availability": "active", "state": "ready", "message": "", "address": "10.0.0.%d" % (i + 10),
                       "labels": {}, "leader": False, "reachability": None} for i, n in enumerate(nodes)]
        self.version = version
        self.driver = driver
        # id -> {"node": name or None (ghost), "health": "OK"/text, "ping": 200/503/None, "in_status": bool}
        self.replicas = {}
        for rid, node in (replicas or {}).items():
            self.add(rid, node)
        self.observations = 0
        self.status_answers = True     # False: no replica answers cluster_status
        self.critical_issues = []
        self.after_observe = None      # called before each view: lets a test change the cluster over time

    def add(self, rid, node, health="OK", ping=200, in_status=True):
        self.replicas[rid] = {"node": node, "health": health, "ping": ping, "in_status": in_status}

    def node(self, name):
        return [n for n in self.nodes if n["name"] == name][0]

    def members(self):
        return dict((rid, r) for rid, r in self.replicas.items() if r["in_status"])

    def ok(self, rid):
        r = self.replicas.get(rid)
        node = [n for n in self.nodes if r and n["name"] == r["node"]]
        return bool(r and r["in_status"] and r["health"] == "OK" and r["ping"] == 200 and node
                    and node[0]["state"] == "ready")

    def view(self):
        self.observations += 1
        if self.after_observe:
            self.after_observe(self)
        containers, urls, pings, health = [], {}, {}, {}
        down = set(n["name"] for n in self.nodes if n["state"] != "ready")
        for rid, r in sorted(self.replicas.items()):
            if r["node"] and r["node"] not in down:   # MKE cannot list the containers of a down node
                containers.append({"id": rid, "node": r["node"], "version": self.version, "container_state": "running",
                                   "container_status": "Up", "image": "mirantis/dtr-rethink:" + self.version,
                                   "ports": {"https": 443, "http": 80}})
                addr = [n for n in self.nodes if n["name"] == r["node"]]
                if addr:
                    urls[rid] = replica_url(addr[0]["address"], 443)
                    pings[rid] = {"status": r["ping"], "healthy": r["ping"] == 200, "error": "" if r["ping"] == 200 else "down"}
            if r["in_status"]:
                health[rid] = r["health"]
        status = None
        if self.replicas and self.status_answers:
            status = {"replica_health": health, "replica_timestamp": {},
                      "current_issues": [{"critical": True, "description": d} for d in self.critical_issues]}
        return build_view(self.nodes, containers, urls, pings, status, {"driver": self.driver, "drivers": [self.driver]},
                          observer=None, errors=[] if status else ["MSR replica https://10.0.0.10 answered HTTP 500"])


class FakeRunner:
    """Stands in for _bootstrapper.Bootstrapper, refusing what the bootstrapper refuses (msr2.md 1.3, 1.7, 1.10)."""

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
        command = argv[0]
        lines = ["INFO[0000] Beginning Docker Trusted Registry replica %s" % command]
        fatal = getattr(self, "_" + command)(flags, lines)
        if fatal:
            lines.append("FATA[0001] %s" % fatal)
        parser = boot.LogParser(secrets=list(env.values()))
        parser.feed("\n".join(lines) + "\n")
        parser.close()
        return boot.RunResult(1 if fatal else 0, parser, boot.redacted_cmd(image, version, argv, env), name)

    def _unhealthy(self, exclude=()):
        return sorted(rid for rid in self.cluster.members() if rid not in exclude and not self.cluster.ok(rid))

    def _join(self, flags, lines):
        c = self.cluster
        existing = flags.get("--existing-replica-id")
        if existing is not None and not c.ok(existing):
            return "The replica %s given with --existing-replica-id is not healthy" % existing
        bad = self._unhealthy()
        if bad and "--unsafe-join" not in flags:
            return ("This DTR has replicas that are not working correctly. Make sure existing DTR replicas are healthy "
                    "before joining new ones. To ignore this warning, use --unsafe-join. Error: Unhealthy replicas: %s"
                    % ", ".join(bad))
        rid = flags["--replica-id"]
        if self.fail_join:
            if self.fail_join in ("partial", "containers"):
                c.add(rid, flags["--ucp-node"], health="joining", ping=503, in_status=self.fail_join == "partial")
            return "Failed to execute phase2: Phase 2 returned non-zero status: 1"
        c.add(rid, flags["--ucp-node"])
        lines.extend(["INFO[0040] Join is complete", "INFO[0040] Replica ID is set to: %s" % rid])
        return None

    _install = _join

    def _remove(self, flags, lines):
        if self.fail_remove:
            return self.fail_remove
        c = self.cluster
        ids = flags["--replica-ids"].split(",")
        existing = flags["--existing-replica-id"]
        unknown = [rid for rid in ids if rid not in c.members()]
        if unknown:
            return "Replica %s not found in this DTR cluster" % ", ".join(unknown)
        if existing in ids or not c.ok(existing):
            return "The replica %s given with --existing-replica-id is not healthy or is being removed" % existing
        if "--force" not in flags:
            bad = self._unhealthy(exclude=ids)
            if bad:
                return "All other replicas must be healthy when removing a replica. Unhealthy replicas: %s" % ", ".join(bad)
            rest = [rid for rid in c.members() if rid not in ids]
            if len([rid for rid in rest if c.ok(rid)]) < len(rest) // 2 + 1:
                return "Removing %s would leave too few healthy replicas" % ", ".join(ids)
        for rid in ids:
            c.replicas.pop(rid)
        lines.append("INFO[0005] Successfully removed replica(s) %s" % ", ".join(ids))
        return None

    def _destroy(self, flags, lines):
        rid = flags["--replica-id"]
        r = self.cluster.replicas.get(rid)
        if r is None or not r["node"]:
            return "No containers or volumes of replica %s were found on the UCP nodes" % rid
        if r["in_status"]:
            r["node"] = None  # destroy does not tell the cluster: a ghost stays
            r["health"] = "Rethink replica is currently in state: disconnected"
        else:
            self.cluster.replicas.pop(rid)
        lines.append("INFO[0002] Replica %s was destroyed" % rid)
        return None


class FailingRunner(FakeRunner):
    def run(self, *args, **kwargs):
        raise MsrError("cannot reach the Docker engine at unix:///var/run/docker.sock: connection refused")


def three(**kw):
    return FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3"}, **kw)


def flags_of(call):
    """The bootstrapper flags of a recorded run, as the fake runner parsed them."""
    return call["flags"]


def warnings(result):
    # ansible-core 2.19 returns warnings as WarningSummary objects; older versions as strings.
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


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
                                 dumps=dumps, three=three, warnings=warnings)


@pytest.fixture
def run(monkeypatch, capsys):
    def _run(cluster, runner, check=False, has_docker=True, **args):
        monkeypatch.setattr(replica, "clients_from_params", lambda p: (None, None))
        monkeypatch.setattr(replica, "observe", lambda *a, **k: cluster.view())
        monkeypatch.setattr(boot, "Bootstrapper", lambda *a, **k: runner)
        monkeypatch.setattr(replica.ReplicaManager, "POLL_INTERVAL", 0)
        monkeypatch.setattr(engine, "HAS_DOCKER", has_docker)
        params = dict(BASE, **args)
        params.update(_ansible_check_mode=check, _ansible_diff=True)
        with patch_module_args(params):
            with pytest.raises(SystemExit):
                replica.main()
        return json.loads(capsys.readouterr().out)
    return _run
