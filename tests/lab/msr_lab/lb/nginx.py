"""NGINX stream upstreams on the lab's LB node (msr2.md §4: max_fails=2 fail_timeout=30s)."""
import time
from pathlib import Path

from msr_lab.lb.common import check, norm_servers, run_dir
from msr_lab.nodes.netns import exec_in_node, write_node_file

NGINX_CONF = '/etc/nginx/nginx.conf'
NGINX_PID = '/run/nginx/nginx.pid'
NGINX_LOG = '/run/nginx/error.log'
NGINX_PORTS = (8080, 8443)
STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'


def render_nginx_conf(servers, ports=NGINX_PORTS):
    norm = norm_servers(servers)

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
    check(_nginx(state_dir, lb_name, '-t', '-q'), 'nginx -t')


def _nginx_workers(state_dir, lb_name):
    r = exec_in_node((state_dir, lb_name), ['sh', '-c', f'pgrep -P "$(cat {NGINX_PID})"'],
                     capture_output=True, text=True)
    return set(r.stdout.split())


def start_nginx(state_dir, lb_name, servers, timeout=10, **render_kw):
    """Start NGINX (daemon) in the LB node; returns once it has written its pid file, which
    nginx does after binding its listeners."""
    run = run_dir(state_dir, lb_name) / 'nginx'
    run.mkdir(parents=True, exist_ok=True)
    pid_file = run / 'nginx.pid'
    pid_file.unlink(missing_ok=True)
    _write_nginx_conf(state_dir, lb_name, servers, **render_kw)
    check(_nginx(state_dir, lb_name), 'nginx start')
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
    check(_nginx(state_dir, lb_name, '-s', 'reload'), 'nginx reload')
    deadline = time.monotonic() + timeout
    while not (_nginx_workers(state_dir, lb_name) - old):
        if time.monotonic() > deadline:
            raise TimeoutError('nginx reload: no new worker')
        time.sleep(0.05)


def stop_nginx(state_dir, lb_name):
    _nginx(state_dir, lb_name, '-s', 'quit')


def nginx_log(state_dir, lb_name):
    p = Path(run_dir(state_dir, lb_name) / 'nginx' / 'error.log')
    return p.read_text(errors='replace') if p.exists() else ''
