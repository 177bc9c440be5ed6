"""System tests, LB nodes: one HAProxy and one NGINX node (`up --lb-kind haproxy,nginx`) driven as real
Debian LB hosts, through the lab's inventory with `ansible.builtin.service`, over ssh, and the LB-down fault.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import subprocess

import pytest
import yaml
from netlab import RequestLoop
from system_lab import BIN, STATE, cli, lab_fixture, wait_for

from msr_lab.lb.common import listening_sockets

pytestmark = pytest.mark.timeout(180)

lab = lab_fixture("--managers", "1", "--workers", "2", "--replicas", "2", "--lb-kind", "haproxy,nginx")
LBS = {"lb1": "haproxy", "lb2": "nginx"}
RELOADS = 3
NO_VERIFY = ssl._create_unverified_context()   # load only: the replica certificates are not the point here


def ping_via(lab, lb: str, https: bool, timeout=3) -> None:
    """GET /_ping through an LB (one new connection); raises unless the replica answers 200."""
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    kw = {"context": NO_VERIFY} if https else {}
    conn = cls(lab.addr(lb), 443 if https else 80, timeout=timeout, **kw)
    try:
        conn.request("GET", "/_ping", headers={"Host": "msr.lab"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    finally:
        conn.close()


def through_every_lb(lab):
    for lb in LBS:
        ping_via(lab, lb, https=False)
        ping_via(lab, lb, https=True)


@pytest.fixture(scope="module")
def inventory(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lbinv")
    inv = tmp / "inventory.yml"
    cli("inventory", "-o", str(inv))
    return inv


RESULT = re.compile(r"^(\S+) \| ([A-Z]+!?) => (\{.*?^\})$", re.M | re.S)


def ansible(inventory, *args, timeout=120) -> tuple[int, dict]:
    """Ad-hoc `ansible` with the lab's inventory; (exit code, {host: result}) read from the default
    callback's `host | STATUS => {json}` blocks, STATUS (SUCCESS, CHANGED, FAILED!) as result["_status"]."""
    tmp = inventory.parent
    cfg = tmp / "ansible.cfg"            # no project or user ansible.cfg
    cfg.write_text("[defaults]\n")
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp), "LANG": "C.UTF-8",
           "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_PIPELINING": "True", "ANSIBLE_CONFIG": str(cfg),
           "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1"}
    r = subprocess.run([str(BIN / "ansible"), "-i", str(inventory), *args], capture_output=True, text=True,
                       env=env, cwd=tmp, timeout=timeout)
    hosts = {host: {**json.loads(body), "_status": word} for host, word, body in RESULT.findall(r.stdout)}
    assert hosts, f"ansible {args}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    return r.returncode, hosts


def reload_all(inventory) -> tuple[int, dict]:
    # one task for both kinds: the inventory says which service each LB host runs
    return ansible(inventory, "msr_lb", "-m", "ansible.builtin.service",
                   "-a", "name={{ msr_lb_provider }} state=reloaded")


def haproxy_pid(lab) -> str:
    return lab.ssh("lb1", "cat /run/haproxy.pid").stdout.strip()


def nginx_workers(lab) -> set[str]:
    return set(lab.ssh("lb2", "pgrep -P \"$(cat /run/nginx.pid)\"").stdout.split())


def pool(lab, lb: str) -> dict[tuple[str, str], str]:
    return {(s["backend"], s["name"]): s["status"] for s in lab.status()["lb"][lb]}


def test_each_lb_node_runs_its_kind_and_the_inventory_says_which(lab, inventory):
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["msr_lb"]["hosts"]
    assert {h: v["msr_lb_provider"] for h, v in hosts.items()} == LBS
    assert {h: v["ansible_host"] for h, v in hosts.items()} == {h: lab.addr(h) for h in LBS}
    status = lab.status()
    assert status["lb_kinds"] == LBS
    wait_for(lambda: set(pool(lab, "lb1").values()) == {"UP"}, 10, what="HAProxy pool UP")
    assert set(pool(lab, "lb1")) == {(b, w) for b in ("msr_http", "msr_https") for w in ("worker1", "worker2")}
    # NGINX: the pool its config holds, on 80/443 with the docs' max_fails/fail_timeout
    assert {(s["backend"], s["name"], s["addr"], s["params"]) for s in status["lb"]["lb2"]} == {
        (f"msr_{p}", w, f"{lab.addr(w)}:{p}", "max_fails=2 fail_timeout=30s")
        for p in (80, 443) for w in ("worker1", "worker2")}
    text = cli("status").stdout
    assert "LB POOL on lb1 (haproxy)" in text and "LB POOL on lb2 (nginx)" in text
    through_every_lb(lab)
    for lb, kind in LBS.items():
        other = "nginx" if kind == "haproxy" else "haproxy"
        r = lab.ssh(lb, f"service {kind} status; echo rc=$?; service {other} status; echo rc=$?")
        assert r.stdout.splitlines()[1::2] == ["rc=0", "rc=3"], r.stdout


