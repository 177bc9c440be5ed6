"""Client side of the daemon's control socket (JSON lines). Also the Python fault API for tests."""
from __future__ import annotations

import json
import socket

from msr_lab.common.labfiles import LabFiles


class LabError(Exception):
    pass


def call(op: str, files: LabFiles | None = None, timeout: float = 30.0, **args):
    """Send one request to the lab daemon and return its result; raise LabError on failure."""
    files = files or LabFiles()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(files.control_sock))
    except OSError as exc:
        sock.close()
        raise LabError(f"the lab daemon is not running ({files.control_sock}: {exc.strerror}); run: msr-lab up") from None
    with sock:
        sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        raise LabError(f"the lab daemon closed the connection during {op!r}")
    reply = json.loads(data)
    if not reply.get("ok"):
        raise LabError(reply.get("error", "unknown error"))
    return reply.get("result")


class Faults:
    """Fault injection for tests: ``Faults().stop_replica('worker1')``. Every call returns the new state."""

    def __init__(self, files: LabFiles | None = None):
        self.files = files

    def _fault(self, kind: str, **args):
        return call("fault", self.files, kind=kind, **args)

    def stop_replica(self, target: str):
        return self._fault("stop-replica", target=target)

    def start_replica(self, target: str):
        return self._fault("start-replica", target=target)

    def partition(self, node: str):
        return self._fault("partition", target=node)

    def heal(self, node: str):
        return self._fault("heal", target=node)

    def kill_bootstrapper(self, phase: str):
        return self._fault("kill-bootstrapper", phase=phase)

    def slow_join(self, seconds: float):
        return self._fault("slow-join", seconds=seconds)

    def mke_error(self, status: int = 500, count: int = 0):
        return self._fault("mke-error", status=status, count=count)

    def mke_latency(self, ms: int):
        return self._fault("mke-latency", ms=ms)

    def ghost(self, target: str):
        return self._fault("ghost", target=target)

    def quorum_loss(self):
        return self._fault("quorum-loss")

    def admin_scheduling(self, on: bool):
        return self._fault("admin-scheduling", state="on" if on else "off")

    def lb_down(self, node: str):
        return self._fault("lb-down", target=node)

    def lb_up(self, node: str):
        return self._fault("lb-up", target=node)

    def clear(self):
        return self._fault("clear")

    def engine_down(self, node: str):
        return self._fault("engine-down", target=node)

    def engine_up(self, node: str):
        return self._fault("engine-up", target=node)

    def slow_ping(self, target: str, ms: int):
        return self._fault("slow-ping", target=target, ms=ms)

    def hang_ping(self, target: str):
        return self._fault("hang-ping", target=target)

    def freeze_health(self, target: str):
        return self._fault("freeze-health", target=target)

    def thaw_health(self, target: str):
        return self._fault("thaw-health", target=target)

    def token_expiry(self, seconds: float):
        return self._fault("token-expiry", seconds=seconds)

    def workload(self, node: str, name: str | None = None):
        return self._fault("workload", target=node, **({"name": name} if name else {}))


def status(files: LabFiles | None = None) -> dict:
    return call("status", files)
