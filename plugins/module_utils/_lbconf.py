# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pool as a load balancer's config file holds it: members, and the server lines of named HAProxy
backends. PRIVATE to this collection. Pure functions over text (no I/O, stdlib only); the NGINX
upstream blocks are in _nginxconf.

An edit changes only the server lines it must: every other byte of the file stays as it was, and the
line of a kept member stays as it is (its own options included), except that a member's line loses
the C(disabled) keyword (a member takes traffic) and is written anew when its address or port
changed. New lines go after the backend's last server line, indented like it.

A member is ``{"name", "address", "http_port", "https_port"}``; a backend's kind (``http`` or
``https``) says which port its servers use.
"""

from __future__ import annotations

import re

STATES = ("present", "absent", "exact")
KINDS = ("http", "https")
# HAProxy's section keywords: a line starting with one of them ends the section before it.
SECTIONS = frozenset(("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
                      "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "crt-store", "traces",
                      "log-forward"))
_NAME = re.compile(r"^[A-Za-z0-9._:-]+$")


class LbConfError(Exception):
    pass


# ---------------------------------------------------------------- members and options

def members(items):
    """Validated members (defaults filled in), refusing what would write a broken or ambiguous line."""
    out, names = [], set()
    for i, item in enumerate(items or ()):
        name, address = item.get("name"), item.get("address")
        if not name or not _NAME.match(str(name)):
            raise LbConfError("members[%d].name %r: give the HAProxy server name (the MKE node name: letters, "
                              "digits, '.', '_', ':', '-')" % (i, name))
        if not address or re.search(r"[\s;{}#'\"]", str(address)):
            raise LbConfError("members[%d] (%s): address %r is not a host name or IP address" % (i, name, address))
        member = {"name": str(name), "address": str(address)}
        for key, default in (("http_port", 80), ("https_port", 443)):
            value = item.get(key)
            try:
                port = default if value is None else int(value)
            except (TypeError, ValueError):
                port = 0
            if not 0 < port < 65536:
                raise LbConfError("members[%d] (%s): %s %r is not a port" % (i, name, key, value))
            member[key] = port
        if member["name"] in names:
            raise LbConfError("members: %s is listed twice" % member["name"])
        names.add(member["name"])
        out.append(member)
    return out


def backend_kinds(backends):
    for name, kind in backends.items():
        if kind not in KINDS:
            raise LbConfError("backends.%s: %r is neither http nor https" % (name, kind))
    if not backends:
        raise LbConfError("backends: name at least one backend")
    return dict(backends)


def port_of(member, kind):
    return member["%s_port" % kind]


def render_options(template, member):
    """server_options with {http_port} and {https_port} of the member filled in."""
    try:
        return (template or "").format(http_port=member["http_port"], https_port=member["https_port"]).strip()
    except (KeyError, IndexError, ValueError) as exc:
        raise LbConfError("server_options %r: only {http_port} and {https_port} can be filled in (%s)"
                          % (template, exc))


def split_address(address):
    """'10.0.0.1:80' -> ('10.0.0.1', 80); a missing or non-numeric port is None."""
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and host:
        return host, int(port)
    return address, None


def newline_of(text):
    return "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"


def pool_of(servers, backends, names_by_address=None):
    """Members as the servers of the managed backends make them: one per name, ports by kind.

    servers: {backend: [{"name", "host", "port"}, ...]}."""
    pool = {}
    for backend, kind in backends.items():
        for srv in servers.get(backend, ()):
            name = srv["name"]
            if names_by_address is not None:
                name = names_by_address.get(srv["host"], srv["host"])
            entry = pool.setdefault(name, {"name": name, "address": srv["host"], "http_port": None,
                                           "https_port": None})
            entry["%s_port" % kind] = srv["port"]
    return [pool[n] for n in sorted(pool)]


# ---------------------------------------------------------------- HAProxy

def words(line):
    """HAProxy's split of one config line into (word, start, end): quotes, backslash escapes, # comments."""
    out, cur, start, quote, i = [], None, 0, None, 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"' and i + 1 < len(line):
                i += 1
                cur.append(line[i])
            else:
                cur.append(c)
        elif c in "\"'":
            if cur is None:
                cur, start = [], i
            quote = c
        elif c == "\\" and i + 1 < len(line) and line[i + 1] not in "\r\n":
            if cur is None:
                cur, start = [], i
            i += 1
            cur.append(line[i])
        elif c == "#" or c.isspace():
            if cur is not None:
                out.append(("".join(cur), start, i))
                cur = None
            if c == "#":
                return out
        else:
            if cur is None:
                cur, start = [], i
            cur.append(c)
        i += 1
    if cur is not None:
        out.append(("".join(cur), start, len(line)))
    return out


def _template_names(ws):
    """Server names a `server-template <prefix> <num | low-high> <fqdn>[:port]` line makes."""
    if len(ws) < 4:
        return []
    low, _sep, high = ws[2].partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        return []
    first, last = (int(low), int(high)) if high else (1, int(low))
    return ["%s%d" % (ws[1], n) for n in range(first, last + 1)]


