"""Request/response types shared by the lab's plain HTTP applications (MKE, MSR replicas).

An application is any object with ``async def __call__(self, req: Request) -> Response``.
The engine API needs more (hijacking, streams) and is served by its own handler in engine/server.py.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    target: str                      # raw request target, e.g. "/v1.50/containers/json?all=1"
    headers: dict[str, str]          # lower-cased names
    body: bytes = b""
    peer: str = ""                   # client address, "ip:port" or "" for unix sockets
    tls: bool = False
    gone: Callable[[], Awaitable[None]] | None = None   # returns when the client hangs up (set by serve_app)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.target.split("?", 1)[1], keep_blank_values=True) if "?" in self.target else {}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, obj, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(obj).encode(), [("Content-Type", "application/json")] + (headers or []))


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, text.encode(), [("Content-Type", content_type)])
