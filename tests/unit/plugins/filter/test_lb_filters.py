# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.lb import msr_lb_members, msr_lb_observed


def rep(rid, node, state="healthy", address="10.0.0.1", http=None, https=None):
    return {"id": rid, "node": node, "state": state, "address": address, "http_port": http, "https_port": https}


REPLICAS = [
    rep("aaaaaaaaaaaa", "worker2", address="10.0.0.22", http=8080, https=8443),
    rep("bbbbbbbbbbbb", "worker1", address="10.0.0.21"),
    rep("cccccccccccc", "worker3", state="unreachable", address="10.0.0.23"),
    rep("dddddddddddd", None, state="ghost", address=None),
    rep("eeeeeeeeeeee", "worker4", state="partial", address="10.0.0.24"),
]


def test_healthy_members_sorted_with_published_ports_or_the_defaults():
    assert msr_lb_members(REPLICAS) == [
        {"name": "worker1", "address": "10.0.0.21", "http_port": 80, "https_port": 443},
        {"name": "worker2", "address": "10.0.0.22", "http_port": 8080, "https_port": 8443},
    ]


def test_members_to_take_out_are_the_non_healthy_replicas_on_a_node():
    assert [m["name"] for m in msr_lb_members(REPLICAS, healthy=False)] == ["worker3", "worker4"]


def test_every_replica_on_a_node_with_an_address():
    assert [m["name"] for m in msr_lb_members(REPLICAS, healthy=None)] == ["worker1", "worker2", "worker3", "worker4"]


def test_accepts_a_whole_cluster_info_result():
    assert msr_lb_members({"replicas": REPLICAS}) == msr_lb_members(REPLICAS)


def test_a_healthy_replica_without_an_address_is_not_a_member():
    assert msr_lb_members([rep("aaaaaaaaaaaa", "worker1", address=None)]) == []


@pytest.mark.parametrize("bad", ["worker1", None, 3])
def test_bad_input_is_a_filter_error(bad):
    with pytest.raises(AnsibleFilterError, match="msr_lb_members: expected cluster_info's replicas"):
        msr_lb_members(bad)


def test_node_names_from_msr_node_name_or_the_short_hostname():
    from ansible_collections.msr.replicas.plugins.filter.inventory import msr_node_names
    hostvars = {"w1.example.com": {}, "w2": {"msr_node_name": "worker-2"}, "worker3": {"msr_node_name": ""}}
    assert msr_node_names(["w1.example.com", "w2", "worker3"], hostvars) == ["w1", "worker-2", "worker3"]
    with pytest.raises(AnsibleFilterError, match="several hosts map to the MKE node w1"):
        msr_node_names(["w1.a", "w1.b"], {})
    with pytest.raises(AnsibleFilterError, match="expected a list of inventory hosts"):
        msr_node_names("w1", {})


def test_observed_pools_from_the_loop_with_the_provider_of_a_host_not_read():
    seen = {"results": [
        {"__lb_pool_host": "lb1", "provider": "haproxy", "pool": ["worker1"], "runtime": {"worker1": "UP"},
         "config": "/etc/haproxy/haproxy.cfg"},
        {"__lb_pool_host": "lb2", "provider": "nginx", "pool": ["worker1"], "runtime": None},
        {"__lb_pool_host": "f5", "skipped": True},
        {"__lb_pool_host": "lb3", "skipped": True}]}
    hostvars = {"lb1": {}, "lb2": {"msr_lb_provider": "nginx"}, "f5": {"msr_lb_provider": "custom"}, "lb3": {}}
    assert msr_lb_observed(seen, hostvars) == {
        "lb1": {"provider": "haproxy", "pool": ["worker1"], "runtime": {"worker1": "UP"}},
        "lb2": {"provider": "nginx", "pool": ["worker1"], "runtime": None},
        "f5": {"provider": "custom"}, "lb3": {"provider": "haproxy"}}
    assert msr_lb_observed({"results": []}, hostvars) == {}


@pytest.mark.parametrize("seen,match", [
    ("x", "expected the registered loop of lb_pool_info"),
    ({"results": [{"pool": []}]}, "a result without its __lb_pool_host"),
])
def test_observed_pools_refuse_what_is_no_loop(seen, match):
    with pytest.raises(AnsibleFilterError, match=match):
        msr_lb_observed(seen, {})
