"""HAProxy on the lab's LB node (msr2.md §4): TCP pass-through on 80/443, GET /_ping health checks,
the admin socket. It runs inside the LB node (netns.exec_in_node); its config lives in the node's /etc
(written from inside it), its pid file and sockets in the node's /run, which the host sees at
<state>/nodes/<lb>/run.
"""
import os
import socket
import time

from msr_lab.lb.common import check, norm_servers, run_dir
from msr_lab.nodes.netns import exec_in_node, write_node_file

HAPROXY_CFG = '/etc/haproxy/haproxy.cfg'
HAPROXY_PID = '/run/haproxy/haproxy.pid'


def render_haproxy_cfg(servers, host_header='msr.lab', check_tls=False):
    """check_tls=False checks GET /_ping on each replica's HTTP port; True checks its HTTPS
    port with check-ssl verify none (the MSR docs' variant)."""
    lines = []
    for name, addr, http, https in norm_servers(servers):
        check = f'check port {https} check-ssl verify none' if check_tls else f'check port {http}'
        opts = f'{check} inter 1s fall 2 rise 2'
        lines.append((name, addr, http, https, opts))
    http_servers = ''.join(f'    server {n} {a}:{h} {o}\n' for n, a, h, _s, o in lines)
    https_servers = ''.join(f'    server {n} {a}:{s} {o}\n' for n, a, _h, s, o in lines)
    check = f'''    option httpchk GET /_ping HTTP/1.1
    http-check send hdr Host {host_header}
    http-check expect status 200
'''
    # server-state-file: reload_haproxy dumps `show servers state` there first, so runtime
    # admin changes (disable server, weights) survive a reload for servers still configured.
    return f'''# msr-lab LB: written by msr_lab.lb
global
    master-worker
    pidfile {HAPROXY_PID}
    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
    stats timeout 30s
    server-state-file /run/haproxy/server-state

defaults
    mode tcp
    timeout connect 5s
    # MSR: no idle timeout, or one over 10 minutes
    timeout client 15m
    timeout server 15m
    timeout check 2s
    load-server-state-from-file global

frontend fe_msr_http
    bind :80
    default_backend msr_http

frontend fe_msr_https
    bind :443
    default_backend msr_https

backend msr_http
    balance roundrobin
{check}{http_servers}
backend msr_https
    balance roundrobin
{check}{https_servers}'''


def _unix_path(path):
    # sun_path holds 107 bytes; reach deep sockets through an O_PATH fd on their directory
    path = str(path)
    if len(path) < 100:
        return path, None
    fd = os.open(os.path.dirname(path), os.O_PATH)
    return f'/proc/self/fd/{fd}/{os.path.basename(path)}', fd


def haproxy_cmd(state_dir, lb_name, command, timeout=5):
    """One runtime API command on the admin socket; returns the reply text."""
    path, fd = _unix_path(run_dir(state_dir, lb_name) / 'haproxy' / 'admin.sock')
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(command.encode() + b'\n')
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    finally:
        if fd is not None:
            os.close(fd)
    return b''.join(chunks).decode()


def _haproxy_worker_pid(state_dir, lb_name):
    try:
        info = haproxy_cmd(state_dir, lb_name, 'show info', timeout=1)
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith('Pid:'):
            return int(line.split(':')[1])
    return None


def _write_haproxy_cfg(state_dir, lb_name, servers, **render_kw):
    node = (state_dir, lb_name)
    write_node_file(node, HAPROXY_CFG, render_haproxy_cfg(servers, **render_kw))
    check(exec_in_node(node, ['haproxy', '-c', '-q', '-f', HAPROXY_CFG], capture_output=True, text=True),
           'haproxy -c')


def start_haproxy(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Start HAProxy master-worker in the LB node; returns once the admin socket answers."""
    node = (state_dir, lb_name)
    (run_dir(state_dir, lb_name) / 'haproxy').mkdir(parents=True, exist_ok=True)
    _write_haproxy_cfg(state_dir, lb_name, servers, **render_kw)
    check(exec_in_node(node, ['haproxy', '-W', '-D', '-f', HAPROXY_CFG, '-p', HAPROXY_PID,
                               '-S', '/run/haproxy/master.sock'], capture_output=True, text=True),
           'haproxy start')
    deadline = time.monotonic() + timeout
    while _haproxy_worker_pid(state_dir, lb_name) is None:
        if time.monotonic() > deadline:
            raise TimeoutError('haproxy admin socket not answering')
        time.sleep(0.05)


def reload_haproxy(state_dir, lb_name, servers=None, timeout=10, **render_kw):
    """Graceful reload (USR2 to the master): new worker takes over the listeners, the old one
    finishes its connections. servers: rewrite the config first (membership lives there)."""
    node = (state_dir, lb_name)
    if servers is not None:
        _write_haproxy_cfg(state_dir, lb_name, servers, **render_kw)
    old = _haproxy_worker_pid(state_dir, lb_name)
    # the host may write the node's /run (a bind mount, not an overlay)
    (run_dir(state_dir, lb_name) / 'haproxy' / 'server-state').write_text(
        haproxy_cmd(state_dir, lb_name, 'show servers state'))
    # the pid file holds the node-local pid: signal from inside the node
    check(exec_in_node(node, ['sh', '-c', f'kill -USR2 "$(cat {HAPROXY_PID})"'],
                        capture_output=True, text=True), 'haproxy reload')
    deadline = time.monotonic() + timeout
    while True:
        pid = _haproxy_worker_pid(state_dir, lb_name)
        if pid is not None and pid != old:
            return
        if time.monotonic() > deadline:
            raise TimeoutError('haproxy reload: no new worker')
        time.sleep(0.05)


def stop_haproxy(state_dir, lb_name):
    exec_in_node((state_dir, lb_name), ['sh', '-c', f'kill "$(cat {HAPROXY_PID})"'], capture_output=True)


def haproxy_servers(state_dir, lb_name):
    """Backend servers from `show stat`: dicts with backend, name, addr, status (UP, DOWN,
    MAINT, 'UP 1/2'...), check_status, weight, and raw (every CSV column)."""
    text = haproxy_cmd(state_dir, lb_name, 'show stat')
    lines = [l for l in text.splitlines() if l.strip()]
    header = lines[0].lstrip('# ').split(',')
    out = []
    for line in lines[1:]:
        row = dict(zip(header, line.split(',')))
        if row.get('svname') in ('FRONTEND', 'BACKEND') or row.get('type') != '2':
            continue
        out.append({'backend': row['pxname'], 'name': row['svname'], 'addr': row.get('addr', ''),
                    'status': row['status'], 'check_status': row.get('check_status', ''),
                    'weight': int(row['weight'] or 0), 'raw': row})
    return out
