"""EngineState's container listing (with the API's filters) and its JSON views: /containers/json items,
inspect, counts."""
from __future__ import annotations

import re

from msr_lab.engine.common import EngineError, parse_ref, rfc3339, sha
from msr_lab.engine.process import Container


class ContainerViews:
    """EngineState's listing and view methods (they use its ``lab``, ``containers`` and ``images`` and the
    network methods of ObjectStore)."""

    def list_containers(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[Container]:
        filters = {k: list(v) for k, v in (filters or {}).items()}
        with self.lab.lock:
            out = []
            for c in sorted(self.containers.values(), key=lambda c: c.created, reverse=True):
                if not all and not c.running and "status" not in filters:
                    continue
                if self._matches(c, filters):
                    out.append(c)
            return out

    def _matches(self, c: Container, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "label":
                for v in values:  # every label filter must hold
                    k, eq, val = v.partition("=")
                    if k not in c.labels or (eq and c.labels[k] != val):
                        return False
                continue
            if key == "name":
                ok = any(re.search(v, "/" + c.name) for v in values)
            elif key == "id":
                ok = any(c.id.startswith(v) for v in values)
            elif key == "status":
                ok = c.status in values
            elif key == "health":
                ok = (c.health or "none") in values
            elif key == "ancestor":
                ok = any(self._is_ancestor(c, v) for v in values)
            elif key == "exited":
                ok = c.status == "exited" and str(c.exit_code) in values
            elif key == "network":
                ok = any(v in self.container_networks(c) for v in values)
            elif key == "volume":
                ok = any(m.get("Name") == v or m["Destination"] == v for m in c.mounts for v in values)
            else:
                raise EngineError(400, f"invalid filter '{key}'")
            if not ok:
                return False
        return True

    def _is_ancestor(self, c: Container, ref: str) -> bool:
        if c.image_id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:")) and len(ref) >= 4:
            return True
        repo, tag = parse_ref(ref)
        crepo, ctag = parse_ref(c.image)
        if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
            return crepo == repo
        return (crepo, ctag) == (repo, tag)

    def _published(self, c: Container) -> list[tuple[str, int, str, str]]:
        """(host ip, container port, protocol, host port) of a running container's published ports."""
        if not c.running:
            return []
        out = []
        for key, bindings in sorted((c.host_config.get("PortBindings") or {}).items()):
            port, _, proto = key.partition("/")
            for b in bindings or []:
                out.append((b.get("HostIp") or "0.0.0.0", int(port), proto or "tcp", str(b.get("HostPort") or port)))
        return out

    def _ports_list(self, c: Container) -> list[dict]:
        return [{"IP": ip, "PrivatePort": port, "PublicPort": int(host), "Type": proto}
                for ip, port, proto, host in self._published(c)]

    def _ports_map(self, c: Container) -> dict:
        ports: dict[str, list] = {}
        for ip, port, proto, host in self._published(c):
            ports.setdefault(f"{port}/{proto}", []).append({"HostIp": ip, "HostPort": host})
        return ports

    def _command(self, c: Container) -> str:
        return " ".join(c.entrypoint + c.cmd)

    def _networks_view(self, c: Container) -> dict:
        out = {}
        for name in self.container_networks(c):
            n = self._find_network(name)
            out[name] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                         "NetworkID": n.id if n else "", "EndpointID": sha("ep " + c.id) if c.running else "",
                         "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                         "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None,
                         "DNSNames": None}
        return out

    def _mounts_view(self, c: Container) -> list[dict]:
        out = []
        for m in c.mounts:
            item = {"Type": m["Type"]}
            if m["Type"] == "volume":
                item.update(Name=m["Name"], Source=m["Source"], Destination=m["Destination"],
                            Driver=m.get("Driver", "local"), Mode=m["Mode"], RW=m["RW"], Propagation="")
            else:
                item.update(Source=m["Source"], Destination=m["Destination"], Mode=m["Mode"], RW=m["RW"],
                            Propagation=m["Propagation"])
            out.append(item)
        return out

    def summary(self, c: Container) -> dict:
        with self.lab.lock:
            return {"Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": c.image_id,
                    "Command": self._command(c), "Created": int(c.created), "Ports": self._ports_list(c),
                    "Labels": dict(c.labels), "State": c.status, "Status": c.state_text(),
                    "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
                    "NetworkSettings": {"Networks": self._networks_view(c)},
                    "Mounts": self._mounts_view(c)}

    def inspect(self, c: Container) -> dict:
        with self.lab.lock:
            state = {"Status": c.status, "Running": c.running, "Paused": False, "Restarting": False,
                     "OOMKilled": False, "Dead": c.status == "dead", "Pid": c.pid, "ExitCode": c.exit_code,
                     "Error": c.error, "StartedAt": rfc3339(c.started_at), "FinishedAt": rfc3339(c.finished_at)}
            if c.health is not None:
                state["Health"] = {"Status": c.health, "FailingStreak": 1 if c.health == "unhealthy" else 0,
                                   "Log": []}
            hc = dict(c.host_config)
            hc.setdefault("Binds", None)
            hc["NetworkMode"] = hc.get("NetworkMode") or "default"
            log_config = dict(hc.get("LogConfig") or {})
            hc["LogConfig"] = {"Type": log_config.get("Type") or "json-file",
                               "Config": log_config.get("Config") or {}}
            hc["AutoRemove"] = c.auto_remove
            hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
            hc.setdefault("PortBindings", {})
            path = (c.entrypoint + c.cmd)[:1]
            body = c.body
            config = {"Hostname": body.get("Hostname") or c.id[:12], "Domainname": "",
                      "User": body.get("User") or "", "AttachStdin": bool(body.get("AttachStdin")),
                      "AttachStdout": bool(body.get("AttachStdout")),
                      "AttachStderr": bool(body.get("AttachStderr")), "Tty": c.tty,
                      "OpenStdin": c.open_stdin, "StdinOnce": c.stdin_once, "Env": list(c.env),
                      "Cmd": list(c.cmd) or None, "Image": c.image, "Volumes": body.get("Volumes"),
                      "WorkingDir": body.get("WorkingDir") or "", "Entrypoint": list(c.entrypoint) or None,
                      "OnBuild": None, "Labels": dict(c.labels)}
            return {
                "Id": c.id, "Created": rfc3339(c.created), "Path": path[0] if path else "",
                "Args": (c.entrypoint + c.cmd)[1:], "State": state, "Image": c.image_id,
                "ResolvConfPath": f"/var/lib/docker/containers/{c.id}/resolv.conf",
                "HostnamePath": f"/var/lib/docker/containers/{c.id}/hostname",
                "HostsPath": f"/var/lib/docker/containers/{c.id}/hosts",
                "LogPath": f"/var/lib/docker/containers/{c.id}/{c.id}-json.log",
                "Name": "/" + c.name, "RestartCount": c.restart_count, "Driver": "overlay2",
                "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
                "ExecIDs": None, "HostConfig": hc,
                "GraphDriver": {"Name": "overlay2", "Data": {}},
                "Mounts": self._mounts_view(c), "Config": config,
                "NetworkSettings": {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": self._ports_map(c),
                                    "HairpinMode": False, "LinkLocalIPv6Address": "",
                                    "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
                                    "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
                                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
                                    "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                                    "Networks": self._networks_view(c)},
            }

    def counts(self) -> dict:
        with self.lab.lock:
            running = sum(c.running for c in self.containers.values())
            return {"Containers": len(self.containers), "ContainersRunning": running,
                    "ContainersPaused": 0, "ContainersStopped": len(self.containers) - running,
                    "Images": len(self.images)}
