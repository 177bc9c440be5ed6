# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reads the bootstrapper's logrus output: phases, warnings, fatal errors, the assigned replica ID.
PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_LINE = re.compile(r"^(INFO|WARN|WARNING|ERRO|ERROR|FATA|FATAL|DEBU|DEBUG|PANI|PANIC|TRAC|TRACE)\[[^\]]*\]\s?(.*)$")
_KV_LEVEL = re.compile(r'(?:^|\s)level=("?)(\w+)\1')
_KV_MSG = re.compile(r'(?:^|\s)msg=(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_REPLICA_SET = re.compile(r"Replica ID is set to:\s*([0-9a-fA-F]{12})")
_LEVELS = {"INFO": "info", "WARN": "warning", "WARNING": "warning", "ERRO": "error", "ERROR": "error",
           "FATA": "fatal", "FATAL": "fatal", "DEBU": "debug", "DEBUG": "debug", "PANI": "panic",
           "PANIC": "panic", "TRAC": "trace", "TRACE": "trace"}

# level -> the LogParser list it goes to; that list -> the event kind on_event hears.
_KINDS = {"info": "phases", "warning": "warnings", "error": "errors", "fatal": "fatal", "panic": "fatal"}
_EVENTS = {"phases": "phase", "warnings": "warning", "errors": "error", "fatal": "fatal"}


def parse_line(line):
    """(level, message) of one logrus line (text or key=value form); None for anything else."""
    line = _ANSI.sub("", line).strip()
    if not line:
        return None
    m = _TEXT_LINE.match(line)
    if m:
        return _LEVELS[m.group(1)], m.group(2).strip()
    lvl = _KV_LEVEL.search(line)
    if lvl:
        msg = _KV_MSG.search(line)
        text = ""
        if msg:
            text = msg.group(1) if msg.group(1) is not None else msg.group(2)
            text = text.replace('\\"', '"').replace("\\\\", "\\")
        return _LEVELS.get(lvl.group(2).upper(), lvl.group(2).lower()), text
    return None


class LogParser:
    """Collects phases (INFO messages), warnings, fatal errors and the assigned replica ID.

    ``on_event(kind, text)``, when given, hears each of them as it is parsed (kind: phase, warning, error,
    fatal or replica_id), already masked, so a caller can show a long run's progress as it happens.
    """

    def __init__(self, secrets=(), on_event=None):
        self.on_event = on_event
        self.lines = []
        self.phases = []
        self.warnings = []
        self.errors = []
        self.fatal = []
        self.replica_id = None
        self._buf = ""
        # A PEM secret spans lines, so each of its lines is masked too (the BEGIN/END markers are not secret).
        parts = set(s for s in secrets if s)
        for secret in list(parts):
            parts.update(p.strip() for p in secret.splitlines() if len(p.strip()) >= 8 and not p.startswith("-----"))
        self._secrets = sorted(parts, key=len, reverse=True)

    def feed(self, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self._buf += data.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(line)

    def close(self):
        if self._buf:
            self._line(self._buf)
            self._buf = ""

    def _line(self, line):
        for secret in self._secrets:
            line = line.replace(secret, "********")
        line = line.rstrip()
        if not line.strip():
            return
        self.lines.append(_ANSI.sub("", line))
        parsed = parse_line(line)
        text = parsed[1] if parsed else line.strip()
        kind = _KINDS.get(parsed[0]) if parsed else None
        if kind:
            getattr(self, kind).append(parsed[1])
            self._event(_EVENTS[kind], parsed[1])
        m = _REPLICA_SET.search(text)
        if m and m.group(1).lower() != self.replica_id:
            self.replica_id = m.group(1).lower()
            if kind != "phases":   # an INFO line has just said it
                self._event("replica_id", self.replica_id)

    def _event(self, kind, text):
        if self.on_event is not None:
            self.on_event(kind, text)

    def failure_message(self):
        if self.fatal:
            return "; ".join(_unique(self.fatal))
        if self.errors:
            return "; ".join(_unique(self.errors))
        return None


def _unique(items):
    seen = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen
