# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy config edits: the lab's exact haproxy.cfg (rendered by msr_lab, when it is importable) and a
user's config with comments, defaults, other backends and a server-template."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.msr.replicas.plugins.module_utils import _lbconf as L

W = [("worker%d" % i, "10.0.0.%d" % (20 + i)) for i in range(1, 6)]
B = {"msr_http": "http", "msr_https": "https"}
LAB_OPTIONS = "check port {http_port} inter 1s fall 2 rise 2"     # the options the lab renders


def mem(*idx, **ports):
    return L.members([dict({"name": W[i - 1][0], "address": W[i - 1][1]}, **ports) for i in idx])


def servers(*idx):
    return [W[i - 1] for i in idx]


@pytest.fixture
def render():
    return pytest.importorskip("msr_lab.lb.haproxy").render_haproxy_cfg


# ---------------------------------------------------------------- the lab's file

@pytest.mark.parametrize("state, members, after, added, removed", [
    ("present", (1, 2, 3), (1, 2, 3), [], []),
    ("present", (4,), (1, 2, 3, 4), ["worker4"], []),
    ("present", (2, 5, 4), (1, 2, 3, 5, 4), ["worker4", "worker5"], []),
    ("absent", (2,), (1, 3), [], ["worker2"]),
    ("absent", (4,), (1, 2, 3), [], []),
    ("absent", (1, 2, 3), (), [], ["worker1", "worker2", "worker3"]),
    ("exact", (1, 3), (1, 3), [], ["worker2"]),
    ("exact", (1, 3, 4), (1, 3, 4), ["worker4"], ["worker2"]),
    ("exact", (), (), [], ["worker1", "worker2", "worker3"]),
])
def test_lab_file_edits_equal_the_lab_rendering_of_the_new_pool(render, state, members, after, added, removed):
    for check_tls in (False, True):
        opts = "check port {https_port} check-ssl verify none inter 1s fall 2 rise 2" if check_tls else LAB_OPTIONS
        before = render(servers(1, 2, 3), check_tls=check_tls)
        r = L.haproxy_edit(before, B, mem(*members), state, opts)
        assert r["text"] == render(servers(*after), check_tls=check_tls)
        assert (r["added"], r["removed"], r["updated"]) == (added, removed, [])


def test_lab_file_from_an_empty_pool_and_back(render):
    empty = render([])
    one = L.haproxy_edit(empty, B, mem(1), "present", LAB_OPTIONS)["text"]
    assert one == render(servers(1))
    assert L.haproxy_edit(one, B, mem(1), "absent", LAB_OPTIONS)["text"] == empty


def test_lab_file_pool_and_runtime_expectation(render):
    text = render(servers(1, 2))
    assert L.pool_of(L.haproxy_servers(text, B), B) == [
        {"name": "worker1", "address": "10.0.0.21", "http_port": 80, "https_port": 443},
        {"name": "worker2", "address": "10.0.0.22", "http_port": 80, "https_port": 443}]
    assert L.haproxy_expected(text, B) == {"msr_http": {"worker1": ("10.0.0.21", 80), "worker2": ("10.0.0.22", 80)},
                                           "msr_https": {"worker1": ("10.0.0.21", 443),
                                                         "worker2": ("10.0.0.22", 443)}}


def test_default_options_give_the_brief_line(render):
    r = L.haproxy_edit(render([]), B, mem(1, http_port=8080, https_port=8443), "present",
                       "check port {http_port} inter 2s fall 3 rise 2")
    assert "\tserver worker1 10.0.0.21:8080 check port 8080 inter 2s fall 3 rise 2\n" in r["text"]
    assert "\tserver worker1 10.0.0.21:8443 check port 8080 inter 2s fall 3 rise 2\n" in r["text"]


# ---------------------------------------------------------------- a user's file

USER = """# Managed partly by hand.   keep this comment
global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 660 level admin

defaults
    mode tcp
    default-server inter 3s fall 3 rise 2
    timeout connect 5s

frontend fe_msr_https
    bind :443
    default_backend msr_https

backend app   # not ours
    server worker2 10.9.9.9:8080 check

backend msr_https
    balance roundrobin
    option httpchk GET /_ping
    # replicas below; weight 10 for the big one
    server worker1 10.0.0.21:443 check port 80 weight 10   # the big one
    server worker2   10.0.0.22:443    check port 80
    server-template spare 2 spare.example.com:443 check disabled

    # the stats section follows
listen stats
    bind :8404
    server worker3 10.0.0.33:443 check
"""
UB = {"msr_https": "https"}


def test_user_file_add_goes_after_the_last_server_or_template_line_with_its_indent():
    r = L.haproxy_edit(USER, UB, mem(1, 2, 3), "present", "check port {http_port}")
    assert r["added"] == ["worker3"]
    assert r["text"] == USER.replace(
        "check disabled\n", "check disabled\n    server worker3 10.0.0.23:443 check port 80\n")


def test_user_file_remove_touches_only_the_managed_backend():
    r = L.haproxy_edit(USER, UB, mem(2), "absent", "")
    assert r["removed"] == ["worker2"]
    assert r["text"] == USER.replace("    server worker2   10.0.0.22:443    check port 80\n", "")
    assert "server worker2 10.9.9.9:8080 check" in r["text"]          # backend app keeps its own worker2


def test_user_file_exact_keeps_templates_and_comments():
    r = L.haproxy_edit(USER, UB, mem(1), "exact", "")
    assert r["text"] == USER.replace("    server worker2   10.0.0.22:443    check port 80\n", "")
    assert L.haproxy_expected(r["text"], UB)["msr_https"] == {
        "worker1": ("10.0.0.21", 443), "spare1": (None, 443), "spare2": (None, 443)}
    assert L.haproxy_admin_after_reload(USER, UB)["msr_https"] == {
        "worker1": "READY", "worker2": "READY", "spare1": "MAINT", "spare2": "MAINT"}


