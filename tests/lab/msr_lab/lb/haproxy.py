"""HAProxy on the lab's LB node (msr2.md §4): TCP pass-through on 80/443, GET /_ping health checks,
the admin socket. The node is a sysvinit Debian host: HAProxy runs under Debian's own init script
(/etc/init.d/haproxy through /usr/sbin/service), its config in the node's /etc (written from inside
it), its pid file and admin socket in the node's /run, which the host sees at <state>/nodes/<lb>/run.
"""
import os
import socket
import time

from msr_lab.lb.common import check, norm_servers, run_dir, service
from msr_lab.nodes.netns import exec_in_node, write_node_file

HAPROXY_CFG = '/etc/haproxy/haproxy.cfg'
HAPROXY_DEFAULTS = '/etc/default/haproxy'
HAPROXY_PID = '/run/haproxy.pid'            # the init script's PIDFILE (/var/run is /run)
ADMIN_SOCK = '/run/haproxy/admin.sock'

# Sourced by the init script, with its arguments ($1 is the action). Seamless reloads: on reload the
# new process takes the listening sockets over from the running one through the admin socket
# (`expose-fd listeners`) instead of binding its own, so not one connection is refused or reset.
# Only on reload of a running haproxy: with -x, haproxy refuses to start when no old process answers
# (start, restart after the stop, reload of a stopped or crashed haproxy).
DEFAULTS = f'''# Defaults file for HAProxy (msr-lab LB node), sourced by /etc/init.d/haproxy
#CONFIG="/etc/haproxy/haproxy.cfg"

# Seamless reloads: take the listening sockets over from the running haproxy (see haproxy(1), -x).
case "$1" in
reload|force-reload)
\tif [ -S {ADMIN_SOCK} ] && [ -s {HAPROXY_PID} ] && kill -0 "$(cat {HAPROXY_PID})" 2>/dev/null; then
\t\tEXTRAOPTS="-x {ADMIN_SOCK}"
\tfi
\t;;
esac
'''


def render_haproxy_cfg(servers, host_header='msr.lab', check_tls=False):
    """Debian's haproxy.cfg layout with the MSR docs' backends. check_tls=False checks GET /_ping on
    each replica's HTTP port; True checks its HTTPS port with check-ssl verify none (the docs' variant)."""
    lines = []
    for name, addr, http, https in norm_servers(servers):
        check = f'check port {https} check-ssl verify none' if check_tls else f'check port {http}'
        opts = f'{check} inter 1s fall 2 rise 2'
        lines.append((name, addr, http, https, opts))
    http_servers = ''.join(f'\tserver {n} {a}:{h} {o}\n' for n, a, h, _s, o in lines)
    https_servers = ''.join(f'\tserver {n} {a}:{s} {o}\n' for n, a, _h, s, o in lines)
    check = f'''\toption httpchk GET /_ping HTTP/1.1
\thttp-check send hdr Host {host_header}
\thttp-check expect status 200
'''
    # The pool lives here: runtime API changes (add/del/disable server) are lost on reload, as on
    # any HAProxy without a server-state file.
    return f'''# msr-lab LB: written by msr_lab.lb
global
\tchroot /var/lib/haproxy
\tstats socket {ADMIN_SOCK} mode 660 level admin expose-fd listeners
\tstats timeout 30s
\tuser haproxy
\tgroup haproxy
\tdaemon

defaults
\tmode tcp
\ttimeout connect 5s
\t# MSR: no idle timeout, or one over 10 minutes
\ttimeout client 15m
\ttimeout server 15m
\ttimeout check 2s

frontend fe_msr_http
\tbind :80
\tdefault_backend msr_http

frontend fe_msr_https
\tbind :443
\tdefault_backend msr_https

backend msr_http
\tbalance roundrobin
{check}{http_servers}
backend msr_https
\tbalance roundrobin
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


def haproxy_pid(state_dir, lb_name):
    """The pid (in the node) of the haproxy process serving the admin socket, or None."""
    try:
        info = haproxy_cmd(state_dir, lb_name, 'show info', timeout=1)
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith('Pid:'):
            return int(line.split(':')[1])
    return None


def write_haproxy_cfg(state_dir, lb_name, servers, **render_kw):
    """Write the config (the pool) and check it with `haproxy -c`, as the init script will."""
    node = (state_dir, lb_name)
    write_node_file(node, HAPROXY_CFG, render_haproxy_cfg(servers, **render_kw))
    check(exec_in_node(node, ['haproxy', '-c', '-q', '-f', HAPROXY_CFG], capture_output=True, text=True),
          'haproxy -c')


def _wait_pid(state_dir, lb_name, old, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        pid = haproxy_pid(state_dir, lb_name)
        if pid is not None and pid != old:
            return pid
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def start_haproxy(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Write /etc/default/haproxy and the config, then `service haproxy start`; returns once the admin
    socket answers."""
    write_node_file((state_dir, lb_name), HAPROXY_DEFAULTS, DEFAULTS)
    write_haproxy_cfg(state_dir, lb_name, servers, **render_kw)
    check(service(state_dir, lb_name, 'haproxy', 'start'), 'service haproxy start')
    _wait_pid(state_dir, lb_name, None, timeout, 'haproxy admin socket not answering')


def reload_haproxy(state_dir, lb_name, servers=None, timeout=10, **render_kw):
    """`service haproxy reload`: the new process takes the listeners over, the old one finishes its
    connections. servers: rewrite the config first (membership lives there)."""
    if servers is not None:
        write_haproxy_cfg(state_dir, lb_name, servers, **render_kw)
    old = haproxy_pid(state_dir, lb_name)
    check(service(state_dir, lb_name, 'haproxy', 'reload'), 'service haproxy reload')
    _wait_pid(state_dir, lb_name, old, timeout, 'haproxy reload: no new process')


def stop_haproxy(state_dir, lb_name):
    service(state_dir, lb_name, 'haproxy', 'stop')


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
