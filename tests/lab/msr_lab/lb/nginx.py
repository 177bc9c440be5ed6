"""NGINX stream upstreams on the lab's LB node (msr2.md §4: TCP on 80/443, max_fails=2 fail_timeout=30s).

NGINX runs under Debian's own init script (/etc/init.d/nginx through /usr/sbin/service), with the MSR
docs' nginx.conf in Debian's paths. NGINX open source has no runtime API: the pool is what the config
says (nginx_servers).
"""
import re
import time

from msr_lab.lb.common import check, norm_servers, read_node_file, service
from msr_lab.nodes.netns import exec_in_node, write_node_file

NGINX_CONF = '/etc/nginx/nginx.conf'
NGINX_PID = '/run/nginx.pid'
NGINX_LOG = '/var/log/nginx/error.log'
NGINX_PORTS = (80, 443)


def render_nginx_conf(servers, ports=NGINX_PORTS):
    norm = norm_servers(servers)

    def upstream(port_index):
        items = [f'\t\tserver {a}:{(h, s)[port_index]} max_fails=2 fail_timeout=30s;' for _n, a, h, s in norm]
        # nginx refuses an empty upstream
        return '\n'.join(items) or '\t\tserver 127.0.0.1:1 down;'

    # modules-enabled loads the stream module (libnginx-mod-stream), as Debian's own nginx.conf does
    return f'''# msr-lab LB: written by msr_lab.lb
user www-data;
worker_processes 1;
pid {NGINX_PID};
error_log {NGINX_LOG};
include /etc/nginx/modules-enabled/*.conf;

events {{
\tworker_connections 1024;
}}

stream {{
\tupstream msr_{ports[0]} {{
{upstream(0)}
\t}}
\tupstream msr_{ports[1]} {{
{upstream(1)}
\t}}
\tserver {{
\t\tlisten {ports[0]};
\t\tproxy_pass msr_{ports[0]};
\t}}
\tserver {{
\t\tlisten {ports[1]};
\t\tproxy_pass msr_{ports[1]};
\t}}
}}
'''


def write_nginx_conf(state_dir, lb_name, servers, **render_kw):
    """Write the config (the pool) and check it with `nginx -t`, as the init script will."""
    write_node_file((state_dir, lb_name), NGINX_CONF, render_nginx_conf(servers, **render_kw))
    check(exec_in_node((state_dir, lb_name), ['nginx', '-t', '-q', '-c', NGINX_CONF], capture_output=True,
                       text=True), 'nginx -t')


def nginx_pid(state_dir, lb_name):
    """The master's pid (in the node) if it runs, else None."""
    r = exec_in_node((state_dir, lb_name), ['sh', '-c', f'p=$(cat {NGINX_PID}) && kill -0 "$p" && echo "$p"'],
                     capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 and r.stdout.strip().isdigit() else None


def nginx_workers(state_dir, lb_name):
    r = exec_in_node((state_dir, lb_name), ['sh', '-c', f'pgrep -P "$(cat {NGINX_PID})"'],
                     capture_output=True, text=True)
    return set(r.stdout.split())


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def start_nginx(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Write the config, then `service nginx start`; returns once the master has written its pid file
    (it binds its listeners before)."""
    write_nginx_conf(state_dir, lb_name, servers, **render_kw)
    check(service(state_dir, lb_name, 'nginx', 'start'), 'service nginx start')
    _wait(lambda: nginx_pid(state_dir, lb_name) is not None, timeout, 'nginx did not write its pid file')


def reload_nginx(state_dir, lb_name, servers=None, timeout=10, **render_kw):
    """`service nginx reload` (nginx -t, then HUP): returns once a new worker runs; the old ones
    finish their connections. servers: rewrite the config first."""
    if servers is not None:
        write_nginx_conf(state_dir, lb_name, servers, **render_kw)
    old = nginx_workers(state_dir, lb_name)
    check(service(state_dir, lb_name, 'nginx', 'reload'), 'service nginx reload')
    _wait(lambda: nginx_workers(state_dir, lb_name) - old, timeout, 'nginx reload: no new worker')


def stop_nginx(state_dir, lb_name):
    service(state_dir, lb_name, 'nginx', 'stop')


def nginx_log(state_dir, lb_name):
    return read_node_file(state_dir, lb_name, NGINX_LOG) or ''


_UPSTREAM = re.compile(r'upstream\s+(\S+)\s*\{([^}]*)\}')


def parse_upstreams(conf):
    """[(upstream, address, parameters)] of every server of every upstream block (comments dropped)."""
    text = re.sub(r'#[^\n]*', '', conf)
    out = []
    for name, body in _UPSTREAM.findall(text):
        for statement in body.split(';'):
            words = statement.split()
            if len(words) >= 2 and words[0] == 'server':
                out.append((name, words[1], words[2:]))
    return out


def nginx_servers(state_dir, lb_name, names=None):
    """The pool as the on-disk config has it: dicts with backend (upstream), name (the node whose
    address it is, from names {addr: node}, else the address), addr, status ('down' for a server
    marked down, else 'configured': NGINX open source reports no health), params."""
    conf = read_node_file(state_dir, lb_name, NGINX_CONF)
    if conf is None:
        raise FileNotFoundError(f'{lb_name}: no {NGINX_CONF}')
    out = []
    for upstream, addr, params in parse_upstreams(conf):
        host = addr.rsplit(':', 1)[0]
        out.append({'backend': upstream, 'name': (names or {}).get(host, addr), 'addr': addr,
                    'status': 'down' if 'down' in params else 'configured', 'params': ' '.join(params)})
    return out
