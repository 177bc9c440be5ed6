# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy's runtime API over its admin unix socket (stdlib socket, one command per connection, as
HAProxy closes it after the reply). PRIVATE to this collection.

The state of a server comes from `show servers state` (its admin bits and operational state, the
result of its last check) and its sessions from `show stat` (scur). Only the admin state is ever
compared to decide a change; sessions are only waited on.
"""

from __future__ import annotations

import csv
import socket

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited (track), config, resolution maint;
# forced and inherited drain.
FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT, HMAINT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
# What `set server ... state ready` clears. CMAINT (the `disabled` keyword) stays set after it but no
# longer holds the server down, so it alone is not maintenance.
FORCED = FMAINT | FDRAIN
OPERATIONAL = {0: "DOWN", 1: "STARTING", 2: "UP", 3: "STOPPING"}
CHECK_PASSED = 3                 # srv_check_result CHK_RES_PASSED
CHECK_ENABLED = 0x04             # srv_check_state CHK_ST_ENABLED


class HaproxyError(Exception):
    pass


def command(path, line, timeout=5.0):
    """The reply to one runtime API command."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as exc:
        raise no_answer(path, line, exc)
    return b"".join(chunks).decode("utf-8", "replace")


def no_answer(path, line, reason):
    """The error of an admin socket that did not answer ``line`` (``reason``: the OSError or its text)."""
    return HaproxyError("HAProxy's admin socket %s does not answer %r (%s): is HAProxy running, with "
                        "`stats socket %s level admin`?" % (path, line, reason, path))


def admin_name(bits):
    if bits & (FMAINT | IMAINT | RMAINT | HMAINT):
        return "MAINT"
    if bits & (FDRAIN | IDRAIN):
        return "DRAIN"
    return "READY"


def parse_servers_state(text):
    """{backend: {server: {...}}} from `show servers state` (format version 1)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("#"):
        raise HaproxyError("unexpected reply to `show servers state`: %r" % text[:200])
    header = lines[1].lstrip("# ").split()
    out = {}
    for line in lines[2:]:
        row = dict(zip(header, line.split()))
        try:
            bits = int(row["srv_admin_state"])
            out.setdefault(row["be_name"], {})[row["srv_name"]] = {
                "address": row["srv_addr"], "port": int(row["srv_port"]), "admin_bits": bits,
                "admin": admin_name(bits), "operational": OPERATIONAL.get(int(row["srv_op_state"]), "UNKNOWN"),
                "checked": not int(row["srv_check_state"]) & CHECK_ENABLED
                or int(row["srv_check_result"]) == CHECK_PASSED}
        except (KeyError, ValueError):
            raise HaproxyError("unexpected line in `show servers state`: %r" % line)
    return out


def parse_stat(text):
    """{(backend, server): scur} of the servers in `show stat`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        raise HaproxyError("unexpected reply to `show stat`: %r" % text[:200])
    out = {}
    for row in csv.DictReader(lines[1:], fieldnames=lines[0].lstrip("# ").split(",")):
        if row.get("type") == "2":
            out[(row["pxname"], row["svname"])] = int(row.get("scur") or 0)
    return out


class Runtime:
    """The runtime API of one HAProxy, limited to the managed backends."""

    def __init__(self, path, backends, timeout=5.0):
        self.path = path
        self.backends = list(backends)
        self.timeout = timeout

    def run(self, line):
        return command(self.path, line, self.timeout)

    def servers(self):
        state = parse_servers_state(self.run("show servers state"))
        return {b: state.get(b, {}) for b in self.backends}

    def sessions(self):
        return parse_stat(self.run("show stat"))

    def pid(self):
        for line in self.run("show info").splitlines():
            if line.startswith("Pid:"):
                return line.split(":", 1)[1].strip()
        return None

    def set_state(self, backend, name, state):
        reply = self.run("set server %s/%s state %s" % (backend, name, state)).strip()
        if reply:
            raise HaproxyError("set server %s/%s state %s: %s" % (backend, name, state, reply))


def membership_differences(expected, servers):
    """What the runtime has that the file does not, and the reverse: a list of sentences, empty when
    the runtime shows the file's pool. An address is compared only when the file gives an IP."""
    out = []
    for backend, names in expected.items():
        live = servers.get(backend, {})
        for name, (host, port) in sorted(names.items()):
            srv = live.get(name)
            if srv is None:
                out.append("%s/%s is in the file, not in the runtime" % (backend, name))
            elif host and _is_ip(host) and (srv["address"], srv["port"]) != (host, port or srv["port"]):
                out.append("%s/%s is %s:%s in the runtime, %s:%s in the file"
                           % (backend, name, srv["address"], srv["port"], host, port))
        for name in sorted(set(live) - set(names)):
            out.append("%s/%s is in the runtime, not in the file" % (backend, name))
    return out


def arrivals(expected, servers):
    """(backend, name) of the file's servers that the runtime lacks or has at another address: the
    ones a reload brings in, which must pass a health check before they count as UP."""
    return [(b, n) for b, names in expected.items() for n in sorted(names)
            if membership_differences({b: {n: names[n]}}, {b: {n: servers[b][n]}} if n in servers.get(b, {}) else {})]


def _is_ip(host):
    host = host.strip("[]")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def runtime_view(servers):
    """The `runtime` result: admin and operational state per backend/server, no session counts."""
    return [{"backend": b, "name": n, "address": s["address"], "port": s["port"], "admin": s["admin"],
             "operational": s["operational"]}
            for b in sorted(servers) for n, s in sorted(servers[b].items())]
