"""Component tests of the LB part (no namespaces): `up --lbs/--lb-kind`, the configs HAProxy and NGINX
get, reading NGINX's pool back, the inventory's msr_lb group, the fault's CLI form."""
from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

from msr_lab import cli, inventory
from msr_lab.common.labfiles import LabFiles
from msr_lab.faults import inject
from msr_lab.lb import haproxy, nginx
from msr_lab.lifecycle import plan_nodes

NET = ipaddress.ip_network("10.99.0.0/24")


def up_args(*argv):
    return cli.parser().parse_args(["up", *argv])


def lbs(*argv):
    return {n: (i["addr"], i["lb_kind"]) for n, i in plan_nodes(up_args(*argv), NET).items() if i["role"] == "lb"}


def test_lb_kinds_per_node():
    assert lbs() == {"lb1": ("10.99.0.5", "haproxy")}                      # default: one HAProxy
    assert lbs("--lbs", "0") == {}
    assert lbs("--lbs", "2") == {"lb1": ("10.99.0.5", "haproxy"), "lb2": ("10.99.0.6", "haproxy")}
    assert lbs("--lb-kind", "nginx") == {"lb1": ("10.99.0.5", "nginx")}
    assert lbs("--lbs", "3", "--lb-kind", "nginx") == {f"lb{i}": (f"10.99.0.{4 + i}", "nginx") for i in (1, 2, 3)}
    both = {"lb1": ("10.99.0.5", "haproxy"), "lb2": ("10.99.0.6", "nginx")}
    assert lbs("--lb-kind", "haproxy,nginx") == both                         # --lbs follows the list
    assert lbs("--lbs", "2", "--lb-kind", "haproxy", "--lb-kind", "nginx") == both
    for bad, text in ((["--lb-kind", "envoy"], "unknown kind 'envoy'"),
                      (["--lbs", "3", "--lb-kind", "haproxy,nginx"], "names 2 kinds for 3 LB node(s)"),
                      (["--lbs", "7"], "--lbs must be 0-6"), (["--lbs", "-1"], "--lbs must be 0-6")):
        with pytest.raises(SystemExit, match=text.replace("(", r"\(").replace(")", r"\)")):
            plan_nodes(up_args(*bad), NET)


def test_haproxy_config_is_debian_layout_with_the_docs_checks():
    cfg = haproxy.render_haproxy_cfg([("worker1", "10.99.0.21"), ("worker2", "10.99.0.22", 8080, 8443)])
    assert "\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners\n" in cfg
    assert "\tdaemon\n" in cfg and "master-worker" not in cfg and "server-state" not in cfg
    assert "\tbind :80\n" in cfg and "\tbind :443\n" in cfg and "\tmode tcp\n" in cfg
    assert cfg.count("\toption httpchk GET /_ping HTTP/1.1\n") == 2
    # health checks on the replica's plain HTTP port, for both backends
    assert "\tserver worker2 10.99.0.22:8443 check port 8080 inter 1s fall 2 rise 2\n" in cfg
    assert "\tserver worker1 10.99.0.21:80 check port 80 inter 1s fall 2 rise 2\n" in cfg


def test_haproxy_defaults_hand_sockets_over_only_on_reload(tmp_path):
    """/etc/default/haproxy as the init script sources it: -x only for a reload of a running haproxy."""
    run = tmp_path / "run"
    defaults = tmp_path / "default"
    defaults.write_text(haproxy.DEFAULTS.replace("/run/", f"{run}/"))
    (run / "haproxy").mkdir(parents=True)

    def extraopts(action):
        r = subprocess.run(["sh", "-c", f'EXTRAOPTS=; . "{defaults}"; echo "$EXTRAOPTS"', "haproxy", action],
                           capture_output=True, text=True, check=True)
        return r.stdout.strip()
    assert extraopts("reload") == ""                      # nothing runs
    sock = run / "haproxy" / "admin.sock"
    subprocess.run(["python3", "-c", f"import socket; socket.socket(socket.AF_UNIX).bind('{sock}')"], check=True)
    (run / "haproxy.pid").write_text(f"{os.getpid()}\n")     # a running process
    assert extraopts("reload") == f"-x {sock}"
    assert extraopts("force-reload") == f"-x {sock}"
    for action in ("start", "restart", "stop", "status"):
        assert extraopts(action) == "", action
    (run / "haproxy.pid").write_text("999999999\n")      # a crashed haproxy's pid file
    assert extraopts("reload") == ""


def test_nginx_config_and_its_pool_read_back():
    members = [("worker1", "10.99.0.21"), ("worker2", "10.99.0.22", 8080, 8443)]
    conf = nginx.render_nginx_conf(members)
    assert "include /etc/nginx/modules-enabled/*.conf;" in conf and "pid /run/nginx.pid;" in conf
    assert "\t\tlisten 80;\n" in conf and "\t\tlisten 443;\n" in conf and "8080;" not in conf.split("upstream")[0]
    assert nginx.parse_upstreams(conf) == [
        ("msr_80", "10.99.0.21:80", ["max_fails=2", "fail_timeout=30s"]),
        ("msr_80", "10.99.0.22:8080", ["max_fails=2", "fail_timeout=30s"]),
        ("msr_443", "10.99.0.21:443", ["max_fails=2", "fail_timeout=30s"]),
        ("msr_443", "10.99.0.22:8443", ["max_fails=2", "fail_timeout=30s"])]
    # a hand-edited config: comments ignored, a server marked down, more than one per line of text
    edited = """stream {
    upstream msr_443 {
        # server 10.99.0.23:443;
        server 10.99.0.21:443 max_fails=2 fail_timeout=30s; server 10.99.0.22:443 down;
    }
    server { listen 443; proxy_pass msr_443; }
}"""
    assert nginx.parse_upstreams(edited) == [("msr_443", "10.99.0.21:443", ["max_fails=2", "fail_timeout=30s"]),
                                             ("msr_443", "10.99.0.22:443", ["down"])]
    assert nginx.parse_upstreams(nginx.render_nginx_conf([])) == [
        ("msr_80", "127.0.0.1:1", ["down"]), ("msr_443", "127.0.0.1:1", ["down"])]


def test_inventory_lists_each_lb_with_its_provider(tmp_path):
    files = LabFiles(tmp_path)
    nodes = plan_nodes(up_args("--managers", "1", "--workers", "1", "--lb-kind", "nginx,haproxy"), NET)
    config = {"msr_version": "2.9.16", "msr_image": "mirantis/dtr", "mke_url": "https://10.99.0.11",
              "mke_username": "admin", "mke_password": "x", "seed_replicas": []}
    files.save({"config": config, "nodes": nodes})
    files.pki_dir.mkdir()
    (files.pki_dir / "ca.pem").write_text("CA\n")
    group = inventory.build(files)["all"]["children"]["msr_lb"]["hosts"]
    assert group == {"lb1": {"ansible_host": "10.99.0.5", "msr_lb_provider": "nginx"},
                     "lb2": {"ansible_host": "10.99.0.6", "msr_lb_provider": "haproxy"}}


def test_lb_fault_cli_forms():
    assert {"lb-down", "lb-up"} <= set(inject.KINDS)
    args = cli.parser().parse_args(["fault", "lb-down", "lb1"])
    assert cli.fault_request(args.kind, args.args) == {"target": "lb1"}
    assert cli.fault_request("lb-up", ["lb2"]) == {"target": "lb2"}
    with pytest.raises(SystemExit, match="expects TARGET"):
        cli.fault_request("lb-down", [])
