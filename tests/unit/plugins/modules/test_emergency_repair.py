# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The emergency_repair module: its gates are the planner's (check mode predicts them), it keeps the best
survivor, and a second run after a repair changes nothing."""

from __future__ import annotations

import json

import pytest
from ansible_collections.msr.replicas.tests.unit.plugins.modules.conftest import (
    A,
    B,
    BASE,
    C,
    PASSWORD,
    FakeRunner,
    three,
)

from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._repair import RepairManager
from ansible_collections.msr.replicas.plugins.modules import emergency_repair

YES = {"emergency_repair": True, "emergency_repair_confirmed": True}


class RepairRunner(FakeRunner):
    def _emergency_repair(self, flags, lines):
        keep = flags["--existing-replica-id"]
        for rid in [r for r in self.cluster.replicas if r != keep]:
            self.cluster.replicas.pop(rid)
        self.cluster.replicas[keep].update(health="OK", ping=200)
        lines.append("INFO[0003] Emergency repair is complete")
        return None

    def run(self, image, version, argv, env, name=None):
        return FakeRunner.run(self, image, version, [argv[0].replace("-", "_")] + argv[1:], env, name)


@pytest.fixture
def run(monkeypatch, capsys):
    def _run(cluster, runner, check=False, **args):
        monkeypatch.setattr(emergency_repair, "clients_from_params", lambda p: (None, None))
        monkeypatch.setattr(emergency_repair, "observe", lambda *a, **k: cluster.view())
        monkeypatch.setattr(boot, "Bootstrapper", lambda *a, **k: runner)
        monkeypatch.setattr(RepairManager, "POLL_INTERVAL", 0)
        monkeypatch.setattr(engine, "HAS_DOCKER", True)
        params = dict(BASE, **args)
        params.update(_ansible_check_mode=check, _ansible_diff=True)
        with patch_module_args(params):
            with pytest.raises(SystemExit):
                emergency_repair.main()
        return json.loads(capsys.readouterr().out)
    return _run


def quorum_lost():
    """A's node is down (unreachable), B and C run but MSR reports them unhealthy: no majority."""
    cluster = three()
    cluster.node("worker-1")["state"] = "down"
    for rid in (B, C):
        cluster.replicas[rid].update(health="Rethink replica is currently in state: waiting_for_primary", ping=503)
    return cluster


@pytest.mark.parametrize("flags", [{}, {"emergency_repair": True}, {"emergency_repair_confirmed": True}])
def test_refused_without_both_flags_in_check_mode_too(run, flags):
    cluster = quorum_lost()
    runner = RepairRunner(cluster)
    for check in (True, False):
        result = run(cluster, runner, check=check, **flags)
        assert result["failed"] and "emergency_repair_confirmed" in result["msg"]
    assert runner.calls == [] and len(cluster.replicas) == 3


def test_keeps_the_best_survivor_then_a_second_run_changes_nothing(run):
    cluster = quorum_lost()
    runner = RepairRunner(cluster)
    predicted = run(cluster, runner, check=True, desired=["worker-3"], **YES)
    assert predicted["changed"] and not predicted.get("failed"), predicted
    assert (predicted["replica_id"], predicted["node"], predicted["removed"]) == (C, "worker-3", [A, B])
    assert predicted["survivors"] == [C, B] and runner.calls == []
    assert predicted["diff"] == {"before": {"replicas": [A, B, C]}, "after": {"replicas": [C]}}
    cmd = predicted["cmd"]
    at = cmd.index("emergency-repair")
    assert cmd[at:at + 3] == ["emergency-repair", "--existing-replica-id", C]
    assert PASSWORD not in json.dumps(predicted)

    real = run(cluster, runner, desired=["worker-3"], **YES)
    assert real["changed"] and real["replica_id"] == C and real["removed"] == [A, B], real
    assert real["health"] == "OK" and real["quorum"]["has_quorum"] and real["quorum"]["size"] == 1
    assert [c["argv"][0] for c in runner.calls] == ["emergency_repair"]
    assert runner.calls[0]["env"]["UCP_PASSWORD"] == PASSWORD and PASSWORD not in runner.calls[0]["argv"]
    assert list(cluster.replicas) == [C]

    again = run(cluster, runner, **YES)
    assert not again["changed"] and not again.get("failed") and "nothing to repair" in again["msg"]
    assert len(runner.calls) == 1


def test_wanted_replica_is_checked(run):
    cluster = quorum_lost()
    runner = RepairRunner(cluster)
    result = run(cluster, runner, check=True, replica_id=A, **YES)
    assert result["failed"] and "cannot be kept" in result["msg"] and runner.calls == []
    result = run(cluster, runner, check=True, replica_id=B.upper(), **YES)
    assert result["replica_id"] == B and result["removed"] == [A, C]
    result = run(cluster, runner, check=True, replica_id="nothex", **YES)
    assert result["failed"] and "12 hexadecimal" in result["msg"]


def test_healthy_cluster_is_left_alone(run):
    cluster = three()
    runner = RepairRunner(cluster)
    result = run(cluster, runner, **YES)
    assert not result["changed"] and not result.get("failed") and "nothing to repair" in result["msg"]
    assert runner.calls == []
