"""Shared fixtures of the lab's own tests.

``lab_engine``: one node's emulated Docker Engine on a temporary unix socket, served by an asyncio loop in a
background thread (no namespaces needed), with the test program ``echo_program`` registered for
``mirantis/dtr``. ``docker_cli``: runs the real docker CLI against it.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest

from msr_lab.common.httpserver import close_server
from msr_lab.common.model import Lab, Node
from msr_lab.engine import process as engine_process
from msr_lab.engine.server import serve_engine
from msr_lab.engine.state import EngineState

TEST_IMAGE = "mirantis/dtr:2.9.16"
SERVICE_IMAGE = "mirantis/dtr-nginx:2.9.16"


def echo_program(ctx) -> int:
    """Test program. argv: words echoed to stdout, then options:
    --env NAME (stderr 'NAME=set|unset'), --stdin (echo stdin lines as 'in: ...'), --cat (stdin to stdout,
    byte for byte, without the words line),
    --sleep S (killable), --lines N (N numbered stdout lines), --exit N (exit code)."""
    argv = list(ctx.argv)
    words = []
    code = 0
    i = 0
    actions = []
    while i < len(argv):
        a = argv[i]
        if a in ("--env", "--sleep", "--lines", "--exit") and i + 1 < len(argv):
            actions.append((a, argv[i + 1]))
            i += 2
        elif a in ("--stdin", "--cat"):
            actions.append((a, None))
            i += 1
        else:
            words.append(a)
            i += 1
    if ("--cat", None) not in actions:
        ctx.write(1, (" ".join(words) + "\n").encode())
    for a, v in actions:
        if a == "--env":
            ctx.write(2, f"{v}={'set' if v in ctx.env else 'unset'}\n".encode())
        elif a == "--stdin":
            while (line := ctx.read_stdin_line()) is not None:
                ctx.write(1, b"in: " + line)
        elif a == "--cat":
            while (chunk := ctx.read_stdin()) is not None:
                ctx.write(1, chunk)
        elif a == "--lines":
            for n in range(int(v)):
                ctx.write(1, f"line {n}\n".encode())
        elif a == "--sleep":
            end = time.monotonic() + float(v)
            while time.monotonic() < end:
                ctx.check_killed()
                time.sleep(0.02)
        elif a == "--exit":
            code = int(v)
    return code


@dataclass
class EngineHandle:
    lab: Lab
    node: Node
    state: EngineState
    path: str
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"unix://{self.path}"


@pytest.fixture
def lab_engine():
    lab = Lab({})
    node = lab.nodes["node1"] = Node(name="node1", role="manager", addr="10.99.0.11")
    state = node.engine = EngineState(lab, node)
    saved = dict(engine_process._PROGRAMS)
    engine_process.register_program("mirantis/dtr", echo_program)
    tmp = tempfile.mkdtemp(prefix="eng", dir="/tmp")  # short: unix socket paths are limited to 107 bytes
    path = os.path.join(tmp, "docker.sock")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = None
    try:
        server = asyncio.run_coroutine_threadsafe(serve_engine(state, path), loop).result(10)
        yield EngineHandle(lab, node, state, path, loop)
    finally:
        async def shutdown():
            if server is not None:
                await close_server(server)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        with lab.lock:  # program threads still sleeping end at their next check_killed()
            for c in list(state.containers.values()):
                state.remove_container(c, force=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        engine_process._PROGRAMS.clear()
        engine_process._PROGRAMS.update(saved)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def client(lab_engine):
    """A docker SDK client of ``lab_engine``."""
    import docker
    c = docker.DockerClient(base_url=lab_engine.url, version="auto", timeout=20)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def docker_cli(lab_engine, tmp_path):
    """``docker_cli('ps', '-a', input=..., env={...}, timeout=...)`` -> CompletedProcess (text)."""
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                "DOCKER_HOST": lab_engine.url, "DOCKER_CONFIG": str(tmp_path / ".docker")}

    def run(*args, input=None, env=None, timeout=20):
        return subprocess.run(["docker", *args], input=input, capture_output=True, text=True,
                              env={**base_env, **(env or {})}, timeout=timeout)
    run.env = base_env
    return run
