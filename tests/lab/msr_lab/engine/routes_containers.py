"""The container routes of the Engine API (§3, §4, §6, §7, §8, §13–15 of shared/reference/engine-api.md):
list, create, inspect, start/stop/kill, wait, logs and attach streams."""
from __future__ import annotations

import asyncio
import json
import struct

from msr_lab.common.httpbase import Request, Response
from msr_lab.common.httpserver import Exchange
from msr_lab.engine.api import EngineBase, bool_value, parse_filters
from msr_lab.engine.common import EngineError, rfc3339
from msr_lab.engine.process import LOGS_NOT_READABLE, Container
from msr_lab.engine.state import EngineState


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class _Watch:
    """An asyncio.Event set (thread-safely) whenever the container changes."""

    def __init__(self, state: EngineState, c: Container):
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



class ContainerRoutes(EngineBase):
    async def follow(self, c: Container, tick, ex: Exchange) -> bool:
        """Send tick()'s bytes as chunks at every change of c until done. False if the client hung up first."""
        gone = asyncio.ensure_future(ex.client_gone())
        try:
            return await self._follow(c, tick, ex.send, gone)
        finally:
            gone.cancel()  # and let it finish, so the connection can read the next request
            await asyncio.gather(gone, return_exceptions=True)

    async def _follow(self, c: Container, tick, send, gone=None) -> bool:
        """Call ``tick()`` (under the lock; returns (bytes, done)) at every change of c and ``send`` the bytes,
        until done (True) or until the ``gone`` future completes (False)."""
        with _Watch(self.state, c) as w:
            while True:
                w.ev.clear()
                with self.lock:
                    data, done = tick()
                if data:
                    await send(data)
                if done:
                    return True
                waiter = asyncio.ensure_future(w.ev.wait())
                finished, _ = await asyncio.wait({waiter} | ({gone} if gone else set()),
                                                 return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if gone in finished:
                    return False

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

    def _stream_type(self, c: Container, ex: Exchange) -> str:
        if c.tty or ex.api < (1, 42):
            return "application/vnd.docker.raw-stream"
        return "application/vnd.docker.multiplexed-stream"

    @staticmethod
    def _encode(c: Container, records, streams: set[int], timestamps: bool = False) -> bytes:
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
        if c.log_driver == "none":
            raise EngineError(501, LOGS_NOT_READABLE)
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
            await self._follow(c, tick, conn.write)
        except (ConnectionError, OSError):
            pass  # the client hung up; the container goes on
        finally:
            stdin_task.cancel()
            conn.close()  # the CLI reads the exit status only after this EOF (§19.3)