def test_ansible_service_reload_is_graceful(lab, inventory):
    rc, facts = ansible(inventory, "msr_lb", "-m", "ansible.builtin.setup", "-a", "filter=ansible_service_mgr")
    assert rc == 0 and {h: r["ansible_facts"]["ansible_service_mgr"] for h, r in facts.items()} == \
        {h: "sysvinit" for h in LBS}
    pid, workers = haproxy_pid(lab), nginx_workers(lab)
    sockets = {lb: listening_sockets(STATE, lb) for lb in LBS}
    with RequestLoop(lambda: through_every_lb(lab), threads=2) as loop:
        for _ in range(RELOADS):
            rc, hosts = reload_all(inventory)
            assert rc == 0, hosts
            for host, res in hosts.items():
                assert res["changed"] is True and res["status"]["reloaded"]["rc"] == 0, (host, res)
    assert loop.failures == [] and loop.ok > 0
    # the listening sockets on 80/443 stayed the same ones: no moment without a listener
    for lb, before in sockets.items():
        after = listening_sockets(STATE, lb)
        assert (after[80], after[443]) == (before[80], before[443]), lb
    # really reloaded: a new HAProxy process, new NGINX workers
    assert haproxy_pid(lab) != pid and not workers & nginx_workers(lab)


def test_a_broken_config_fails_the_reload_and_the_lb_keeps_serving(lab, inventory):
    break_it = {"lb1": "cp /etc/haproxy/haproxy.cfg /root/good && printf '\\tbogus_keyword\\n' >> /etc/haproxy/haproxy.cfg",
                "lb2": "cp /etc/nginx/nginx.conf /root/good && echo 'garbage;' >> /etc/nginx/nginx.conf"}
    restore = {"lb1": "cp /root/good /etc/haproxy/haproxy.cfg", "lb2": "cp /root/good /etc/nginx/nginx.conf"}
    pid, workers = haproxy_pid(lab), nginx_workers(lab)
    for lb, command in break_it.items():
        assert lab.ssh(lb, command).returncode == 0
    try:
        rc, hosts = reload_all(inventory)
        assert rc != 0 and all(r["_status"] == "FAILED!" and "Failed to reload" in r["msg"] for r in hosts.values()), hosts
        for lb, kind in LBS.items():
            r = lab.ssh(lb, f"service {kind} reload")
            assert r.returncode != 0 and "failed" in r.stdout, r.stdout
        # the running LBs still serve, with the processes they had
        through_every_lb(lab)
        assert haproxy_pid(lab) == pid and nginx_workers(lab) == workers
    finally:
        for lb, command in restore.items():
            lab.ssh(lb, command)
    rc, hosts = reload_all(inventory)
    assert rc == 0, hosts
    through_every_lb(lab)


def admin(lab, command: str) -> str:
    """HAProxy's runtime API on lb1 over ssh, as scripts/demo.sh uses it."""
    r = lab.ssh("lb1", f"echo '{command}' | socat stdio /run/haproxy/admin.sock")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_runtime_changes_are_lost_on_reload_the_config_stays(lab, inventory):
    wait_for(lambda: set(pool(lab, "lb1").values()) == {"UP"}, 10, what="HAProxy pool UP")
    admin(lab, "disable server msr_https/worker1")
    assert pool(lab, "lb1")[("msr_https", "worker1")] == "MAINT"
    rc, hosts = ansible(inventory, "lb1", "-m", "ansible.builtin.service", "-a", "name=haproxy state=reloaded")
    assert rc == 0, hosts
    after = pool(lab, "lb1")
    assert after[("msr_https", "worker1")] != "MAINT"
    assert set(after) == {(b, w) for b in ("msr_http", "msr_https") for w in ("worker1", "worker2")}


def test_lb_node_down_and_back(lab):
    wait_for(lambda: set(pool(lab, "lb1").values()) == {"UP"}, 10, what="HAProxy pool UP")
    admin(lab, f"add server msr_http/runtime {lab.addr('worker2')}:80")
    assert ("msr_http", "runtime") in pool(lab, "lb1")
    lab.fault("lb-down", "lb1")
    try:
        r = subprocess.run(["ssh", "-F", lab.ssh_config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "lb1", "true"],
                           capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode == 255 and "timed out" in r.stderr, r.stderr
        with pytest.raises(OSError):
            ping_via(lab, "lb1", https=False, timeout=2)
        ping_via(lab, "lb2", https=True)                   # the other LB still serves
        status = lab.status()
        assert {n["name"]: n["lb_down"] for n in status["nodes"]}["lb1"] is True
        assert "down" in status["lb"]["lb1"]["error"]
        line = next(x for x in cli("status").stdout.splitlines() if x.startswith("lb1 "))
        assert line.split()[-1] == "down", line             # its NETWORK column
    finally:
        lab.fault("lb-up", "lb1")
    assert lab.ssh("lb1", "true").returncode == 0
    ping_via(lab, "lb1", https=False)
    # it booted from its config: what the runtime API added is gone
    assert ("msr_http", "runtime") not in pool(lab, "lb1")
    # `clear` brings a downed LB back too
    lab.fault("lb-down", "lb2")
    with pytest.raises(OSError):
        ping_via(lab, "lb2", https=True, timeout=2)
    lab.fault("clear")
    assert {n["name"]: n["lb_down"] for n in lab.status()["nodes"]}["lb2"] is False
    assert lab.ssh("lb2", "service nginx status").returncode == 0
    through_every_lb(lab)
