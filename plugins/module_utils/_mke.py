# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small MKE API client (login, nodes, MSR containers, config-toml). PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.msr.replicas.plugins.module_utils._common import AuthError, HttpClient, MsrError

REPLICA_LABEL = "com.docker.dtr.replica"
VERSION_LABEL = "com.docker.dtr.version"
# The label this collection puts on every bootstrapper container it runs (_bootstrapper, _backup).
BOOTSTRAPPER_LABEL = "com.msr.replicas.command"
# the command, then the replica ID it acts on (a join's new one, a remove's first) or a random one
BOOTSTRAPPER_NAME = "msr-replicas-%s-%s"
# The MSR service containers one observation reads, in one request: MKE, like the engine, takes the values
# of a name filter as alternatives, and the answer does not grow with the rest of the cluster's containers.
SERVICE_PREFIXES = ("dtr-rethinkdb-", "dtr-nginx-", "dtr-registry-")


class MkeClient:
    def __init__(self, url, username, password, ca_pem=None, insecure=False, timeout=30, retries=3, http=None):
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.http = http or HttpClient(
            self.url, ca_pem=ca_pem, insecure=insecure, timeout=timeout, retries=retries, what="MKE",
            tls_hint="Give the MKE CA in mke_ca (it is served at %s/ca) or set mke_insecure_tls: true" % self.url)
        self._token = None

    def login(self):
        _status, data, _raw = self.http.request(
            "POST", "/auth/login", body={"username": self.username, "password": self.password},
            user=self.username)
        token = (data or {}).get("auth_token") if isinstance(data, dict) else None
        if not token:
            raise MsrError("MKE login for user '%s' returned no auth_token" % self.username)
        self._token = token
        return token

    def _get(self, path, accept_type="application/json"):
        fresh = self._token is None
        if fresh:
            self.login()
        try:
            return self._bearer_get(path, accept_type)
        except AuthError:
            if fresh:
                raise
        # MKE session tokens expire (auth.sessions.lifetime_minutes): log in once more, then a 401 is final.
        self.login()
        return self._bearer_get(path, accept_type)

    def _bearer_get(self, path, accept_type):
        _status, data, raw = self.http.request(
            "GET", path, headers={"Authorization": "Bearer %s" % self._token, "Accept": accept_type},
            user=self.username)
        return data, raw

    def ping(self):
        """True when MKE's /_ping answers 200 (no login needed)."""
        status, _data, _raw = self.http.request("GET", "/_ping", accept=(200, 503))
        return status == 200

    def ca(self):
        """The MKE CA bundle (PEM text)."""
        _status, _data, raw = self.http.request("GET", "/ca", headers={"Accept": "*/*"})
        return raw

    def nodes(self):
        data, _raw = self._get("/nodes")
        if not isinstance(data, list):
            raise MsrError("MKE GET /nodes did not return a JSON list")
        return [node_summary(item) for item in data]

    def containers(self, *name_prefixes):
        """Containers (any state) whose name matches any of ``name_prefixes``, as /containers/json summaries."""
        filters = json.dumps({"name": list(name_prefixes)}, separators=(",", ":"))
        data, _raw = self._get("/containers/json?all=1&filters=%s" % quote(filters, safe=""))
        if not isinstance(data, list):
            raise MsrError("MKE GET /containers/json did not return a JSON list")
        return data

    def service_containers(self):
        """{prefix: [summaries]} of the SERVICE_PREFIXES containers (any state), from one request."""
        found = dict((prefix, []) for prefix in SERVICE_PREFIXES)
        for item in self.containers(*SERVICE_PREFIXES):
            names = [n for n in item.get("Names") or [] if isinstance(n, str)]
            for prefix in SERVICE_PREFIXES:
                if any(prefix in n for n in names):   # what the server's filter matched
                    found[prefix].append(item)
        return found

    def all_containers(self):
        """Every container of every node MKE reaches (any state), as /containers/json summaries."""
        data, _raw = self._get("/containers/json?all=1")
        if not isinstance(data, list):
            raise MsrError("MKE GET /containers/json did not return a JSON list")
        return data

    def config_toml(self):
        """MKE's configuration file (TOML text), as GET /api/ucp/config-toml serves it to an admin."""
        _data, raw = self._get("/api/ucp/config-toml", accept_type="application/toml")
        return raw

    def scheduling(self):
        """{"admin_scheduling", "user_scheduling": True/False/None, "error": None or why it is unknown}.

        Never raises: the setting only explains a placement failure, so not reading it must not stop a caller.
        """
        try:
            text = self.config_toml()
        except MsrError as exc:
            return {"admin_scheduling": None, "user_scheduling": None,
                    "error": "cannot read MKE's config-toml: %s" % exc}
        result = parse_scheduling(text)
        result["error"] = None if result["admin_scheduling"] is not None else (
            "MKE's config-toml has no boolean [scheduling_configuration] enable_admin_ucp_scheduling")
        return result

    def replica_containers(self, listing=None):
        """The dtr-rethinkdb-<id> containers; ``listing``: a service_containers() answer to use instead."""
        items = listing["dtr-rethinkdb-"] if listing else self.containers("dtr-rethinkdb-")
        return [c for c in (replica_container(item) for item in items) if c]

    def bootstrappers(self):
        """The bootstrapper containers this collection started (label BOOTSTRAPPER_LABEL), any state: a run
        killed with its controller leaves its container behind, running until the command ends."""
        filters = json.dumps({"label": [BOOTSTRAPPER_LABEL]}, separators=(",", ":"))
        data, _raw = self._get("/containers/json?all=1&filters=%s" % quote(filters, safe=""))
        if not isinstance(data, list):
            raise MsrError("MKE GET /containers/json did not return a JSON list")
        return [bootstrapper_container(item) for item in data]

    def replica_ports(self, listing=None):
        """{replica_id: {"https": port, "http": port}} read from the dtr-nginx-<id> port bindings."""
        result = {}
        for item in listing["dtr-nginx-"] if listing else self.containers("dtr-nginx-"):
            rid = _replica_id(item, "dtr-nginx-")
            if rid:
                result[rid] = nginx_ports(item)
        return result


