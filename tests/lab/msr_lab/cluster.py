"""The MSR cluster: RethinkDB membership, quorum and the per-replica runtime objects on the node engines.

Health is derived, never stored: a replica's health follows from its membership state, its
dtr-rethinkdb container, its node and the network partitions, so faults injected anywhere (a stopped
container, a partitioned node) show up the way RethinkDB would report them.
"""
from __future__ import annotations

import copy
import datetime
import secrets
import time
import uuid
from dataclasses import dataclass, field

SERVICES = ("rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "jobrunner",
            "notary-signer", "scanningstore")
# The real images: the rethinkdb service runs dtr-rethink, the scanning store runs dtr-postgres.
IMAGE_OF = {"rethinkdb": "dtr-rethink", "scanningstore": "dtr-postgres"}
VOLUME_KINDS = ("ca", "notary", "postgres", "registry", "rethink")
STATE_TEXT = "Rethink replica is currently in state: {}"
NOT_READY_TEXT = "Replica is not ready: " + STATE_TEXT.format("backfilling")
DATABASES = ("dtr2", "enzi", "jobrunner", "notaryserver", "notarysigner")
# Services whose stopped container makes /_ping fail, named the way /_ping names them.
PING_SERVICES = (("rethinkdb", "rethinkdb"), ("registry", "registry"), ("garant", "garant"),
                 ("notary-server", "notary"), ("notary-signer", "notary"), ("api", "api"))

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


class ClusterError(Exception):
    pass


