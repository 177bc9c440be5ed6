"""The LB node's services as on a sysvinit Debian host: HAProxy and NGINX under Debian's init scripts,
seamless reloads, broken configs that do not take the LB down, the pool in the config, the node going
down and booting again. Real nodes on their own prefix/subnet, backends served from the test process."""
import os
import socket
import threading

import pytest
from netlab import RequestLoop, Serve, hello, node_lab, ping, read_line, wait_for
from system_lab import exclusive

from msr_lab.lb import haproxy, lbnode, nginx
from msr_lab.lb.common import listening_sockets
from msr_lab.nodes import netns

PREFIX, BRIDGE, HOST_CIDR = 'msrtlb', 'msrtlb0', '10.78.2.1/24'
NODES = [('n1', 'msr', '10.78.2.11'), ('n2', 'msr', '10.78.2.12'), ('lb', 'lb', '10.78.2.10')]
ADDR = {name: addr for name, _role, addr in NODES}
MEMBERS = [('n1', ADDR['n1']), ('n2', ADDR['n2'])]
BOTH = {'hello from n1', 'hello from n2'}
RELOADS = 5

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason='needs root (namespaces)'), pytest.mark.timeout(180)]


@pytest.fixture(scope='module')
def lab():
    with exclusive('/run/msrtlb.lock'), node_lab(PREFIX, BRIDGE, HOST_CIDR, NODES) as nodes:
        yield nodes


@pytest.fixture(scope='module')
def backends(lab):
    """Each backend node answers GET /_ping on 80 (healthy while its event is set) and a line on 443."""
    healthy = {n: threading.Event() for n in ('n1', 'n2')}
    servers = []
    try:
        for name in ('n1', 'n2'):
            healthy[name].set()
            ns = f'{PREFIX}-{name}'
            servers.append(Serve(netns.listen_in_netns(ns, ADDR[name], 80), ping(name, healthy[name])))
            servers.append(Serve(netns.listen_in_netns(ns, ADDR[name], 443), hello(name)))
        yield healthy
    finally:
        for s in servers:
            s.close()


def _running(lab, name):
    return lab.ssh('lb', f'service {name} status').returncode == 0


def _serve(lab, kind):
    lbnode.start(lab.state, 'lb', kind, MEMBERS)
    try:
        yield
    finally:
        lab.ssh('lb', f'service {kind} stop')
        wait_for(lambda: not _running(lab, kind), 10, f'{kind} stopped')


@pytest.fixture
def haproxy_lb(lab, backends):
    yield from _serve(lab, 'haproxy')


@pytest.fixture
def nginx_lb(lab, backends):
    yield from _serve(lab, 'nginx')


def statuses(lab):
    return {(s['backend'], s['name']): s['status'] for s in haproxy.haproxy_servers(lab.state, 'lb')}


def seen_through_lb(port=443, n=6):
    return {read_line(ADDR['lb'], port) for _ in range(n)}


def one_request():
    line = read_line(ADDR['lb'], 443)
    assert line in BOTH, line


def reload_under_load(lab, command):
    """RELOADS x `command` over ssh while clients keep connecting through the LB: (failed requests,
    answered requests, listening socket inodes before, after)."""
    before = listening_sockets(lab.state, 'lb')
    with RequestLoop(one_request) as loop:
        for _ in range(RELOADS):
            r = lab.ssh('lb', command)
            assert r.returncode == 0, r.stdout + r.stderr
    return loop.failures, loop.ok, before, listening_sockets(lab.state, 'lb')


