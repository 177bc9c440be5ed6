"""Lab nodes, ssh, partitions and the LB node, on a separate prefix/subnet from a running lab."""
import http.server
import json
import os
import select
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from system_lab import exclusive

from msr_lab.lb import haproxy, nginx
from msr_lab.nodes import netns, sshkeys, teardown

PREFIX, BRIDGE, HOST_CIDR = 'msrtest', 'msrtest0', '10.78.0.1/24'
NODES = [('n1', 'msr', '10.78.0.11'), ('n2', 'msr', '10.78.0.12'), ('lb', 'lb', '10.78.0.10')]
ADDR = {name: addr for name, _role, addr in NODES}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (namespaces)')


class Lab:
    def __init__(self, state, nodes, create_s):
        self.state, self.nodes, self.create_s = state, nodes, create_s
        self.pids = {name: info['pid'] for name, info in nodes.items()}
        self.ssh_config = state / 'ssh' / 'config'

    def ssh(self, host, command, **kw):
        return subprocess.run(['ssh', '-F', str(self.ssh_config), '-o', 'BatchMode=yes', host, command],
                              capture_output=True, stdin=kw.pop('stdin', subprocess.DEVNULL), **kw)


@pytest.fixture(scope='module', autouse=True)
def serialized():
    with exclusive('/run/msrtest.lock'):
        yield


def state_dir():
    # Not under pytest's basetemp: concurrent pytest runs rotate (delete) old basetemps.
    return Path(tempfile.mkdtemp(prefix='msrtest-', dir='/var/tmp')) / 'state'


@pytest.fixture(scope='module')
def lab():
    state = state_dir()
    teardown.teardown(state, PREFIX, BRIDGE)   # leftovers of an earlier crashed run (found by prefix)
    try:
        netns.create_bridge(BRIDGE, HOST_CIDR)
        pub = sshkeys.ensure_client_key(state)
        t = time.monotonic()
        # in threads, as `msr-lab up` does
        with ThreadPoolExecutor(len(NODES)) as pool:
            futures = {name: pool.submit(netns.create_node, state, PREFIX, name, role, addr, BRIDGE, pub, ADDR)
                       for name, role, addr in NODES}
            nodes = {name: f.result() for name, f in futures.items()}
        create_s = time.monotonic() - t
        sshkeys.write_ssh_client_files(state, ADDR)
        yield Lab(state, nodes, create_s)
    finally:
        teardown.teardown(state, PREFIX, BRIDGE)
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


# ---- nodes -------------------------------------------------------------------------------------

def test_nodes_start_fast_with_own_pid1(lab):
    assert lab.create_s < 10, lab.create_s
    assert lab.nodes['n1'] == {'name': 'n1', 'role': 'msr', 'addr': '10.78.0.11', 'netns': 'msrtest-n1',
                               'veth': 'msrtest-n1', 'pid': lab.pids['n1']}
    for name, pid in lab.pids.items():
        status = Path(f'/proc/{pid}/status').read_text()
        nspid = [l for l in status.splitlines() if l.startswith('NSpid:')][0].split()
        assert nspid[1:] == [str(pid), '1'], (name, nspid)


def test_hostname_over_ssh_by_name_and_addr(lab):
    for name, addr in ADDR.items():
        for target in (name, addr):
            r = lab.ssh(target, 'hostname')
            assert r.returncode == 0, r.stderr
            assert r.stdout.decode().strip() == name


def test_etc_is_per_node(lab):
    marker = '/etc/msrtest-marker'
    netns.write_node_file((lab.state, 'n1'), marker, 'n1 only\n')
    assert netns.exec_in_node((lab.state, 'n1'), ['cat', marker], capture_output=True).stdout == b'n1 only\n'
    assert netns.exec_in_node((lab.state, 'n2'), ['test', '-e', marker]).returncode == 1
    assert not os.path.exists(marker)
    hosts = netns.exec_in_node((lab.state, 'n2'), ['cat', '/etc/hosts'], capture_output=True, text=True).stdout
    assert '10.78.0.11\tn1' in hosts and '10.78.0.10\tlb' in hosts


def test_pid_namespace_is_small(lab):
    r = netns.exec_in_node(lab.pids['n1'], ['sh', '-c', 'ls /proc | grep -c "^[0-9]"'],
                           capture_output=True, text=True)
    assert int(r.stdout) < 10   # init, sshd, this shell and ls, not the host's hundreds


