# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""cluster_info's wait for a killed run's bootstrapper: its command's end, then its replica's settling."""

from __future__ import annotations

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._cluster import unsettled
from ansible_collections.msr.replicas.plugins.modules import cluster_info

RID = "0123456789ab"


def boot(command="join", status="Exited (0) 2 seconds ago", running=False, name=None):
    return {"name": name or "msr-replicas-%s-%s" % (command, RID), "node": "manager1", "command": command,
            "state": "running" if running else "exited", "running": running, "status": status}


def view(state="healthy", in_status=True, bootstrappers=()):
    replicas = [{"id": "f3712d9c419a", "state": "healthy", "healthy": True, "in_cluster_status": True}]
    if state is not None:
        replicas.append({"id": RID, "state": state, "healthy": state == "healthy", "in_cluster_status": in_status})
    return {"replicas": replicas, "bootstrappers": list(bootstrappers)}


@pytest.mark.parametrize("command", ["join", "install"])
def test_a_joined_replica_not_yet_healthy_is_waited_for(command):
    b = boot(command)
    assert unsettled(view("unhealthy"), [b]) == [
        "replica %s, joined by msr-replicas-%s-%s, is unhealthy" % (RID, command, RID)]
    # a join that exited 0 made a member: not in cluster_status yet is a view that lags, not a partial join
    assert unsettled(view("partial", in_status=False), [b]) == [
        "replica %s, joined by msr-replicas-%s-%s, is partial" % (RID, command, RID)]
    assert unsettled(view("healthy"), [b]) == []


def test_a_removed_replica_still_in_cluster_status_is_waited_for():
    assert unsettled(view("unhealthy"), [boot("remove")]) == [
        "replica %s, removed by msr-replicas-remove-%s, is still in cluster_status" % (RID, RID)]
    assert unsettled(view("partial", in_status=False), [boot("remove")]) == []
    assert unsettled(view(None), [boot("remove")]) == []


@pytest.mark.parametrize("b", [
    boot(status="Exited (1) 2 seconds ago"),                 # a failed join: the plan's to deal with
    boot(status="Up 3 seconds", running=True),               # still running: the plan refuses
    boot(status="Created"),
    boot(name="dtr-join-%s" % RID),                          # not one of this collection's names
    boot("backup", name="msr-replicas-backup-%s" % RID),     # a backup changes no replica
    boot("destroy"),
])
def test_nothing_else_is_waited_for(b):
    assert unsettled(view("unhealthy"), [b]) == []


class Mke:
    def __init__(self, listings):
        self.listings = listings

    def bootstrappers(self):
        return self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]


@pytest.fixture
def fake_time(monkeypatch, clock):
    monkeypatch.setattr(cluster_info, "time", clock)
    return clock


def reading(monkeypatch, views):
    """Patch observe to return ``views`` in turn (the last one from then on); returns the bootstrappers
    argument of each call."""
    asked = []

    def observe(mke, msr_factory, msr_url=None, mke_config=False, workloads=False, bootstrappers=None):
        asked.append(bootstrappers)
        v = views.pop(0) if len(views) > 1 else views[0]
        return dict(v, bootstrappers=bootstrappers if bootstrappers is not None else mke.bootstrappers())
    monkeypatch.setattr(cluster_info, "observe", observe)
    return asked


PARAMS = {"wait_bootstrappers": 60, "msr_url": None, "workloads": False}


def test_waits_for_the_killed_join_then_for_its_replica(monkeypatch, fake_time):
    running, done = [boot(status="Up 5 seconds", running=True)], [boot()]
    asked = reading(monkeypatch, [view("unhealthy"), view("unhealthy"), view("healthy")])
    got = cluster_info.read(PARAMS, Mke([running, running, done]), None)
    assert [r["state"] for r in got["replicas"]] == ["healthy", "healthy"]
    # two listings while it ran (2 s apart), the read that shares the last listing, then two more reads
    assert asked == [done, None, None]
    assert fake_time.slept == [2, 2, 0.5, 1]


def test_no_wait_for_health_when_no_bootstrapper_ran(monkeypatch, fake_time):
    # An unhealthy replica nobody is changing is the plan's: reading once is all.
    asked = reading(monkeypatch, [view("unhealthy")])
    got = cluster_info.read(PARAMS, Mke([[boot(status="Exited (0) 1 hour ago")]]), None)
    assert got["replicas"][1]["state"] == "unhealthy" and len(asked) == 1 and fake_time.slept == []


def test_the_settling_ends_with_the_same_seconds(monkeypatch, fake_time):
    reading(monkeypatch, [view("unhealthy")])
    got = cluster_info.read(dict(PARAMS, wait_bootstrappers=10), Mke([[boot(status="Up 1 second", running=True)],
                                                                      [boot()]]), None)
    assert got["replicas"][1]["state"] == "unhealthy"
    assert fake_time.now == 1010.0 and fake_time.slept == [2, 0.5, 1, 2, 4, 0.5]


def test_no_wait_at_all_when_asked_for_none(monkeypatch, fake_time):
    asked = reading(monkeypatch, [view("unhealthy")])
    cluster_info.read(dict(PARAMS, wait_bootstrappers=0), Mke([[boot(status="Up 1 second", running=True)]]), None)
    assert asked == [None] and fake_time.slept == []
