"""The per-replica runtime objects on the node engines: the dtr-* containers, volumes and networks."""
from __future__ import annotations

import time

from msr_lab.msr.health import ClusterError, ClusterHealth

SERVICES = ("rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "jobrunner",
            "notary-signer", "scanningstore")
# The real images: the rethinkdb service runs dtr-rethink, the scanning store runs dtr-postgres.
IMAGE_OF = {"rethinkdb": "dtr-rethink", "scanningstore": "dtr-postgres"}
VOLUME_KINDS = ("ca", "notary", "postgres", "registry", "rethink")


class ReplicaObjects(ClusterHealth):
    """Engine objects of msr_lab.cluster.Cluster, which also sets ``nfs`` and ``storage_volume``."""

    def _changed(self) -> None:
        self.lab.changed()

    def _repo(self) -> str:
        image = self.lab.config.get("msr_image", "mirantis/dtr")
        return image.rsplit("/", 1)[0] if "/" in image else "mirantis"

    def _registry_kind(self) -> str:
        return "nfs-registry" if self.nfs else "registry"

    def volume_names(self, rid: str) -> list[str]:
        """The dtr-<kind>-<id> volumes; a --dtr-storage-volume replaces dtr-registry-<id>."""
        kinds = [(self._registry_kind() if k == "registry" else k) for k in VOLUME_KINDS
                 if not (k == "registry" and self.storage_volume)]
        return [f"dtr-{k}-{rid}" for k in kinds]

    def container_names(self, rid: str) -> list[str]:
        return [f"dtr-{svc}-{rid}" for svc in SERVICES]

    def service_volumes(self, rid: str, svc: str) -> dict[str, str]:
        vols = {f"dtr-ca-{rid}": "/ca"}
        if svc == "rethinkdb":
            vols[f"dtr-rethink-{rid}"] = "/data"
        elif svc == "registry":
            vols[self.storage_volume or f"dtr-{self._registry_kind()}-{rid}"] = "/storage"
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
                # dtr-nginx publishes the replica's ports on the node, as --replica-http(s)-port say
                ports = {80: r.http_port, 443: r.https_port} if svc == "nginx" and r is not None else None
                c = engine.run_service(name, image, labels, env, volumes=self.service_volumes(rid, svc),
                                       network="dtr-ol", ports=ports)
                if svc == "nginx" and r is not None and r.state == "joining":
                    engine.set_health(c, "starting")  # healthy once the join completes (mark_running)
                created["containers"].append(name)
            if r is not None:
                r.version = version
                r.last_seen = time.time()
        self._changed()
        return created

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

    def mark_ghost(self, rid) -> bool:
        """The replica's objects are gone (destroy), its RethinkDB membership stays: a ghost."""
        with self.lab.lock:
            self._get(rid).state = "ghost"
        self._changed()
        return False

    def ghost_replica(self, rid) -> dict:
        """The `ghost` fault: what a successful `destroy` leaves. Its node must be reachable, as for destroy."""
        with self.lab.lock:
            r = self._get(rid)
            out = self.delete_replica_objects(rid, r.node)
            if not out["reachable"]:
                raise ClusterError(f"node {r.node} of replica {rid} is unreachable; destroy could not act on it")
            out["dissolved"] = self.mark_ghost(rid)
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
