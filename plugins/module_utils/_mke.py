# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small MKE API client (login, nodes, MSR containers). PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.msr.replicas.plugins.module_utils._common import HttpClient, MsrError

REPLICA_LABEL = "com.docker.dtr.replica"
VERSION_LABEL = "com.docker.dtr.version"


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

    def _get(self, path):
        if self._token is None:
            self.login()
        _status, data, raw = self.http.request(
            "GET", path, headers={"Authorization": "Bearer %s" % self._token}, user=self.username)
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

    def containers(self, name_prefix):
        """Containers (any state) whose name matches ``name_prefix``, as /containers/json summaries."""
        filters = json.dumps({"name": [name_prefix]}, separators=(",", ":"))
        data, _raw = self._get("/containers/json?all=1&filters=%s" % quote(filters, safe=""))
        if not isinstance(data, list):
            raise MsrError("MKE GET /containers/json did not return a JSON list")
        return data

    def replica_containers(self):
        return [c for c in (replica_container(item) for item in self.containers("dtr-rethinkdb-")) if c]

    def replica_ports(self):
        """{replica_id: {"https": port, "http": port}} read from the dtr-nginx-<id> port bindings."""
        result = {}
        for item in self.containers("dtr-nginx-"):
            rid = _replica_id(item, "dtr-nginx-")
            if rid:
                result[rid] = nginx_ports(item)
        return result


def node_summary(raw):
    spec = raw.get("Spec") or {}
    desc = raw.get("Description") or {}
    status = raw.get("Status") or {}
    manager = raw.get("ManagerStatus") or {}
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
    }


def split_name(names, kind):
    """(node, replica_id) from MKE names like "/<hostname>/dtr-rethinkdb-<id>"."""
    for name in names or []:
        parts = name.strip("/").split("/")
        base = parts[-1]
        if base.startswith(kind):
            node = parts[-2] if len(parts) >= 2 else None
            return node, base[len(kind):] or None
    return None, None


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
