"""The bootstrapper's log lines as logrus's TextFormatter writes them (the real tool is Go with logrus).

With a TTY and colours on: `INFO[0003] message` (level coloured, seconds since start). Otherwise, which is
how automation runs it (`docker run -i`, no `-t`) or with --nocolor: `time="<RFC 3339>" level=info
msg="message"`, the value quoted the way Go's %q does when it holds anything beyond [A-Za-z0-9-._/@^+].
"""
from __future__ import annotations

import datetime
import re

SHORT = {"debug": "DEBU", "info": "INFO", "warning": "WARN", "error": "ERRO", "fatal": "FATA"}
_COLOURS = {"debug": 37, "info": 36, "warning": 33, "error": 31, "fatal": 31}
_BARE = re.compile(r"^[A-Za-z0-9\-._/@^+]+$")


def go_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def line(level: str, msg: str, elapsed: float, coloured: bool, now: datetime.datetime | None = None) -> str:
    """One log line, newline included. `level` is logrus's name: debug, info, warning, error, fatal."""
    if coloured:
        return f"\x1b[{_COLOURS[level]}m{SHORT[level]}\x1b[0m[{int(elapsed):04d}] {msg}\n"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    value = msg if _BARE.match(msg) else go_quote(msg)
    return f'time="{stamp}" level={level} msg={value}\n'
