# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""lb_pool_info's remote command and its parsing: the script runs for real (this Python, a real file, the fake
HAProxy socket of test_haproxy_runtime), and what the controller makes of its answer must equal what
lb_pool reports in check mode with no member, the observation it replaces, errors included."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import types

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy, _lbinfo
from ansible_collections.msr.replicas.plugins.module_utils._lbconf import LbConfError
from ansible_collections.msr.replicas.plugins.module_utils._lbpool import PoolRun
from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_lbconf import USER
from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_nginxconf import INCLUDE

HAPROXY_BACKENDS = {"msr_http": "http", "msr_https": "https"}
NGINX_BACKENDS = {"msr_80": "http", "msr_443": "https"}


def remote(path, sock=""):
    out = subprocess.run([sys.executable, "-c", _lbinfo.REMOTE_SCRIPT, path, sock], capture_output=True, text=True,
                         check=True, timeout=30)
    return json.loads(out.stdout)


def lb_pool_check_mode(provider, path, backends, sock):
    """What the observation did before: lb_pool in check mode, state present, no member."""
    module = types.SimpleNamespace(check_mode=True, params={"state": "present", "socket": sock,
                                                            "nginx_main_config": path, "reload_command": None})
    run = PoolRun(module, provider, path, backends, [], "")
    result = run.haproxy() if provider == "haproxy" else run.nginx()
    return {"pool": result["pool"], "runtime": result["runtime"] if provider == "haproxy" else None}


def test_haproxy_view_equals_lb_pool_check_mode(tmp_path, fake_haproxy):
    sock, seen = fake_haproxy
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(USER.replace("\nbackend msr_https", "\nbackend msr_http\n    server worker1 10.0.0.21:80 check\n"
                                "\nbackend msr_https"))
    answer = remote(str(cfg), sock)
    assert answer["host"] == socket.gethostname() and seen == ["show servers state"]
    view = _lbinfo.from_remote("haproxy", str(cfg), HAPROXY_BACKENDS, sock, answer)
    assert view == dict(lb_pool_check_mode("haproxy", str(cfg), HAPROXY_BACKENDS, sock), provider="haproxy",
                        config=str(cfg))
    assert [m["name"] for m in view["pool"]] == ["worker1", "worker2"] and view["runtime"]


def test_nginx_view_equals_lb_pool_check_mode(tmp_path):
    cfg = tmp_path / "msr.conf"
    cfg.write_bytes(INCLUDE.encode() + b"# not UTF-8: \xff\n")
    answer = remote(str(cfg))
    assert "state" not in answer
    view = _lbinfo.from_remote("nginx", str(cfg), NGINX_BACKENDS, "", answer)
    assert view == dict(lb_pool_check_mode("nginx", str(cfg), NGINX_BACKENDS, ""), provider="nginx", config=str(cfg))


def test_errors_read_as_the_modules_own(tmp_path):
    missing = str(tmp_path / "nope.cfg")
    with pytest.raises(LbConfError) as seen:
        _lbinfo.from_remote("haproxy", missing, HAPROXY_BACKENDS, "/x.sock", remote(missing, "/x.sock"))
    with pytest.raises(LbConfError) as direct:
        _lbinfo.read_config(missing)
    assert str(seen.value) == "%s: %s" % (socket.gethostname(), direct.value)

    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(USER)
    gone = str(tmp_path / "gone.sock")
    with pytest.raises(_haproxy.HaproxyError) as seen:
        _lbinfo.from_remote("haproxy", str(cfg), HAPROXY_BACKENDS, gone, remote(str(cfg), gone))
    with pytest.raises(_haproxy.HaproxyError) as direct:
        _haproxy.command(gone, _lbinfo.STATE_COMMAND)
    assert str(seen.value) == "%s: %s" % (socket.gethostname(), direct.value)


def test_settings_fill_in_the_providers_defaults():
    assert _lbinfo.settings({"provider": "nginx"}) == ("nginx", "/etc/nginx/nginx.conf", NGINX_BACKENDS)
    assert _lbinfo.settings({"provider": "haproxy", "config": "/c", "backends": {"b": "https"}}) == (
        "haproxy", "/c", {"b": "https"})
    with pytest.raises(LbConfError, match="neither http nor https"):
        _lbinfo.settings({"provider": "haproxy", "backends": {"b": "tcp"}})