def haproxy_parse(text):
    """{backend or listen name: section}; a section has its line range and its server and
    server-template lines (dicts with line, name, host, port, words)."""
    lines = text.splitlines(True)
    sections, current = {}, None
    for i, line in enumerate(lines):
        ws = words(line)
        if not ws:
            continue
        first = ws[0][0]
        if first in SECTIONS:
            current = None
            if first in ("backend", "listen") and len(ws) > 1:
                if ws[1][0] in sections:
                    raise LbConfError("backend %s is defined twice" % ws[1][0])
                current = sections[ws[1][0]] = {"header": i, "last": i, "servers": [], "templates": []}
            continue
        if current is None:
            continue
        current["last"] = i
        if first == "server" and len(ws) >= 3:
            host, port = split_address(ws[2][0])
            current["servers"].append({"line": i, "name": ws[1][0], "host": host, "port": port, "words": ws})
        elif first == "server-template":
            host, port = split_address(ws[3][0]) if len(ws) > 3 else ("", None)
            plain = [w for w, _s, _e in ws]
            current["templates"].append({"line": i, "names": _template_names(plain), "host": host, "port": port,
                                         "disabled": "disabled" in plain[4:]})
    return lines, sections


def _sections_of(sections, backends, path):
    missing = [b for b in backends if b not in sections]
    if missing:
        raise LbConfError("%s has no backend (or listen) section %s" % (path, ", ".join(missing)))
    return {b: sections[b] for b in backends}


def haproxy_servers(text, backends, path="the config"):
    """{backend: [{"name", "host", "port"}]} of the server lines of the managed backends."""
    _lines, sections = haproxy_parse(text)
    found = _sections_of(sections, backends, path)
    return {b: [{"name": s["name"], "host": s["host"], "port": s["port"]} for s in sec["servers"]]
            for b, sec in found.items()}


def haproxy_expected(text, backends, path="the config"):
    """What the runtime API should list after a reload: {backend: {name: (host, port)}}, servers of
    server-template lines included (host None: their address comes from DNS)."""
    return {b: {n: (s["host"], s["port"]) for n, s in names.items()}
            for b, names in _expected(text, backends, path).items()}


def haproxy_admin_after_reload(text, backends, path="the config"):
    """{backend: {name: admin state}} a fresh HAProxy starts with: MAINT for `disabled`, else READY."""
    return {b: {n: "MAINT" if s["disabled"] else "READY" for n, s in names.items()}
            for b, names in _expected(text, backends, path).items()}


def _expected(text, backends, path):
    _lines, sections = haproxy_parse(text)
    out = {}
    for backend, sec in _sections_of(sections, backends, path).items():
        names = out[backend] = {}
        for t in sec["templates"]:
            for name in t["names"]:
                names[name] = {"host": None, "port": t["port"], "disabled": t["disabled"]}
        for s in sec["servers"]:
            names[s["name"]] = {"host": s["host"], "port": s["port"],
                                "disabled": any(w == "disabled" for w, _s, _e in s["words"][3:])}
    return out


def _indent(lines, sec):
    for s in reversed(sec["servers"]):
        line = lines[s["line"]]
        return line[:len(line) - len(line.lstrip())]
    for line in lines[sec["header"] + 1:sec["last"] + 1]:
        if line.strip() and not line.lstrip().startswith("#"):
            return line[:len(line) - len(line.lstrip())]
    return "\t"


def _without_disabled(line, ws):
    for word, start, end in reversed(ws[3:]):
        if word == "disabled":
            cut = start
            while cut > 0 and line[cut - 1] in " \t":
                cut -= 1
            line = line[:cut] + line[end:]
    return line


def haproxy_edit(text, backends, items, state, server_options, path="the config"):
    """The new file text and what changes: {"text", "added", "removed", "updated"} (member names)."""
    if state not in STATES:
        raise LbConfError("state %r: choose one of %s" % (state, ", ".join(STATES)))
    lines, sections = haproxy_parse(text)
    found = _sections_of(sections, backends, path)
    nl = newline_of(text)
    by_name = {m["name"]: m for m in items}
    replace, inserts = {}, {}
    added, removed, updated = set(), set(), set()
    for backend, kind in backends.items():
        sec = found[backend]
        indent = _indent(lines, sec)
        seen = set()
        for srv in sec["servers"]:
            member = by_name.get(srv["name"])
            seen.add(srv["name"])
            if state == "absent":
                if member:
                    replace[srv["line"]] = ""
                    removed.add(srv["name"])
            elif member is None:
                if state == "exact":
                    replace[srv["line"]] = ""
                    removed.add(srv["name"])
            elif (srv["host"], srv["port"]) != (member["address"], port_of(member, kind)):
                replace[srv["line"]] = _server_line(indent, member, kind, server_options, nl)
                updated.add(srv["name"])
            elif any(w == "disabled" for w, _s, _e in srv["words"][3:]):
                replace[srv["line"]] = _without_disabled(lines[srv["line"]], srv["words"])
                updated.add(srv["name"])
        if state == "absent":
            continue
        new = [_server_line(indent, m, kind, server_options, nl) for m in items if m["name"] not in seen]
        if new:
            anchor = max([s["line"] for s in sec["servers"]] + [t["line"] for t in sec["templates"]] + [-1])
            if anchor < 0:
                anchor = sec["last"]   # the section's last statement: comments after it lead the next one
            inserts.setdefault(anchor, []).extend(new)
            added.update(m["name"] for m in items if m["name"] not in seen)
    out = []
    for i, line in enumerate(lines):
        out.append(replace.get(i, line))
        if i in inserts:
            if out[-1] and not out[-1].endswith("\n"):
                out[-1] += nl
            out.extend(inserts[i])
    return {"text": "".join(out), "added": sorted(added), "removed": sorted(removed),
            "updated": sorted(updated - added - removed)}


def _server_line(indent, member, kind, server_options, nl):
    options = render_options(server_options, member)
    line = "%sserver %s %s:%d" % (indent, member["name"], member["address"], port_of(member, kind))
    return (line + " " + options if options else line) + nl
