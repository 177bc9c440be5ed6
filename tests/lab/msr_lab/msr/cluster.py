"""The MSR cluster: RethinkDB membership and quorum (cluster_health.py) and the per-replica runtime
objects on the node engines (cluster_objects.py).
"""
from __future__ import annotations

import copy
import secrets

from msr_lab.msr.app import MsrApp
from msr_lab.msr.health import ClusterError, Replica
from msr_lab.msr.objects import ReplicaObjects
from msr_lab.msr.reports import HealthReports

DEFAULT_STORAGE = {
    "s3": {"s3": {"bucket": "msr-lab", "region": "us-east-1", "regionendpoint": "", "rootdirectory": "",
                  "secure": True}},
    "azure": {"azure": {"accountname": "msrlab", "accountkey": "bXNyLWxhYg==", "container": "msr-lab",
                        "realm": "core.windows.net"}},
    "gcs": {"gcs": {"bucket": "msr-lab", "rootdirectory": ""}},
    "swift": {"swift": {"authurl": "https://swift.msr-lab.invalid/v3", "container": "msr-lab",
                        "username": "msr", "password": "msr", "region": "RegionOne"}},
    "filesystem": {"filesystem": {"rootdirectory": "/storage"}},
    "nfs": {"filesystem": {"rootdirectory": "/storage"}},
}


def new_replica_id() -> str:
    return secrets.token_hex(6)


class Cluster(ReplicaObjects):
    def __init__(self, lab):
        self.lab = lab
        self.replicas: dict[str, Replica] = {}
        kind = lab.config.get("storage", "s3")
        if kind not in DEFAULT_STORAGE:
            raise ClusterError(f"unknown storage {kind!r}")
        self.nfs = kind == "nfs"
        self.storage: dict = copy.deepcopy(DEFAULT_STORAGE[kind])
        self.settings: dict = {"createRepositoryOnPush": False, "scanningEnabled": False,
                               "scanningSyncOnline": False, "readOnlyRegistry": False,
                               "logLevel": "info", "webTLSCert": "", "replicaHTTPPort": 80, "replicaHTTPSPort": 443}
        self.nfs_url = lab.config.get("nfs_url", "nfs://nfs.msr-lab.invalid/msr") if self.nfs else ""
        self._apps: dict[str, object] = {}
        self.repositories: list[str] = []    # what /v2/_catalog lists
        self.reports = HealthReports(self)   # the replica_health cache of cluster_status

    def replica_on(self, node_name: str) -> Replica | None:
        with self.lab.lock:
            return next((r for r in self.replicas.values() if r.node == node_name), None)

    # ---------------------------------------------------------------- mutations

    def add_member(self, rid, node, version, http_port=80, https_port=443, repo=None) -> Replica:
        node = getattr(node, "name", node)
        with self.lab.lock:
            if rid in self.replicas:
                raise ClusterError(f"replica {rid} is already a member of the cluster")
            if self.lab.node(node) is None:
                raise ClusterError(f"no node {node!r}")
            r = Replica(rid, node, version, "joining", int(http_port), int(https_port), repo or self._repo())
            self.replicas[rid] = r
            self.reports.added(rid)
        self._changed()
        return r

    def mark_running(self, rid) -> None:
        with self.lab.lock:
            self._get(rid).state = "running"
            nginx = self._container(rid, "nginx")
            if nginx is not None and nginx.health_hold:   # its own start period still applies
                self._engine(self.replicas[rid].node).hold_health(nginx, False)
        self._changed()

    def remove_member(self, rid) -> None:
        with self.lab.lock:
            self._get(rid)
            del self.replicas[rid]
            self._apps.pop(rid, None)
            self.reports.removed(rid)
        self._changed()

    def emergency_repair(self, keep_rid, force=False) -> dict:
        """Make `keep_rid` the only member; other replicas' containers stop and go (volumes too with force)."""
        out = {"kept": keep_rid, "removed": [], "unreachable": []}
        with self.lab.lock:
            keep = self._get(keep_rid)
            if not self.alive(keep_rid):
                raise ClusterError(f"replica {keep_rid} is not running; emergency-repair needs its rethinkdb")
            for rid in [x for x in self.replicas if x != keep_rid]:
                r = self.replicas.pop(rid)
                self._apps.pop(rid, None)
                self.reports.removed(rid)
                res = self.delete_replica_objects(rid, r.node, volumes=force)
                (out["removed"] if res["reachable"] else out["unreachable"]).append(rid)
            keep.state = "running"
        self._changed()
        return out

    def seed_install(self, node, version, rid=None) -> Replica:
        rid = rid or new_replica_id()
        r = self.add_member(rid, node, version)
        self.create_replica_objects(rid, r.node, version)
        self.mark_running(rid)
        return r

    # ---------------------------------------------------------------- serving

    def app_for(self, rid):
        with self.lab.lock:
            if rid not in self._apps:
                self._apps[rid] = MsrApp(self.lab, rid)
            return self._apps[rid]

    def listeners(self) -> list[tuple[str, int, bool, object]]:
        with self.lab.lock:
            out = []
            for rid, r in self.replicas.items():
                if r.state != "ghost" and self._running(rid, "nginx"):
                    app = self.app_for(rid)
                    out.append((r.node, r.http_port, False, app))
                    out.append((r.node, r.https_port, True, app))
            return out

    def replica_faults(self, rid) -> dict:
        r = self.replicas[rid]
        out = {"ping_delay_ms": r.ping_delay_ms, "ping_hang": r.ping_hang, "reports_frozen": r.reports_frozen}
        return {k: v for k, v in out.items() if v}

    def storage_driver(self) -> str:
        keys = [k for k in self.storage if k not in ("delete", "maintenance", "redirect", "cache")]
        return ("nfs" if self.nfs and keys == ["filesystem"] else keys[0]) if keys else ""

    def status(self) -> dict:
        """`health` is the live RethinkDB view; `reported` is what cluster_status shows (the cache)."""
        with self.lab.lock:
            health = self.health()
            now = self.lab.now()
            reported, stamps = self.reports.view(None, now)
            reps = []
            for rid, r in self.replicas.items():
                healthy, error = self.ping(rid)
                age = self.reports.age(rid, now)
                reps.append({"id": rid, "node": r.node, "version": r.version, "state": self.state_of(rid),
                             "health": health[rid], "ping": "OK" if healthy else error,
                             "reported": reported[rid], "reported_at": stamps[rid],
                             "reported_age": None if age is None else round(age, 1),
                             "starting": round(self.starting_left(rid), 1),
                             "faults": self.replica_faults(rid),
                             "http_port": r.http_port, "https_port": r.https_port})
            voters = self._voters()
            ok = sum(1 for rid in voters if health[rid] == "OK")
            quorum = self.has_quorum()
            return {"installed": self.installed, "replicas": reps, "storage": self.storage_driver(),
                    "majority": self.majority(), "has_quorum": quorum,
                    "quorum": (f"{ok}/{len(voters)} healthy, majority {self.majority()}: "
                               f"{'ok' if quorum else 'LOST'}") if self.replicas else "-",
                    "current_issues": self.current_issues()}
