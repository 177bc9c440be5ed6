"""Lab nodes: one netns + UTS/mount/PID namespaces each, on a private bridge, running real sshd.

Everything is synchronous and subprocess based. Names derive from `prefix` so a test lab
(`msrtest`) can run beside the real one (`msrlab`).
"""
import ctypes
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from msr_lab.nodes import initfiles
from msr_lab.nodes.teardown import DEFAULT_BRIDGE, DEFAULT_PREFIX, _children, _run

DEFAULT_HOST_CIDR = '10.77.0.1/24'
NETNS_DIR = '/var/run/netns'
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_ip_lock = threading.Lock()


def netns_name(name, prefix=DEFAULT_PREFIX):
    return f'{prefix}-{name}'


def veth_name(name, prefix=DEFAULT_PREFIX):
    # Interface names are limited to 15 bytes; long ones get a stable hash.
    full = f'{prefix}-{name}'
    if len(full) <= 15:
        return full
    return f'{prefix[:4]}-{hashlib.sha1(full.encode()).hexdigest()[:10]}'


def node_dir(state_dir, name):
    # absolute: the path ends up in PID 1's argv, where teardown looks for it
    return Path(state_dir).resolve() / 'nodes' / name


def create_bridge(bridge=DEFAULT_BRIDGE, host_cidr=DEFAULT_HOST_CIDR):
    if _run('ip', 'link', 'show', 'dev', bridge, check=False).returncode:
        _run('ip', 'link', 'add', bridge, 'type', 'bridge')
    _run('ip', 'addr', 'replace', host_cidr, 'dev', bridge)
    _run('ip', 'link', 'set', bridge, 'up')


def _bridge_prefixlen(bridge):
    # nodes sit on the bridge's subnet (the lab's /24 by default)
    out = _run('ip', '-j', '-4', 'addr', 'show', 'dev', bridge).stdout
    for link in json.loads(out):
        for a in link.get('addr_info', []):
            return a['prefixlen']
    raise RuntimeError(f'bridge {bridge} has no IPv4 address (create_bridge first)')


def _prepare_node(state_dir, name, addr, bridge, authorized_key, hosts, prefix):
    nd = node_dir(state_dir, name)
    for d in initfiles.OVERLAID:
        (nd / 'upper' / d).mkdir(parents=True, exist_ok=True)
        (nd / 'work' / d).mkdir(parents=True, exist_ok=True)
    seed = nd / 'run' / 'lab-seed'
    seed.mkdir(parents=True, exist_ok=True)
    (seed / 'hosts').write_text(initfiles.hosts_file(hosts))
    (seed / 'authorized_keys').write_text(authorized_key.strip() + '\n')
    (seed / 'sshd_config').write_text(initfiles.sshd_config(addr))
    (seed / 'bashrc').write_text(initfiles.BASHRC)
    (seed / 'init').write_text(initfiles.INIT)
    (nd / 'init.sh').write_text(initfiles.INIT_SH)

    ns, veth = netns_name(name, prefix), veth_name(name, prefix)
    # Serialised: the first concurrent `ip netns add`s would each bind-mount /run/netns.
    with _ip_lock:
        plen = _bridge_prefixlen(bridge)
        _run('ip', 'netns', 'add', ns)
        _run('ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
        # the alias lets teardown find veths with hashed names
        _run('ip', 'link', 'set', veth, 'alias', f'{prefix}-{name}', 'master', bridge, 'up')
        _run('ip', '-n', ns, 'addr', 'add', f'{addr}/{plen}', 'dev', 'eth0')
        _run('ip', '-n', ns, 'link', 'set', 'lo', 'up')
        _run('ip', '-n', ns, 'link', 'set', 'eth0', 'up')
    return nd


def _start_init(nd, name, ns):
    log = open(nd / 'init.log', 'wb')
    env = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
           'HOME': '/root', 'LANG': 'C.UTF-8', 'LAB_PYTHON': sys.prefix}
    with log:
        p = subprocess.Popen(
            ['ip', 'netns', 'exec', ns, 'unshare', '--uts', '--mount', '--pid', '--fork',
             '--mount-proc', '/bin/sh', str(nd / 'init.sh'), str(nd), name],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd='/', start_new_session=True)
    _children[p.pid] = (p, nd)
    return p


def _ns_init_pid(parent):
    # The node's PID 1 is the descendant of `unshare` whose innermost pid is 1.
    # (/proc/<pid>/task/*/children is not compiled into this kernel.)
    for entry in os.scandir('/proc'):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, 'status').read_text()
        except OSError:
            continue
        fields = dict(line.split(':\t', 1) for line in status.splitlines() if ':\t' in line)
        if int(fields.get('PPid', '0')) == parent and fields.get('NSpid', '').split()[-1:] == ['1']:
            return int(entry.name)
    return None


