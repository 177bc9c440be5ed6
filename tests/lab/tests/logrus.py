"""Reading the bootstrapper's logrus lines in tests, strictly: every line must be in one of the two formats."""
from __future__ import annotations

import json
import re

KV = re.compile(r'^time="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)" level=(debug|info|warning|error|fatal) '
                r'msg=("(?:[^"\\]|\\.)*"|[A-Za-z0-9\-._/@^+]+)$')
TTY = re.compile(r"^(?:\x1b\[\d+m)?(DEBU|INFO|WARN|ERRO|FATA)(?:\x1b\[0m)?\[(\d{4})\] (.*)$")
LEVELS = {"DEBU": "debug", "INFO": "info", "WARN": "warning", "ERRO": "error", "FATA": "fatal"}


def records(text: str) -> list[tuple[str, str]]:
    """(level, message) of each line; AssertionError on a line in neither format."""
    out = []
    for line in text.splitlines():
        m = KV.match(line)
        if m:
            value = m.group(3)
            # Go's %q and JSON agree on the escapes the bootstrapper writes (\" \\ \n \t)
            out.append((m.group(2), json.loads(value) if value.startswith('"') else value))
            continue
        m = TTY.match(line)
        assert m, f"not a logrus line: {line!r}"
        out.append((LEVELS[m.group(1)], m.group(3)))
    return out


def messages(text: str) -> list[str]:
    return [msg for _level, msg in records(text)]


def fatal_lines(text: str) -> list[str]:
    return [msg for level, msg in records(text) if level == "fatal"]
