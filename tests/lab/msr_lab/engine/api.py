"""What the Engine API's route families share: versions, query and filter parsing, and the base class
of the server with the node's EngineState, the common headers and the error and JSON replies.

Wire behaviour follows shared/reference/engine-api.md (docker CLI 28.2.2, docker SDK 7.2.0).
"""
from __future__ import annotations

import json
import platform

from msr_lab.common.httpbase import Response, json_response
from msr_lab.common.httpserver import error_body
from msr_lab.engine.common import EngineError
from msr_lab.engine.process import Container
from msr_lab.engine.state import EngineState

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "28.2.2"
SERVER = f"Docker/{ENGINE_VERSION} (linux)"
GIT_COMMIT = "45873be"
GO_VERSION = "go1.24.3"
KERNEL = platform.release()


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


class EngineBase:
    """The server's state and replies; the route families (routes_containers.py, routes_misc.py) build on it."""

    def __init__(self, state: EngineState):
        self.state = state
        self.lock = state.lab.lock

    def headers(self) -> list[tuple[str, str]]:
        return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"), ("Ostype", "linux"),
                ("Server", SERVER)]

    def error(self, status: int, message: str) -> Response:
        resp = error_body(status, message)
        resp.headers += self.headers()
        return resp

    def json(self, status: int, obj) -> Response:
        return json_response(status, obj, self.headers())

    def container(self, ref: str) -> Container:
        return self.state.get_container(ref)
