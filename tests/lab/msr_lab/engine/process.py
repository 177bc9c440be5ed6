"""A container and its process: the Container record, the program registry, what a program sees
(ProcessContext), signals."""
from __future__ import annotations

import threading
import time
from typing import Callable

from msr_lab.engine.common import EngineError, human_duration, parse_ref
from msr_lab.engine.images import Image

_PROGRAMS: dict[str, Callable] = {}


class Killed(Exception):
    """Raised inside a program once its container was killed or stopped."""


def register_program(repo: str, program: Callable) -> None:
    """Run ``program(ctx) -> exit code`` for containers of this image repository (any tag)."""
    _PROGRAMS[parse_ref(repo)[0]] = program


def program_for(image_ref: str) -> Callable | None:
    return _PROGRAMS.get(parse_ref(image_ref)[0])


# The daemon's built-in log drivers; "none" keeps no log at all (`docker logs` refuses, attach still streams).
LOG_DRIVERS = ("awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries", "none",
               "splunk", "syslog")
LOGS_NOT_READABLE = "configured logging driver does not support reading"   # moby's ErrReadLogsNotSupported


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
        self.log_driver = (hc.get("LogConfig") or {}).get("Type") or "json-file"
        self.created = time.time()
        self.status = "created"
        self.exit_code = 0
        self.error = ""
        self.clock: Callable[[], float] = time.time  # the lab's clock (EngineState sets it)
        self.health: str | None = None
        self.health_on_start: str | None = None   # what a (re)start reports; None: no healthcheck
        self.start_period = 0.0            # after each start a healthy container shows `starting` this long
        self.ready_at: float | None = None # end of the current start period
        self.health_hold = False           # shows `starting` until released (a joining replica's dtr-nginx)
        self.manually_stopped = False      # stopped through the API: unless-stopped does not restart it
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
    def health(self) -> str | None:
        """Docker's health status; a healthy container reads `starting` during its start period."""
        h = self._health
        if h == "healthy" and self.status == "running" and (
                self.health_hold or (self.ready_at is not None and self.clock() < self.ready_at)):
            return "starting"
        return h

    @health.setter
    def health(self, value: str | None) -> None:
        self._health = value

    def starting_left(self) -> float:
        """Seconds left of the start period (0 when over or not running)."""
        if self.status != "running" or self.ready_at is None:
            return 0.0
        return max(0.0, self.ready_at - self.clock())

    @property
    def restart_on_boot(self) -> bool:
        """What dockerd restarts when it starts: `always`, and `unless-stopped` unless stopped by hand."""
        policy = (self.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        return (self.started_at is not None and not self.running
                and (policy == "always" or (policy == "unless-stopped" and not self.manually_stopped)))

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

    def __init__(self, engine, container: Container):  # engine: the node's engine.state.EngineState
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
