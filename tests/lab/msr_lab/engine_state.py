"""State of one node's emulated Docker Engine: containers, images, volumes, networks.

Thread-safe: every method takes ``lab.lock``. Programs (the bootstrapper) run in worker threads and the
HTTP side runs on the asyncio loop, so changes are announced through per-container watcher callbacks
(the HTTP side registers ones that use ``loop.call_soon_threadsafe``) and a ``threading.Condition`` for
threads. ``lab.changed()`` is called after state changes, never after mere output.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import threading
import time
import traceback
from datetime import datetime, timezone
from typing import Callable

NEVER = "0001-01-01T00:00:00Z"
DEFAULT_NETWORKS = ("bridge", "host", "none")

# (repository regexp, tag regexp) pairs the lab's registry serves; anything else is "pull access denied"
PULLABLE: list[tuple[str, str]] = [
    (r"(mirantis|docker)/dtr(-[a-z0-9-]+)?", r"2\.\d+\.\d+(-[a-z0-9.]+)?"),
    (r"registry\.mirantis\.com/msr/dtr(-[a-z0-9-]+)?", r"2\.\d+\.\d+(-[a-z0-9.]+)?"),
]

_PROGRAMS: dict[str, Callable] = {}


class EngineError(Exception):
    """An error the API answers with ``{"message": ...}`` and this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ManifestUnknown(EngineError):
    """The repository exists but not the tag: a pull reports it in-band, after the 200."""


class Killed(Exception):
    """Raised inside a program once its container was killed or stopped."""


def register_program(repo: str, program: Callable) -> None:
    """Run ``program(ctx) -> exit code`` for containers of this image repository (any tag)."""
    _PROGRAMS[parse_ref(repo)[0]] = program


def program_for(image_ref: str) -> Callable | None:
    return _PROGRAMS.get(parse_ref(image_ref)[0])


def parse_ref(ref: str) -> tuple[str, str]:
    """-> (familiar repository, tag or '@digest'): 'docker.io/library/ubuntu' -> ('ubuntu', 'latest')."""
    name, tag = ref, "latest"
    if "@" in name:
        name, digest = name.split("@", 1)
        tag = "@" + digest
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) > 1 and parts[0] in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts), tag


def familiar(ref: str) -> str:
    repo, tag = parse_ref(ref)
    return repo + tag if tag.startswith("@") else f"{repo}:{tag}"


def rfc3339(t: float | None) -> str:
    if not t:
        return NEVER
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def human_duration(seconds: float) -> str:
    # the wording of Go's units.HumanDuration, which `docker ps` shows
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    return f"{h // 24} days"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15,
           "CONT": 18, "STOP": 19, "WINCH": 28}
IGNORED_SIGNALS = {18, 28}  # CONT and WINCH are proxied by the CLI; a process survives them


def signal_number(sig: str | int | None) -> int:
    if sig in (None, ""):
        return 9
    text = str(sig).upper().removeprefix("SIG")
    if text.isdigit():
        return int(text)
    if text not in SIGNALS:
        raise EngineError(400, f"Invalid signal: {sig}")
    return SIGNALS[text]


class Image:
    def __init__(self, ref: str):
        self.repo, self.tag = parse_ref(ref)
        self.name = f"{self.repo}:{self.tag}"
        self.id = "sha256:" + _sha("image " + self.name)
        self.digest = "sha256:" + _sha("manifest " + self.name)
        self.created = time.time() - 30 * 86400
        self.labels: dict[str, str] = {}
        self.env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        base = self.repo.rsplit("/", 1)[-1]
        self.entrypoint = [f"/bin/{base}"] if base == "dtr" else []
        self.cmd = [] if base == "dtr" else [f"/bin/{base}"]
        self.size = 40_000_000 + int(self.id[7:13], 16) % 60_000_000
        self.layers = ["sha256:" + _sha(f"layer {i} {self.name}") for i in range(3)]

    def inspect(self) -> dict:
        return {
            "Id": self.id, "RepoTags": [self.name], "RepoDigests": [f"{self.repo}@{self.digest}"],
            "Parent": "", "Comment": "", "Created": rfc3339(self.created), "DockerVersion": "",
            "Author": "", "Architecture": "amd64", "Os": "linux", "Size": self.size,
            "Config": {"Env": list(self.env), "Cmd": self.cmd or None, "Entrypoint": self.entrypoint or None,
                       "WorkingDir": "", "Labels": dict(self.labels), "User": "", "Volumes": None},
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": list(self.layers)},
            "Metadata": {"LastTagTime": NEVER},
        }

    def summary(self) -> dict:
        return {"Id": self.id, "ParentId": "", "RepoTags": [self.name],
                "RepoDigests": [f"{self.repo}@{self.digest}"], "Created": int(self.created),
                "Size": self.size, "SharedSize": -1, "Labels": dict(self.labels), "Containers": -1}


