# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pool as NGINX's config holds it: the server statements of named upstream blocks (a stream
upstream in nginx.conf, or a file of upstream blocks that nginx.conf includes). PRIVATE to this
collection. Pure functions over text (no I/O, stdlib only).

A server is known by its address:port, since NGINX's servers have no names. An edit cuts or adds
server statements only; every other byte stays, and a kept member's statement stays as it is except
that it loses the C(down) parameter (a member takes traffic). NGINX refuses an upstream without
servers, so an upstream left empty gets the placeholder C(server 127.0.0.1:1 down;) (the lab's own),
which never counts as a member and goes again when a member comes back.
"""

from __future__ import annotations

from ansible_collections.msr.replicas.plugins.module_utils._lbconf import (
    STATES,
    LbConfError,
    newline_of,
    port_of,
    render_options,
    split_address,
)

PLACEHOLDER = ("127.0.0.1", 1)
PLACEHOLDER_STATEMENT = "server 127.0.0.1:1 down;"
DEFAULT_PID = "/run/nginx.pid"


def tokens(text):
    """NGINX's tokens as (kind, value, start, end): kind "word", ";", "{" or "}"; comments dropped."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in ";{}":
            out.append((c, c, i, i + 1))
            i += 1
        elif c in "\"'":
            start, buf, i = i, [], i + 1
            while i < n and text[i] != c:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(text[i])
                i += 1
            if i >= n:
                raise LbConfError("unterminated quoted string at offset %d" % start)
            i += 1
            out.append(("word", "".join(buf), start, i))
        else:
            start, buf = i, []
            while i < n and not text[i].isspace() and text[i] not in ";{}":
                if text.startswith("${", i):        # a variable name: its braces are not a block
                    j = text.find("}", i)
                    if j < 0:
                        raise LbConfError("unterminated ${ at offset %d" % i)
                    buf.append(text[i:j + 1])
                    i = j + 1
                    continue
                step = 2 if text[i] == "\\" and i + 1 < n else 1
                buf.append(text[i:i + step])
                i += step
            out.append(("word", "".join(buf), start, i))
    return out


def parse(text):
    """{"upstreams": [{"name", "parent", "header", "open", "close", "servers"}], "pid": path or None}.
    open is the offset just after the block's "{", close that of its "}", header that of "upstream";
    a server is {"start", "end" (after its ";"), "host", "port", "params": [(word, start, end)]}."""
    stack, stmt, upstreams, pid = [], [], [], None
    for kind, value, start, end in tokens(text):
        if kind == "word":
            stmt.append((value, start, end))
        elif kind == "{":
            block = {"words": [w for w, _s, _e in stmt], "open": end}
            if len(stmt) >= 2 and stmt[0][0] == "upstream":
                block.update(name=stmt[1][0], header=stmt[0][1], servers=[],
                             parent=stack[-1]["words"][0] if stack and stack[-1]["words"] else None)
                upstreams.append(block)
            stack.append(block)
            stmt = []
        elif kind == "}":
            if stmt or not stack:
                raise LbConfError("unexpected \"}\" at offset %d" % start)
            stack.pop()["close"] = start
        else:
            if stack and "servers" in stack[-1] and len(stmt) >= 2 and stmt[0][0] == "server":
                host, port = split_address(stmt[1][0])
                stack[-1]["servers"].append({"start": stmt[0][1], "end": end, "host": host, "port": port,
                                             "params": stmt[2:]})
            elif not stack and len(stmt) == 2 and stmt[0][0] == "pid":
                pid = stmt[1][0]
            stmt = []
    if stack or stmt:
        raise LbConfError("unexpected end of file: a block or statement is not closed")
    return {"upstreams": upstreams, "pid": pid}


def pid_file(text):
    """The main config's pid file (NGINX's `pid` directive, Debian's default without it)."""
    return parse(text)["pid"] or DEFAULT_PID


def _upstreams_of(parsed, backends, path):
    out, problems = {}, []
    for name in backends:
        found = [u for u in parsed["upstreams"] if u["name"] == name]
        if len(found) > 1:
            found = [u for u in found if u["parent"] == "stream"]
        if len(found) != 1:
            problems.append(name)
        else:
            out[name] = found[0]
    if problems:
        raise LbConfError("%s has no single (stream) upstream block %s" % (path, ", ".join(problems)))
    return out


def is_placeholder(srv):
    return (srv["host"], srv["port"]) == PLACEHOLDER and any(w == "down" for w, _s, _e in srv["params"])


def nginx_servers(text, backends, path="the config"):
    """{upstream: [{"name": None, "host", "port"}]} of the managed upstreams, placeholders left out."""
    ups = _upstreams_of(parse(text), backends, path)
    return {b: [{"name": None, "host": s["host"], "port": s["port"]} for s in u["servers"] if not is_placeholder(s)]
            for b, u in ups.items()}


def _line_bounds(text, start, end):
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return line_start, (len(text) if line_end < 0 else line_end)


def _cut(text, start, end):
    """The edit that removes text[start:end]: its whole line(s) when nothing else is on them (a comment
    after it goes with it), else the statement and the blanks after it."""
    line_start, line_end = _line_bounds(text, start, end)
    after = text[end:line_end].strip()
    if not text[line_start:start].strip() and (not after or after.startswith("#")):
        return (line_start, min(line_end + 1, len(text)), "")
    stop = end
    while stop < len(text) and text[stop] in " \t":
        stop += 1
    return (start, stop, "")


def _insert(text, up, anchor, statements, nl):
    """The edit that adds statements after the anchor server (or at the top of the block): own lines
    indented like the anchor when it ends its line, else on the same line."""
    pos = anchor["end"] if anchor else up["open"]
    line_start, line_end = _line_bounds(text, pos, pos)
    rest = text[pos:line_end].strip()
    if rest and not rest.startswith("#"):
        return (pos, pos, "".join(" " + s for s in statements) + ("" if anchor or text[pos:pos + 1].isspace() else " "))
    if anchor:
        first = text[_line_bounds(text, anchor["start"], anchor["start"])[0]:anchor["start"]]
        indent = first if not first.strip() else ""
    else:
        head_start = _line_bounds(text, up["header"], up["header"])[0]
        head = text[head_start:up["header"]]
        head = head if not head.strip() else ""
        indent = head + ("\t" if "\t" in head or (not head and "\t" in text) else "    ")
    return (min(line_end + 1, len(text)), min(line_end + 1, len(text)),
            "".join(indent + s + nl for s in statements))


def nginx_edit(text, backends, items, state, server_options, path="the config"):
    """The new file text and what changes: {"text", "added", "removed", "updated"}; names are the
    members' (a server of no member is named by its address)."""
    if state not in STATES:
        raise LbConfError("state %r: choose one of %s" % (state, ", ".join(STATES)))
    ups = _upstreams_of(parse(text), backends, path)
    nl = newline_of(text)
    names = {m["address"]: m["name"] for m in items}
    edits, added, removed, updated = [], set(), set(), set()
    for backend, kind in backends.items():
        up = ups[backend]
        want = {(m["address"], port_of(m, kind)): m for m in items}
        kept, placeholders, have = [], [], set()
        for srv in up["servers"]:
            if is_placeholder(srv):
                placeholders.append(srv)
                continue
            member = want.get((srv["host"], srv["port"]))
            if (state == "absent" and member) or (state == "exact" and not member):
                edits.append(_cut(text, srv["start"], srv["end"]))
                removed.add(names.get(srv["host"], srv["host"]))
                continue
            kept.append(srv)
            have.add((srv["host"], srv["port"]))
            if member and state != "absent":
                for word, start, stop in srv["params"]:
                    if word == "down":
                        cut = start
                        while cut > 0 and text[cut - 1] in " \t":
                            cut -= 1
                        edits.append((cut, stop, ""))
                        updated.add(member["name"])
        new = [] if state == "absent" else [m for key, m in want.items() if key not in have]
        statements = ["server %s:%d%s;" % (m["address"], port_of(m, kind),
                                           (" " + render_options(server_options, m)).rstrip()) for m in new]
        added.update(m["name"] for m in new)
        if kept or new:
            edits.extend(_cut(text, p["start"], p["end"]) for p in placeholders)
        elif not placeholders:
            statements = [PLACEHOLDER_STATEMENT]
        if statements:
            edits.append(_insert(text, up, kept[-1] if kept else None, statements, nl))
    for start, end, new_text in sorted(edits, reverse=True):
        text = text[:start] + new_text + text[end:]
    both = added & removed
    return {"text": text, "added": sorted(added - both), "removed": sorted(removed - both),
            "updated": sorted((updated | both) - (added - both) - (removed - both))}