def node_summary(raw):
    spec = raw.get("Spec") or {}
    desc = raw.get("Description") or {}
    status = raw.get("Status") or {}
    manager = raw.get("ManagerStatus") or {}
    resources = desc.get("Resources") or {}
    return {
        "id": raw.get("ID"),
        "name": desc.get("Hostname"),
        "role": spec.get("Role"),
        "availability": spec.get("Availability"),
        "state": status.get("State"),
        "message": status.get("Message"),
        "address": status.get("Addr"),
        "labels": spec.get("Labels") or {},
        "leader": bool(manager.get("Leader")),
        "reachability": manager.get("Reachability"),
        "cpus": _cpus(resources.get("NanoCPUs")),
        "memory_bytes": _int_or_none(resources.get("MemoryBytes")),
    }


def _cpus(nano):
    value = _int_or_none(nano)
    return value / 1e9 if value is not None else None


def _int_or_none(value):
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def split_name(names, kind):
    """(node, replica_id) from MKE names like "/<hostname>/dtr-rethinkdb-<id>"."""
    for name in names or []:
        parts = name.strip("/").split("/")
        base = parts[-1]
        if base.startswith(kind):
            node = parts[-2] if len(parts) >= 2 else None
            return node, base[len(kind):] or None
    return None, None


def bootstrapper_container(item):
    """{name, node, command, state, running, status} of one bootstrapper container summary."""
    node, name = None, None
    for full in item.get("Names") or []:
        parts = full.strip("/").split("/")
        name, node = parts[-1], parts[-2] if len(parts) >= 2 else None
        break
    state = item.get("State")
    return {"name": name or item.get("Id"), "node": node,
            "command": (item.get("Labels") or {}).get(BOOTSTRAPPER_LABEL), "state": state,
            "running": state in ("running", "created", "restarting", "paused"), "status": item.get("Status")}


