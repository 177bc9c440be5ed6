# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.topology import FilterModule

FILTERS = FilterModule().filters()


def test_filter_names():
    assert sorted(FILTERS) == ["msr_failures_tolerated", "msr_majority", "msr_plan"]


@pytest.mark.parametrize("value, majority, tolerated", [(1, 1, 0), (3, 2, 1), ("5", 3, 2), (7, 4, 3), (4, 3, 1)])
def test_count_filters(value, majority, tolerated):
    assert FILTERS["msr_majority"](value) == majority
    assert FILTERS["msr_failures_tolerated"](value) == tolerated


@pytest.mark.parametrize("value", [True, "three", None, -1, [3]])
def test_count_filters_reject_garbage(value):
    with pytest.raises(AnsibleFilterError):
        FILTERS["msr_majority"](value)


def test_plan_filter_replaces_failed_replica_and_fixes_pool():
    observed = [{"id": "a" * 12, "node": "w1", "healthy": True},
                {"id": "b" * 12, "node": "w2", "healthy": False},
                {"id": "c" * 12, "node": "w3", "healthy": True}]
    result = FILTERS["msr_plan"](("w1", "w2", "w3"), observed, lb_pool=["w1", "w2", "w3"])
    assert result["refusals"] == []
    assert [(s["action"], s["node"]) for s in result["actions"]] == [
        ("lb_remove", "w2"), ("remove", "w2"), ("join", "w2"), ("lb_add", "w2")]
    assert result["actions"][1]["existing_replica_id"] == "a" * 12


def test_plan_filter_returns_refusals_not_errors_for_unsafe_states():
    observed = [{"id": "a" * 12, "node": "w1", "healthy": True},
                {"id": "b" * 12, "node": "w2", "healthy": False},
                {"id": "c" * 12, "node": "w3", "healthy": False}]
    result = FILTERS["msr_plan"](["w1", "w2", "w3"], observed)
    assert result["actions"] == []
    assert "emergency-repair" in result["refusals"][0]


@pytest.mark.parametrize("args, kwargs", [
    (("w1", []), {}),                                        # desired as a string
    ((["w1"], {"id": "a" * 12}), {}),                        # observed as a dict
    ((["w1"], []), {"policy": {"allow_scaledown": True}}),  # typo in a policy key
    ((["w1"], [{"node": "w1", "healthy": True}]), {}),       # replica without id
])
def test_plan_filter_bad_input_is_a_filter_error(args, kwargs):
    with pytest.raises(AnsibleFilterError):
        FILTERS["msr_plan"](*args, **kwargs)
