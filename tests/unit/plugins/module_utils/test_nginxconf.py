# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""NGINX upstream edits: the lab's exact nginx.conf (rendered by msr_lab, when it is importable) and a
user's upstream include file."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.msr.replicas.plugins.module_utils import _lbconf as L
from ansible_collections.msr.replicas.plugins.module_utils import _nginxconf as N

W = [("worker%d" % i, "10.0.0.%d" % (20 + i)) for i in range(1, 6)]
B = {"msr_80": "http", "msr_443": "https"}
OPTS = "max_fails=2 fail_timeout=30s"


def mem(*idx, **ports):
    return L.members([dict({"name": W[i - 1][0], "address": W[i - 1][1]}, **ports) for i in idx])


def servers(*idx):
    return [W[i - 1] for i in idx]


@pytest.fixture
def render():
    return pytest.importorskip("msr_lab.lb.nginx").render_nginx_conf


@pytest.mark.parametrize("state, members, after, added, removed", [
    ("present", (1, 2, 3), (1, 2, 3), [], []),
    ("present", (4,), (1, 2, 3, 4), ["worker4"], []),
    ("absent", (2,), (1, 3), [], ["worker2"]),
    ("absent", (1, 2, 3), (), [], ["worker1", "worker2", "worker3"]),   # the placeholder comes in
    ("exact", (1, 3, 4), (1, 3, 4), ["worker4"], ["10.0.0.22"]),      # worker2 is not listed: its address
    ("exact", (), (), [], ["10.0.0.21", "10.0.0.22", "10.0.0.23"]),    # no member: named by address
])
def test_lab_file_edits_equal_the_lab_rendering_of_the_new_pool(render, state, members, after, added, removed):
    r = N.nginx_edit(render(servers(1, 2, 3)), B, mem(*members), state, OPTS)
    assert r["text"] == render(servers(*after))
    assert (r["added"], r["removed"], r["updated"]) == (added, removed, [])


def test_lab_empty_pool_placeholder_goes_when_a_member_comes(render):
    empty = render([])
    assert N.nginx_servers(empty, B) == {"msr_80": [], "msr_443": []}
    assert N.nginx_edit(empty, B, mem(1), "present", OPTS)["text"] == render(servers(1))
    assert N.nginx_edit(empty, B, mem(1), "absent", OPTS)["text"] == empty
    assert N.nginx_edit(empty, B, [], "exact", OPTS)["text"] == empty


def test_lab_ports_pool_and_pid(render):
    text = render(servers(1, 2))
    pool = L.pool_of(N.nginx_servers(text, B), B, {"10.0.0.21": "worker1"})
    assert pool == [{"name": "10.0.0.22", "address": "10.0.0.22", "http_port": 80, "https_port": 443},
                    {"name": "worker1", "address": "10.0.0.21", "http_port": 80, "https_port": 443}]
    assert N.pid_file(text) == "/run/nginx.pid"
    assert N.pid_file("events {}\n") == N.DEFAULT_PID
    r = N.nginx_edit(text, B, mem(3, http_port=8080, https_port=8443), "present", OPTS)
    assert "\t\tserver 10.0.0.23:8080 max_fails=2 fail_timeout=30s;\n" in r["text"]
    assert "\t\tserver 10.0.0.23:8443 max_fails=2 fail_timeout=30s;\n" in r["text"]


INCLUDE = """# MSR upstreams, included from nginx.conf's stream {} block
upstream msr_80 {
    least_conn;
    server 10.0.0.21:80 max_fails=3;   # worker1
    server 10.0.0.22:80 down;
    # spare: server 10.0.0.29:80;
}

upstream msr_443 { server 10.0.0.21:443; server 10.0.0.22:443 weight=2; }
upstream other { server 10.0.0.22:80; }
"""