def admin(lab, command):
    """The runtime API over ssh, as scripts/demo.sh and an operator use it."""
    r = lab.ssh('lb', f'echo "{command}" | socat stdio /run/haproxy/admin.sock', text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---- HAProxy -----------------------------------------------------------------------------------

def test_haproxy_runs_under_the_debian_init_script(lab, haproxy_lb, backends):
    r = lab.ssh('lb', 'service haproxy status; cat /run/haproxy.pid; ps -o args= -p "$(cat /run/haproxy.pid)"',
                text=True)
    status, pid, args = r.stdout.splitlines()
    assert status == 'haproxy is running.' and int(pid) == haproxy.haproxy_pid(lab.state, 'lb')
    assert args.startswith('/usr/sbin/haproxy -f /etc/haproxy/haproxy.cfg -D -p /var/run/haproxy.pid')
    all_up = {(b, n): 'UP' for b in ('msr_http', 'msr_https') for n in ('n1', 'n2')}
    wait_for(lambda: statuses(lab) == all_up, 10, 'all servers UP')
    assert seen_through_lb() == BOTH
    assert 'Name: HAProxy' in admin(lab, 'show info')
    # /_ping failing takes a replica out of both backends (fall 2, inter 1s), and back (rise 2)
    backends['n2'].clear()
    try:
        # each backend checks on its own schedule, so one can be a check behind the other
        wait_for(lambda: {statuses(lab)[(b, 'n2')] for b in ('msr_http', 'msr_https')} == {'DOWN'}, 10,
                 'n2 DOWN in both backends')
        assert seen_through_lb() == {'hello from n1'}
    finally:
        backends['n2'].set()
    wait_for(lambda: statuses(lab) == all_up, 10, 'n2 UP again in both backends')


def test_haproxy_reload_is_seamless_and_forgets_runtime_changes(lab, haproxy_lb):
    wait_for(lambda: set(statuses(lab).values()) == {'UP'}, 10, 'all servers UP')
    admin(lab, 'disable server msr_https/n1')
    assert statuses(lab)[('msr_https', 'n1')] == 'MAINT'
    old = haproxy.haproxy_pid(lab.state, 'lb')
    failures, ok, before, after = reload_under_load(lab, 'service haproxy reload')
    assert failures == [] and ok > 0
    # the new process took the very same listening sockets over (-x): no window for a refused connection
    assert after[80] == before[80] and after[443] == before[443]
    assert haproxy.haproxy_pid(lab.state, 'lb') != old
    # runtime API changes are lost on reload: the config's pool comes back as written
    assert statuses(lab)[('msr_https', 'n1')] != 'MAINT'
    wait_for(lambda: seen_through_lb() == BOTH, 10, 'n1 back in the pool')


def test_haproxy_broken_config_keeps_the_running_lb(lab, haproxy_lb):
    old = haproxy.haproxy_pid(lab.state, 'lb')
    r = lab.ssh('lb', f'cp {haproxy.HAPROXY_CFG} /root/good.cfg && printf "\\tbogus_keyword\\n" >> {haproxy.HAPROXY_CFG}'
                      ' && service haproxy reload', text=True)
    assert r.returncode != 0 and 'Fatal errors found in configuration' in r.stderr, r.stdout + r.stderr
    with pytest.raises(RuntimeError, match='service haproxy reload: exit 1'):
        haproxy.reload_haproxy(lab.state, 'lb')
    assert haproxy.haproxy_pid(lab.state, 'lb') == old and _running(lab, 'haproxy')
    assert seen_through_lb() == BOTH
    assert lab.ssh('lb', f'cp /root/good.cfg {haproxy.HAPROXY_CFG} && service haproxy reload').returncode == 0
    # membership lives in the config: a reload with one server, then a restart, serve that one only
    haproxy.reload_haproxy(lab.state, 'lb', MEMBERS[:1])
    assert {n for _b, n in statuses(lab)} == {'n1'}
    assert lab.ssh('lb', 'service haproxy restart').returncode == 0
    wait_for(lambda: haproxy.haproxy_pid(lab.state, 'lb') is not None, 10, 'haproxy restarted')
    assert {n for _b, n in statuses(lab)} == {'n1'} and seen_through_lb() == {'hello from n1'}


# ---- NGINX -------------------------------------------------------------------------------------

def test_nginx_on_80_and_443_under_the_debian_init_script(lab, nginx_lb):
    conf = nginx.render_nginx_conf(MEMBERS)
    assert f'server {ADDR["n1"]}:443 max_fails=2 fail_timeout=30s;' in conf
    assert _running(lab, 'nginx') and not _running(lab, 'haproxy')
    assert seen_through_lb(443) == BOTH
    status = read_http_ping(ADDR['lb'], 80)
    assert status.startswith('HTTP/1.1 200 ')
    for port in (8080, 8443):            # one kind per LB node, on 80/443 only
        with pytest.raises(ConnectionRefusedError):
            read_line(ADDR['lb'], port)
    names = {a: n for n, a in MEMBERS}
    assert nginx.nginx_servers(lab.state, 'lb', names) == [
        {'backend': f'msr_{port}', 'name': n, 'addr': f'{a}:{port}', 'status': 'configured',
         'params': 'max_fails=2 fail_timeout=30s'} for port in (80, 443) for n, a in MEMBERS]


def read_http_ping(addr, port):
    with socket.create_connection((addr, port), timeout=3) as s:
        s.sendall(b'GET /_ping HTTP/1.1\r\nHost: msr.lab\r\nConnection: close\r\n\r\n')
        return s.recv(200).decode()


def test_nginx_reload_is_seamless_and_a_broken_config_keeps_it(lab, nginx_lb):
    master = nginx.nginx_pid(lab.state, 'lb')
    workers = nginx.nginx_workers(lab.state, 'lb')
    failures, ok, before, after = reload_under_load(lab, 'service nginx reload')
    assert failures == [] and ok > 0
    assert after[80] == before[80] and after[443] == before[443]     # the master keeps its sockets
    assert nginx.nginx_pid(lab.state, 'lb') == master and not workers & nginx.nginx_workers(lab.state, 'lb')
    # a reload with one member: new workers only know n1
    nginx.reload_nginx(lab.state, 'lb', MEMBERS[:1])
    wait_for(lambda: seen_through_lb() == {'hello from n1'}, 5, 'nginx serving n1 only')
    r = lab.ssh('lb', f'echo "garbage;" >> {nginx.NGINX_CONF} && service nginx reload', text=True)
    assert r.returncode != 0 and 'failed' in r.stdout, r.stdout + r.stderr
    with pytest.raises(RuntimeError, match='nginx -t'):
        nginx.write_nginx_conf(lab.state, 'lb', [('n1', 'not an address')])
    assert nginx.nginx_pid(lab.state, 'lb') == master and seen_through_lb() == {'hello from n1'}


# ---- the LB node down and up -------------------------------------------------------------------

def _node_processes(lab):
    r = netns.exec_in_node((lab.state, 'lb'), ['ps', '-e', '-o', 'comm='], capture_output=True, text=True)
    return sorted(set(r.stdout.split()) - {'ps'})


def test_lb_node_down_then_boots_from_its_config(lab, haproxy_lb):
    node, veth = (lab.state, 'lb'), lab.nodes['lb']['veth']
    wait_for(lambda: set(statuses(lab).values()) == {'UP'}, 10, 'all servers UP')
    admin(lab, 'add server msr_https/runtime 10.78.2.12:443')
    assert ('msr_https', 'runtime') in statuses(lab)
    lbnode.power_off(node, veth)
    try:
        assert lab.ssh('lb', 'true').returncode == 255
        with pytest.raises(OSError):
            read_line(ADDR['lb'], 443, timeout=1)
        assert _node_processes(lab) == ['init']         # nothing survives but the node's PID 1
    finally:
        lbnode.power_on(node, veth)
    assert lab.ssh('lb', 'true').returncode == 0
    assert _running(lab, 'haproxy')
    # it came back from the config on disk: the runtime-added server is gone, the pool is intact
    assert {n for _b, n in statuses(lab)} == {'n1', 'n2'}
    wait_for(lambda: seen_through_lb() == BOTH, 10, 'serving after boot')


def test_a_boot_with_a_broken_config_leaves_the_service_stopped(lab, haproxy_lb):
    node, veth = (lab.state, 'lb'), lab.nodes['lb']['veth']
    good = f'cp {haproxy.HAPROXY_CFG} /root/boot.cfg'
    assert lab.ssh('lb', f'{good} && printf "\\tbogus_keyword\\n" >> {haproxy.HAPROXY_CFG}').returncode == 0
    lbnode.power_off(node, veth)
    booted = lbnode.power_on(node, veth)
    assert booted.returncode != 0 and 'Fatal errors' in booted.stderr, booted
    assert lab.ssh('lb', 'true').returncode == 0 and not _running(lab, 'haproxy')   # up, not serving
    with pytest.raises(OSError):
        read_line(ADDR['lb'], 443, timeout=1)
    assert lab.ssh('lb', f'cp /root/boot.cfg {haproxy.HAPROXY_CFG} && service haproxy start').returncode == 0
    assert seen_through_lb() == BOTH


def test_a_boot_starts_only_the_kind_the_node_runs(lab, nginx_lb):
    node, veth = (lab.state, 'lb'), lab.nodes['lb']['veth']
    lbnode.power_off(node, veth)
    lbnode.power_on(node, veth)
    assert _running(lab, 'nginx') and not _running(lab, 'haproxy')
    assert seen_through_lb() == BOTH
