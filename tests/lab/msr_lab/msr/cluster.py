"""The MSR cluster: what `install` creates for the whole cluster (storage, dtrHost, MSR's CA), the
membership changes on top of the per-replica runtime objects (objects.py) and health (health.py).
"""
from __future__ import annotations

import copy
import secrets
import ssl
from urllib.parse import urlsplit

from msr_lab.msr.app import MsrApp
from msr_lab.msr.health import ClusterError, Replica
from msr_lab.msr.objects import ReplicaObjects
from msr_lab.msr.tls import ClusterTLS

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
        self._apps: dict[str, object] = {}
        self.repositories: list[str] = []    # what /v2/_catalog lists
        self._blank()

    def _blank(self) -> None:
        """The cluster-wide state of no MSR at all, which `install` (or `up`'s seeding) fills in."""
        self.created = False
        self.nfs = False
        self.nfs_url = ""
        self.storage_volume = ""             # --dtr-storage-volume: a volume name or an absolute host path
        self.external_url = ""               # --dtr-external-url, https://host[:port]
        self.storage: dict = copy.deepcopy(DEFAULT_STORAGE["filesystem"])
        self.settings: dict = {"createRepositoryOnPush": False, "scanningEnabled": False,
                               "scanningSyncOnline": False, "readOnlyRegistry": False,
                               "logLevel": "info", "webTLSCert": "", "replicaHTTPPort": 80, "replicaHTTPSPort": 443}
        self.tls: ClusterTLS | None = None

    def create(self, storage="filesystem", nfs_url="", storage_volume="", external_url="", tls=None) -> None:
        """What `install` sets up once for the whole cluster: storage, dtrHost and MSR's own CA.

        `tls` is (CA, certificate, key) given with --dtr-ca/--dtr-cert/--dtr-key; None generates a CA.
        """
        if storage not in DEFAULT_STORAGE:
            raise ClusterError(f"unknown storage {storage!r}")
        with self.lab.lock:
            if self.replicas:
                raise ClusterError("MSR is already installed: the cluster has members")
            self._blank()
            self.created = True
            self.nfs = storage == "nfs"
            self.nfs_url = (nfs_url or "nfs://nfs.msr-lab.invalid/msr") if self.nfs else ""
            self.storage_volume = "" if self.nfs else storage_volume
            self.storage = copy.deepcopy(DEFAULT_STORAGE[storage])
            self.external_url = external_url
            self.tls = ClusterTLS(tls)
            self.repositories = []
        self._changed()

    def _seed_spec(self) -> dict:
        """The cluster `up` seeds: the storage of `up --storage`, the LB as dtrHost, a generated CA."""
        cfg = self.lab.config
        return {"storage": cfg.get("storage", "s3"), "nfs_url": cfg.get("nfs_url", ""),
                "external_url": cfg.get("seed_external_url", "")}

    def dissolve(self) -> None:
        """No replica keeps the database: membership, settings, storage settings and the CA are gone."""
        with self.lab.lock:
            self.replicas.clear()
            self._apps.clear()
            self.repositories = []
            self._blank()
        self._changed()

    def replica_on(self, node_name: str) -> Replica | None:
        with self.lab.lock:
            return next((r for r in self.replicas.values() if r.node == node_name), None)

    # ---------------------------------------------------------------- mutations

    def add_member(self, rid, node, version, http_port=80, https_port=443, repo=None) -> Replica:
        node = getattr(node, "name", node)
        if not self.created:
            self.create(**self._seed_spec())
        with self.lab.lock:
            if rid in self.replicas:
                raise ClusterError(f"replica {rid} is already a member of the cluster")
            if self.lab.node(node) is None:
                raise ClusterError(f"no node {node!r}")
            r = Replica(rid, node, version, "joining", int(http_port), int(https_port), repo or self._repo())
            self.replicas[rid] = r
        self._changed()
        return r

    def mark_running(self, rid) -> None:
        with self.lab.lock:
            self._get(rid).state = "running"
            nginx = self._container(rid, "nginx")
            if nginx is not None and nginx.health == "starting":
                self._engine(self.replicas[rid].node).set_health(nginx, "healthy")
        self._changed()

    def remove_member(self, rid) -> None:
        with self.lab.lock:
            self._get(rid)
            del self.replicas[rid]
            self._apps.pop(rid, None)
            self.tls.forget(rid)
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

    def mark_ghost(self, rid) -> bool:
        """`destroy` of a member leaves a ghost; once no member keeps its data the cluster is gone.
        True when the cluster dissolved."""
        super().mark_ghost(rid)
        with self.lab.lock:
            dissolved = all(r.state == "ghost" for r in self.replicas.values())
            if dissolved:
                self.dissolve()
        return dissolved

    # ---------------------------------------------------------------- serving

    def external_host(self) -> str:
        """The host of --dtr-external-url, without scheme or port."""
        return (urlsplit(self.external_url).hostname or "") if self.external_url else ""

    def dtr_host(self, rid) -> str:
        """dtrHost: host[:port] of --dtr-external-url, else the address of the replica asked."""
        if self.external_url:
            return self.external_url.split("://", 1)[-1].rstrip("/")
        r = self.replicas[rid]
        addr = self.lab.nodes[r.node].addr
        return addr if r.https_port == 443 else f"{addr}:{r.https_port}"

    def replica_hosts(self, rid) -> list[str]:
        """What a replica's own certificate names: its node's hostname and address, the external host."""
        node = self.lab.nodes[self.replicas[rid].node]
        return [h for h in (node.name, node.addr, self.external_host()) if h]

    def server_context(self, rid) -> ssl.SSLContext:
        with self.lab.lock:
            return self.tls.context(rid, self.replica_hosts(rid))

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

    def storage_driver(self) -> str:
        keys = [k for k in self.storage if k not in ("delete", "maintenance", "redirect", "cache")]
        return ("nfs" if self.nfs and keys == ["filesystem"] else keys[0]) if keys else ""

    def status(self) -> dict:
        with self.lab.lock:
            health = self.health()
            reps = []
            for rid, r in self.replicas.items():
                healthy, error = self.ping(rid)
                reps.append({"id": rid, "node": r.node, "version": r.version, "state": self.state_of(rid),
                             "health": health[rid], "ping": "OK" if healthy else error,
                             "http_port": r.http_port, "https_port": r.https_port})
            voters = self._voters()
            ok = sum(1 for rid in voters if health[rid] == "OK")
            quorum = self.has_quorum()
            return {"installed": self.installed, "replicas": reps, "storage": self.storage_driver(),
                    "msr_ca": self.tls.ca_pem if self.installed and self.tls else None,
                    "ca_subject": self.tls.subject if self.installed and self.tls else None,
                    "external_url": self.external_url, "nfs_url": self.nfs_url,
                    "storage_volume": self.storage_volume,
                    "majority": self.majority(), "has_quorum": quorum,
                    "quorum": (f"{ok}/{len(voters)} healthy, majority {self.majority()}: "
                               f"{'ok' if quorum else 'LOST'}") if self.replicas else "-",
                    "current_issues": self.current_issues()}
