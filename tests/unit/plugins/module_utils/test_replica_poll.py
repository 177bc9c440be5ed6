# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The waits of a join or removal read the cluster again soon at first, then less often (no clock needed)."""

from __future__ import annotations

from types import SimpleNamespace

from ansible_collections.msr.replicas.plugins.module_utils import _replica
from ansible_collections.msr.replicas.plugins.module_utils._common import poll_pause
from ansible_collections.msr.replicas.plugins.module_utils._replica import ReplicaManager


def test_pauses_double_from_the_first_up_to_the_longest():
    assert [poll_pause(n, 0.5, 5) for n in range(1, 8)] == [0.5, 1, 2, 4, 5, 5, 5]
    assert poll_pause(3, 0.5, 0) == 0          # tests that set POLL_INTERVAL to 0 do not sleep


def test_wait_sleeps_briefly_before_the_next_reads(monkeypatch):
    slept, reads = [], []
    monkeypatch.setattr(_replica.time, "sleep", slept.append)
    module = SimpleNamespace(params={"node": "worker4", "wait_timeout": 600})

    def observe():
        reads.append(1)
        return {"n": len(reads)}

    mgr = ReplicaManager(module, observe, runner=None)
    view, why = mgr._wait(lambda v: None if v["n"] == 4 else "replica %d not OK yet" % v["n"])
    assert view == {"n": 4} and why is None
    # a health report due in a second is seen after 0.5 + 1 s, not after a fixed 5 s pause
    assert slept == [0.5, 1, 2]
