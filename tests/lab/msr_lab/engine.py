"""The Docker Engine API of one lab node, served on a unix socket over an EngineState.

Wire behaviour follows shared/reference/engine-api.md (docker CLI 28.2.2, docker SDK 7.2.0); the section
numbers in comments point there.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import struct
import time
from urllib.parse import unquote

from . import engine_state as es
from .engine_state import EngineError, EngineState, ManifestUnknown, familiar, parse_ref, rfc3339
from .httpbase import Request, Response, json_response
from .httpserver import Exchange, error_body, serve_handler

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "28.2.2"
SERVER = f"Docker/{ENGINE_VERSION} (linux)"
GIT_COMMIT = "45873be"
GO_VERSION = "go1.24.3"
KERNEL = platform.release()

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")


def bool_value(v: str | None) -> bool:
    # moby's httputils.BoolValue
    return v is not None and v.strip().lower() not in ("", "0", "no", "false", "none")


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Both forms: CLI map of maps {"k":{"v":true}} and SDK map of lists {"k":["v"]}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise EngineError(400, f"invalid filter: {raw}") from None
    if not isinstance(data, dict):
        raise EngineError(400, f"invalid filter: {raw}")
    out = {}
    for key, val in data.items():
        if isinstance(val, dict):
            out[key] = [k for k, on in val.items() if on]
        elif isinstance(val, list):
            out[key] = [str(v) for v in val]
        else:
            out[key] = [str(val)]
    return out


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class _Watch:
    """An asyncio.Event set (thread-safely) whenever the container changes."""

    def __init__(self, state: EngineState, c: es.Container):
        self.state, self.c = state, c
        self.ev = asyncio.Event()
        loop = asyncio.get_running_loop()

        def poke():
            try:
                loop.call_soon_threadsafe(self.ev.set)
            except RuntimeError:  # the loop is closed: nobody listens any more
                pass
        self.fn = poke

    def __enter__(self):
        self.state.add_watcher(self.c, self.fn)
        return self

    def __exit__(self, *exc):
        self.state.remove_watcher(self.c, self.fn)


class EngineServer:
    """``handler(req, ex)`` for httpserver.serve_handler."""

    def __init__(self, state: EngineState):
        self.state = state
        self.lock = state.lab.lock
        c = r"/containers/([^/]+)"
        self.routes = [
            ("GET", r"/_ping", self.ping),
            ("GET", r"/version", self.version),
            ("GET", r"/info", self.info),
            ("GET", r"/containers/json", self.containers_list),
            ("POST", r"/containers/create", self.container_create),
            ("GET", c + r"/json", self.container_inspect),
            ("POST", c + r"/attach", self.container_attach),
            ("POST", c + r"/wait", self.container_wait),
            ("POST", c + r"/start", self.container_start),
            ("POST", c + r"/stop", self.container_stop),
            ("POST", c + r"/restart", self.container_restart),
            ("POST", c + r"/kill", self.container_kill),
            ("POST", c + r"/resize", self.container_resize),
            ("GET", c + r"/logs", self.container_logs),
            ("DELETE", c, self.container_delete),
            ("POST", r"/images/create", self.image_pull),
            ("GET", r"/images/json", self.images_list),
            ("GET", r"/images/(.+)/json", self.image_inspect),
            ("DELETE", r"/images/(.+)", self.image_delete),
            ("GET", r"/volumes", self.volumes_list),
            ("POST", r"/volumes/create", self.volume_create),
            ("GET", r"/volumes/([^/]+)", self.volume_inspect),
            ("DELETE", r"/volumes/([^/]+)", self.volume_delete),
            ("GET", r"/networks", self.networks_list),
            ("POST", r"/networks/create", self.network_create),
            ("POST", r"/networks/([^/]+)/(connect|disconnect)", self.network_connect),
            ("GET", r"/networks/([^/]+)", self.network_inspect),
            ("DELETE", r"/networks/([^/]+)", self.network_delete),
            ("GET", r"/plugins", self.plugins_list),
            ("GET", r"/plugins/(.+)/json", self.plugin_inspect),
        ]
        self.routes = [(m, re.compile(p), fn) for m, p, fn in self.routes]

    # ---- plumbing
    def headers(self) -> list[tuple[str, str]]:
        return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                ("Server", SERVER)]

    def error(self, status: int, message: str) -> Response:
        resp = error_body(status, message)
        resp.headers += self.headers()
        return resp

    def json(self, status: int, obj) -> Response:
        return json_response(status, obj, self.headers())

    async def __call__(self, req: Request, ex: Exchange) -> Response | None:
        path = unquote(req.path)
        m = _VERSION_PREFIX.match(path)
        ex.api = (int(m.group(1)), int(m.group(2))) if m else (1, 50)
        if m:
            path = path[m.end():]
        path = path.rstrip("/") or "/"
        method = "GET" if req.method == "HEAD" else req.method
        for rmethod, rx, fn in self.routes:
            found = rx.fullmatch(path)
            if found and rmethod == method:
                try:
                    return await fn(req, ex, *found.groups())
                except EngineError as exc:
                    if ex.started:
                        raise
                    return self.error(exc.status, exc.message)
                except ValueError as exc:  # bad JSON body or query number
                    if ex.started:
                        raise
                    return self.error(400, str(exc))
        return self.error(404, "page not found")

    def container(self, ref: str) -> es.Container:
        return self.state.get_container(ref)

    async def follow(self, c: es.Container, tick, ex: Exchange) -> bool:
        """Call ``tick()`` (under the lock; returns (bytes, done)) at every change of c and send the bytes
        as chunks, until done. False if the client hung up first."""
        gone = asyncio.ensure_future(ex.client_gone())
        try:
            with _Watch(self.state, c) as w:
                while True:
                    w.ev.clear()
                    with self.lock:
                        data, done = tick()
                    if data:
                        await ex.send(data)
                    if done:
                        return True
                    waiter = asyncio.ensure_future(w.ev.wait())
                    finished, _ = await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if gone in finished:
                        return False
        finally:
            gone.cancel()  # and let it finish, so the connection can read the next request
            await asyncio.gather(gone, return_exceptions=True)

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
            "NCPU": es.NCPU, "MemTotal": es.meminfo_total(), "GenericResources": None,
            "DockerRootDir": "/var/lib/docker", "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Labels": [], "ExperimentalBuild": False, "LiveRestoreEnabled": False,
            "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}},
            "DefaultRuntime": "runc", "Swarm": self.swarm_info(), "Isolation": "",
            "InitBinary": "docker-init", "ContainerdCommit": commit,
            "RuncCommit": {"ID": "v1.2.5-0-g59923ef"}, "InitCommit": {"ID": "de40ad0"},
            "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
            "CDISpecDirs": [], "Warnings": None,
        })

    # ---- containers (§3, §4, §6, §7, §8, §13–15)
    async def containers_list(self, req: Request, ex: Exchange) -> Response:
        limit = int(req.arg("limit") or -1)
        filters = parse_filters(req.arg("filters"))
        items = self.state.list_containers(all=bool_value(req.arg("all")) or limit > 0, filters=filters)
        if limit > 0:
            items = items[:limit]
        return self.json(200, [self.state.summary(c) for c in items])

    async def container_create(self, req: Request, ex: Exchange) -> Response:
        body = req.json() or {}
        if not isinstance(body, dict):
            raise EngineError(400, "invalid JSON body")
        c = self.state.create_container(req.arg("name"), body)
        return self.json(201, {"Id": c.id, "Warnings": []})

    async def container_inspect(self, req: Request, ex: Exchange, ref: str) -> Response:
        return self.json(200, self.state.inspect(self.container(ref)))

    async def container_start(self, req: Request, ex: Exchange, ref: str) -> Response:
        started = self.state.start_container(self.container(ref))
        return Response(204 if started else 304, b"", self.headers())

    async def container_stop(self, req: Request, ex: Exchange, ref: str) -> Response:
        stopped = self.state.stop_container(self.container(ref))
        return Response(204 if stopped else 304, b"", self.headers())

    async def container_restart(self, req: Request, ex: Exchange, ref: str) -> Response:
        self.state.restart_container(self.container(ref))
        return Response(204, b"", self.headers())

    async def container_kill(self, req: Request, ex: Exchange, ref: str) -> Response:
        self.state.kill_container(self.container(ref), req.arg("signal") or "KILL")
        return Response(204, b"", self.headers())

    async def container_resize(self, req: Request, ex: Exchange, ref: str) -> Response:
        self.container(ref)
        return Response(200, b"", self.headers() + [("Content-Type", "text/plain; charset=utf-8")])

    async def container_delete(self, req: Request, ex: Exchange, ref: str) -> Response:
        self.state.remove_container(self.container(ref), force=bool_value(req.arg("force")),
                                    volumes=bool_value(req.arg("v")))
        return Response(204, b"", self.headers())

    async def container_wait(self, req: Request, ex: Exchange, ref: str) -> None:
        c = self.container(ref)
        with self.lock:
            done = self.state.wait_predicate(c, req.arg("condition"))
        # headers at once: the CLI sends `start` only after it has them (§19.1)
        await ex.start_stream(200, self.headers() + [("Content-Type", "application/json")])
        if await self.follow(c, lambda: (b"", done()), ex):
            await ex.send(json.dumps({"StatusCode": c.exit_code}).encode() + b"\n")
            await ex.end()
        else:
            ex.keep_alive = False  # the client left; the container goes on (§19.18)
            ex.streaming = False

    def _stream_type(self, c: es.Container, ex: Exchange) -> str:
        if c.tty or ex.api < (1, 42):
            return "application/vnd.docker.raw-stream"
        return "application/vnd.docker.multiplexed-stream"

    @staticmethod
    def _encode(c: es.Container, records, streams: set[int], timestamps: bool = False) -> bytes:
        out = []
        for stream, data, t in records:
            if stream not in streams:
                continue
            if timestamps:
                data = rfc3339(t).encode() + b" " + data
            out.append(data if c.tty else frame(stream, data))
        return b"".join(out)

    async def container_logs(self, req: Request, ex: Exchange, ref: str) -> None:
        c = self.container(ref)
        streams = {s for s, name in ((1, "stdout"), (2, "stderr")) if bool_value(req.arg(name))}
        if not streams:
            raise EngineError(400, "Bad parameters: you must choose at least one stream")
        follow = bool_value(req.arg("follow"))
        timestamps = bool_value(req.arg("timestamps"))
        since = float(req.arg("since") or 0)
        until = float(req.arg("until") or 0)
        tail = req.arg("tail") or "all"
        with self.lock:
            records = [r for r in c.output if r[0] in streams and r[2] >= since and (not until or r[2] <= until)]
            if tail != "all":
                n = int(tail)
                records = records[-n:] if n > 0 else []
            first = self._encode(c, records, streams, timestamps)
            idx = len(c.output)
            live = follow and c.running and not until
        await ex.start_stream(200, self.headers() + [("Content-Type", self._stream_type(c, ex))])
        await ex.send(first)
        if not live:
            await ex.end()
            return
        pos = [idx]

        def tick():
            new = c.output[pos[0]:]
            pos[0] = len(c.output)
            return self._encode(c, new, streams, timestamps), c.removed or not c.running
        if await self.follow(c, tick, ex):
            await ex.end()
        else:
            ex.keep_alive = False
            ex.streaming = False

    async def container_attach(self, req: Request, ex: Exchange, ref: str) -> None:
        c = self.container(ref)
        streams = {s for s, name in ((1, "stdout"), (2, "stderr")) if bool_value(req.arg(name))}
        want_stdin = bool_value(req.arg("stdin"))
        ctype = self._stream_type(c, ex)
        if "upgrade" in req.headers:
            conn = await ex.hijack(101, "UPGRADED", [("Content-Type", ctype), ("Connection", "Upgrade"),
                                                     ("Upgrade", "tcp")])
        else:  # moby answers 200 and then streams raw when the client did not ask to upgrade
            conn = await ex.hijack(200, "OK", [("Content-Type", ctype)])
        with self.lock:
            pos = [0 if bool_value(req.arg("logs")) else len(c.output)]
            exits = c.exit_count
            # a stopped container streams its next run (`docker start -a` attaches before it starts)
            finished = c.removed or not bool_value(req.arg("stream"))

        async def pump_stdin():
            # raw stdin; EOF is the client's half-close, not a hang-up: keep writing output (§6.6)
            while True:
                data = await conn.read_some()
                if not data:
                    if want_stdin and c.stdin_once:
                        self.state.close_stdin(c)
                    return
                if want_stdin:
                    self.state.write_stdin(c, data)

        stdin_task = asyncio.ensure_future(pump_stdin())

        def tick():
            new = c.output[pos[0]:]
            pos[0] = len(c.output)
            done = finished or c.removed or c.exit_count > exits
            return self._encode(c, new, streams), done

        try:
            await self._follow_raw(c, tick, conn.write)
        except (ConnectionError, OSError):
            pass  # the client hung up; the container goes on
        finally:
            stdin_task.cancel()
            conn.close()  # the CLI reads the exit status only after this EOF (§19.3)

    async def _follow_raw(self, c: es.Container, tick, send) -> None:
        with _Watch(self.state, c) as w:
            while True:
                w.ev.clear()
                with self.lock:
                    data, done = tick()
                if data:
                    await send(data)
                if done:
                    return
                await w.ev.wait()

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


async def serve_engine(engine_state: EngineState, path: str) -> "asyncio.Server":
    """Listen on the unix socket ``path`` (the node's /var/run/docker.sock)."""
    server = await serve_handler(EngineServer(engine_state), path=path)
    os.chmod(path, 0o660)
    return server