class Volume:
    def __init__(self, name: str, driver: str = "local", labels: dict | None = None, options=None):
        self.name = name
        self.driver = driver
        self.labels = dict(labels or {})
        self.options = dict(options or {})
        self.created = time.time()

    def inspect(self) -> dict:
        return {"CreatedAt": datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="seconds"),
                "Driver": self.driver, "Labels": dict(self.labels),
                "Mountpoint": f"/var/lib/docker/volumes/{self.name}/_data", "Name": self.name,
                "Options": dict(self.options), "Scope": "local"}


class Network:
    def __init__(self, name: str, driver: str = "bridge", scope: str = "local", labels=None,
                 subnet: str | None = None, attachable: bool = False, internal: bool = False):
        self.name = name
        self.id = _sha("network " + name + secrets.token_hex(4)) if name not in DEFAULT_NETWORKS \
            else _sha("network " + name)
        self.driver = driver
        self.scope = scope
        self.labels = dict(labels or {})
        self.subnet = subnet
        self.attachable = attachable
        self.internal = internal
        self.created = time.time()


class Container:
    def __init__(self, cid: str, name: str, body: dict, image: Image, node):
        hc = body.get("HostConfig") or {}
        self.id = cid
        self.name = name
        self.node = node
        self.image = body.get("Image") or image.name
        self.image_id = image.id
        env = [e for e in (body.get("Env") or []) if "=" in e]  # bare NAME items mean "not set"
        keys = {e.split("=", 1)[0] for e in env}
        self.env = env + [e for e in image.env if e.split("=", 1)[0] not in keys]
        self.entrypoint = body.get("Entrypoint")
        if isinstance(self.entrypoint, str):
            self.entrypoint = [self.entrypoint]
        if self.entrypoint is None:
            self.entrypoint = list(image.entrypoint)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        self.cmd = list(cmd) if cmd is not None else ([] if body.get("Entrypoint") else list(image.cmd))
        self.labels = {**image.labels, **(body.get("Labels") or {})}
        self.tty = bool(body.get("Tty"))
        self.open_stdin = bool(body.get("OpenStdin"))
        self.stdin_once = bool(body.get("StdinOnce"))
        self.auto_remove = bool(hc.get("AutoRemove"))
        self.created = time.time()
        self.status = "created"
        self.exit_code = 0
        self.error = ""
        self.health: str | None = None
        self.health_on_start: str | None = None   # what a (re)start reports; None: no healthcheck
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.pid = 0
        self.body = body
        self.host_config = hc
        mode = hc.get("NetworkMode") or "default"
        self.network_mode = "bridge" if mode == "default" else mode
        self.mounts: list[dict] = []       # {"Type","Name","Source","Destination","RW"}
        self.output: list[tuple[int, bytes, float]] = []  # (stream, bytes, time), one item per line
        self.stdin = bytearray()
        self.stdin_eof = False
        self.exit_count = 0                # how many times it exited: next-exit waiters compare this
        self.removed = False
        self.watchers: set[Callable[[], None]] = set()
        self.ctx: ProcessContext | None = None
        self.restart_count = 0

    @property
    def running(self) -> bool:
        return self.status == "running"

    def state_text(self) -> str:
        now = time.time()
        if self.status == "running":
            text = "Up " + human_duration(now - (self.started_at or now))
            if self.health:
                text += " (health: starting)" if self.health == "starting" else f" ({self.health})"
            return text
        if self.status == "exited":
            return f"Exited ({self.exit_code}) {human_duration(now - (self.finished_at or now))} ago"
        return self.status.capitalize()