def test_include_file_add_remove_and_down():
    r = N.nginx_edit(INCLUDE, B, mem(2, 3), "present", "max_fails=2")
    assert r["added"] == ["worker3"] and r["updated"] == ["worker2"]
    assert r["text"] == INCLUDE.replace(
        "    server 10.0.0.22:80 down;\n",
        "    server 10.0.0.22:80;\n    server 10.0.0.23:80 max_fails=2;\n").replace(
        "server 10.0.0.22:443 weight=2; }", "server 10.0.0.22:443 weight=2; server 10.0.0.23:443 max_fails=2; }")
    r = N.nginx_edit(INCLUDE, B, mem(1), "absent", "")
    assert r["removed"] == ["worker1"]
    assert r["text"] == INCLUDE.replace("    server 10.0.0.21:80 max_fails=3;   # worker1\n", "").replace(
        "{ server 10.0.0.21:443; server", "{ server")
    assert "upstream other { server 10.0.0.22:80; }" in N.nginx_edit(INCLUDE, B, mem(2), "absent", "")["text"]


def test_include_file_emptied_inline_block_gets_the_placeholder_inline():
    r = N.nginx_edit(INCLUDE, {"msr_443": "https"}, [], "exact", "")
    assert "upstream msr_443 { server 127.0.0.1:1 down; }" in r["text"]
    assert N.nginx_edit("upstream msr_443 {}", {"msr_443": "https"}, mem(1), "present", "")["text"] == (
        "upstream msr_443 { server 10.0.0.21:443; }")
    back = N.nginx_edit(r["text"], {"msr_443": "https"}, mem(1), "present", "")
    assert "upstream msr_443 { server 10.0.0.21:443; }" in back["text"]


def test_same_name_in_http_and_stream_takes_the_stream_one():
    text = ("http {\n\tupstream msr_80 {\n\t\tserver 10.0.0.21:80;\n\t}\n}\n"
            "stream {\n\tupstream msr_80 {\n\t\tserver 10.0.0.21:80;\n\t}\n}\n")
    r = N.nginx_edit(text, {"msr_80": "http"}, mem(2), "present", "")
    assert r["text"] == text.replace("\t}\n}\n", "\t\tserver 10.0.0.22:80;\n\t}\n}\n").replace(
        "\t\tserver 10.0.0.22:80;\n\t}\n}\nstream", "\t}\n}\nstream", 1)


@pytest.mark.parametrize("text, message", [
    ("stream { upstream x { server a:1; } }", "no single \\(stream\\) upstream block msr_80"),
    ("upstream msr_80 { server a:1; }\nupstream msr_80 { server a:1; }\n", "no single"),
    ("upstream msr_80 { server a:1; ", "not closed"),
    ("upstream msr_80 { server a:1 }", "unexpected"),
    ("upstream msr_80 { server 'a:1; }", "unterminated quoted string"),
])
def test_config_errors(text, message):
    with pytest.raises(L.LbConfError, match=message):
        N.nginx_edit(text, {"msr_80": "http"}, mem(1), "present", "")


def test_tokens():
    assert [v for _k, v, _s, _e in N.tokens('a "b;c" d#e ${x}y; # z {\n}')] == ["a", "b;c", "d#e", "${x}y", ";", "}"]


@settings(max_examples=150, deadline=None)
@given(start=st.sets(st.integers(1, 5)), listed=st.lists(st.integers(1, 5), unique=True),
       state=st.sampled_from(L.STATES))
def test_second_edit_changes_nothing_and_the_pool_is_what_the_state_says(start, listed, state):
    text = INCLUDE
    for i in sorted(start):
        text = N.nginx_edit(text, B, mem(i), "present", "")["text"]
    first = N.nginx_edit(text, B, mem(*listed), state, "max_fails=1")
    second = N.nginx_edit(first["text"], B, mem(*listed), state, "max_fails=1")
    assert second == {"text": first["text"], "added": [], "removed": [], "updated": []}
    got = {s["host"] for s in N.nginx_servers(first["text"], B)["msr_80"]}
    before = {s["host"] for s in N.nginx_servers(text, B)["msr_80"]}
    wanted = {W[i - 1][1] for i in listed}
    assert got == {"present": before | wanted, "absent": before - wanted, "exact": wanted}[state]
    assert "upstream other { server 10.0.0.22:80; }" in first["text"]
    assert "# spare: server 10.0.0.29:80;" in first["text"]
