# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import time

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.reconcile import FilterModule

FILTERS = FilterModule().filters()
CLUSTER = {"status_available": True, "replicas": [
    {"id": "a" * 12, "node": "w1", "state": "healthy", "version": "2.9.16"},
    {"id": "b" * 12, "node": "w2", "state": "healthy", "version": "2.9.16"},
    {"id": "c" * 12, "node": "w3", "state": "healthy", "version": "2.9.16"}]}


def test_filter_names():
    assert sorted(FILTERS) == ["msr_reconcile", "msr_reconcile_outcome", "msr_reconcile_problems", "msr_reconcile_report",
                               "msr_reconcile_status", "msr_table"]


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


def test_run_report_of_a_run_that_failed_before_observing_has_every_key():
    report = FILTERS["msr_reconcile_report"]({}, {}, True, False, "MKE unreachable", None, "2026-12-03T10:00:00Z",
                                             time.time() - 2.0)
    assert report["status"] == "error" and report["error"] == "MKE unreachable"
    assert report["in_sync"] is False and report["drift"] == [] and report["drift_found"] == []
    assert report["quorum"] == {} and report["lb_pools"] == {} and report["sizing"] is None
    assert report["started_at"] == "2026-12-03T10:00:00Z" and 1.9 <= report["duration_s"] <= 3.0
    assert set(report) >= {"actions", "blocked_actions", "refusals", "warnings", "skipped", "replicas"}


def test_run_report_is_the_last_report_with_the_first_ones_drift():
    before = FILTERS["msr_reconcile"](("w1", "w2", "w3"), CLUSTER, {"lb1": ["w1", "w2"]}, "2.9.16", {})
    after = FILTERS["msr_reconcile"](("w1", "w2", "w3"), CLUSTER, {"lb1": ["w1", "w2", "w3"]}, "2.9.16", {})
    report = FILTERS["msr_reconcile_report"](before, after, "false", "true", "", {"advice": "ok"})
    assert report["status"] == "converged" and report["remediated"] is True and report["error"] is None
    assert report["in_sync"] is True and report["drift"] == []
    assert [d["kind"] for d in report["drift_found"]] == ["lb_missing"]
    assert report["sizing"] == {"advice": "ok"} and report["duration_s"] is None
    outcome = FILTERS["msr_reconcile_outcome"](report)
    assert outcome == {"status": "converged", "in_sync": True, "remediated": True, "drift": [],
                       "drift_found": report["drift_found"], "error": None}


def test_run_report_without_remediation_is_the_first_report():
    before = FILTERS["msr_reconcile"](("w1", "w2", "w3"), CLUSTER, {"lb1": ["w1", "w2"]}, "2.9.16", {})
    report = FILTERS["msr_reconcile_report"](before)
    assert report["status"] == "drift" and report["remediated"] is False
    assert report["drift"] == before["drift"] == report["drift_found"]


@pytest.mark.parametrize("name,args,match", [
    ("msr_reconcile_report", (["x"],), "before must be a msr_reconcile report"),
    ("msr_reconcile_report", ({}, "x"), "after must be a msr_reconcile report"),
    ("msr_reconcile_report", ({}, {}, False, False, "", None, None, "soon"), "started must be a Unix time"),
    ("msr_reconcile_outcome", ([],), "expected a msr_reconcile_report"),
])
def test_run_report_filters_refuse_bad_input(name, args, match):
    with pytest.raises(AnsibleFilterError, match=match):
        FILTERS[name](*args)


GOOD = {"msr_remediate": "yes", "msr_allow_scale_down": False, "msr_allow_even": 0, "msr_reconcile_report": None,
        "msr_version": "2.9.16", "desired": ["w1"], "mke_login": True, "msr_mke_ca": "PEM",
        "msr_mke_insecure_tls": False, "msr_ca": "", "msr_insecure_tls": "true"}


def test_good_variables_have_no_problem():
    assert FILTERS["msr_reconcile_problems"](GOOD) == []
    assert FILTERS["msr_reconcile_problems"](dict(GOOD, msr_reconcile_report="/var/lib/msr/r.json")) == []


@pytest.mark.parametrize("change,message", [
    ({"msr_remediate": "maybe"}, "msr_remediate must be true or false"),
    ({"msr_allow_scale_down": 2}, "msr_allow_scale_down must be true or false"),
    ({"msr_allow_even": "y"}, "msr_allow_even must be true or false"),
    ({"msr_reconcile_report": "reports/r.json"}, "msr_reconcile_report must be an absolute path on the controller"),
    ({"msr_reconcile_report": ["/x"]}, "msr_reconcile_report must be an absolute path on the controller"),
    ({"msr_version": ""}, "msr_version must be set"),
    ({"desired": []}, "the msr group (the desired replicas) is empty; reconcile never removes every replica"),
    ({"mke_login": False}, "msr_mke_url, msr_mke_username and msr_mke_password must be set"),
    ({"msr_mke_ca": ""}, "set msr_mke_ca (MKE CA PEM) or msr_mke_insecure_tls=true"),
    ({"msr_insecure_tls": "no"}, "set msr_ca (MSR CA PEM) or msr_insecure_tls=true"),
])
def test_each_bad_variable_gets_its_own_message(change, message):
    assert FILTERS["msr_reconcile_problems"](dict(GOOD, **change)) == [message]


def test_every_problem_is_listed_in_order():
    bad = {"msr_remediate": "x", "desired": [], "mke_login": False}
    assert FILTERS["msr_reconcile_problems"](bad) == [
        "msr_remediate must be true or false", "msr_version must be set",
        "the msr group (the desired replicas) is empty; reconcile never removes every replica",
        "msr_mke_url, msr_mke_username and msr_mke_password must be set",
        "set msr_mke_ca (MKE CA PEM) or msr_mke_insecure_tls=true", "set msr_ca (MSR CA PEM) or msr_insecure_tls=true"]
    with pytest.raises(AnsibleFilterError, match="msr_reconcile_problems: expected a dict"):
        FILTERS["msr_reconcile_problems"](["x"])
