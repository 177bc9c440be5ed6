"""What the HAProxy and NGINX helpers share: the server list form, the LB node's /run, command checks.

Servers are (name, addr) or (name, addr, http_port, https_port); name is the node name.
"""
from msr_lab.nodes.netns import node_dir


def norm_servers(servers):
    out = []
    for s in servers:
        name, addr, *ports = s
        http, https = ports if ports else (80, 443)
        out.append((name, addr, int(http), int(https)))
    return out


def run_dir(state_dir, lb_name):
    return node_dir(state_dir, lb_name) / 'run'


def check(r, what):
    if r.returncode:
        raise RuntimeError(f'{what}: exit {r.returncode}: {r.stdout}{r.stderr}')
