"""Helpers of the node-level tests (test_nodes.py, test_lb_node.py): a few real nodes built with
msr_lab.nodes on their own prefix, bridge and subnet (no lab daemon), and small TCP servers and
clients inside them."""
import json
import select
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from msr_lab.nodes import netns, sshkeys, teardown


class NodeLab:
    def __init__(self, state, nodes, create_s):
        self.state, self.nodes, self.create_s = state, nodes, create_s
        self.pids = {name: info['pid'] for name, info in nodes.items()}
        self.ssh_config = state / 'ssh' / 'config'

    def ssh(self, host, command, **kw):
        return subprocess.run(['ssh', '-F', str(self.ssh_config), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3',
                               host, command], capture_output=True, stdin=kw.pop('stdin', subprocess.DEVNULL), **kw)


def state_dir():
    # Not under pytest's basetemp: concurrent pytest runs rotate (delete) old basetemps.
    return Path(tempfile.mkdtemp(prefix='msrtest-', dir='/var/tmp')) / 'state'


@contextmanager
def node_lab(prefix, bridge, host_cidr, nodes):
    """nodes: [(name, role, addr)]. Yields a NodeLab; removes every trace afterwards, even on failure."""
    state = state_dir()
    addrs = {name: addr for name, _role, addr in nodes}
    teardown.teardown(state, prefix, bridge)   # leftovers of an earlier crashed run (found by prefix)
    try:
        netns.create_bridge(bridge, host_cidr)
        pub = sshkeys.ensure_client_key(state)
        t = time.monotonic()
        # in threads, as `msr-lab up` does
        with ThreadPoolExecutor(len(nodes)) as pool:
            futures = {name: pool.submit(netns.create_node, state, prefix, name, role, addr, bridge, pub, addrs)
                       for name, role, addr in nodes}
            made = {name: f.result() for name, f in futures.items()}
        create_s = time.monotonic() - t
        sshkeys.write_ssh_client_files(state, addrs)
        yield NodeLab(state, made, create_s)
    finally:
        teardown.teardown(state, prefix, bridge)
        state.parent.rmdir()


class Serve:
    """Accept loop on a (netns) listening socket; handler(conn) runs per connection."""

    def __init__(self, sock, handler):
        self.sock, self.handler, self.stop = sock, handler, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            if select.select([self.sock], [], [], 0.05)[0]:
                try:
                    conn, _ = self.sock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            try:
                self.handler(conn)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def hello(name):
    def handler(conn):
        conn.sendall(f'hello from {name}\n'.encode())
    return handler


def ping(name, healthy):
    def handler(conn):
        conn.settimeout(2)
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        ok = healthy.is_set() and data.startswith(b'GET /_ping ')
        body = json.dumps({'Healthy': ok, 'node': name}).encode()
        status = b'200 OK' if ok else b'503 Service Unavailable'
        conn.sendall(b'HTTP/1.1 ' + status + b'\r\nContent-Type: application/json\r\nContent-Length: '
                     + str(len(body)).encode() + b'\r\nConnection: close\r\n\r\n' + body)
    return handler


def read_line(addr, port, timeout=2):
    with socket.create_connection((addr, port), timeout=timeout) as s:
        data = b''
        while not data.endswith(b'\n'):
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        return data.decode().strip()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.1)


class RequestLoop:
    """Clients that keep asking `request()` (one new connection each) until stopped, bounded in count and
    time; `failures` lists what went wrong. Used as a context manager around a reload."""

    def __init__(self, request, threads=2, max_requests=20000, max_seconds=60):
        self.request, self.failures, self.ok = request, [], 0
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.max_requests, self.deadline = max_requests, time.monotonic() + max_seconds
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.ok + len(self.failures) >= self.max_requests:
                    return
            try:
                self.request()
                with self.lock:
                    self.ok += 1
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)          # requests after the last reload too
        self.stop.set()
        for t in self.threads:
            t.join()
