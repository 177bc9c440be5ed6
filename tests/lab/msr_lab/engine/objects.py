"""Volumes and networks of the emulated engine: the records and EngineState's methods for them."""
from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone

from msr_lab.engine.common import EngineError, rfc3339, sha
from msr_lab.engine.process import Container

DEFAULT_NETWORKS = ("bridge", "host", "none")


class Volume:
    def __init__(self, name: str, driver: str = "local", labels: dict | None = None, options=None):
        self.name = name
        self.driver = driver
        self.labels = dict(labels or {})
        self.options = dict(options or {})
        self.created = time.time()

    def inspect(self) -> dict:
        return {"CreatedAt": datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="seconds"),
                "Driver": self.driver, "Labels": dict(self.labels),
                "Mountpoint": f"/var/lib/docker/volumes/{self.name}/_data", "Name": self.name,
                "Options": dict(self.options), "Scope": "local"}


class Network:
    def __init__(self, name: str, driver: str = "bridge", scope: str = "local", labels=None,
                 subnet: str | None = None, attachable: bool = False, internal: bool = False):
        self.name = name
        self.id = sha("network " + name + secrets.token_hex(4)) if name not in DEFAULT_NETWORKS \
            else sha("network " + name)
        self.driver = driver
        self.scope = scope
        self.labels = dict(labels or {})
        self.subnet = subnet
        self.attachable = attachable
        self.internal = internal
        self.created = time.time()



class ObjectStore:
    """EngineState's volume and network methods (they use its ``lab``, ``volumes``, ``networks`` and
    ``containers``)."""

    # ---- volumes
    def create_volume(self, name: str | None = None, driver: str = "local", labels: dict | None = None,
                      options: dict | None = None) -> Volume:
        with self.lab.lock:
            name = name or secrets.token_hex(32)
            v = self.volumes.get(name)
            if v is None:
                v = self.volumes[name] = Volume(name, driver or "local", labels, options)
        self.lab.changed()
        return v

    def get_volume(self, name: str) -> Volume:
        with self.lab.lock:
            v = self.volumes.get(name)
            if v is None:
                raise EngineError(404, f"get {name}: no such volume")
            return v

    def volume_users(self, name: str) -> list[Container]:
        with self.lab.lock:
            return [c for c in self.containers.values()
                    if any(m["Type"] == "volume" and m["Name"] == name for m in c.mounts)]

    def remove_volume(self, name: str, force: bool = False) -> None:
        with self.lab.lock:
            if name not in self.volumes:
                if force:
                    return
                raise EngineError(404, f"get {name}: no such volume")
            users = self.volume_users(name)
            if users:
                raise EngineError(409, f"remove {name}: volume is in use - [{', '.join(c.id for c in users)}]")
            del self.volumes[name]
        self.lab.changed()

    # ---- networks
    def _find_network(self, ref: str) -> Network | None:
        if ref in self.networks:
            return self.networks[ref]
        found = [n for n in self.networks.values() if n.id == ref or (len(ref) >= 3 and n.id.startswith(ref))]
        return found[0] if len(found) == 1 else None

    def get_network(self, ref: str) -> Network:
        with self.lab.lock:
            n = self._find_network(ref)
            if n is None:
                raise EngineError(404, f"network {ref} not found")
            return n

    def create_network(self, name: str, driver: str = "bridge", scope: str | None = None, labels=None,
                       subnet: str | None = None, attachable: bool = False, internal: bool = False) -> Network:
        with self.lab.lock:
            if name in self.networks:
                raise EngineError(409, f"network with name {name} already exists")
            scope = scope or ("swarm" if driver == "overlay" else "local")
            n = self.networks[name] = Network(name, driver, scope, labels, subnet, attachable, internal)
        self.lab.changed()
        return n

    def remove_network(self, ref: str) -> None:
        with self.lab.lock:
            n = self.get_network(ref)
            if n.name in DEFAULT_NETWORKS:
                raise EngineError(403, f"{n.name} is a pre-defined network and cannot be removed")
            users = self.network_containers(n)
            if users:
                raise EngineError(403, f"error while removing network: network {n.name} id {n.id} has "
                                       "active endpoints")
            del self.networks[n.name]
        self.lab.changed()

    def container_networks(self, c: Container) -> list[str]:
        names = [] if c.network_mode.startswith("container:") else [c.network_mode]
        for n in ((c.body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}):
            n = "bridge" if n == "default" else n
            if n not in names:
                names.append(n)
        return names

    def network_containers(self, n: Network) -> list[Container]:
        return [c for c in self.containers.values() if c.running and n.name in self.container_networks(c)]

    def network_inspect(self, n: Network, verbose_containers: bool = True) -> dict:
        subnet = n.subnet or ("" if n.driver in ("host", "null") else "172.17.0.0/16")
        ipam = [{"Subnet": subnet, "Gateway": subnet.rsplit(".", 2)[0] + ".0.1"}] if subnet else []
        out = {"Name": n.name, "Id": n.id, "Created": rfc3339(n.created), "Scope": n.scope,
               "Driver": n.driver, "EnableIPv4": True, "EnableIPv6": False,
               "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
               "Internal": n.internal, "Attachable": n.attachable, "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": {}, "Labels": dict(n.labels)}
        if verbose_containers:
            with self.lab.lock:
                out["Containers"] = {c.id: {"Name": c.name, "EndpointID": sha("ep " + c.id + n.id),
                                            "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
                                     for c in self.network_containers(n)}
        return out
