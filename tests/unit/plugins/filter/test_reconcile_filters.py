# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.reconcile import FilterModule

FILTERS = FilterModule().filters()
CLUSTER = {"status_available": True, "replicas": [
    {"id": "a" * 12, "node": "w1", "state": "healthy", "version": "2.9.16"},
    {"id": "b" * 12, "node": "w2", "state": "healthy", "version": "2.9.16"},
    {"id": "c" * 12, "node": "w3", "state": "healthy", "version": "2.9.16"}]}


def test_filter_names():
    assert sorted(FILTERS) == ["msr_reconcile", "msr_reconcile_status", "msr_table"]


def test_filters_chain():
    report = FILTERS["msr_reconcile"](("w1", "w2", "w3"), CLUSTER, {"lb1": ["w1", "w2"]}, "2.9.16",
                                      {"allow_scale_down": False})
    assert [d["kind"] for d in report["drift"]] == ["lb_missing"]
    assert FILTERS["msr_reconcile_status"](report) == "drift"
    assert FILTERS["msr_reconcile_status"](report, {"in_sync": True, "refusals": []}) == "converged"
    assert FILTERS["msr_reconcile_status"](report, {}, True) == "error"
    assert FILTERS["msr_table"](report)[0] == "MSR reconcile: DRIFT: 1 finding(s)"


@pytest.mark.parametrize("args", [
    ("w1", CLUSTER), (None, CLUSTER), (["w1"], CLUSTER, ["lb1"]), (["w1"], []),
    (["w1"], CLUSTER, None, "2.9.16", {"allow_scale_dwn": True}),
])
def test_bad_input_fails_the_task_with_a_message(args):
    with pytest.raises(AnsibleFilterError, match="msr_reconcile: "):
        FILTERS["msr_reconcile"](*args)


def test_table_needs_a_report():
    with pytest.raises(AnsibleFilterError, match="msr_table: "):
        FILTERS["msr_table"]([])