def test_user_file_kept_lines_stay_byte_for_byte():
    r = L.haproxy_edit(USER, UB, mem(1, 2), "present", "check")
    assert r["text"] == USER and r == {"text": USER, "added": [], "removed": [], "updated": []}


def test_disabled_member_is_enabled_other_disabled_servers_stay():
    text = USER.replace("check port 80\n", "check port 80 disabled # off\n")
    r = L.haproxy_edit(text, UB, mem(2), "present", "")
    assert r["updated"] == ["worker2"]
    assert "    server worker2   10.0.0.22:443    check port 80 # off\n" in r["text"]
    assert "spare.example.com:443 check disabled\n" in r["text"]


def test_moved_member_gets_a_new_line():
    text = USER.replace("10.0.0.22:443", "10.0.0.99:443")
    r = L.haproxy_edit(text, UB, mem(2), "present", "check port {http_port}")
    assert r["updated"] == ["worker2"]
    assert r["text"] == USER.replace("    server worker2   10.0.0.22:443    check port 80\n",
                                     "    server worker2 10.0.0.22:443 check port 80\n")


def test_crlf_file_and_file_without_final_newline():
    crlf = "backend msr_http\r\n\tserver worker1 10.0.0.21:80 check\r\n"
    assert L.haproxy_edit(crlf, {"msr_http": "http"}, mem(2), "present", "check")["text"] == (
        crlf + "\tserver worker2 10.0.0.22:80 check\r\n")
    bare = "backend msr_http\n  balance roundrobin"
    assert L.haproxy_edit(bare, {"msr_http": "http"}, mem(1), "present", "")["text"] == (
        bare + "\n  server worker1 10.0.0.21:80\n")


def test_empty_backend_without_other_lines_gets_a_tab_indent_and_comments_stay_with_the_next_section():
    text = "backend msr_http\n\n# next one\nbackend other\n"
    assert L.haproxy_edit(text, {"msr_http": "http"}, mem(1), "present", "")["text"] == (
        "backend msr_http\n\tserver worker1 10.0.0.21:80\n\n# next one\nbackend other\n")


@pytest.mark.parametrize("text, message", [
    ("backend other\n", r"has no backend \(or listen\) section msr_http"),
    ("backend msr_http\nbackend msr_http\n", "backend msr_http is defined twice"),
])
def test_config_errors(text, message):
    with pytest.raises(L.LbConfError, match=message):
        L.haproxy_edit(text, {"msr_http": "http"}, mem(1), "present", "")


def test_words_follow_haproxy_quoting_and_comments():
    assert [w for w, _s, _e in L.words('  server a "b c" d\\ e \'#x\' # f g\n')] == ["server", "a", "b c", "d e", "#x"]
    assert L.words("\tserver a 1.2.3.4:80 check#x") == [("server", 1, 7), ("a", 8, 9), ("1.2.3.4:80", 10, 20),
                                                        ("check", 21, 26)]


# ---------------------------------------------------------------- members and options

@pytest.mark.parametrize("items, message", [
    ([{"name": "a b", "address": "10.0.0.1"}], "give the HAProxy server name"),
    ([{"name": "a", "address": "10.0.0.1;"}], "is not a host name"),
    ([{"name": "a", "address": "10.0.0.1", "http_port": 0}], "http_port 0 is not a port"),
    ([{"name": "a", "address": "10.0.0.1", "https_port": "x"}], "https_port 'x' is not a port"),
    ([{"name": "a", "address": "10.0.0.1"}, {"name": "a", "address": "10.0.0.2"}], "a is listed twice"),
])
def test_members_refused(items, message):
    with pytest.raises(L.LbConfError, match=message):
        L.members(items)


def test_options_template_and_backends():
    member = L.members([{"name": "a", "address": "h", "http_port": 81}])[0]
    assert L.render_options("check port {http_port} x {https_port}", member) == "check port 81 x 443"
    with pytest.raises(L.LbConfError, match="only {http_port} and {https_port}"):
        L.render_options("check {port}", member)
    with pytest.raises(L.LbConfError, match="neither http nor https"):
        L.backend_kinds({"msr_http": "tcp"})
    with pytest.raises(L.LbConfError, match="at least one"):
        L.backend_kinds({})


# ---------------------------------------------------------------- every edit is idempotent

@settings(max_examples=150, deadline=None)
@given(start=st.sets(st.integers(1, 5)), listed=st.lists(st.integers(1, 5), unique=True),
       state=st.sampled_from(L.STATES))
def test_second_edit_changes_nothing_and_the_pool_is_what_the_state_says(start, listed, state):
    text = USER
    for i in sorted(start):
        text = L.haproxy_edit(text, UB, mem(i), "present", "check")["text"]
    first = L.haproxy_edit(text, UB, mem(*listed), state, "check")
    second = L.haproxy_edit(first["text"], UB, mem(*listed), state, "check")
    assert second == {"text": first["text"], "added": [], "removed": [], "updated": []}
    names = {s["name"] for s in L.haproxy_servers(first["text"], UB)["msr_https"]}
    before = {s["name"] for s in L.haproxy_servers(text, UB)["msr_https"]}
    wanted = {W[i - 1][0] for i in listed}
    assert names == {"present": before | wanted, "absent": before - wanted, "exact": wanted}[state]

    # only server lines of msr_https differ (the other backends' worker2 and worker3 stay)
    def others(t):
        return [line for line in t.splitlines() if not re.search(r"server worker\d +10\.0\.0\.2\d:443", line)]
    assert others(first["text"]) == others(text)
