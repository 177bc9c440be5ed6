"""The Docker Engine API of one lab node, served on a unix socket over an EngineState.

Wire behaviour follows shared/reference/engine-api.md (docker CLI 28.2.2, docker SDK 7.2.0); the section
numbers in comments point there. The routes are split by family: routes_containers.py (containers, logs,
attach, wait), routes_misc.py (system, images, volumes, networks, plugins); api.py holds what they share
(versions, headers, query parsing). This module dispatches.
"""
from __future__ import annotations

import asyncio
import os
import re
from urllib.parse import unquote

from msr_lab.common.httpbase import Request, Response
from msr_lab.common.httpserver import Exchange, serve_handler
from msr_lab.engine.common import EngineError
from msr_lab.engine.routes_containers import ContainerRoutes
from msr_lab.engine.routes_misc import MiscRoutes
from msr_lab.engine.state import EngineState

_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")


class EngineServer(ContainerRoutes, MiscRoutes):
    """``handler(req, ex)`` for httpserver.serve_handler."""

    def __init__(self, state: EngineState):
        super().__init__(state)
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


async def serve_engine(engine_state: EngineState, path: str) -> "asyncio.Server":
    """Listen on the unix socket ``path`` (the node's /var/run/docker.sock)."""
    server = await serve_handler(EngineServer(engine_state), path=path)
    os.chmod(path, 0o660)
    return server
