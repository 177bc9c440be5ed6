# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The msr_preflight filter: the same report as preflight_check, and readable errors for bad input."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.preflight import FilterModule, msr_preflight

NODES = [{"name": n, "role": "manager" if n.startswith("m") else "worker", "state": "ready", "availability": "active",
          "reachability": "reachable" if n.startswith("m") else None, "cpus": 4.0, "memory_bytes": 64 * 10 ** 9,
          "workloads": []} for n in ("m1", "m2", "m3", "w1", "w2", "w3")]
INFO = {"nodes": NODES, "replicas": [], "storage": {"driver": None, "drivers": []},
        "mke": {"admin_scheduling": True}}
SETTINGS = {"mke_ca": True, "msr_ca": True, "msr_version": "2.9.16", "storage_driver": "s3"}


def test_registered():
    assert FilterModule().filters()["msr_preflight"] is msr_preflight


def test_bare_hostnames_and_a_clean_report():
    report = msr_preflight(INFO, hosts=["w1", "w2.example.com", "w3"], settings=SETTINGS)
    assert report["ok"] is True and report["failures"] == []


def test_failures_come_back_without_raising():
    report = msr_preflight(INFO, hosts=["w1", "w2"], settings=dict(SETTINGS, storage_driver=None))
    assert report["failed_checks"] == ["msr_even", "msr_hosts", "storage_shared"]


@pytest.mark.parametrize("args,match", [
    (("not a dict",), "must be a msr.replicas.cluster_info result"),
    ((INFO, "w1"), "hosts must be a list"),
    ((INFO, [{"node": "w1"}]), "every host needs a 'host'"),
    ((INFO, ["w1"], ["x"]), "settings must be a dict"),
    ((INFO, ["w1"], {"alow_even": True}), "unknown setting.s. alow_even"),
])
def test_bad_input(args, match):
    with pytest.raises(AnsibleFilterError, match=match):
        msr_preflight(*args)