def _replica_id(item, kind):
    # The label is authoritative; the name suffix covers containers without labels. IDs are hex, so a
    # digits-only pattern would miss most of them.
    label = (item.get("Labels") or {}).get(REPLICA_LABEL)
    return label or split_name(item.get("Names"), kind)[1]


def replica_container(item):
    node, name_id = split_name(item.get("Names"), "dtr-rethinkdb-")
    labels = item.get("Labels") or {}
    rid = labels.get(REPLICA_LABEL) or name_id
    if not rid:
        return None
    return {
        "id": rid,
        "node": node,
        "version": labels.get(VERSION_LABEL),
        "container_state": item.get("State"),
        "container_status": item.get("Status"),
        "image": item.get("Image"),
    }


def nginx_ports(item):
    ports = {}
    for p in item.get("Ports") or []:
        public = p.get("PublicPort")
        if public and p.get("PrivatePort") == 443:
            ports["https"] = public
        elif public and p.get("PrivatePort") == 80:
            ports["http"] = public
    return ports


_SCHEDULING_KEYS = {"enable_admin_ucp_scheduling": "admin_scheduling", "enable_user_ucp_scheduling": "user_scheduling"}
_TABLE = "scheduling_configuration"
_KEY_VALUE = re.compile(r"""^("|'|)([A-Za-z0-9_.-]+)\1\s*=\s*(.*)$""")
_HEADER = re.compile(r"""^\[\s*("|'|)([A-Za-z0-9_.-]+)\1\s*\]$""")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'[^']*'")


def _code_lines(text):
    """TOML text as lines of code: comments dropped, multi-line strings folded to an empty string on one line.

    Enough lexing that a '#', '[' or '=' inside a string, or a line inside a multi-line string, is never
    taken for structure.
    """
    lines, cur, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            lines.append("".join(cur).strip())
            cur = []
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i:i + 3]
            i += 3
            while i < n and not text.startswith(quote, i):
                i += 2 if quote == '"""' and text[i] == "\\" else 1
            cur.append(quote[0] * 2)
            i += 3
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] not in (c, "\n"):
                j += 2 if c == '"' and text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
        else:
            cur.append(c)
            i += 1
    lines.append("".join(cur).strip())
    return lines


def _depth(code):
    """How many arrays or inline tables ``code`` leaves open (a value may go on over several lines)."""
    code = _STRINGS.sub("", code)
    return code.count("[") + code.count("{") - code.count("]") - code.count("}")


def _boolean(value):
    value = value.strip()
    return {"true": True, "false": False}.get(value)


def parse_scheduling(text):
    """{"admin_scheduling", "user_scheduling"} from config-toml text: True/False, or None when absent or not a boolean.

    Only these two keys are read, so a small lexer is enough (tomllib is Python 3.11+, and the targets run
    3.8+). The keys may sit in the [scheduling_configuration] table, be dotted at the top level or be in an
    inline table; a key given twice with different values reads as None.
    """
    found = {}

    def note(key, raw):
        name = _SCHEDULING_KEYS.get(key)
        if name:
            value = _boolean(raw)
            found[name] = value if found.get(name, value) == value else None

    table = ""
    depth = 0
    for line in _code_lines(text or ""):
        if depth > 0:
            depth += _depth(line)
            continue
        if line.startswith("["):
            m = _HEADER.match(line)
            table = m.group(2) if m else "[other]"   # [[array of tables]] does not match
            continue
        m = _KEY_VALUE.match(line)
        if not m:
            continue
        key, value = m.group(2), m.group(3)
        depth = max(0, _depth(value))
        if table == _TABLE:
            note(key, value)
        elif table == "" and key.startswith(_TABLE + "."):
            note(key[len(_TABLE) + 1:], value)
        elif table == "" and key == _TABLE and value.startswith("{") and value.endswith("}"):
            for pair in value[1:-1].split(","):
                inner = _KEY_VALUE.match(pair.strip())
                if inner:
                    note(inner.group(2), inner.group(3))
    return {"admin_scheduling": found.get("admin_scheduling"), "user_scheduling": found.get("user_scheduling")}
