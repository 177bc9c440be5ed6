# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""msr_sizing: each need and its reason, always odd, the warnings above 3 and 7, caches for pulls."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.sizing import msr_sizing


@pytest.mark.parametrize("inputs, replicas, driven_by", [
    ({}, 3, "failures"),
    ({"failures": 0}, 3, "failures"),                  # high availability's minimum, never 1
    ({"failures": 2}, 5, "failures"),
    ({"failures": "3"}, 7, "failures"),
    ({"scans": 3}, 3, "failures"),                     # ties keep the first need
    ({"scans": 4}, 5, "scans"),                        # one scan per replica, then odd
    ({"scans": 5}, 5, "scans"),
    ({"peak_pulls": 1400}, 3, "failures"),             # what 3 replicas were tested with
    ({"peak_pulls": 1401}, 5, "peak_pulls"),
    ({"peak_pulls": 3000, "storage": "nfs"}, 7, "peak_pulls"),
    ({"peak_pulls": 30000, "storage": "s3"}, 3, "failures"),   # layers come from the store
])
def test_count_is_the_largest_need_and_always_odd(inputs, replicas, driven_by):
    advice = msr_sizing(inputs)
    assert advice["replicas"] == replicas and advice["replicas"] % 2 == 1 and advice["driven_by"] == driven_by
    assert advice["tolerates"] == (replicas - 1) // 2 and advice["majority"] == replicas // 2 + 1
    assert all(b["reason"] for b in advice["by"])


def test_each_need_says_why():
    advice = msr_sizing({"failures": 1, "scans": 4, "peak_pulls": 2000, "storage": "filesystem", "current": 3})
    assert [(b["need"], b["replicas"]) for b in advice["by"]] == [("failures", 3), ("scans", 5), ("peak_pulls", 5)]
    assert advice["by"][1]["reason"] == ("MSR runs at most one vulnerability scan per replica: 4 concurrent scans "
                                         "need 4 replicas, 5 to stay odd")
    assert "1400 concurrent 1 GB pulls" in advice["by"][2]["reason"] and "2000 concurrent pulls need 5" in \
        advice["by"][2]["reason"]
    assert advice["current"] == 3 and advice["change"] == 2
    assert advice["warnings"] == ["5 replicas commit metadata updates slower than 3 (a larger quorum)"]
    assert any("MSR caches" in s for s in advice["suggestions"])


def test_above_seven_warns_and_suggests_the_alternative():
    advice = msr_sizing({"scans": 9})
    assert advice["replicas"] == 9 and "above 7" in advice["warnings"][0]
    assert advice["suggestions"] == ["for scan throughput, faster replica hosts are the alternative to more replicas"]
    pulls = msr_sizing({"peak_pulls": 5000})
    assert pulls["replicas"] == 11 and "above 7" in pulls["warnings"][0] and "MSR caches" in pulls["suggestions"][0]
    blob = msr_sizing({"peak_pulls": 5000, "storage": "S3"})
    assert blob["replicas"] == 3 and blob["warnings"] == [] and blob["suggestions"] == [
        "size the s3 store's read throughput for 5000 concurrent pulls"]


@pytest.mark.parametrize("inputs, message", [
    ({"failures": -1}, "failures must be a whole number of 0 or more, got -1"),
    ({"scans": True}, "scans must be a whole number"),
    ({"peak_pulls": "many"}, "peak_pulls must be a whole number"),
    ({"storage": "ceph"}, "storage 'ceph': give the MSR storage driver"),
    ({"replicas": 3}, "unknown input replicas"),
    ([1], "give a dict of failures"),
])
def test_bad_input_is_named(inputs, message):
    with pytest.raises(AnsibleFilterError, match="^msr_sizing: " + message.replace("(", r"\(")):
        msr_sizing(inputs)
