"""The other routes of the Engine API (shared/reference/engine-api.md): system (ping, version, info),
images (pull), volumes, networks and plugins."""
from __future__ import annotations

import json
import platform
import time

from msr_lab.common.httpbase import Request, Response
from msr_lab.common.httpserver import Exchange
from msr_lab.engine.api import (
    API_VERSION,
    ENGINE_VERSION,
    GIT_COMMIT,
    GO_VERSION,
    KERNEL,
    MIN_API_VERSION,
    EngineBase,
    bool_value,
    parse_filters,
)
from msr_lab.engine.common import NCPU, EngineError, ManifestUnknown, familiar, meminfo_total, parse_ref, rfc3339


class MiscRoutes(EngineBase):
    # ---- system (§1, §2, §11)
    async def ping(self, req: Request, ex: Exchange) -> Response:
        node = self.state.node
        swarm = "inactive"
        if getattr(node, "in_mke", False):
            swarm = "active/manager" if node.role == "manager" else "active/worker"
        headers = self.headers() + [("Builder-Version", "2"),
                                    ("Cache-Control", "no-cache, no-store, must-revalidate"),
                                    ("Pragma", "no-cache"), ("Swarm", swarm),
                                    ("Content-Type", "text/plain; charset=utf-8")]
        return Response(200, b"" if req.method == "HEAD" else b"OK", headers)

    async def version(self, req: Request, ex: Exchange) -> Response:
        build = "2025-05-30T07:00:00.000000000+00:00"
        details = {"ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": build, "Experimental": "false",
                   "GitCommit": GIT_COMMIT, "GoVersion": GO_VERSION, "KernelVersion": KERNEL,
                   "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
        return self.json(200, {
            "Platform": {"Name": "Mirantis Container Runtime (emulated by msr-lab)"},
            "Components": [
                {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                {"Name": "containerd", "Version": "1.7.27", "Details": {"GitCommit": "05044ec0a9a75232cad458027ca83437aae3f4da"}},
                {"Name": "runc", "Version": "1.2.5", "Details": {"GitCommit": "v1.2.5-0-g59923ef"}},
                {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": "de40ad0"}},
            ],
            "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": GIT_COMMIT, "GoVersion": GO_VERSION, "Os": "linux", "Arch": "amd64",
            "KernelVersion": KERNEL, "BuildTime": build,
        })

    def swarm_info(self) -> dict:
        node = self.state.node
        lab = self.state.lab
        if not getattr(node, "in_mke", False):
            return {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                    "Error": "", "RemoteManagers": None}
        with self.lock:
            mke = [n for n in lab.nodes.values() if n.in_mke]
            managers = [n for n in mke if n.role == "manager"]
        return {"NodeID": node.node_id, "NodeAddr": node.addr, "LocalNodeState": "active",
                "ControlAvailable": node.role == "manager", "Error": "",
                "RemoteManagers": [{"NodeID": n.node_id, "Addr": f"{n.addr}:2377"} for n in managers],
                "Nodes": len(mke), "Managers": len(managers),
                "Cluster": {"ID": "msrlab" + "0" * 19, "Version": {"Index": 1},
                            "CreatedAt": rfc3339(self.state.started), "UpdatedAt": rfc3339(self.state.started),
                            "Spec": {"Name": "default", "Labels": {}}, "RootRotationInProgress": False,
                            "DefaultAddrPool": ["10.0.0.0/8"], "SubnetSize": 24, "DataPathPort": 4789}}

    async def info(self, req: Request, ex: Exchange) -> Response:
        st = self.state
        commit = {"ID": "05044ec0a9a75232cad458027ca83437aae3f4da"}
        return self.json(200, {
            "ID": st.id, **st.counts(), "Name": st.node.name, "ServerVersion": ENGINE_VERSION,
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                                                   ["Using metacopy", "false"], ["Native Overlay Diff", "true"],
                                                   ["userxattr", "false"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                        "Authorization": None, "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald",
                                                       "json-file", "local", "splunk", "syslog"]},
            "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
            "Debug": False, "NFd": 30, "OomKillDisable": False, "NGoroutines": 50,
            "SystemTime": rfc3339(time.time()), "LoggingDriver": "json-file", "CgroupDriver": "systemd",
            "CgroupVersion": "2", "NEventsListener": 0, "KernelVersion": KERNEL,
            "OperatingSystem": "Ubuntu 22.04.5 LTS", "OSVersion": "22.04", "OSType": "linux",
            "Architecture": platform.machine() or "x86_64", "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"], "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}},
                "Mirrors": None},
            "NCPU": NCPU, "MemTotal": meminfo_total(), "GenericResources": None,
            "DockerRootDir": "/var/lib/docker", "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Labels": [], "ExperimentalBuild": False, "LiveRestoreEnabled": False,
            "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}},
            "DefaultRuntime": "runc", "Swarm": self.swarm_info(), "Isolation": "",
            "InitBinary": "docker-init", "ContainerdCommit": commit,
            "RuncCommit": {"ID": "v1.2.5-0-g59923ef"}, "InitCommit": {"ID": "de40ad0"},
            "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
            "CDISpecDirs": [], "Warnings": None,
        })

    # ---- images (§6.3, §9, §12)
    async def image_pull(self, req: Request, ex: Exchange) -> Response | None:
        if req.arg("fromSrc"):
            raise EngineError(500, "importing images is not supported by the lab")
        image = req.arg("fromImage") or ""
        tag = req.arg("tag") or ""
        if not image:
            raise EngineError(400, "fromImage is required")
        if tag:
            image += ("@" + tag) if tag.startswith("sha256:") else (":" + tag)
        repo, tag = parse_ref(image)
        in_band = None
        try:
            self.state.check_pullable(image)
        except ManifestUnknown as exc:
            in_band = exc
        await ex.start_stream(200, self.headers() + [("Content-Type", "application/json")])

        async def line(obj):
            await ex.send(json.dumps(obj).encode() + b"\r\n")
        name = familiar(image)
        if in_band is not None:
            await line({"status": f"Pulling from {repo}", "id": tag})
            await line({"errorDetail": {"message": in_band.message}, "error": in_band.message})
            await ex.end()
            return None
        present = self.state.find_image(name) is not None
        img = self.state.pull(image)
        if not present:
            await line({"status": f"Pulling from {repo}", "id": tag.lstrip("@")})
            for layer in img.layers:
                lid = layer[7:19]
                await line({"status": "Pulling fs layer", "progressDetail": {}, "id": lid})
            for layer in img.layers:
                lid = layer[7:19]
                await line({"status": "Downloading", "progressDetail": {"current": 512, "total": 1024},
                            "progress": "[=========================>                         ]     512B/1.024kB",
                            "id": lid})
                await line({"status": "Verifying Checksum", "progressDetail": {}, "id": lid})
                await line({"status": "Download complete", "progressDetail": {}, "id": lid})
                await line({"status": "Extracting", "progressDetail": {"current": 1024, "total": 1024},
                            "progress": "[==================================================>]  1.024kB/1.024kB",
                            "id": lid})
                await line({"status": "Pull complete", "progressDetail": {}, "id": lid})
            await line({"status": f"Digest: {img.digest}"})
            await line({"status": f"Status: Downloaded newer image for {name}"})
        else:
            await line({"status": f"Pulling from {repo}", "id": tag.lstrip("@")})
            await line({"status": f"Digest: {img.digest}"})
            await line({"status": f"Status: Image is up to date for {name}"})
        await ex.end()
        return None

    async def images_list(self, req: Request, ex: Exchange) -> Response:
        with self.lock:
            images = list(self.state.images.values())
        return self.json(200, [img.summary() for img in images])

    async def image_inspect(self, req: Request, ex: Exchange, ref: str) -> Response:
        img = self.state.find_image(ref)
        if img is None:
            raise EngineError(404, f"No such image: {ref}")
        return self.json(200, img.inspect())

    async def image_delete(self, req: Request, ex: Exchange, ref: str) -> Response:
        img = self.state.remove_image(ref, force=bool_value(req.arg("force")))
        return self.json(200, [{"Untagged": img.name}, {"Deleted": img.id}])

    # ---- volumes (§5, §8)
    async def volumes_list(self, req: Request, ex: Exchange) -> Response:
        filters = parse_filters(req.arg("filters"))
        with self.lock:
            vols = list(self.state.volumes.values())
            if filters.get("name"):
                vols = [v for v in vols if any(n in v.name for n in filters["name"])]
            for lab in filters.get("label", []):
                k, eq, val = lab.partition("=")
                vols = [v for v in vols if k in v.labels and (not eq or v.labels[k] == val)]
            if filters.get("dangling"):
                dangling = bool_value(filters["dangling"][0])
                vols = [v for v in vols if (not self.state.volume_users(v.name)) == dangling]
            out = [v.inspect() for v in vols]
        return self.json(200, {"Volumes": out, "Warnings": None})

    async def volume_create(self, req: Request, ex: Exchange) -> Response:
        body = req.json() or {}
        v = self.state.create_volume(body.get("Name") or None, body.get("Driver") or "local",
                                     body.get("Labels"), body.get("DriverOpts"))
        return self.json(201, v.inspect())

    async def volume_inspect(self, req: Request, ex: Exchange, name: str) -> Response:
        return self.json(200, self.state.get_volume(name).inspect())

    async def volume_delete(self, req: Request, ex: Exchange, name: str) -> Response:
        self.state.remove_volume(name, force=bool_value(req.arg("force")))
        return Response(204, b"", self.headers())

    # ---- networks (§5)
    async def networks_list(self, req: Request, ex: Exchange) -> Response:
        filters = parse_filters(req.arg("filters"))
        with self.lock:
            nets = list(self.state.networks.values())
            if filters.get("name"):
                nets = [n for n in nets if any(f in n.name for f in filters["name"])]
            if filters.get("driver"):
                nets = [n for n in nets if n.driver in filters["driver"]]
            if filters.get("id"):
                nets = [n for n in nets if any(n.id.startswith(f) for f in filters["id"])]
            out = [self.state.network_inspect(n, verbose_containers=False) for n in nets]
        for item in out:
            item["Containers"] = {}
        return self.json(200, out)

    async def network_inspect(self, req: Request, ex: Exchange, ref: str) -> Response:
        return self.json(200, self.state.network_inspect(self.state.get_network(ref)))

    async def network_create(self, req: Request, ex: Exchange) -> Response:
        body = req.json() or {}
        if not body.get("Name"):
            raise EngineError(400, "network name is required")
        subnet = None
        for cfg in (body.get("IPAM") or {}).get("Config") or []:
            subnet = cfg.get("Subnet") or subnet
        n = self.state.create_network(body["Name"], body.get("Driver") or "bridge", labels=body.get("Labels"),
                                      subnet=subnet, attachable=bool(body.get("Attachable")),
                                      internal=bool(body.get("Internal")))
        return self.json(201, {"Id": n.id, "Warning": ""})

    async def network_connect(self, req: Request, ex: Exchange, ref: str, action: str) -> Response:
        n = self.state.get_network(ref)
        body = req.json() or {}
        c = self.container(body.get("Container") or "")
        with self.lock:
            nc = c.body.setdefault("NetworkingConfig", {}) or {}
            c.body["NetworkingConfig"] = nc
            eps = nc.setdefault("EndpointsConfig", {}) or {}
            nc["EndpointsConfig"] = eps
            if action == "connect":
                eps[n.name] = body.get("EndpointConfig") or {}
            else:
                eps.pop(n.name, None)
        self.state.lab.changed()
        return Response(200, b"", self.headers())

    async def network_delete(self, req: Request, ex: Exchange, ref: str) -> Response:
        self.state.remove_network(ref)
        return Response(204, b"", self.headers())

    # ---- plugins (§4: the inspect fallback wants a 404)
    async def plugins_list(self, req: Request, ex: Exchange) -> Response:
        return self.json(200, [])

    async def plugin_inspect(self, req: Request, ex: Exchange, name: str) -> Response:
        raise EngineError(404, f'plugin "{name}" not found')
