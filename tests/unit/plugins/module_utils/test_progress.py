# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bootstrapper's progress: events as _bootlog parses them, the progress file, its lines as shown."""

from __future__ import annotations

import json
import os
import stat

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._bootlog import LogParser
from ansible_collections.msr.replicas.plugins.module_utils._progress import (
    ProgressReader,
    ProgressWriter,
    events_from_result,
    format_event,
    parse_event,
)
from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_bootstrapper import (
    CA,
    JOIN_LOG,
    PASSWORD,
    FakeClient,
    FakeContainer,
    join_flags,
)


def test_log_parser_events_in_order_masked_and_replica_id_once():
    events = []
    parser = LogParser(secrets=[PASSWORD], on_event=lambda kind, text: events.append((kind, text)))
    parser.feed("\n".join(JOIN_LOG[:3]) + "\nERRO[0004] login with %s refused\n" % PASSWORD)
    parser.feed("\n".join(JOIN_LOG[3:]))
    assert events[-1] == ("phase", "Replica ID is set to: 0a1b2c3d4e5f")   # the last line waits for close
    parser.close()
    assert [k for k, _t in events] == ["phase"] * 3 + ["error"] + ["phase"] * 2 + ["warning"] + ["phase"] * 3
    assert events[3] == ("error", "login with ******** refused")
    assert PASSWORD not in json.dumps(events)
    # the INFO line that sets the ID has said it: no second event for it
    assert ("replica_id", "0a1b2c3d4e5f") not in events and parser.replica_id == "0a1b2c3d4e5f"


def test_log_parser_replica_id_from_a_non_info_line():
    events = []
    parser = LogParser(on_event=lambda kind, text: events.append((kind, text)))
    parser.feed("Replica ID is set to: 0A1B2C3D4E5F\nFATA[0009] boom\n")
    assert events == [("replica_id", "0a1b2c3d4e5f"), ("fatal", "boom")]


def test_log_parser_without_listener_collects_as_before():
    parser = LogParser()
    parser.feed("\n".join(JOIN_LOG) + "\n")
    assert len(parser.phases) == 8 and parser.warnings and parser.replica_id == "0a1b2c3d4e5f"


def test_bootstrapper_reports_each_event_while_the_log_streams(tmp_path):
    path = str(tmp_path / "progress.jsonl")
    seen_before_second_chunk = []

    def chunks():
        yield ("\n".join(JOIN_LOG[:2]) + "\n").encode()
        # the file already has the first chunk's events while the bootstrapper still runs
        seen_before_second_chunk.extend(ProgressReader(path).read())
        yield ("\n".join(JOIN_LOG[2:]) + "\n").encode()

    class StreamingContainer(FakeContainer):
        def logs(self, stream, follow):
            assert stream and follow and self.started
            return chunks()

    client = FakeClient(StreamingContainer(), have_image=False)
    b = boot.Bootstrapper(client=client, progress=ProgressWriter(path, "worker-4"))
    run = b.run("mirantis/dtr", "2.9.16", boot.build_argv("join", join_flags(), "2.9.16"),
                boot.environment(PASSWORD, CA), name="msr-replicas-join-0a1b2c3d4e5f")
    assert run.ok
    assert [(e["kind"], e["command"]) for e in seen_before_second_chunk] == [
        ("pull", None), ("start", "join"), ("phase", "join"), ("phase", "join")]
    events = ProgressReader(path).read()
    assert [e["text"] for e in events if e["kind"] == "phase"] == run.parser.phases
    assert {e["node"] for e in events} == {"worker-4"}
    assert events[1]["text"] == "the bootstrapper msr-replicas-join-0a1b2c3d4e5f started"
    text = open(path).read()
    assert PASSWORD not in text and "MIIB" not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_writer_never_fails_the_run(tmp_path):
    writer = ProgressWriter(str(tmp_path / "missing" / "progress.jsonl"), "worker-4")
    writer("join", "phase", "Connecting to UCP")
    writer("join", "phase", "again")
    assert writer.failed and "No such file" in writer.failed


def test_reader_returns_whole_lines_once(tmp_path):
    path = tmp_path / "p.jsonl"
    reader = ProgressReader(str(path))
    assert reader.read() == []          # not there yet
    one = json.dumps({"node": "w", "command": "join", "kind": "phase", "text": "one"})
    two = json.dumps({"node": "w", "command": "join", "kind": "phase", "text": "two"})
    path.write_text(one + "\n" + two[:10])
    assert [e["text"] for e in reader.read()] == ["one"]
    with open(path, "a") as f:
        f.write(two[10:] + "\nnot json\n" + json.dumps({"kind": "other"}) + "\n")
    assert [e["text"] for e in reader.read()] == ["two"]
    assert reader.read() == []


def test_parse_event():
    assert parse_event(b'{"kind": "phase", "text": "x"}') == {"kind": "phase", "text": "x"}
    assert parse_event("[1]") is None and parse_event("{") is None


def test_format_event():
    ev = {"node": "worker4", "command": "join"}
    assert format_event(dict(ev, kind="phase", text="(02/17) Configured Table")) == \
        "worker4: join: (02/17) Configured Table"
    assert format_event(dict(ev, kind="warning", text="even")) == "worker4: join: WARNING: even"
    assert format_event(dict(ev, kind="error", text="e")) == "worker4: join: ERROR: e"
    assert format_event(dict(ev, kind="fatal", text="f")) == "worker4: join: FATAL: f"
    assert format_event(dict(ev, kind="replica_id", text="0a1b2c3d4e5f")) == "worker4: join: replica ID 0a1b2c3d4e5f"
    assert format_event({"node": "worker4", "command": None, "kind": "pull", "text": "pulling mirantis/dtr:2.9.16"}) \
        == "worker4: pulling mirantis/dtr:2.9.16"
    assert format_event({"kind": "phase", "text": "bare"}) == "bare"


def test_events_from_result():
    result = {"node": None, "replica_ids": ["aaaaaaaaaaaa", "bbbbbbbbbbbb"],
              "runs": [{"command": "remove", "phases": ["Removing", "Done"]}, {"command": "destroy", "phases": []}]}
    assert [format_event(e) for e in events_from_result(result)] == [
        "aaaaaaaaaaaa,bbbbbbbbbbbb: remove: Removing", "aaaaaaaaaaaa,bbbbbbbbbbbb: remove: Done"]
    assert events_from_result({"changed": False}) == []