def now_rfc3339(t: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def new_replica_id() -> str:
    return secrets.token_hex(6)


def server_name(rid: str) -> str:
    return f"dtr_rethinkdb_{rid}"


@dataclass
class Replica:
    id: str
    node: str
    version: str
    state: str = "joining"           # joining | running | stopped | ghost
    http_port: int = 80
    https_port: int = 443
    repo: str = "mirantis"
    last_seen: float = field(default_factory=time.time)


class Cluster:
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

    # ---------------------------------------------------------------- derived state

    @property
    def installed(self) -> bool:
        return bool(self.replicas)

    def _engine(self, node_name: str):
        node = self.lab.node(node_name)
        return None if node is None else node.engine

    def _container(self, rid: str, svc: str):
        r = self.replicas.get(rid)
        engine = self._engine(r.node) if r else None
        if engine is None:
            return None
        return engine.find_container(f"dtr-{svc}-{rid}")

    def _running(self, rid: str, svc: str) -> bool:
        c = self._container(rid, svc)
        return c is not None and c.status == "running"

    def alive(self, rid: str) -> bool:
        """Its rethinkdb server process is up (it may still be cut off by a partition).

        Only the container decides, not the recorded state: a `docker start` of a stopped replica's
        containers through the engine API brings it back, as on a real node.
        """
        r = self.replicas[rid]
        node = self.lab.node(r.node)
        return (r.state != "ghost" and node is not None and node.state == "ready"
                and self._running(rid, "rethinkdb"))

    def state_of(self, rid: str) -> str:
        """The replica's state as shown to people: running/stopped follow its rethinkdb container."""
        r = self.replicas[rid]
        if r.state in ("running", "stopped"):
            return "running" if self._running(rid, "rethinkdb") else "stopped"
        return r.state

    def _groups(self) -> list[list[str]]:
        """Connectivity groups of live servers: the connected ones together, each partitioned one alone."""
        main, alone = [], []
        for rid in self.replicas:
            if not self.alive(rid):
                continue
            if self.lab.nodes[self.replicas[rid].node].partitioned:
                alone.append([rid])
            else:
                main.append(rid)
        return ([main] if main else []) + alone

    def _voters(self) -> list[str]:
        # A joining server is not in the tables' replica sets until the join reconfigures them.
        return [rid for rid, r in self.replicas.items() if r.state != "joining"]

    def majority(self) -> int:
        return len(self._voters()) // 2 + 1

    def _has_quorum(self, group: list[str]) -> bool:
        voters = set(self._voters())
        return bool(voters) and len(voters.intersection(group)) >= self.majority()

    def _group_of(self, rid: str | None) -> list[str]:
        groups = self._groups()
        if rid is not None:
            return next((g for g in groups if rid in g), [])
        return next((g for g in groups if self._has_quorum(g)), groups[0] if groups else [])

    def _primary(self) -> str | None:
        voters = self._voters()
        return voters[0] if voters else None

    def health(self, observer: str | None = None) -> dict[str, str]:
        """replica_health as seen from `observer` (default: from the quorum side, if there is one)."""
        with self.lab.lock:
            group = self._group_of(observer)
            quorum = self._has_quorum(group)
            primary = self._primary()
            out = {}
            for rid, r in self.replicas.items():
                if rid not in group:
                    out[rid] = STATE_TEXT.format("disconnected")
                elif r.state == "joining":
                    out[rid] = NOT_READY_TEXT
                elif quorum:
                    out[rid] = "OK"
                else:
                    out[rid] = STATE_TEXT.format("waiting_for_quorum" if primary in group else "waiting_for_primary")
            return out

    def replica_ok(self, rid: str) -> bool:
        with self.lab.lock:
            return rid in self.replicas and self.health(rid).get(rid) == "OK"

    def has_quorum(self, observer: str | None = None) -> bool:
        with self.lab.lock:
            return self._has_quorum(self._group_of(observer))

    def ping(self, rid: str) -> tuple[bool, str]:
        with self.lab.lock:
            r = self.replicas.get(rid)
            if r is None:
                return False, f"rethinkdb: replica {rid} is not a member of the cluster"
            for svc, label in PING_SERVICES:
                if not self._running(rid, svc):
                    return False, f"{label}: container dtr-{svc}-{rid} is not running"
            text = self.health(rid)[rid]
            if text != "OK":
                return False, f"rethinkdb: {text}"
            return True, ""

    def current_issues(self, observer: str | None = None) -> list[dict]:
        """RethinkDB current_issues rows (one table_availability issue summarises every table)."""
        with self.lab.lock:
            group = self._group_of(observer)
            if not self.replicas:
                return []
            unreachable = [server_name(rid) for rid in self.replicas if rid not in group]
            backfilling = [server_name(rid) for rid in group if self.replicas[rid].state == "joining"]
            quorum = self._has_quorum(group)
            if quorum and not unreachable and not backfilling:
                return []
            if quorum:
                desc = "Table `dtr2.repositories` is ready for reads and writes but some replicas are not ready."
            elif group:
                desc = ("Table `dtr2.repositories` is available for outdated reads, but not up-to-date reads or "
                        "writes.")
            else:
                desc = "Table `dtr2.repositories` is not available for reads or writes."
            if unreachable:
                desc += " The following servers are not reachable: " + ", ".join(unreachable)
            if backfilling:
                desc += " The following servers are backfilling: " + ", ".join(backfilling)
            return [{"type": "table_availability", "critical": not quorum, "description": desc,
                     "info": {"db": "dtr2", "table": "repositories", "missing_servers": unreachable,
                              "status": {"all_replicas_ready": False, "ready_for_writes": quorum,
                                         "ready_for_reads": quorum, "ready_for_outdated_reads": bool(group)}}}]

    def replica_timestamp(self) -> dict[str, str]:
        with self.lab.lock:
            now = time.time()
            for rid in self.replicas:
                if self.alive(rid):
                    self.replicas[rid].last_seen = now
            return {rid: now_rfc3339(r.last_seen) for rid, r in self.replicas.items()}

    def rethink_system_tables(self, observer: str | None = None) -> dict:
        with self.lab.lock:
            group = self._group_of(observer)
            servers = []
            for rid in group:
                servers.append({
                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, server_name(rid))),
                    "name": server_name(rid),
                    "network": {"canonical_addresses": [{"host": f"dtr-rethinkdb-{rid}.dtr-ol", "port": 29015}],
                                "cluster_port": 29015, "reql_port": 28015, "http_admin_port": "<no http admin>",
                                "hostname": rid,
                                "connected_to": {server_name(o): o in group for o in self.replicas if o != rid},
                                "time_connected": now_rfc3339(self.replicas[rid].last_seen)},
                    "process": {"version": "rethinkdb 2.4.4", "argv": ["rethinkdb"], "cache_size_mb": 1024},
                })
            return {
                "cluster_config": [{"heartbeat_timeout_secs": 10, "id": "heartbeat"}],
                "current_issues": self.current_issues(observer),
                "db_config": [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, db)), "name": db} for db in DATABASES],
                "server_status": servers,
            }

    def cluster_status(self, observer: str | None = None) -> dict:
        """The /api/v0/meta/cluster_status document as observed by `observer`."""
        with self.lab.lock:
            return {"current_issues": [{"critical": i["critical"], "description": i["description"]}
                                       for i in self.current_issues(observer)],
                    "replica_health": self.health(observer),
                    "replica_timestamp": self.replica_timestamp(),
                    "replica_ids": list(self.replicas),
                    "rethink_system_tables": self.rethink_system_tables(observer),
                    "gc_lock_holder": "", "majority": self.majority()}

    def replica_on(self, node_name: str) -> Replica | None:
        with self.lab.lock:
            return next((r for r in self.replicas.values() if r.node == node_name), None)

    # ---------------------------------------------------------------- mutations

    def _changed(self) -> None:
        self.lab.changed()

    def add_member(self, rid, node, version, http_port=80, https_port=443, repo=None) -> Replica:
        node = getattr(node, "name", node)
        with self.lab.lock:
            if rid in self.replicas:
                raise ClusterError(f"replica {rid} is already a member of the cluster")
            if self.lab.node(node) is None:
                raise ClusterError(f"no node {node!r}")
            r = Replica(rid, node, version, "joining", int(http_port), int(https_port), repo or self._repo())
            self.replicas[rid] = r
        self._changed()
        return r

    def _repo(self) -> str:
        image = self.lab.config.get("msr_image", "mirantis/dtr")
        return image.rsplit("/", 1)[0] if "/" in image else "mirantis"

    def volume_names(self, rid: str) -> list[str]:
        kinds = [("nfs-registry" if (k == "registry" and self.nfs) else k) for k in VOLUME_KINDS]
        return [f"dtr-{k}-{rid}" for k in kinds]

    def container_names(self, rid: str) -> list[str]:
        return [f"dtr-{svc}-{rid}" for svc in SERVICES]

    def service_volumes(self, rid: str, svc: str) -> dict[str, str]:
        vols = {f"dtr-ca-{rid}": "/ca"}
        if svc == "rethinkdb":
            vols[f"dtr-rethink-{rid}"] = "/data"
        elif svc == "registry":
            vols[f"dtr-{'nfs-registry' if self.nfs else 'registry'}-{rid}"] = "/storage"
        elif svc == "notary-signer":
            vols[f"dtr-notary-{rid}"] = "/data"
        elif svc == "scanningstore":
            vols[f"dtr-postgres-{rid}"] = "/var/lib/postgresql/data"
        return vols

    def create_replica_objects(self, rid, node, version, repo=None) -> dict:
        """Create the replica's volumes, networks and service containers; returns what was created."""
        node = getattr(node, "name", node)
        created = {"containers": [], "volumes": [], "networks": []}
        with self.lab.lock:
            engine = self._engine(node)
            if engine is None:
                raise ClusterError(f"node {node!r} has no engine")
            r = self.replicas.get(rid)
            repo = repo or (r.repo if r else self._repo())
            for name in self.volume_names(rid):
                if name not in engine.volumes:
                    engine.create_volume(name, labels={"com.docker.dtr.replica": rid})
                    created["volumes"].append(name)
            for net, driver in (("dtr-br", "bridge"), ("dtr-ol", "overlay")):
                if net not in engine.networks:
                    engine.create_network(net, driver=driver, attachable=driver == "overlay")
                    created["networks"].append(net)
            for svc in SERVICES:
                name = f"dtr-{svc}-{rid}"
                if engine.find_container(name) is not None:
                    continue
                labels = {"com.docker.dtr.version": version, "com.docker.dtr.replica": rid,
                          "com.docker.compose.project": "dtr", "com.docker.compose.service": svc}
                env = [f"DTR_REPLICA_ID={rid}", f"DTR_VERSION={version}"]
                image = f"{repo}/{IMAGE_OF.get(svc, 'dtr-' + svc)}:{version}"
                c = engine.run_service(name, image, labels, env, volumes=self.service_volumes(rid, svc),
                                       network="dtr-ol")
                if svc == "nginx" and r is not None and r.state == "joining":
                    engine.set_health(c, "starting")  # healthy once the join completes (mark_running)
                created["containers"].append(name)
            if r is not None:
                r.version = version
                r.last_seen = time.time()
        self._changed()
        return created

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
        self._changed()

    def _get(self, rid) -> Replica:
        r = self.replicas.get(rid)
        if r is None:
            raise ClusterError(f"replica {rid} is not a member of the cluster")
        return r

    def _reachable(self, node_name) -> bool:
        node = self.lab.node(node_name)
        return node is not None and node.engine is not None and node.state == "ready" and not node.partitioned

    def delete_replica_objects(self, rid, node, volumes=True) -> dict:
        """Remove the replica's containers (and volumes) that exist on `node`.

        An unreachable node (down or partitioned) keeps everything: the result says so with
        reachable=False, as the real bootstrapper can only report that it could not reach it.
        """
        node = getattr(node, "name", node)
        out = {"node": node, "reachable": True, "containers": [], "volumes": []}
        with self.lab.lock:
            if not self._reachable(node):
                out["reachable"] = False
            else:
                engine = self._engine(node)
                for name in self.container_names(rid):
                    c = engine.find_container(name)
                    if c is not None:
                        engine.remove_container(c, force=True)
                        out["containers"].append(name)
                if volumes:
                    for name in self.volume_names(rid) + [f"dtr-registry-{rid}", f"dtr-nfs-registry-{rid}"]:
                        if name in engine.volumes and name not in out["volumes"]:
                            engine.remove_volume(name, force=True)
                            out["volumes"].append(name)
        self._changed()
        return out

    def stop_replica(self, rid) -> None:
        with self.lab.lock:
            r = self._get(rid)
            engine = self._engine(r.node)
            for name in reversed(self.container_names(rid)):
                c = engine.find_container(name) if engine else None
                if c is not None and c.status == "running":
                    engine.stop_container(c)
            if r.state == "running":
                r.state = "stopped"
        self._changed()

    def start_replica(self, rid) -> None:
        with self.lab.lock:
            r = self._get(rid)
            if r.state == "ghost":
                raise ClusterError(f"replica {rid} was destroyed; it has no containers to start")
            engine = self._engine(r.node)
            missing = [n for n in self.container_names(rid) if engine is None or engine.find_container(n) is None]
            if missing:
                raise ClusterError(f"replica {rid} has no containers {', '.join(missing)}")
            for name in self.container_names(rid):
                c = engine.find_container(name)
                if c.status != "running":
                    engine.start_container(c)
            if r.state == "stopped":
                r.state = "running"
        self._changed()

    def ghost_replica(self, rid) -> dict:
        """What `destroy` does: the replica's objects go, its RethinkDB membership stays."""
        with self.lab.lock:
            r = self._get(rid)
            out = self.delete_replica_objects(rid, r.node)
            if not out["reachable"]:
                # destroy runs on the node itself, so a partition does not stop it
                engine = self._engine(r.node)
                for name in self.container_names(rid):
                    c = engine.find_container(name) if engine else None
                    if c is not None:
                        engine.remove_container(c, force=True)
                        out["containers"].append(name)
                for name in self.volume_names(rid):
                    if engine is not None and name in engine.volumes:
                        engine.remove_volume(name, force=True)
                        out["volumes"].append(name)
            r.state = "ghost"
        self._changed()
        return out

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

    def upgrade_replica(self, rid, version) -> None:
        """Replace the replica's containers with ones of `version`; its volumes stay."""
        with self.lab.lock:
            r = self._get(rid)
            engine = self._engine(r.node)
            for name in self.container_names(rid):
                c = engine.find_container(name)
                if c is not None:
                    engine.remove_container(c, force=True)
            r.version = version
        self.create_replica_objects(rid, r.node, version)

    def seed_install(self, node, version, rid=None) -> Replica:
        rid = rid or new_replica_id()
        r = self.add_member(rid, node, version)
        self.create_replica_objects(rid, r.node, version)
        self.mark_running(rid)
        return r

    # ---------------------------------------------------------------- serving

    def app_for(self, rid):
        from .msr import MsrApp  # msr imports this module
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
                    "majority": self.majority(), "has_quorum": quorum,
                    "quorum": (f"{ok}/{len(voters)} healthy, majority {self.majority()}: "
                               f"{'ok' if quorum else 'LOST'}") if self.replicas else "-",
                    "current_issues": self.current_issues()}
