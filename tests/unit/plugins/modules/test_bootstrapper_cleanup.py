# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""msr.replicas.bootstrapper_cleanup over a fake engine that answers the docker SDK's list and remove as the
engine does (the label and status filters applied, a removed container gone from the next listing)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from docker.errors import APIError

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.modules import bootstrapper_cleanup


REAL = boot.Bootstrapper


class Container:
    def __init__(self, engine_, name, status, command=None, code=0, remove_error=None):
        self.engine, self.name, self.status = engine_, name, status
        self.labels = {boot.LABEL: command} if command else {}
        self.attrs = {"State": {"Status": status, "ExitCode": code}}
        self.remove_error = remove_error

    def remove(self, force=False):
        assert force
        if self.remove_error:
            raise self.remove_error
        self.engine.items.remove(self)


class Engine:
    def __init__(self):
        self.items = []
        self.containers = self

    def add(self, *args, **kwargs):
        self.items.append(Container(self, *args, **kwargs))

    def list(self, all=False, filters=None):
        filters = filters or {}
        found = [c for c in self.items if all or c.status == "running"]
        if "label" in filters:
            found = [c for c in found if filters["label"] in c.labels]
        if "status" in filters:
            found = [c for c in found if c.status == filters["status"]]
        return found


@pytest.fixture
def run(monkeypatch, capsys):
    def _run(eng, check=False):
        monkeypatch.setattr(engine, "HAS_DOCKER", True)
        monkeypatch.setattr(bootstrapper_cleanup.boot, "Bootstrapper", lambda host, **kw: REAL(host, client=eng, **kw))
        with patch_module_args({"docker_host": "ssh://root@manager1", "_ansible_check_mode": check,
                                "_ansible_diff": True}):
            with pytest.raises(SystemExit):
                bootstrapper_cleanup.main()
        return json.loads(capsys.readouterr().out)
    return _run


def lab_engine():
    eng = Engine()
    eng.add("msr-replicas-remove-0123456789ab", "exited", "remove", 0)
    eng.add("msr-replicas-backup-0123456789ac", "exited", "backup", 1)
    eng.add("msr-replicas-join-0123456789ad", "running", "join")
    eng.add("dtr-rethinkdb-0123456789ae", "exited")            # MSR's own: never ours to remove
    eng.add("someone-elses", "exited")
    return eng


def test_check_mode_predicts_the_run_then_nothing_is_left_to_do(run):
    eng = lab_engine()
    check = run(eng, check=True)
    expected = ["msr-replicas-remove-0123456789ab (remove, exit status 0)",
                "msr-replicas-backup-0123456789ac (backup, exit status 1)"]
    assert check["changed"] and check["removed"] == expected and len(eng.items) == 5
    assert check["running"] == ["msr-replicas-join-0123456789ad"]
    real = run(eng)
    assert real["changed"] and real["removed"] == expected and real["diff"] == check["diff"]
    assert real["diff"] == {"before": {"exited": ["msr-replicas-backup-0123456789ac",
                                                  "msr-replicas-remove-0123456789ab"]}, "after": {"exited": []}}
    assert sorted(c.name for c in eng.items) == ["dtr-rethinkdb-0123456789ae", "msr-replicas-join-0123456789ad",
                                                 "someone-elses"]
    for check_mode in (True, False):
        again = run(eng, check=check_mode)
        assert not again["changed"] and again["removed"] == [] and again["running"] == real["running"]


def test_a_container_the_engine_does_not_remove_is_reported_not_hidden(run):
    eng = Engine()
    eng.add("msr-replicas-remove-0123456789ab", "exited", "remove", 0, remove_error=APIError("engine says no"))
    result = run(eng)
    assert not result["changed"] and result["removed"] == []
    assert result["diff"]["after"] == {"exited": ["msr-replicas-remove-0123456789ab"]}
    warnings = [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]
    assert warnings == ["could not remove the bootstrapper container msr-replicas-remove-0123456789ab "
                        "(engine says no)"], result
