"""What the HAProxy and NGINX helpers share: the server list form, the LB node's /run, running the
node's own init scripts, command checks.

Servers are (name, addr) or (name, addr, http_port, https_port); name is the node name. An LB node is
named by (state_dir, lb_name); everything runs inside it (nodes.netns.exec_in_node).
"""
from msr_lab.nodes.netns import exec_in_node, node_dir


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


def service(state_dir, lb_name, name, action, timeout=60):
    """`service NAME ACTION` in the LB node, as an admin types it: Debian's /usr/sbin/service runs the
    packaged /etc/init.d/NAME (the node has no systemd). Returns the CompletedProcess (text)."""
    return exec_in_node((state_dir, lb_name), ['/usr/sbin/service', name, action], capture_output=True,
                        text=True, timeout=timeout)


def read_node_file(state_dir, lb_name, path):
    """A file as the node sees it (its /etc and /var are overlays): text, or None if it is missing."""
    r = exec_in_node((state_dir, lb_name), ['cat', path], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def listening_sockets(state_dir, lb_name):
    """{port: socket inode} of the node's listening TCP sockets (/proc/net/tcp of its netns). A
    seamless reload hands the same socket to the new process: its inode does not change."""
    text = read_node_file(state_dir, lb_name, '/proc/net/tcp') or ''
    out = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == '0A':        # TCP_LISTEN
            out[int(fields[1].rsplit(':', 1)[1], 16)] = int(fields[9])
    return out