class ProcessContext:
    """What a program sees: its container, argv, env, stdin and output streams."""

    def __init__(self, engine: "EngineState", container: Container):
        self.engine = engine
        self.lab = engine.lab
        self.node = engine.node
        self.container = container
        self.argv = list(container.cmd)
        self.env = dict(e.split("=", 1) for e in container.env)
        self.tty = container.tty
        self.stdin_open = container.open_stdin
        self.killed = threading.Event()

    def write(self, stream: int, data: bytes) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.engine._append_output(self.container, stream, data, self)

    def check_killed(self) -> None:
        if self.killed.is_set():
            raise Killed()

    def read_stdin(self, timeout: float | None = None) -> bytes | None:
        """Whatever stdin bytes are buffered (waiting for some); None at EOF; b'' on timeout."""
        return self._read(lambda buf: len(buf), timeout)

    def read_stdin_line(self, timeout: float | None = None) -> bytes | None:
        """One line (with its newline; the last may lack it); None at EOF; b'' on timeout.
        Raises Killed once the container was killed."""
        return self._read(lambda buf: buf.find(b"\n") + 1, timeout)

    def _read(self, take: Callable[[bytearray], int], timeout: float | None) -> bytes | None:
        c = self.container
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.engine.cond:
            while True:
                self.check_killed()
                n = take(c.stdin)
                if n:
                    data = bytes(c.stdin[:n])
                    del c.stdin[:n]
                    return data
                if c.stdin_eof or not c.open_stdin:
                    if c.stdin:
                        data = bytes(c.stdin)
                        c.stdin.clear()
                        return data
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return b""
                self.engine.cond.wait(left)


