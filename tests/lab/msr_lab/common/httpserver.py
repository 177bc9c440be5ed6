"""A small asyncio HTTP/1.1 server for the lab's emulated APIs.

Written by hand (not h11) because the engine API needs things h11 makes awkward: chunked responses whose
headers go out at once, hijacking a connection after ``101 UPGRADED`` with bytes already buffered, and
noticing a client that hangs up while a long-poll (``/wait``) is pending.

Two levels:
- ``serve_app(app, sock, ssl_context)``: ``app(req) -> Response`` (httpbase), for MKE and MSR.
- ``serve_handler(handler, sock=..., path=..., ssl_context=...)``: ``handler(req, ex) -> Response | None``
  where ``ex`` (Exchange) can stream chunks or hijack the connection; returning None means the handler
  answered through ``ex``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from email.utils import formatdate
from http import HTTPStatus
from typing import Awaitable, Callable

from msr_lab.common.httpbase import Request, Response

log = logging.getLogger("msr-lab.http")

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024


class BadRequest(Exception):
    pass


class Conn:
    """One client connection with its own read buffer (so bytes read ahead are never lost)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.eof = False

    async def fill(self) -> bool:
        if self.eof:
            return False
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_until(self, sep: bytes, limit: int) -> bytes | None:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("header too large")
            if not await self.fill():
                if self.buf.strip():
                    raise BadRequest("truncated request")
                return None

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self.fill():
                raise BadRequest("truncated body")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_some(self) -> bytes:
        """Buffered bytes first, then whatever arrives; b'' at EOF."""
        if not self.buf and not await self.fill():
            return b""
        out = bytes(self.buf)
        self.buf.clear()
        return out

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already gone
            pass


def _head(status: int, headers: list[tuple[str, str]], reason: str | None = None) -> bytes:
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Exchange:
    """One request/response on a connection."""

    def __init__(self, conn: Conn, req: Request, keep_alive: bool):
        self.conn = conn
        self.req = req
        self.keep_alive = keep_alive
        self.started = False       # status line sent
        self.streaming = False     # chunked body open
        self.hijacked = False

    def _std_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        names = {k.lower() for k, _ in headers}
        out = list(headers)
        if "date" not in names:
            out.append(("Date", formatdate(usegmt=True)))
        if not self.keep_alive:
            out.append(("Connection", "close"))
        return out

    async def respond(self, resp: Response) -> None:
        headers = [(k, v) for k, v in resp.headers if k.lower() not in ("content-length", "transfer-encoding")]
        no_body = resp.status in (204, 304) or 100 <= resp.status < 200
        if not no_body:
            headers.append(("Content-Length", str(len(resp.body))))
        self.started = True
        data = _head(resp.status, self._std_headers(headers))
        if self.req.method != "HEAD" and not no_body:
            data += resp.body
        await self.conn.write(data)

    async def start_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Send the headers of a chunked response now (clients may block on them, e.g. /wait)."""
        self.started = self.streaming = True
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Transfer-Encoding", "chunked"))
        await self.conn.write(_head(status, self._std_headers(headers)))

    async def send(self, data: bytes) -> None:
        if data:
            await self.conn.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end(self) -> None:
        if self.streaming:
            self.streaming = False
            await self.conn.write(b"0\r\n\r\n")

    async def hijack(self, status: int = 101, reason: str = "UPGRADED",
                     headers: list[tuple[str, str]] | None = None) -> Conn:
        """Answer with a bare status line and headers, then hand the raw connection over.
        Bytes the client already sent (e.g. stdin) stay in the returned Conn's buffer."""
        self.started = self.hijacked = True
        self.keep_alive = False
        await self.conn.write(_head(status, headers or [], reason))
        return self.conn

    async def client_gone(self) -> None:
        """Returns when the client closes its side (bytes it sends meanwhile are kept)."""
        while await self.conn.fill():
            pass


Handler = Callable[[Request, Exchange], Awaitable[Response | None]]


def error_body(status: int, message: str) -> Response:
    # exactly "application/json": the docker CLI prints raw JSON for anything else
    return Response(status, json.dumps({"message": message}).encode(), [("Content-Type", "application/json")])


