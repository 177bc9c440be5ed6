"""HAProxy (ports 80/443) and NGINX stream (8080/8443) on the lab's LB node, as msr2.md §4:
TCP pass-through, /_ping health checks, NGINX max_fails=2 fail_timeout=30s.

Both run inside the LB node (netns.exec_in_node). Config files live in the node's /etc and
are written from inside it; pid files, sockets and logs live in the node's /run, which the
host sees at <state>/nodes/<lb>/run.

Servers are (name, addr) or (name, addr, http_port, https_port); name is the node name.
"""
import os
import socket
import time
from pathlib import Path

from .netns import exec_in_node, node_dir, write_node_file

HAPROXY_CFG = '/etc/haproxy/haproxy.cfg'
HAPROXY_PID = '/run/haproxy/haproxy.pid'
NGINX_CONF = '/etc/nginx/nginx.conf'
NGINX_PID = '/run/nginx/nginx.pid'
NGINX_LOG = '/run/nginx/error.log'
NGINX_PORTS = (8080, 8443)
STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'


def _norm(servers):
    out = []
    for s in servers:
        name, addr, *ports = s
        http, https = ports if ports else (80, 443)
        out.append((name, addr, int(http), int(https)))
    return out


def render_haproxy_cfg(servers, host_header='msr.lab', check_tls=False):
    """check_tls=False checks GET /_ping on each replica's HTTP port; True checks its HTTPS
    port with check-ssl verify none (the MSR docs' variant)."""
    lines = []
    for name, addr, http, https in _norm(servers):
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


def _run_dir(state_dir, lb_name):
    return node_dir(state_dir, lb_name) / 'run'


def _unix_path(path):
    # sun_path holds 107 bytes; reach deep sockets through an O_PATH fd on their directory
    path = str(path)
    if len(path) < 100:
        return path, None
    fd = os.open(os.path.dirname(path), os.O_PATH)
    return f'/proc/self/fd/{fd}/{os.path.basename(path)}', fd


def haproxy_cmd(state_dir, lb_name, command, timeout=5):
    """One runtime API command on the admin socket; returns the reply text."""
    path, fd = _unix_path(_run_dir(state_dir, lb_name) / 'haproxy' / 'admin.sock')
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


def _check(r, what):
    if r.returncode:
        raise RuntimeError(f'{what}: exit {r.returncode}: {r.stdout}{r.stderr}')


def _write_haproxy_cfg(state_dir, lb_name, servers, **render_kw):
    node = (state_dir, lb_name)
    write_node_file(node, HAPROXY_CFG, render_haproxy_cfg(servers, **render_kw))
    _check(exec_in_node(node, ['haproxy', '-c', '-q', '-f', HAPROXY_CFG], capture_output=True, text=True),
           'haproxy -c')


def start_haproxy(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Start HAProxy master-worker in the LB node; returns once the admin socket answers."""
    node = (state_dir, lb_name)
    (_run_dir(state_dir, lb_name) / 'haproxy').mkdir(parents=True, exist_ok=True)
    _write_haproxy_cfg(state_dir, lb_name, servers, **render_kw)
    _check(exec_in_node(node, ['haproxy', '-W', '-D', '-f', HAPROXY_CFG, '-p', HAPROXY_PID,
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
    (_run_dir(state_dir, lb_name) / 'haproxy' / 'server-state').write_text(
        haproxy_cmd(state_dir, lb_name, 'show servers state'))
    # the pid file holds the node-local pid: signal from inside the node
    _check(exec_in_node(node, ['sh', '-c', f'kill -USR2 "$(cat {HAPROXY_PID})"'],
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


# ---- NGINX ----------------------------------------------------------------------------------

def render_nginx_conf(servers, ports=NGINX_PORTS):
    norm = _norm(servers)

    def upstream(port_index):
        items = [f'        server {a}:{(h, s)[port_index]} max_fails=2 fail_timeout=30s;'
                 for _n, a, h, s in norm]
        # nginx refuses an empty upstream
        return '\n'.join(items) or '        server 127.0.0.1:1 down;'

    return f'''# msr-lab LB: written by msr_lab.lb
load_module {STREAM_MODULE};
user root;
worker_processes 1;
pid {NGINX_PID};
error_log {NGINX_LOG} notice;

events {{
    worker_connections 1024;
}}

stream {{
    upstream msr_80 {{
{upstream(0)}
    }}
    upstream msr_443 {{
{upstream(1)}
    }}
    server {{
        listen {ports[0]};
        proxy_pass msr_80;
    }}
    server {{
        listen {ports[1]};
        proxy_pass msr_443;
    }}
}}
'''


def _nginx(state_dir, lb_name, *args):
    return exec_in_node((state_dir, lb_name), ['nginx', '-e', NGINX_LOG, '-c', NGINX_CONF, *args],
                        capture_output=True, text=True)


def _write_nginx_conf(state_dir, lb_name, servers, **render_kw):
    write_node_file((state_dir, lb_name), NGINX_CONF, render_nginx_conf(servers, **render_kw))
    _check(_nginx(state_dir, lb_name, '-t', '-q'), 'nginx -t')


def _nginx_workers(state_dir, lb_name):
    r = exec_in_node((state_dir, lb_name), ['sh', '-c', f'pgrep -P "$(cat {NGINX_PID})"'],
                     capture_output=True, text=True)
    return set(r.stdout.split())


def start_nginx(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Start NGINX (daemon) in the LB node; returns once it has written its pid file, which
    nginx does after binding its listeners."""
    run = _run_dir(state_dir, lb_name) / 'nginx'
    run.mkdir(parents=True, exist_ok=True)
    pid_file = run / 'nginx.pid'
    pid_file.unlink(missing_ok=True)
    _write_nginx_conf(state_dir, lb_name, servers, **render_kw)
    _check(_nginx(state_dir, lb_name), 'nginx start')
    deadline = time.monotonic() + timeout
    while not (pid_file.exists() and pid_file.read_text().strip()):
        if time.monotonic() > deadline:
            raise TimeoutError('nginx did not write its pid file')
        time.sleep(0.05)


def reload_nginx(state_dir, lb_name, servers=None, timeout=10, **render_kw):
    """nginx -s reload; returns once a new worker runs (old ones drain their connections)."""
    if servers is not None:
        _write_nginx_conf(state_dir, lb_name, servers, **render_kw)
    old = _nginx_workers(state_dir, lb_name)
    _check(_nginx(state_dir, lb_name, '-s', 'reload'), 'nginx reload')
    deadline = time.monotonic() + timeout
    while not (_nginx_workers(state_dir, lb_name) - old):
        if time.monotonic() > deadline:
            raise TimeoutError('nginx reload: no new worker')
        time.sleep(0.05)


def stop_nginx(state_dir, lb_name):
    _nginx(state_dir, lb_name, '-s', 'quit')


def nginx_log(state_dir, lb_name):
    p = Path(_run_dir(state_dir, lb_name) / 'nginx' / 'error.log')
    return p.read_text(errors='replace') if p.exists() else ''
