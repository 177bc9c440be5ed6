# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The replica action plugin: when it tails the progress file, and that each event is shown once, in order."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from ansible_collections.msr.replicas.plugins.action import replica as action
from ansible_collections.msr.replicas.plugins.module_utils._progress import ProgressWriter


def test_tail_shows_each_event_once_in_order_while_it_is_written(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(action, "show", lambda event: shown.append((time.time(), event["text"])))
    monkeypatch.setattr(action._Tail, "INTERVAL", 0.05)
    path = str(tmp_path / "p.jsonl")
    write = ProgressWriter(path, "worker4")
    tail = action._Tail(path)
    tail.start()
    write("join", "phase", "one")
    deadline = time.time() + 5
    while not shown and time.time() < deadline:
        time.sleep(0.01)
    written_two = time.time()
    write("join", "phase", "two")
    write("join", "warning", "three")   # maybe after the last poll: finish() shows it
    tail.finish()
    assert [t for _at, t in shown] == ["one", "two", "three"] and tail.shown == 3
    assert shown[0][0] < written_two     # "one" was shown before the next event existed


def _plugin(connection="local", become=False, check_mode=False, async_val=0):
    plugin = object.__new__(action.ActionModule)
    plugin._task = SimpleNamespace(check_mode=check_mode, async_val=async_val)
    plugin._play_context = SimpleNamespace(become=become)
    plugin._connection = SimpleNamespace(_load_name=connection, transport=connection)
    return plugin


@pytest.mark.parametrize("kw, args, streams", [
    ({}, {}, True),
    ({"connection": "ansible.builtin.local"}, {}, True),
    ({"connection": "ansible.builtin.ssh"}, {}, False),
    ({"connection": "ssh"}, {}, False),
    ({"become": True}, {}, False),        # the module's user may not write the controller user's 0600 file
    ({"check_mode": True}, {}, False),    # nothing runs
    ({"async_val": 60}, {}, False),
    ({}, {"progress_file": "/tmp/mine"}, False),   # the caller's own file is left to the caller
])
def test_streams_only_where_the_file_can_be_tailed(kw, args, streams):
    assert _plugin(**kw)._streams(args) is streams


def test_show_formats_and_colors(monkeypatch):
    calls = []
    monkeypatch.setattr(action.display, "display", lambda msg, color=None: calls.append((msg, color)))
    action.show(json.loads('{"node": "w", "command": "join", "kind": "phase", "text": "x"}'))
    action.show({"node": "w", "command": "join", "kind": "fatal", "text": "boom"})
    assert calls == [("w: join: x", None), ("w: join: FATAL: boom", action.C.COLOR_ERROR)]
