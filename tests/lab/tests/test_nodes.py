"""Lab nodes, ssh and partitions, on a separate prefix/subnet from a running lab (the LB node's
services: test_lb_node.py)."""
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest
from netlab import Serve, hello, node_lab, state_dir, wait_for
from system_lab import exclusive

from msr_lab.nodes import initfiles, netns, sshkeys, teardown

PREFIX, BRIDGE, HOST_CIDR = 'msrtest', 'msrtest0', '10.78.0.1/24'
NODES = [('n1', 'msr', '10.78.0.11'), ('n2', 'msr', '10.78.0.12'), ('lb', 'lb', '10.78.0.10')]
ADDR = {name: addr for name, _role, addr in NODES}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root (namespaces)')


@pytest.fixture(scope='module', autouse=True)
def serialized():
    with exclusive('/run/msrtest.lock'):
        yield


@pytest.fixture(scope='module')
def lab():
    with node_lab(PREFIX, BRIDGE, HOST_CIDR, NODES) as nodes:
        yield nodes


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


SERVICE_MGR = """
import shutil
from ansible.module_utils.facts.system.service_mgr import ServiceMgrFactCollector

class Module:   # what the collector asks of AnsibleModule
    def get_bin_path(self, name, *args, **kwargs):
        return shutil.which(name)

    def run_command(self, *args, **kwargs):
        return 1, '', ''

print(ServiceMgrFactCollector().collect(Module(), {'ansible_system': 'Linux', 'ansible_distribution': 'Debian'})
      ['service_mgr'])
"""


def test_node_looks_like_a_sysvinit_debian_host(lab):
    """PID 1 is the node's own /sbin/init, so Ansible's service manager fact is sysvinit (the packaged
    /etc/init.d scripts), not systemd through the host's /sbin/init symlink, nor 'python3'."""
    for name in ADDR:
        node = (lab.state, name)
        look = netns.exec_in_node(node, ['sh', '-c', 'cat /proc/1/comm; tr "\\0" " " < /proc/1/cmdline; echo; '
                                         'test -L /sbin/init && echo link || echo file'],
                                  capture_output=True, text=True).stdout.splitlines()
        assert look[0] == 'init' and '/sbin/init ' + initfiles.NODE_MARKER in look[1] and look[2] == 'file', look
        r = netns.exec_in_node(node, [f'{initfiles.NODE_PYTHON}/bin/python', '-c', SERVICE_MGR],
                               capture_output=True, text=True)
        assert r.stdout.strip() == 'sysvinit', r.stderr
        assert lab.ssh(name, 'service haproxy status').returncode == 3   # LSB: not running
    # the host keeps its own /sbin/init: the node's copy went into its /usr overlay
    assert not os.path.exists('/sbin/init') or initfiles.INIT.encode() != Path('/sbin/init').read_bytes()


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