class EngineState:
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

    # ---- images
    def find_image(self, ref: str) -> Image | None:
        with self.lab.lock:
            if not ref:
                return None
            img = self.images.get(familiar(ref)) if not ref.startswith("sha256:") else None
            if img:
                return img
            hexid = ref.removeprefix("sha256:")
            if re.fullmatch(r"[0-9a-f]{4,64}", hexid):
                for img in self.images.values():
                    if img.id[7:].startswith(hexid):
                        return img
            repo, tag = parse_ref(ref)
            if tag.startswith("@"):
                for img in self.images.values():
                    if img.repo == repo and img.digest == tag[1:]:
                        return img
            return None

    @staticmethod
    def check_pullable(ref: str) -> None:
        repo, tag = parse_ref(ref)
        repo_ok = [t for r, t in PULLABLE if re.fullmatch(r, repo)]
        if not repo_ok:
            raise EngineError(404, f"pull access denied for {repo}, repository does not exist or may "
                                   "require 'docker login': denied: requested access to the resource is denied")
        if not any(re.fullmatch(t, tag) for t in repo_ok):
            raise ManifestUnknown(404, f"manifest for {familiar(ref)} not found: manifest unknown: "
                                       "manifest unknown")

    def pull(self, ref: str) -> Image:
        self.check_pullable(ref)
        with self.lab.lock:
            key = familiar(ref)
            img = self.images.get(key)
            if img is None:
                img = self.images[key] = Image(ref)
        self.lab.changed()
        return img

    def remove_image(self, ref: str, force: bool = False) -> Image:
        with self.lab.lock:
            img = self.find_image(ref)
            if img is None:
                raise EngineError(404, f"No such image: {ref}")
            users = [c for c in self.containers.values() if c.image_id == img.id]
            if users and not force:
                raise EngineError(409, f"conflict: unable to remove repository reference \"{ref}\" "
                                       f"(must force) - container {users[0].id[:12]} is using its "
                                       f"referenced image {img.id[7:19]}")
            del self.images[img.name]
        self.lab.changed()
        return img

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
            c = Container(secrets.token_hex(32), name, body, img, self.node)
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
                if c.health_on_start is not None:
                    c.health = c.health_on_start
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
                    volumes: dict[str, str] | None = None, network: str | None = None) -> Container:
        """Create and start a long-running container without program (a dtr-* service).
        ``volumes`` maps volume name -> mount path; ``network`` is its NetworkMode."""
        with self.lab.lock:
            if self.find_image(image) is None:
                self.pull(image)
            body = {"Image": image, "Labels": dict(labels), "Env": list(env),
                    "HostConfig": {"Binds": [f"{v}:{p}" for v, p in (volumes or {}).items()],
                                   "NetworkMode": network or "default",
                                   "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}}}
            c = self.create_container(name, body)
            c.health = health
            c.health_on_start = health
            self.start_container(c)
            return c

    def set_health(self, c: Container, health: str | None) -> None:
        with self.lab.lock:
            c.health = health
            c.health_on_start = health
            self._notify(c)
        self.lab.changed()

    # ---- volumes
    def create_volume(self, name: str | None = None, driver: str = "local", labels: dict | None = None,
                      options: dict | None = None) -> Volume:
        with self.lab.lock:
            name = name or secrets.token_hex(32)
            v = self.volumes.get(name)
            if v is None:
                v = self.volumes[name] = Volume(name, driver or "local", labels, options)
        self.lab.changed()
        return v

    def get_volume(self, name: str) -> Volume:
        with self.lab.lock:
            v = self.volumes.get(name)
            if v is None:
                raise EngineError(404, f"get {name}: no such volume")
            return v

    def volume_users(self, name: str) -> list[Container]:
        with self.lab.lock:
            return [c for c in self.containers.values()
                    if any(m["Type"] == "volume" and m["Name"] == name for m in c.mounts)]

    def remove_volume(self, name: str, force: bool = False) -> None:
        with self.lab.lock:
            if name not in self.volumes:
                if force:
                    return
                raise EngineError(404, f"get {name}: no such volume")
            users = self.volume_users(name)
            if users:
                raise EngineError(409, f"remove {name}: volume is in use - [{', '.join(c.id for c in users)}]")
            del self.volumes[name]
        self.lab.changed()

    # ---- networks
    def _find_network(self, ref: str) -> Network | None:
        if ref in self.networks:
            return self.networks[ref]
        found = [n for n in self.networks.values() if n.id == ref or (len(ref) >= 3 and n.id.startswith(ref))]
        return found[0] if len(found) == 1 else None

    def get_network(self, ref: str) -> Network:
        with self.lab.lock:
            n = self._find_network(ref)
            if n is None:
                raise EngineError(404, f"network {ref} not found")
            return n

    def create_network(self, name: str, driver: str = "bridge", scope: str | None = None, labels=None,
                       subnet: str | None = None, attachable: bool = False, internal: bool = False) -> Network:
        with self.lab.lock:
            if name in self.networks:
                raise EngineError(409, f"network with name {name} already exists")
            scope = scope or ("swarm" if driver == "overlay" else "local")
            n = self.networks[name] = Network(name, driver, scope, labels, subnet, attachable, internal)
        self.lab.changed()
        return n

    def remove_network(self, ref: str) -> None:
        with self.lab.lock:
            n = self.get_network(ref)
            if n.name in DEFAULT_NETWORKS:
                raise EngineError(403, f"{n.name} is a pre-defined network and cannot be removed")
            users = self.network_containers(n)
            if users:
                raise EngineError(403, f"error while removing network: network {n.name} id {n.id} has "
                                       "active endpoints")
            del self.networks[n.name]
        self.lab.changed()

    def container_networks(self, c: Container) -> list[str]:
        names = [] if c.network_mode.startswith("container:") else [c.network_mode]
        for n in ((c.body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}):
            n = "bridge" if n == "default" else n
            if n not in names:
                names.append(n)
        return names

    def network_containers(self, n: Network) -> list[Container]:
        return [c for c in self.containers.values() if c.running and n.name in self.container_networks(c)]

    def network_inspect(self, n: Network, verbose_containers: bool = True) -> dict:
        subnet = n.subnet or ("" if n.driver in ("host", "null") else "172.17.0.0/16")
        ipam = [{"Subnet": subnet, "Gateway": subnet.rsplit(".", 2)[0] + ".0.1"}] if subnet else []
        out = {"Name": n.name, "Id": n.id, "Created": rfc3339(n.created), "Scope": n.scope,
               "Driver": n.driver, "EnableIPv4": True, "EnableIPv6": False,
               "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
               "Internal": n.internal, "Attachable": n.attachable, "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": {}, "Labels": dict(n.labels)}
        if verbose_containers:
            with self.lab.lock:
                out["Containers"] = {c.id: {"Name": c.name, "EndpointID": _sha("ep " + c.id + n.id),
                                            "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}
                                     for c in self.network_containers(n)}
        return out

    # ---- listing and views
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

    def _command(self, c: Container) -> str:
        return " ".join(c.entrypoint + c.cmd)

    def _networks_view(self, c: Container) -> dict:
        out = {}
        for name in self.container_networks(c):
            n = self._find_network(name)
            out[name] = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                         "NetworkID": n.id if n else "", "EndpointID": _sha("ep " + c.id) if c.running else "",
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
                    "Command": self._command(c), "Created": int(c.created), "Ports": [],
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
                state["Health"] = {"Status": c.health, "FailingStreak": 0 if c.health == "healthy" else 1,
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
                "NetworkSettings": {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
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


def meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


NCPU = os.cpu_count() or 1
