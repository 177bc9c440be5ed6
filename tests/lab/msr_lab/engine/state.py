"""State of one node's emulated Docker Engine: containers, images, volumes, networks.

Thread-safe: every method takes ``lab.lock``. Programs (the bootstrapper) run in worker threads and the
HTTP side runs on the asyncio loop, so changes are announced through per-container watcher callbacks
(the HTTP side registers ones that use ``loop.call_soon_threadsafe``) and a ``threading.Condition`` for
threads. ``lab.changed()`` is called after state changes, never after mere output.

The state is split by subject; this module keeps EngineState and the container lifecycle, the others
what it is made of: common.py (EngineError, image references, times), images.py (Image, PULLABLE, pull),
objects.py (volumes, networks), process.py (Container, ProcessContext, programs, signals), views.py
(listing with filters, summary and inspect JSON), power.py (the engine going down and up).
"""
from __future__ import annotations

import random
import re
import secrets
import threading
import time
import traceback
from typing import Callable

from msr_lab.engine.common import EngineError
from msr_lab.engine.images import Image, ImageStore
from msr_lab.engine.objects import Network, ObjectStore, Volume
from msr_lab.engine.power import EnginePower
from msr_lab.engine.process import (
    IGNORED_SIGNALS,
    LOG_DRIVERS,
    Container,
    Killed,
    ProcessContext,
    program_for,
    signal_number,
)
from msr_lab.engine.views import ContainerViews


