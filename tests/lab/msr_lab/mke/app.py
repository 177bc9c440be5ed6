"""MKE 3.x as the MSR tooling sees it: login, the CA, and the Docker API aggregated over the MKE nodes.

One MkeApp serves every manager (tokens are cluster-wide, as in MKE). MKE cannot reach the engine of a
node that is down, partitioned or whose engine is stopped, so that node's containers are missing from
/containers/json at once; but /nodes shows it "down" only once no heartbeat came for `heartbeat_seconds`
(until then it still reads "ready"). The daemon calls `tick(now)` to record heartbeats.
"""
from __future__ import annotations

import asyncio
import re
import secrets
import time

from msr_lab.common.httpbase import Request, Response, json_response, text_response

# MKE proxies the Engine API: its filters and booleans are parsed exactly as the engine does
from msr_lab.engine.api import bool_value, parse_filters
from msr_lab.mke import config, proxy
from msr_lab.mke.auth import issue_token, request_authorized
from msr_lab.mke.scheduler import PlacementError

MKE_VERSION = "3.7.5"
ENGINE_VERSION = "23.0.9"
API_VERSION = "1.41"
_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/)")
ERROR_CODES = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}


def ucp_error(status: int, message: str, code: str | None = None) -> Response:
    return json_response(status, {"errors": [{"code": code or ERROR_CODES.get(status, "UNKNOWN"),
                                              "message": message}]})


def docker_error(status: int, message: str) -> Response:
    return json_response(status, {"message": message})