def _tail(path, n=2000):
    try:
        return Path(path).read_text(errors='replace')[-n:]
    except OSError:
        return ''


def _comm(pid):
    try:
        return Path(f'/proc/{pid}/comm').read_text().strip()
    except OSError:
        return ''


def _sshd_ready(addr):
    try:
        with socket.create_connection((addr, 22), timeout=0.5) as s:
            return s.recv(64).startswith(b'SSH-')
    except OSError:
        return False


def _wait_ready(nd, name, role, addr, prefix, p, deadline):
    pid = None
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f'node {name} init exited {p.returncode}: {_tail(nd / "init.log")}')
        pid = pid or _ns_init_pid(p.pid)
        # init.sh execs /sbin/init right after starting sshd: ready once both happened
        if pid and _comm(pid) == 'init' and _sshd_ready(addr):
            (nd / 'pid').write_text(f'{pid}\n')
            return {'name': name, 'role': role, 'addr': addr, 'netns': netns_name(name, prefix),
                    'veth': veth_name(name, prefix), 'pid': pid}
        time.sleep(0.02)
    raise TimeoutError(f'node {name}: sshd on {addr}:22 not ready: {_tail(nd / "init.log")}')


def create_nodes(state_dir, nodes, bridge=DEFAULT_BRIDGE, authorized_key='', prefix=DEFAULT_PREFIX,
                 timeout=30):
    """nodes: list of (name, role, addr). Starts every init, then waits for all.
    Returns {name: node info} (see create_node)."""
    hosts = {name: addr for name, _role, addr in nodes}
    started = []
    for name, role, addr in nodes:
        nd = _prepare_node(state_dir, name, addr, bridge, authorized_key, hosts, prefix)
        started.append((nd, name, role, addr, _start_init(nd, name, netns_name(name, prefix))))
    deadline = time.monotonic() + timeout
    return {s[1]: _wait_ready(*s[:4], prefix, s[4], deadline) for s in started}


def create_node(state_dir, prefix, name, role, addr, bridge=DEFAULT_BRIDGE, authorized_key='', hosts=None,
                timeout=30):
    """One node (thread-safe). Returns once its sshd accepts connections:
    {'name', 'role', 'addr', 'netns', 'veth', 'pid' (host pid of the node's PID 1)}."""
    hosts = dict(hosts or {})
    hosts.setdefault(name, addr)
    nd = _prepare_node(state_dir, name, addr, bridge, authorized_key, hosts, prefix)
    p = _start_init(nd, name, netns_name(name, prefix))
    return _wait_ready(nd, name, role, addr, prefix, p, time.monotonic() + timeout)


def node_pid(state_dir, name):
    return int((node_dir(state_dir, name) / 'pid').read_text())


def _resolve_pid(node):
    if isinstance(node, int):
        return node
    if isinstance(node, tuple):
        return node_pid(*node)
    return int((Path(node) / 'pid').read_text())


def node_command(node, argv):
    """argv that runs `argv` inside a node. node: host pid, (state_dir, name) or the node dir."""
    return ['nsenter', '-t', str(_resolve_pid(node)), '-n', '-m', '-u', '-p', '--wd=/', '--',
            *map(str, argv)]


def exec_in_node(node, argv, **kwargs):
    """subprocess.run inside the node's namespaces (same node forms as node_command)."""
    kwargs.setdefault('stdin', subprocess.DEVNULL if 'input' not in kwargs else None)
    if kwargs['stdin'] is None:
        del kwargs['stdin']
    return subprocess.run(node_command(node, argv), **kwargs)


def write_node_file(node, path, text, mode=None):
    """Write a file in the node's own view (its overlays must not be written from the host)."""
    script = 'mkdir -p "$(dirname "$1")" && cat > "$1"' + (f' && chmod {mode:o} "$1"' if mode else '')
    exec_in_node(node, ['sh', '-c', script, 'sh', path], input=text.encode(), check=True,
                 capture_output=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'setns: {os.strerror(err)}')


def listen_in_netns(netns, addr, port, backlog=128):
    """A non-blocking listening TCP socket that lives in `netns`; the calling thread returns
    to its own netns before this returns (setns is per thread)."""
    home = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            _setns(target)
            sock = None
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            finally:
                try:
                    _setns(home)
                except OSError as e:
                    # the thread would silently stay in the node's netns: never continue
                    raise SystemExit(f'listen_in_netns: cannot return to own netns: {e}') from e
        finally:
            os.close(target)
    finally:
        os.close(home)
    return sock


def partition(veth, down, prefix=None):
    """Cut (down=True) or heal a node's link to the bridge. veth: the node info's 'veth', or
    the node name when prefix is given."""
    if prefix is not None:
        veth = veth_name(veth, prefix)
    _run('ip', 'link', 'set', veth, 'down' if down else 'up')
