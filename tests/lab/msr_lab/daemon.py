"""The lab daemon: one process that holds the lab's state and serves every emulated endpoint.

It serves each node's engine socket and MKE on the managers (both follow the engine-down fault), the MSR
replicas (listeners follow the cluster state), and the control socket used by ``msr-lab status`` and
``msr-lab fault``. A timer task drives what happens with time: the replicas' health reports and MKE's
node heartbeats.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time

from msr_lab.bootstrapper import program as bootstrapper
from msr_lab.common.httpserver import close_server, serve_app
from msr_lab.common.labfiles import LabFiles
from msr_lab.common.model import Faults, Lab, Node
from msr_lab.common.pki import LabPKI
from msr_lab.engine.server import serve_engine
from msr_lab.engine.state import EngineState
from msr_lab.faults import inject
from msr_lab.lb import lbnode
from msr_lab.mke.app import MkeApp
from msr_lab.msr.cluster import Cluster, new_replica_id
from msr_lab.nodes import netns

log = logging.getLogger("msr-lab")


class Daemon:
    def __init__(self, files: LabFiles):
        self.files = files
        self.desc = files.load()
        self.lab = Lab(self.desc["config"])
        self.pki = LabPKI(files.pki_dir)
        self.tls = self.pki.server_context()
        self.msr_servers: dict[tuple, asyncio.AbstractServer] = {}
        self.engine_servers: dict[str, asyncio.AbstractServer] = {}
        self.mke_servers: dict[str, asyncio.AbstractServer] = {}
        self.mke: MkeApp | None = None
        self.reconcile_wanted = asyncio.Event()
        self.stopping = asyncio.Event()
        # request and program logs: appended on the hot path (a list append), written by the timer
        self.pending_log: list[tuple[str, dict]] = []

    def netns_of(self, node: str) -> str:
        return self.desc["nodes"][node]["netns"]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        bootstrapper.register()   # the dtr images run the emulated bootstrapper
        for name, info in self.desc["nodes"].items():
            node = Node(name=name, role=info["role"], addr=info["addr"], virtual=bool(info.get("virtual")))
            self.lab.nodes[name] = node
            if node.in_mke:
                node.engine = EngineState(self.lab, node)
        self.lab.cluster = Cluster(self.lab)
        self.lab.log_event = lambda entry: self.pending_log.append(("event", entry))
        self.mke = MkeApp(self.lab)
        await self.reconcile_nodes()
        self.lab.on_change(lambda: loop.call_soon_threadsafe(self.reconcile_wanted.set))
        self.seed()
        await self.reconcile()
        asyncio.create_task(self.reconcile_loop())
        asyncio.create_task(self.timer_loop())
        self.files.control_sock.unlink(missing_ok=True)
        await asyncio.start_unix_server(self.handle_control, str(self.files.control_sock))
        os.chmod(self.files.control_sock, 0o600)

    def seed(self) -> None:
        """Install the replicas `up` asked for, as if `install` and `join` had run before."""
        cfg = self.lab.config
        for name in cfg.get("seed_replicas", []):
            if not self.lab.cluster.installed:
                self.lab.cluster.seed_install(name, cfg["msr_version"])
            else:
                rid = new_replica_id()
                self.lab.cluster.add_member(rid, name, cfg["msr_version"])
                self.lab.cluster.create_replica_objects(rid, name, cfg["msr_version"])
                self.lab.cluster.mark_running(rid)
        if self.lab.cluster.installed:   # what the inventory's msr_ca falls back to without a daemon
            (self.files.pki_dir / "msr-ca.pem").write_text(self.lab.cluster.tls.ca_pem)
        for node in self.lab.nodes.values():
            if node.virtual:   # an application node: workload containers MKE's /containers/json lists
                inject.seed_virtual_node(node, int(cfg.get("mke_node_containers", 2)))
            elif node.engine is not None:  # the bootstrap images are on every node, as after `docker pull`
                node.engine.pull(f"{cfg['msr_image']}:{cfg['msr_version']}")

    async def timer_loop(self) -> None:
        """Time passing: replicas write their health reports, MKE records heartbeats (a few ticks a period)."""
        tick = max(0.05, min(0.25, self.lab.timing("health_period") / 4))
        while True:
            await asyncio.sleep(tick)
            now = self.lab.now()
            try:
                with self.lab.lock:
                    self.lab.cluster.reports.tick(now)
                    self.mke.tick(now)
                self.flush_logs()
            except Exception:  # one bad tick must not stop time
                log.exception("timer tick failed")

    def logger(self, server: str):
        """What serve_app calls after each answer: one line of <state>/requests.log, written later."""
        def record(method: str, target: str, status: int, peer: str) -> None:
            self.pending_log.append(("request", {"t": round(time.time(), 3), "server": server, "method": method,
                                                 "path": target, "status": status,
                                                 "client": peer.rsplit(":", 1)[0]}))
        return record

    def flush_logs(self) -> None:
        """JSON lines: requests.log (method, path, status, per server), events.log (program runs, first OK reports)."""
        pending, self.pending_log = self.pending_log, []
        if not pending:
            return
        out = {"request": [], "event": []}
        for kind, entry in pending:
            out[kind].append(json.dumps(entry) + "\n")
        for kind, path in (("request", self.files.request_log), ("event", self.files.event_log)):
            if out[kind]:
                with open(path, "a") as fh:
                    fh.write("".join(out[kind]))

    async def reconcile_nodes(self) -> None:
        """Each node's engine socket, and MKE on each manager, answer only while that node's engine runs."""
        for node in self.lab.nodes.values():
            if node.engine is None or node.virtual:
                continue   # a virtual node has no socket: only MKE knows it
            name = node.name
            if node.engine_down:
                # dockerd is gone: its socket refuses, and MKE's containers on a manager are stopped too
                for servers in (self.engine_servers, self.mke_servers):
                    if name in servers:
                        await close_server(servers.pop(name))
                continue
            if name not in self.engine_servers:
                sock = self.files.docker_sock(name)
                sock.unlink(missing_ok=True)
                self.engine_servers[name] = await serve_engine(node.engine, str(sock))
            if node.role == "manager" and name not in self.mke_servers:
                sock = netns.listen_in_netns(self.netns_of(name), node.addr, 443)
                self.mke_servers[name] = await serve_app(self.mke, sock, self.tls, self.logger(f"mke {name}"))

    async def reconcile_loop(self) -> None:
        while True:
            await self.reconcile_wanted.wait()
            self.reconcile_wanted.clear()
            await self.reconcile()

    async def reconcile(self) -> None:
        """Open and close MSR replica listeners so they follow the replicas' dtr-nginx containers."""
        await self.reconcile_nodes()
        with self.lab.lock:
            # keyed by the replica's app too: a new replica (or a new cluster's replica of the same id) on
            # the same node and port gets a fresh listener, with its own certificate
            wanted = {(node, port, tls, app): app for node, port, tls, app in self.lab.cluster.listeners()}
        for key in [k for k in self.msr_servers if k not in wanted]:
            # a stopped dtr-nginx drops its open connections too, not only its listening socket
            await close_server(self.msr_servers.pop(key))
        for key, app in wanted.items():
            if key in self.msr_servers:
                continue
            node, port, tls, _ = key
            addr = self.lab.nodes[node].addr
            try:
                sock = netns.listen_in_netns(self.netns_of(node), addr, port)
            except OSError as exc:
                log.warning("cannot listen on %s %s:%s: %s", node, addr, port, exc)
                continue
            try:
                # each replica serves its own certificate, from its cluster's MSR CA (msr/tls.py)
                context = self.lab.cluster.server_context(app.rid) if tls else None
            except Exception as exc:  # the replica left the cluster meanwhile: the next reconcile closes it
                sock.close()
                log.warning("no certificate for replica %s: %s", app.rid, exc)
                continue
            self.msr_servers[key] = await serve_app(app, sock, context,
                                                    self.logger(f"msr {node}:{port}"))

    async def handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            req = json.loads(line)
            result = await asyncio.to_thread(self.dispatch, req)
            reply = {"ok": True, "result": result}
        except Exception as exc:  # every failure goes back to the caller as text
            reply = {"ok": False, "error": str(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    def dispatch(self, req: dict):
        op = req.get("op")
        if op == "ping":
            return "pong"
        if op == "status":
            return self.status()
        if op == "fault":
            return inject.apply(self.lab, self.desc, req)
        if op == "shutdown":
            asyncio.run_coroutine_threadsafe(self._set_stopping(), self.loop)
            return "stopping"
        raise ValueError(f"unknown control operation {op!r}")

    async def _set_stopping(self) -> None:
        self.stopping.set()

    def status(self) -> dict:
        with self.lab.lock:
            nodes = [{"name": n.name, "role": n.role, "addr": n.addr, "state": n.state,
                      "availability": n.availability, "partitioned": n.partitioned, "lb_down": n.lb_down,
                      "workloads": list(n.workloads), "virtual": n.virtual,
                      "containers": None if n.engine is None else len(n.engine.containers),
                      "engine": None if n.engine is None else ("down" if n.engine_down else "up"),
                      "mke_state": (None if not n.in_mke else "ready" if self.mke.shown_ready(n) else "down")}
                     for n in self.lab.nodes.values()]
            cluster = self.lab.cluster.status()
            fault_state = vars(self.lab.faults).copy()
            defaults = vars(Faults(join_seconds=float(self.lab.config.get("join_seconds", 3.0))))
            active = {k: v for k, v in fault_state.items() if v != defaults[k]}
        pools, kinds = {}, {}
        names = {info["addr"]: name for name, info in self.desc["nodes"].items()}
        for name, info in self.desc["nodes"].items():
            if info["role"] == "lb":
                kinds[name] = info.get("lb_kind", "haproxy")
                if self.lab.nodes[name].lb_down:
                    pools[name] = {"error": f"{name} is down (fault lb-down)"}
                    continue
                try:
                    pools[name] = lbnode.pool(str(self.files.root), name, kinds[name], names)
                except Exception as exc:  # the LB is a real HAProxy or NGINX that may be stopped by a test
                    pools[name] = {"error": str(exc)}
        return {"nodes": nodes, "cluster": cluster, "faults": fault_state, "faults_active": active, "lb": pools,
                "lb_kinds": kinds, "mke_url": self.lab.config["mke_url"]}

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        self.files.daemon_pid.write_text(str(os.getpid()))
        log.info("lab daemon ready")
        await self.stopping.wait()
        self.flush_logs()


def main(root: str | None = None) -> None:
    files = LabFiles(root)
    logging.basicConfig(filename=files.daemon_log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(Daemon(files).run())