async def _read_request(conn: Conn, tls: bool, peer: str) -> tuple[Request, bool] | None:
    head = await conn.read_until(b"\r\n\r\n", MAX_HEAD)
    if head is None:
        return None
    lines = head.decode("latin-1").split("\r\n")
    while lines and not lines[0]:  # tolerate stray CRLF between requests
        lines.pop(0)
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest("malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("malformed header")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    if headers.get("expect", "").lower() == "100-continue":
        await conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_line = await conn.read_until(b"\r\n", 1024)
            if size_line is None:
                raise BadRequest("truncated chunk")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await conn.read_until(b"\r\n", MAX_HEAD)) not in (b"\r\n", None):
                    pass  # trailers
                break
            chunks.append(await conn.read_exact(size))
            await conn.read_exact(2)
        body = b"".join(chunks)
    elif headers.get("content-length"):
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise BadRequest("bad Content-Length")
        body = await conn.read_exact(n)
    return Request(method, target, headers, body, peer, tls), keep_alive


async def _serve_conn(handler: Handler, reader, writer, tls: bool, conns: set) -> None:
    conn = Conn(reader, writer)
    conns.add(conn)
    peername = writer.get_extra_info("peername")
    peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else ""
    try:
        while True:
            try:
                got = await _read_request(conn, tls, peer)
            except BadRequest as exc:
                await conn.write(_head(400, [("Content-Type", "text/plain"), ("Connection", "close"),
                                             ("Content-Length", str(len(str(exc))))]) + str(exc).encode())
                break
            if got is None:
                break
            req, keep_alive = got
            ex = Exchange(conn, req, keep_alive)
            try:
                resp = await handler(req, ex)
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:  # a handler bug becomes a 500, not a dead connection
                log.exception("handler failed for %s %s", req.method, req.target)
                if ex.started:
                    break
                resp = error_body(500, f"internal error: {exc}")
            if ex.hijacked:
                break
            if not ex.started:
                await ex.respond(resp if resp is not None else Response(204))
            elif ex.streaming:
                await ex.end()
            if not ex.keep_alive:
                break
    except (ConnectionError, BrokenPipeError, asyncio.IncompleteReadError, OSError):
        pass  # the client went away; nothing to answer
    except Exception:  # never let one connection's failure surface as an unretrieved task error
        log.exception("connection failed")
    finally:
        conns.discard(conn)
        conn.close()


async def serve_handler(handler: Handler, sock: socket.socket | None = None, path: str | None = None,
                        ssl_context=None) -> asyncio.Server:
    """Serve on a listening socket, or on a new unix socket at ``path``."""
    conns: set[Conn] = set()
    tls = ssl_context is not None

    async def on_conn(reader, writer):
        await _serve_conn(handler, reader, writer, tls, conns)

    if path is not None:
        server = await asyncio.start_unix_server(on_conn, path=path, ssl=ssl_context, limit=MAX_HEAD)
    else:
        server = await asyncio.start_server(on_conn, sock=sock, ssl=ssl_context, limit=MAX_HEAD)
    server.lab_conns = conns  # for close_server
    return server


async def serve_app(app, sock: socket.socket, ssl_context=None, log=None) -> asyncio.Server:
    """Serve an httpbase application (``async app(req) -> Response``) on a listening socket.
    ``log(method, target, status, peer)``, if given, is told of every answer (the daemon's request log)."""
    async def handler(req: Request, ex: Exchange) -> Response:
        req.gone = ex.client_gone   # for answers that wait (a hanging /_ping) to notice a client leaving
        resp = await app(req)
        if log is not None:
            log(req.method, req.target, resp.status, req.peer)
        return resp
    return await serve_handler(handler, sock=sock, ssl_context=ssl_context)


async def close_server(server: asyncio.Server) -> None:
    """Stop listening and drop open connections too (Python 3.11's close() leaves them)."""
    server.close()
    for conn in list(getattr(server, "lab_conns", ())):
        conn.writer.transport.abort()
    await server.wait_closed()