class EngineState(ImageStore, ObjectStore, ContainerViews, EnginePower):
    def __init__(self, lab, node):
        self.lab = lab
        self.node = node
        self.cond = threading.Condition(lab.lock)
        self.containers: dict[str, Container] = {}
        self.volumes: dict[str, Volume] = {}
        self.images: dict[str, Image] = {}
        self.networks: dict[str, Network] = {}
        self.started = time.time()
        self.id = ":".join(secrets.token_hex(2).upper() for _ in range(12))
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            self.networks[name] = Network(name, driver)

    # ---- notifications
    def _notify(self, c: Container) -> None:
        for fn in list(c.watchers):
            try:
                fn()
            except Exception:  # a watcher whose loop is gone must not break the engine
                c.watchers.discard(fn)
        self.cond.notify_all()

    def add_watcher(self, c: Container, fn: Callable[[], None]) -> None:
        with self.lab.lock:
            c.watchers.add(fn)

    def remove_watcher(self, c: Container, fn: Callable[[], None]) -> None:
        with self.lab.lock:
            c.watchers.discard(fn)

    # ---- containers
    def find_container(self, ref: str) -> Container | None:
        with self.lab.lock:
            if not ref:
                return None
            if ref in self.containers:
                return self.containers[ref]
            name = ref.removeprefix("/")
            for c in self.containers.values():
                if c.name == name:
                    return c
            found = [c for c in self.containers.values() if c.id.startswith(ref)]
            return found[0] if len(found) == 1 else None

    def get_container(self, ref: str) -> Container:
        c = self.find_container(ref)
        if c is None:
            raise EngineError(404, f"No such container: {ref}")
        return c

    def _new_name(self) -> str:
        adjectives = ("admiring", "brave", "clever", "dreamy", "eager", "focused", "gallant", "happy",
                      "jolly", "keen", "loving", "nifty", "quirky", "serene", "trusting", "zealous")
        nouns = ("turing", "hopper", "lovelace", "curie", "darwin", "euler", "gauss", "knuth",
                 "lamport", "liskov", "noether", "pike", "ritchie", "shannon", "thompson", "wozniak")
        while True:
            name = f"{random.choice(adjectives)}_{random.choice(nouns)}"
            if self.find_container(name) is None:
                return name
            name += str(random.randint(1, 99))
            if self.find_container(name) is None:
                return name

    def create_container(self, name: str | None, body: dict) -> Container:
        body = dict(body or {})
        ref = body.get("Image") or ""
        if name and not re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
            raise EngineError(400, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                   "are allowed")
        driver = ((body.get("HostConfig") or {}).get("LogConfig") or {}).get("Type") or "json-file"
        if driver not in LOG_DRIVERS:
            raise EngineError(400, f"logger: no log driver named '{driver}' is registered")
        with self.lab.lock:
            img = self.find_image(ref)
            if img is None:
                raise EngineError(404, f"No such image: {ref}")
            if name:
                name = name.removeprefix("/")
                other = self.find_container(name)
                if other is not None and other.name == name:
                    raise EngineError(409, f'Conflict. The container name "/{name}" is already in use by '
                                           f'container "{other.id}". You have to remove (or rename) that '
                                           "container to be able to reuse that name.")
            else:
                name = self._new_name()
            self._require_up()
            c = Container(secrets.token_hex(32), name, body, img, self.node)
            c.clock = self.lab.now
            hc = c.host_config
            for bind in hc.get("Binds") or []:
                src, _, rest = bind.partition(":")
                dst, _, mode = rest.partition(":")
                if src.startswith("/"):
                    c.mounts.append({"Type": "bind", "Source": src, "Destination": dst, "Mode": mode,
                                     "RW": "ro" not in mode.split(","), "Propagation": "rprivate"})
                else:
                    c.mounts.append(self._volume_mount(src, dst, "ro" not in mode.split(",")))
            for m in hc.get("Mounts") or []:
                if m.get("Type", "volume") == "volume":
                    c.mounts.append(self._volume_mount(m.get("Source") or secrets.token_hex(32),
                                                       m.get("Target", ""), not m.get("ReadOnly")))
                else:
                    c.mounts.append({"Type": m.get("Type"), "Source": m.get("Source", ""),
                                     "Destination": m.get("Target", ""), "Mode": "",
                                     "RW": not m.get("ReadOnly"), "Propagation": "rprivate"})
            self.containers[c.id] = c
        self.lab.changed()
        return c

    def _volume_mount(self, name: str, dst: str, rw: bool) -> dict:
        v = self.volumes.get(name) or self.create_volume(name)
        return {"Type": "volume", "Name": v.name, "Source": v.inspect()["Mountpoint"],
                "Destination": dst, "Driver": v.driver, "Mode": "z", "RW": rw, "Propagation": ""}

    def start_container(self, c: Container) -> bool:
        """Start it; False if it was already running. A failed start of an AutoRemove one removes it."""
        with self.lab.lock:
            if c.removed:
                raise EngineError(404, f"No such container: {c.id}")
            if c.running:
                return False
            self._require_up()
            nets = self.container_networks(c)
            missing = [n for n in nets if self._find_network(n) is None]
            if missing:
                c.status = "exited" if c.exit_count else "created"
                c.error = f"failed to set up container networking: network {missing[0]} not found"
                if c.auto_remove:
                    self._remove(c)
                err = EngineError(404, c.error)
            else:
                err = None
                if c.started_at:
                    c.restart_count += 1
                c.status = "running"
                c.error = ""
                c.started_at = time.time()
                c.finished_at = None
                c.pid = random.randint(1000, 60000)
                if c.exit_count:  # a restart gets a fresh stdin; the first start keeps what came early
                    c.stdin_eof = False
                    c.stdin.clear()
                c.manually_stopped = False
                if c.health_on_start is not None:
                    c.health = c.health_on_start
                c.ready_at = self.lab.now() + c.start_period if c.start_period > 0 else None
                program = program_for(c.image)
                if program is not None:
                    ctx = c.ctx = ProcessContext(self, c)
                    threading.Thread(target=self._run_program, args=(c, ctx, program),
                                     name=f"ctr-{c.name}", daemon=True).start()
                self._notify(c)
        self.lab.changed()
        if err:
            raise err
        return True

    def _run_program(self, c: Container, ctx: ProcessContext, program: Callable) -> None:
        try:
            code = program(ctx)
            code = 0 if code is None else int(code)
        except Killed:
            code = 137
        except Exception:
            ctx.write(2, traceback.format_exc().encode())
            code = 1
        self._exited(c, ctx, code)
        hook = self.lab.log_event
        if hook is not None:   # when each program (a bootstrapper run) ran, for the benchmark's overheads
            hook({"event": "program", "node": self.node.name, "name": c.name, "image": c.image, "cmd": list(c.cmd),
                  "started": c.started_at, "finished": c.finished_at or time.time(), "exit": c.exit_code})

    def _exited(self, c: Container, ctx: ProcessContext, code: int) -> None:
        with self.lab.lock:
            if c.ctx is not ctx or not c.running:
                return  # it was killed (and maybe restarted) already
            self._terminate(c, code)
        self.lab.changed()

    def _append_output(self, c: Container, stream: int, data: bytes, ctx: ProcessContext | None) -> None:
        if not data:
            return
        with self.lab.lock:
            if ctx is not None and c.ctx is not ctx:
                return  # written after the container was killed: the pipe is gone
            now = time.time()
            # one record per line, like the json-file log driver, so tail counts lines
            for line in data.splitlines(keepends=True):
                c.output.append((stream, line, now))
            self._notify(c)

    def write_output(self, c: Container, stream: int, data: bytes) -> None:
        """Output of a container without a program (for other modules that emulate services)."""
        self._append_output(c, stream, data, None)

    def write_stdin(self, c: Container, data: bytes) -> None:
        with self.lab.lock:
            if c.open_stdin and not c.stdin_eof:
                c.stdin += data
                self.cond.notify_all()

    def close_stdin(self, c: Container) -> None:
        with self.lab.lock:
            c.stdin_eof = True
            self.cond.notify_all()

    def kill_container(self, c: Container, signal: str | int = "KILL") -> None:
        num = signal_number(signal)
        with self.lab.lock:
            if not c.running:
                raise EngineError(409, f"cannot kill container: {c.name}: container {c.id} is not running")
            if num in IGNORED_SIGNALS:
                return
            c.manually_stopped = True
            self._terminate(c, 128 + num)
        self.lab.changed()

    def _terminate(self, c: Container, code: int) -> None:
        # caller holds the lock and c is running; a program still running stops at check_killed()
        if c.ctx is not None:
            c.ctx.killed.set()
        c.ctx = None
        c.status = "exited"
        c.exit_code = code
        c.finished_at = time.time()
        c.pid = 0
        c.exit_count += 1
        c.stdin_eof = True
        if c.health is not None:
            c.health = "unhealthy"
        if c.auto_remove:
            self._remove(c)
        self._notify(c)

    def stop_container(self, c: Container, timeout: float | None = None) -> bool:
        """SIGTERM: a program dies with 143, a service container exits cleanly (0). False if not running."""
        with self.lab.lock:
            if not c.running:
                return False
            c.manually_stopped = True
            self._terminate(c, 143 if c.ctx is not None else 0)
        self.lab.changed()
        return True

    def restart_container(self, c: Container) -> None:
        self.stop_container(c)
        self.start_container(c)

    def remove_container(self, c: Container, force: bool = False, volumes: bool = False) -> None:
        with self.lab.lock:
            if c.removed:
                raise EngineError(404, f"No such container: {c.id}")
            self._require_up()
            if c.running:
                if not force:
                    raise EngineError(409, f'cannot remove container "/{c.name}": container is running: '
                                           "stop the container before removing or force remove")
                self._terminate(c, 137)
            if not c.removed:
                self._remove(c)
            if volumes:  # anonymous volumes only, like the real -v
                for m in c.mounts:
                    if m["Type"] == "volume" and re.fullmatch(r"[0-9a-f]{64}", m["Name"]):
                        self.volumes.pop(m["Name"], None)
        self.lab.changed()

    def _remove(self, c: Container) -> None:
        if c.removed:
            return
        c.removed = True
        self.containers.pop(c.id, None)
        self._notify(c)

    def wait_container(self, c: Container, condition: str = "not-running", timeout: float | None = None):
        """Blocking wait for threads: the exit code, or None on timeout."""
        with self.lab.lock:
            done = self.wait_predicate(c, condition)
            if not self.cond.wait_for(done, timeout):
                return None
            return c.exit_code

    def wait_predicate(self, c: Container, condition: str | None) -> Callable[[], bool]:
        """A check (call it under the lock) for wait?condition=; next-exit counts from now."""
        condition = condition or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise EngineError(400, f"invalid condition: \"{condition}\"")
        exits = c.exit_count
        if condition == "removed":
            return lambda: c.removed
        if condition == "next-exit":
            return lambda: c.removed or c.exit_count > exits
        return lambda: c.removed or not c.running

    def run_service(self, name: str, image: str, labels: dict, env=(), health: str | None = "healthy",
                    volumes: dict[str, str] | None = None, network: str | None = None,
                    ports: dict[int, int] | None = None, start_period: float = 0.0) -> Container:
        """Create and start a long-running container without program (a dtr-* service).
        ``volumes`` maps volume name -> mount path; ``network`` is its NetworkMode; ``ports`` maps
        container port -> published host port (tcp); ``start_period``: seconds of `starting` health
        after each start (its healthcheck's start period)."""
        with self.lab.lock:
            if self.find_image(image) is None:
                self.pull(image)
            ports = ports or {}
            body = {"Image": image, "Labels": dict(labels), "Env": list(env),
                    "ExposedPorts": {f"{cp}/tcp": {} for cp in ports},
                    "HostConfig": {"Binds": [f"{v}:{p}" for v, p in (volumes or {}).items()],
                                   "NetworkMode": network or "default",
                                   "PortBindings": {f"{cp}/tcp": [{"HostIp": "", "HostPort": str(hp)}]
                                                    for cp, hp in ports.items()},
                                   "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}}}
            c = self.create_container(name, body)
            c.health = health
            c.health_on_start = health
            c.start_period = start_period
            self.start_container(c)
            return c

    def set_health(self, c: Container, health: str | None) -> None:
        with self.lab.lock:
            c.health = health
            c.health_on_start = health
            self._notify(c)
        self.lab.changed()

    def hold_health(self, c: Container, hold: bool) -> None:
        """Keep a healthy container at `starting` (hold) until released; its start period still applies."""
        with self.lab.lock:
            c.health_hold = hold
            self._notify(c)
        self.lab.changed()
