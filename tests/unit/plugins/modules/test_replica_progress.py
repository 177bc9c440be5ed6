# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The replica module's progress_file: a writer for the real run, none in check mode or without the option."""

from __future__ import annotations

import json

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._progress import ProgressWriter
from ansible_collections.msr.replicas.plugins.modules import replica
from ansible_collections.msr.replicas.tests.unit.plugins.modules.conftest import three


@pytest.fixture
def seen(monkeypatch):
    progress = []

    real = replica.ReplicaManager

    class Spy(real):
        def __init__(self, *a, **k):
            progress.append(k.get("progress"))
            real.__init__(self, *a, **k)

    monkeypatch.setattr(replica, "ReplicaManager", Spy)
    return progress


@pytest.mark.parametrize("check, given, expected", [(False, True, True), (True, True, False), (False, False, False)])
def test_progress_writer_only_for_a_real_run_that_asks(run, fakes, seen, tmp_path, check, given, expected):
    path = tmp_path / "progress.jsonl"
    args = {"progress_file": str(path)} if given else {}
    cluster = three()
    result = run(cluster, fakes.FakeRunner(cluster), check=check, node="worker-4", **args)
    assert result["action"] == "join"
    writer = seen[-1]
    assert isinstance(writer, ProgressWriter) is expected
    if expected:
        assert writer.path == str(path) and writer.node == "worker-4"
        writer("join", "phase", "Join is complete")
        assert json.loads(path.read_text()) == {"node": "worker-4", "command": "join", "kind": "phase",
                                                "text": "Join is complete"}
    if check:
        assert not path.exists()
