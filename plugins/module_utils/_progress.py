# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The bootstrapper's progress while it runs: the replica module writes it, the replica action plugin shows
it. PRIVATE to this collection.

One JSON object a line (``node``, ``command``, ``kind``, ``text``), appended and flushed per event, so a
reader that polls the file sees each event as soon as it happens and never half a line as a whole one.
The text is the bootstrapper's own log message, already masked by _bootlog (never the environment).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

KINDS = ("pull", "start", "phase", "replica_id", "warning", "error", "fatal")
_PREFIX = {"warning": "WARNING: ", "error": "ERROR: ", "fatal": "FATAL: "}


class ProgressWriter:
    """Appends progress events to ``path``; a callable for Bootstrapper(progress=...)."""

    def __init__(self, path, node):
        self.path = path
        self.node = node
        self.failed = None

    def __call__(self, command, kind, text):
        if self.failed is not None:
            return
        line = json.dumps({"node": self.node, "command": command, "kind": kind, "text": text}, sort_keys=True)
        try:
            # O_APPEND and one write per line: a concurrent reader sees whole lines only.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            # Progress is for the eyes only: it never breaks the run it reports on.
            self.failed = str(exc)


class ProgressReader:
    """Reads the events appended to ``path`` since the last read (whole lines only)."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self._partial = b""

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except (IOError, OSError):
            return []
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events = []
        for raw in lines:
            event = parse_event(raw)
            if event is not None:
                events.append(event)
        return events


def parse_event(raw):
    """The event dict of one progress line; None when it is not one."""
    try:
        event = json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("kind") not in KINDS:
        return None
    return event


def format_event(event):
    """``worker4: join: Beginning replication of tables`` (warnings and errors say so)."""
    text = event.get("text") or ""
    if event["kind"] == "replica_id":
        text = "replica ID %s" % text
    head = ": ".join(str(x) for x in (event.get("node"), event.get("command")) if x)
    return "%s%s%s" % (head, ": " if head else "", _PREFIX.get(event["kind"], "") + text)


def events_from_result(result):
    """The phase events of a finished module result, for when nothing could stream (remote module)."""
    node = result.get("node") or ",".join(result.get("replica_ids") or []) or result.get("replica_id")
    events = []
    for run in result.get("runs") or []:
        for text in run.get("phases") or []:
            events.append({"node": node, "command": run.get("command"), "kind": "phase", "text": text})
    return events
