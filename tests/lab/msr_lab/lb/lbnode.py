"""An LB node as a whole: which kind it runs on 80/443 (HAProxy or NGINX), starting it at `up`, its
pool for `msr-lab status`, and the node going down and coming back (fault lb-down / lb-up).
"""
from msr_lab.lb import haproxy, nginx
from msr_lab.lb.common import check
from msr_lab.nodes.initfiles import SSHD
from msr_lab.nodes.netns import exec_in_node, partition

KINDS = ('haproxy', 'nginx')
DEFAULT_KIND = 'haproxy'


def parse_kinds(values, count):
    """--lb-kind values (repeated and/or comma lists) -> one kind per LB node. One kind names every
    node; otherwise there must be one per node. count None: as many nodes as kinds (default 1)."""
    kinds = [k.strip() for v in values or () for k in v.split(',') if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f'--lb-kind: unknown kind {bad[0]!r} (choose {" or ".join(KINDS)})')
    if count is None:
        count = len(kinds) or 1
    if not kinds:
        kinds = [DEFAULT_KIND]
    if len(kinds) == 1:
        return kinds * count
    if len(kinds) != count:
        raise ValueError(f'--lb-kind names {len(kinds)} kinds for {count} LB node(s): give one, or one per node')
    return kinds


def start(state_dir, lb_name, kind, servers):
    """Start `kind` on the node through its init script, the pool written in its config. Only `kind`
    is enabled in the node's runlevels (update-rc.d), so only it comes back after a reboot."""
    for k in KINDS:
        action = 'enable' if k == kind else 'disable'
        check(exec_in_node((state_dir, lb_name), ['update-rc.d', k, action], capture_output=True, text=True),
              f'update-rc.d {k} {action}')
    if kind == 'haproxy':
        haproxy.start_haproxy(state_dir, lb_name, servers)
    else:
        nginx.start_nginx(state_dir, lb_name, servers)


def pool(state_dir, lb_name, kind, names=None):
    """HAProxy: the runtime API's view (`show stat`); NGINX: its on-disk config."""
    if kind == 'haproxy':
        return haproxy.haproxy_servers(state_dir, lb_name)
    return nginx.nginx_servers(state_dir, lb_name, names)


# /run is a tmpfs on a real host: a boot finds no pid file or socket of the processes that died.
_CLEAR_RUN = 'rm -f /run/*.pid /run/haproxy/admin.sock'
# What sysvinit's rc does for runlevel 2, for the LB services: start those linked S??<name>.
_BOOT = ('rc=0; for s in ' + ' '.join(f'/etc/rc2.d/S??{k}' for k in KINDS)
         + '; do if [ -x "$s" ]; then "$s" start || rc=1; fi; done; exit $rc')


def power_off(node, veth):
    """The node goes down: its link drops and every process but its PID 1 dies at once (sshd and its
    sessions, HAProxy or NGINX): nothing reaches it, nothing on it survives. node: as exec_in_node
    takes it (the host pid of its PID 1, or (state_dir, name))."""
    partition(veth, down=True)
    # kill -1 from inside the node's PID namespace: every process there but PID 1 and kill itself
    exec_in_node(node, ['kill', '-9', '-1'], capture_output=True)


def power_on(node, veth, link=True):
    """The node boots again: a fresh /run, the network (link=False: it stays cut off, a partition),
    sshd, then the LB service its runlevel enables, from the config on disk (runtime API changes made
    before it went down are gone). A service that fails to start (a broken config on disk) stays
    stopped, as after a real boot: the returned CompletedProcess says so, nothing raises."""
    check(exec_in_node(node, ['sh', '-c', _CLEAR_RUN], capture_output=True, text=True), 'clear /run')
    if link:
        partition(veth, down=False)
    check(exec_in_node(node, list(SSHD), capture_output=True, text=True), 'sshd')
    return exec_in_node(node, ['sh', '-c', _BOOT], capture_output=True, text=True)