class MkeApp:
    def __init__(self, lab):
        self.lab = lab
        self.cluster_id = secrets.token_hex(13)[:25]
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        self.started = lab.now()
        self.heartbeats: dict[str, float] = {}   # node name -> last heartbeat MKE received

    async def __call__(self, req: Request) -> Response:
        faults = self.lab.faults
        if faults.mke_latency_ms:
            await asyncio.sleep(faults.mke_latency_ms / 1000)
        fault = self._take_fault()
        if fault is not None:
            return ucp_error(fault, f"injected MKE fault: status {fault}")
        path = _VERSION_PREFIX.sub("", req.path) or "/"
        method = "GET" if req.method == "HEAD" else req.method
        if path == "/_ping" and method == "GET":
            return text_response(200, "OK")
        if path == "/ca" and method == "GET":
            return text_response(200, self.lab.config.get("ca_pem", ""), "application/x-pem-file")
        if path == "/auth/login" and method == "POST":
            return self.login(req)
        if not self.authorized(req):
            return ucp_error(401, "unauthorized: authentication required")
        try:
            if path == "/nodes" and method == "GET":
                return self.list_nodes(req)
            if path.startswith("/nodes/") and path.endswith("/update") and method == "POST":
                return self.update_node(path[len("/nodes/"):-len("/update")], req)
            if path.startswith("/nodes/") and method == "GET":
                return self.get_node(path[len("/nodes/"):])
            if path == "/info" and method == "GET":
                return json_response(200, self.info())
            if path == "/version" and method == "GET":
                return json_response(200, self.version())
            if path == "/containers/json" and method == "GET":
                return self.list_containers(req)
            if path == "/api/ucp/config-toml":
                return self.config_toml(req, method)
            routed = self.proxied(req, path, method)
            if routed is not None:
                return routed
        except PlacementError as exc:
            if exc.raw:   # MKE's own body, which the docker client prints as it is (msr2.md §1.10)
                return text_response(exc.status, exc.message)
            return docker_error(exc.status, exc.message)
        except ValueError as exc:
            return docker_error(400, str(exc))
        except Exception as exc:  # engine_state.EngineError: the engine's own status and message
            if hasattr(exc, "status") and hasattr(exc, "message"):
                return docker_error(exc.status, exc.message)
            raise
        return docker_error(404, "page not found")

    def config_toml(self, req: Request, method: str) -> Response:
        if method == "GET":
            return text_response(200, config.render(config.current(self.lab)), "application/toml")
        if method != "PUT":
            return docker_error(405, f"method {method} not allowed")
        try:
            doc = config.parse(req.body.decode("utf-8", "replace"))
        except config.ConfigError as exc:
            return ucp_error(400, str(exc), "INVALID_CONFIG")
        with self.lab.lock:
            self.lab.mke_config = doc
        self.lab.changed()
        return json_response(200, {"message": "the MKE configuration was updated"})

    def proxied(self, req: Request, path: str, method: str) -> Response | None:
        """Container and volume calls MKE proxies to a node's engine (proxy.py); None for other paths."""
        if method == "POST" and path == "/containers/create":
            return json_response(201, proxy.create_container(self.lab, req.arg("name"), req.json() or {}))
        m = re.fullmatch(r"/containers/(.+)/(start|json)", path)
        if m and method == ("POST" if m.group(2) == "start" else "GET"):
            if m.group(2) == "json":
                return json_response(200, proxy.inspect_container(self.lab, m.group(1)))
            return Response(204 if proxy.start_container(self.lab, m.group(1)) else 304, b"")
        if method == "DELETE" and path.startswith("/containers/"):
            proxy.remove_container(self.lab, path[len("/containers/"):], bool_value(req.arg("force")),
                                   bool_value(req.arg("v")))
            return Response(204, b"")
        if method == "GET" and path == "/volumes":
            return json_response(200, proxy.list_volumes(self.lab))
        if method == "DELETE" and path.startswith("/volumes/"):
            proxy.remove_volume(self.lab, path[len("/volumes/"):], bool_value(req.arg("force")))
            return Response(204, b"")
        return None

    def _take_fault(self) -> int | None:
        with self.lab.lock:
            faults = self.lab.faults
            status = faults.mke_status
            if status is None:
                return None
            if faults.mke_error_count > 0:
                faults.mke_error_count -= 1
                if faults.mke_error_count == 0:  # 0 would mean "forever": the fault is spent, clear it
                    faults.mke_status = None
            return status

    def authorized(self, req: Request) -> bool:
        return request_authorized(self.lab, req)

    def login(self, req: Request) -> Response:
        try:
            body = req.json()
            username, password = body["username"], body["password"]
        except (ValueError, KeyError, TypeError):
            return ucp_error(400, "invalid login request: expected a JSON object with username and password",
                             "INVALID_JSON")
        cfg = self.lab.config
        if username != cfg.get("mke_username", "admin") or password != cfg.get("mke_password"):
            return ucp_error(401, "invalid username or password")
        token = issue_token(self.lab, username)
        return json_response(200, {"auth_token": token, "token_id": secrets.token_hex(16),
                                   "user_agent": req.headers.get("user-agent", "")})

    # ---------------------------------------------------------------- nodes

    def tick(self, now: float) -> None:
        """Heartbeats: every node MKE can reach now checks in."""
        with self.lab.lock:
            for n in self.lab.mke_nodes():
                if n.reachable:
                    self.heartbeats[n.name] = now

    def shown_ready(self, node) -> bool:
        """What /nodes says: ready until the heartbeat delay has passed since the last heartbeat."""
        with self.lab.lock:
            now = self.lab.now()
            if node.reachable:
                self.heartbeats[node.name] = now
                return True
            last = self.heartbeats.get(node.name, self.started)
            return now - last < self.lab.timing("heartbeat_seconds")

    def _leader(self):
        managers = [n for n in self.lab.mke_nodes() if n.role == "manager"]
        return next((n for n in managers if n.reachable), managers[0] if managers else None)

    def node_json(self, node) -> dict:
        up = self.shown_ready(node)
        kind = "manager" if node.role == "manager" else "worker"
        labels = {"com.docker.ucp.SANs": f"{node.addr},{node.name}", "com.docker.ucp.access.label": "/System",
                  "com.docker.ucp.collection": "system" if kind == "manager" else "shared",
                  "com.docker.ucp.collection.swarm": "true", "com.docker.ucp.orchestrator.kubernetes": "false",
                  "com.docker.ucp.orchestrator.swarm": "true"}
        labels.update(node.labels)
        out = {"ID": node.node_id, "Version": {"Index": node.version}, "CreatedAt": self.created, "UpdatedAt": self.created,
               "Spec": {"Labels": labels, "Role": kind, "Availability": node.availability},
               "Description": {"Hostname": node.name, "Platform": {"Architecture": "x86_64", "OS": "linux"},
                               "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 4 * 1024 ** 3},
                               "Engine": {"EngineVersion": ENGINE_VERSION}},
               "Status": {"State": "ready" if up else "down",
                          "Message": f"Healthy MKE {kind}" if up else "Node is down: heartbeat failure",
                          "Addr": node.addr}}
        if kind == "manager":
            out["ManagerStatus"] = {"Leader": node is self._leader() and up,
                                    "Reachability": "reachable" if up else "unreachable",
                                    "Addr": f"{node.addr}:2377"}
        return out

    def list_nodes(self, req: Request) -> Response:
        filters = parse_filters(req.arg("filters"))
        with self.lab.lock:
            items = [self.node_json(n) for n in self.lab.mke_nodes()]
        return json_response(200, [i for i in items if _node_matches(i, filters)])

    def get_node(self, ref: str) -> Response:
        with self.lab.lock:
            for n in self.lab.mke_nodes():
                if ref in (n.node_id, n.name) or (len(ref) >= 3 and n.node_id.startswith(ref)):
                    return json_response(200, self.node_json(n))
        return docker_error(404, f"node {ref} not found")

    def update_node(self, ref: str, req: Request) -> Response:
        """POST /nodes/{id}/update?version=N with the whole NodeSpec, as `docker node update` sends it through
        MKE: labels and availability change; N must be the node's current Version.Index."""
        spec = req.json()
        if not isinstance(spec, dict):
            return docker_error(400, "invalid JSON: the body must be a NodeSpec object")
        version = req.arg("version")
        if version is None or not version.isdigit():
            return docker_error(400, "invalid node version '%s': must be an unsigned 64 bit integer" % version)
        with self.lab.lock:
            node = next((n for n in self.lab.mke_nodes()
                         if ref in (n.node_id, n.name) or (len(ref) >= 3 and n.node_id.startswith(ref))), None)
            if node is None:
                return docker_error(404, f"node {ref} not found")
            if int(version) != node.version:
                return docker_error(500, "rpc error: code = Unknown desc = update out of sequence")
            role = spec.get("Role", "worker" if node.role == "worker" else "manager")
            if role != node.role:
                return docker_error(400, "msr-lab: promoting or demoting a node is not emulated")
            availability = spec.get("Availability", node.availability)
            if availability not in ("active", "pause", "drain"):
                return docker_error(400, f"invalid availability '{availability}'")
            # MKE's own com.docker.ucp.* labels are rendered from the node; the rest is the spec's
            node.labels = {k: str(v) for k, v in (spec.get("Labels") or {}).items() if not k.startswith("com.docker.ucp.")}
            node.availability = availability
            node.version += 1
        return text_response(200, "")

    def info(self) -> dict:
        with self.lab.lock:
            nodes = self.lab.mke_nodes()
            managers = [n for n in nodes if n.role == "manager"]
            leader = self._leader()
            counts = [0, 0, 0]
            for n in nodes:
                if n.engine is None or not n.reachable:
                    continue
                for c in n.engine.containers.values():
                    counts[0] += 1
                    counts[1 if c.status == "running" else 2] += 1
            return {"ID": self.cluster_id, "Name": leader.name if leader else "", "ServerVersion": f"ucp/{MKE_VERSION}",
                    "Containers": counts[0], "ContainersRunning": counts[1], "ContainersPaused": 0,
                    "ContainersStopped": counts[2], "Images": 0, "OSType": "linux", "Architecture": "x86_64",
                    "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "NCPU": 2,
                    "Swarm": {"NodeID": leader.node_id if leader else "", "NodeAddr": leader.addr if leader else "",
                              "LocalNodeState": "active", "ControlAvailable": True, "Error": "",
                              "RemoteManagers": [{"NodeID": m.node_id, "Addr": f"{m.addr}:2377"} for m in managers],
                              "Nodes": len(nodes), "Managers": len(managers),
                              "Cluster": {"ID": self.cluster_id}},
                    "Labels": [], "Warnings": None}

    def version(self) -> dict:
        return {"Platform": {"Name": f"Mirantis Kubernetes Engine {MKE_VERSION}"}, "Version": f"ucp/{MKE_VERSION}",
                "ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
                "KernelVersion": "6.1.0", "GoVersion": "go1.21", "GitCommit": "msrlab",
                "Components": [{"Name": "Universal Control Plane", "Version": MKE_VERSION,
                                "Details": {"Version": MKE_VERSION, "ApiVersion": API_VERSION}}]}

    # ---------------------------------------------------------------- containers

    def list_containers(self, req: Request) -> Response:
        filters = parse_filters(req.arg("filters"))
        show_all = bool_value(req.arg("all"))
        out = []
        with self.lab.lock:
            for node in self.lab.mke_nodes():
                if node.engine is None or not node.reachable:
                    continue  # MKE cannot reach that engine
                for c in node.engine.list_containers(show_all, filters):
                    item = dict(node.engine.summary(c))
                    item["Names"] = [f"/{node.name}/{n.lstrip('/')}" for n in item.get("Names", [f"/{c.name}"])]
                    out.append(item)
        out.sort(key=lambda i: i.get("Created", 0), reverse=True)
        limit = req.arg("limit")
        if limit and limit.lstrip("-").isdigit() and int(limit) > 0:
            out = out[:int(limit)]
        return json_response(200, out)


def _node_matches(item: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "role" and item["Spec"]["Role"] not in values:
            return False
        if key == "name" and not any(v in item["Description"]["Hostname"] for v in values):
            return False
        if key == "id" and not any(item["ID"].startswith(v) for v in values):
            return False
        if key == "membership" and "accepted" not in values:
            return False
        if key in ("node.label", "label"):
            labels = item["Spec"]["Labels"]
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
    return True