def test_unknown_host_key_is_rejected(lab, tmp_path):
    empty = tmp_path / 'known_hosts'
    empty.write_text('')
    cfg = tmp_path / 'config'
    cfg.write_text(lab.ssh_config.read_text().replace(str(lab.state / 'ssh' / 'known_hosts'), str(empty)))
    r = subprocess.run(['ssh', '-F', str(cfg), '-o', 'BatchMode=yes', 'n1', 'true'],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 255
    assert 'Host key verification failed' in r.stderr


class _PingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def _reply(self, body):
        self.send_response(200)
        self.send_header('Api-Version', '1.41')
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):
        self._reply(b'OK')

    def do_GET(self):
        self.wfile.write(self._reply(b'OK' if self.path.endswith('/_ping') else b'?'))

    def log_message(self, *args):
        pass


class _UnixHTTP(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker_sock(lab):
    path = lab.state / 'nodes' / 'n1' / 'run' / 'docker.sock'
    server = _UnixHTTP(str(path), _PingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        path.unlink(missing_ok=True)


def test_docker_dial_stdio_over_ssh(lab, docker_sock):
    r = lab.ssh('n1', 'docker system dial-stdio', stdin=None,
                input=b'GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n', timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(b'\r\n')[0].endswith(b' 200 OK') and r.stdout.endswith(b'\r\n\r\nOK')


def test_docker_sdk_paramiko_with_ssh_home(lab, docker_sock, tmp_path, monkeypatch):
    import docker
    import paramiko
    home = tmp_path / 'home'
    sshkeys.install_ssh_home(lab.state, home)
    monkeypatch.setenv('HOME', str(home))
    client = docker.DockerClient(base_url=f'ssh://root@{ADDR["n1"]}', version='1.41', use_ssh_client=False)
    try:
        assert client.ping() is True
    finally:
        client.close()
    (home / '.ssh' / 'known_hosts').write_text('')
    with pytest.raises(paramiko.SSHException, match='not found in known_hosts'):
        docker.DockerClient(base_url=f'ssh://root@{ADDR["n1"]}', version='1.41', use_ssh_client=False)


CONNECT = ('import socket,sys\n'
           's=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=1.5)\n'
           'print(s.recv(100).decode().strip())')


def connect_from(lab, node, addr, port):
    return netns.exec_in_node((lab.state, node), ['python3', '-c', CONNECT, addr, str(port)],
                              capture_output=True, text=True, timeout=10)


def test_listen_in_netns_from_thread_and_partition(lab):
    own = os.readlink('/proc/thread-self/ns/net')
    result = {}

    def worker():
        result['sock'] = netns.listen_in_netns(f'{PREFIX}-n1', ADDR['n1'], 9000)
        result['ns'] = os.readlink('/proc/thread-self/ns/net')
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert result['ns'] == own   # the thread came back to the host netns
    server = Serve(result['sock'], hello('n1'))
    try:
        r = connect_from(lab, 'n2', ADDR['n1'], 9000)
        assert r.stdout.strip() == 'hello from n1', r.stderr
        netns.partition(lab.nodes['n1']['veth'], True)
        try:
            assert connect_from(lab, 'n2', ADDR['n1'], 9000).returncode != 0
        finally:
            netns.partition('n1', False, prefix=PREFIX)
        wait_for(lambda: connect_from(lab, 'n2', ADDR['n1'], 9000).stdout.strip() == 'hello from n1',
                 10, 'n1 reachable after heal')
    finally:
        server.close()


# ---- LB node -----------------------------------------------------------------------------------

@pytest.fixture
def backends(lab):
    healthy = {n: threading.Event() for n in ('n1', 'n2')}
    servers = []
    try:
        for name in ('n1', 'n2'):
            healthy[name].set()
            ns = f'{PREFIX}-{name}'
            servers.append(Serve(netns.listen_in_netns(ns, ADDR[name], 80), ping(name, healthy[name])))
            servers.append(Serve(netns.listen_in_netns(ns, ADDR[name], 443), hello(name)))
        yield healthy
    finally:
        for s in servers:
            s.close()


def statuses(lab):
    return {(s['backend'], s['name']): s['status'] for s in haproxy.haproxy_servers(lab.state, 'lb')}


def seen_through_lb(port, n=6):
    return {read_line(ADDR['lb'], port) for _ in range(n)}


def test_haproxy_checks_admin_socket_and_reload(lab, backends):
    members = [('n1', ADDR['n1']), ('n2', ADDR['n2'])]
    haproxy.start_haproxy(lab.state, 'lb', members)
    try:
        all_up = {(b, n): 'UP' for b in ('msr_http', 'msr_https') for n in ('n1', 'n2')}
        wait_for(lambda: statuses(lab) == all_up, 10, 'all servers UP')
        assert seen_through_lb(443) == {'hello from n1', 'hello from n2'}

        haproxy.haproxy_cmd(lab.state, 'lb', 'disable server msr_https/n1')
        assert statuses(lab)[('msr_https', 'n1')] == 'MAINT'
        assert seen_through_lb(443) == {'hello from n2'}

        # connections keep working through a graceful reload; admin state survives it
        failures, stop = [], threading.Event()

        def client():
            while not stop.is_set():
                try:
                    read_line(ADDR['lb'], 443)
                except OSError as e:
                    failures.append(e)
        t = threading.Thread(target=client)
        t.start()
        try:
            haproxy.reload_haproxy(lab.state, 'lb', members)
            time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        assert failures == []
        assert statuses(lab)[('msr_https', 'n1')] == 'MAINT'
        haproxy.haproxy_cmd(lab.state, 'lb', 'enable server msr_https/n1')

        # /_ping failing takes a replica out of both backends (fall 2, inter 1s)
        backends['n2'].clear()
        wait_for(lambda: statuses(lab)[('msr_https', 'n2')] == 'DOWN', 6, 'n2 DOWN')
        assert seen_through_lb(443) == {'hello from n1'}
        backends['n2'].set()
        wait_for(lambda: statuses(lab)[('msr_https', 'n2')] == 'UP', 6, 'n2 UP again')
    finally:
        haproxy.stop_haproxy(lab.state, 'lb')


def test_nginx_stream_proxies_and_reloads(lab, backends):
    members = [('n1', ADDR['n1']), ('n2', ADDR['n2'])]
    conf = nginx.render_nginx_conf(members)
    assert 'server 10.78.0.11:443 max_fails=2 fail_timeout=30s;' in conf
    nginx.start_nginx(lab.state, 'lb', members)
    try:
        assert seen_through_lb(8443) == {'hello from n1', 'hello from n2'}
        nginx.reload_nginx(lab.state, 'lb', members[:1])
        # old workers may still hold a connection; new ones only know n1
        wait_for(lambda: seen_through_lb(8443) == {'hello from n1'}, 5, 'nginx serving n1 only')
    finally:
        nginx.stop_nginx(lab.state, 'lb')


def test_teardown_after_broken_up():
    # a crashed `up`: a node whose netns was deleted under it, an empty stray netns, a
    # half-deleted state dir
    prefix, bridge, state = 'msrtst2', 'msrtst20', state_dir()
    try:
        netns.create_bridge(bridge, '10.78.1.1/24')
        pub = sshkeys.ensure_client_key(state)
        pid = netns.create_nodes(state, [('a', 'msr', '10.78.1.11')], bridge, pub, prefix=prefix)['a']['pid']
        subprocess.run(['ip', 'netns', 'del', f'{prefix}-a'], check=True)
        subprocess.run(['ip', 'netns', 'add', f'{prefix}-b'], check=True)
        (state / 'nodes' / 'a' / 'pid').unlink()
        (state / 'ssh' / 'id_ed25519').unlink()
        assert teardown._alive(pid)
        assert f'netns {prefix}-b' in teardown.leftovers(prefix, bridge)
    finally:
        teardown.teardown(state, prefix, bridge)
        state.parent.rmdir()
    assert not teardown._alive(pid)
    assert prefix not in subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    assert not [l['ifname'] for l in _links() if prefix in l['ifname'] or prefix in l.get('ifalias', '')]
    assert not state.exists()


# ---- teardown (keep last) ----------------------------------------------------------------------

def _links():
    return json.loads(subprocess.run(['ip', '-j', 'link', 'show'], capture_output=True, text=True).stdout)


def test_teardown_leaves_nothing(lab):
    in_netns = set()
    for name in ADDR:
        out = subprocess.run(['ip', 'netns', 'pids', f'{PREFIX}-{name}'], capture_output=True, text=True).stdout
        in_netns.update(int(p) for p in out.split())
    assert set(lab.pids.values()) <= in_netns
    t = time.monotonic()
    teardown.teardown(lab.state, PREFIX, BRIDGE)
    assert time.monotonic() - t < 15
    assert not [p for p in in_netns if teardown._alive(p)]
    assert not [n for n in subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout.split()
                if n.startswith(PREFIX)]
    assert not [l['ifname'] for l in _links() if l['ifname'].startswith(PREFIX) or
                l.get('master') == BRIDGE or l['ifname'] == BRIDGE]
    assert str(lab.state) not in Path('/proc/self/mounts').read_text()
    assert not lab.state.exists()
    assert teardown.leftovers(PREFIX, BRIDGE) == []
    teardown.teardown(lab.state, PREFIX, BRIDGE)   # idempotent
