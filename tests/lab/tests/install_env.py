"""A lab for the install and MSR PKI component tests (test_install.py, test_msr_tls.py).

Each node has its own loopback address (127.0.0.x, all local on Linux), MKE answers over TLS on
manager1's with a certificate naming only manager1, and `serve()` puts each replica's HTTPS on its
node's address with the certificate the cluster gives it, so name and CA checks are the real ones.
"""
from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
from contextlib import contextmanager

from test_bootstrapper import Env

from msr_lab.bootstrapper import program as bootstrapper
from msr_lab.common.httpserver import close_server, serve_app
from msr_lab.common.model import Lab, Node
from msr_lab.common.pki import LabPKI
from msr_lab.engine.state import EngineState
from msr_lab.mke.app import MkeApp
from msr_lab.msr.cluster import Cluster

ADDRS = {"manager1": "127.0.0.11", "lb1": "127.0.0.5", "worker1": "127.0.0.21", "worker2": "127.0.0.22",
         "worker3": "127.0.0.23", "worker4": "127.0.0.24"}


def tls_get(addr: str, port: int, ca_pem: str | None, path: str = "/_ping", hostname: str | None = None):
    """(status, body) of GET https://addr:port/path, trusting only `ca_pem` and checking `hostname`
    (default: the address itself) against the certificate."""
    ctx = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    conn = http.client.HTTPSConnection(addr, port, timeout=10)
    raw = socket.create_connection((addr, port), timeout=10)
    try:
        conn.sock = ctx.wrap_socket(raw, server_hostname=hostname or addr)
    except BaseException:
        raw.close()
        raise
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class PkiEnv(Env):
    def __init__(self, lab, url, ca, loop):
        super().__init__(lab, url, ca)
        self.loop = loop
        self.servers = []

    def serve(self, rid: str) -> tuple[str, int]:
        """Serve replica `rid` over HTTPS on its node's address (a free port); returns (address, port)."""
        addr = self.lab.nodes[self.lab.cluster.replicas[rid].node].addr
        sock = socket.socket()
        sock.bind((addr, 0))
        sock.listen(16)
        app = self.lab.cluster.app_for(rid)
        server = asyncio.run_coroutine_threadsafe(
            serve_app(app, sock, self.lab.cluster.server_context(rid)), self.loop).result(5)
        self.servers.append(server)
        return addr, sock.getsockname()[1]

    def close(self) -> None:
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(close_server(server), self.loop).result(5)
        self.servers.clear()

    def install(self, *flags, node="worker1", rid="0000000000a1", env=None, image="mirantis/dtr:2.9.16"):
        return self.run(["install", "--ucp-node", node, "--replica-id", rid, *flags] + self.ucp(), env=env,
                        image=image)

    def join(self, node, rid, existing="0000000000a1"):
        return self.run(["join", "--ucp-node", node, "--replica-id", rid, "--existing-replica-id", existing]
                        + self.ucp())

    def objects(self):
        """Every container and volume name on the MKE nodes."""
        out = set()
        for node in self.lab.mke_nodes():
            out |= {c.name for c in node.engine.list_containers(True)} | set(node.engine.volumes)
        return out


@contextmanager
def background_loop():
    """An asyncio loop in a thread, for the servers."""
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    try:
        yield lp
    finally:
        lp.call_soon_threadsafe(lp.stop)
        t.join(5)
        lp.close()


@contextmanager
def pki_env(loop, tmp_path):
    """The lab of this module's docstring, served on `loop`; each test module wraps it in a fixture."""
    mke_pki = LabPKI(tmp_path / "pki")
    mke_pki.ensure(["manager1"], [ADDRS["manager1"]])
    # `up --storage s3` and an LB: what the seeded cluster would use, never what `install` uses
    lab = Lab({"storage": "s3", "mke_username": "admin", "mke_password": "pw", "msr_image": "mirantis/dtr",
               "msr_version": "2.9.16", "ca_pem": mke_pki.ca_pem, "seed_external_url": "https://127.0.0.5"})
    for name, addr in ADDRS.items():
        role = "manager" if name.startswith("manager") else "lb" if name.startswith("lb") else "worker"
        node = lab.nodes[name] = Node(name=name, role=role, addr=addr)
        if node.in_mke:
            node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    lab.faults.join_seconds = 0.1
    bootstrapper.register()
    sock = socket.socket()
    sock.bind((ADDRS["manager1"], 0))
    sock.listen(16)
    url = f"https://{ADDRS['manager1']}:{sock.getsockname()[1]}"
    mke = asyncio.run_coroutine_threadsafe(serve_app(MkeApp(lab), sock, mke_pki.server_context()), loop).result(5)
    env = PkiEnv(lab, url, mke_pki.ca_pem, loop)
    try:
        yield env
    finally:
        env.close()
        asyncio.run_coroutine_threadsafe(close_server(mke), loop).result(5)
