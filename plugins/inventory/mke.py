# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mke
short_description: MKE as the inventory of an MSR cluster
version_added: 0.1.0
description:
  - Builds the inventory from the MKE API - the groups C(mke_managers) and C(mke_workers) (every MKE node, by
    role), C(msr_replicas) (the nodes that run an MSR replica now, with C(msr_replica_id), C(msr_replica_state),
    C(msr_replica_health) and C(msr_replica_version)) and C(msr), the desired replicas, from an MKE node label of
    your choice (O(desired_label)).
  - Labelling a node in MKE is then how an operator asks for a replica (C(docker node update --label-add
    com.mirantis.msr.replica=true worker-4) with an MKE client bundle); the scheduled C(msr.replicas.reconcile)
    run with O(desired_label)'s nodes as C(msr) joins it, and removing the label (with C(msr_allow_scale_down))
    removes it.
  - Each host is the MKE node name, with C(ansible_host) its address and C(msr_node_name). The connection
    settings (C(msr_mke_url), C(msr_mke_username), the CAs, the insecure flags) are set on C(all), so the
    playbooks find them; the password never is - give C(msr_mke_password) in a vaulted vars file.
  - The load balancers are not MKE nodes - give the C(msr_lb) group in a second inventory source (C(-i mke.yml
    -i lbs.yml)).
  - The file must end in C(mke.yml) or C(mke.yaml).
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [msr.replicas.mke]
  mke_url:
    description: MKE's URL, C(https://) only.
    type: str
    required: true
    env:
      - name: MSR_MKE_URL
  mke_username:
    description: The MKE admin user.
    type: str
    default: admin
    env:
      - name: MSR_MKE_USERNAME
  mke_password:
    description:
      - The MKE admin password. Prefer the environment, or O(mke_password_file); a C(!vault) value here works too.
      - Never cached and never set as a variable.
    type: str
    env:
      - name: MSR_MKE_PASSWORD
  mke_password_file:
    description: A file that holds only the password, plain or encrypted with C(ansible-vault encrypt).
    type: path
  mke_ca:
    description: MKE's CA (C(https://<mke>/ca)), PEM text or the path of a PEM file.
    type: str
    env:
      - name: MSR_MKE_CA
  mke_insecure_tls:
    description: Do not verify MKE's certificate (a warning says so).
    type: bool
    default: false
  msr_ca:
    description: MSR's own CA (C(https://<replica>/ca)), PEM text or the path of a PEM file; needed for replica health.
    type: str
    env:
      - name: MSR_CA
  msr_insecure_tls:
    description: Do not verify the replicas' certificates (a warning says so).
    type: bool
    default: false
  desired_label:
    description:
      - The MKE node label that asks for a replica, V(key=value) or V(key) (any value); its nodes form the group
        C(msr). An empty value leaves C(msr) out (give it yourself).
    type: str
    default: com.mirantis.msr.replica=true
  connection_vars:
    description: Set the connection settings (not the password) on C(all).
    type: bool
    default: true
  api_timeout:
    description: Seconds per API request.
    type: int
    default: 30
"""

EXAMPLES = r"""
---
# mke.yml; MSR_MKE_PASSWORD in the environment (or mke_password_file: a vaulted file)
plugin: msr.replicas.mke
mke_url: https://mke.example.com
mke_ca: /etc/msr/mke-ca.pem
msr_ca: /etc/msr/msr-ca.pem
desired_label: com.mirantis.msr.replica=true
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/msr-inventory
cache_timeout: 300
"""

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

from ansible_collections.msr.replicas.plugins.module_utils._cluster import clients_from_params, observe
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

display = Display()
GROUPS = ("mke_managers", "mke_workers", "msr_replicas", "msr")


def label_matches(labels, wanted):
    """Whether ``labels`` carry ``wanted`` (key=value, or key with any value)."""
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


def snapshot(view):
    """What the inventory keeps (and caches) of an observation: no secret, only nodes and replicas."""
    nodes = [{k: n.get(k) for k in ("name", "role", "address", "state", "availability", "labels")}
             for n in view["nodes"]]
    replicas = [{"id": r.get("id"), "node": r.get("node"), "state": r.get("state"), "health": r.get("health"),
                 "version": r.get("version")} for r in view["replicas"]]
    return {"nodes": nodes, "replicas": replicas}


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "msr.replicas.mke"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("mke.yml", "mke.yaml"))

    def pem(self, option):
        value = self.get_option(option)
        if value and "-----BEGIN" not in value and os.path.isfile(os.path.expanduser(value)):
            return self.loader.get_text_file_contents(os.path.expanduser(value))
        return value or None

    def password(self):
        if self.get_option("mke_password_file"):
            return self.loader.get_text_file_contents(self.get_option("mke_password_file")).strip()
        return self.get_option("mke_password")

    def settings(self):
        url = (self.get_option("mke_url") or "").rstrip("/")
        if not url.startswith("https://"):
            raise AnsibleParserError("msr.replicas.mke: mke_url must be an https:// URL, got '%s'" % url)
        out = {"mke_url": url, "mke_username": self.get_option("mke_username"), "mke_ca": self.pem("mke_ca"),
               "mke_insecure_tls": self.get_option("mke_insecure_tls"), "msr_ca": self.pem("msr_ca"),
               "msr_insecure_tls": self.get_option("msr_insecure_tls")}
        for side, ca in (("mke", "mke_ca"), ("msr", "msr_ca")):
            if not out[ca] and not out["%s_insecure_tls" % side]:
                raise AnsibleParserError("msr.replicas.mke: give %s (the CA, PEM text or a file) or %s_insecure_tls: true"
                                         % (ca, side))
            if out["%s_insecure_tls" % side]:
                display.warning("msr.replicas.mke: %s_insecure_tls is true: certificates are NOT verified" % side)
        return out

    def fetch(self, settings):
        password = self.password()
        if not password:
            raise AnsibleParserError("msr.replicas.mke: no MKE password: set MSR_MKE_PASSWORD, mke_password_file or "
                                     "mke_password")
        params = dict(settings, mke_password=password, msr_url=None, api_timeout=self.get_option("api_timeout"),
                      api_retries=3)
        try:
            mke, msr_factory = clients_from_params(params)
            return snapshot(observe(mke, msr_factory))
        except MsrError as exc:
            raise AnsibleParserError("msr.replicas.mke: %s" % str(exc).replace(password, "********"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        settings = self.settings()
        key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        data = None
        if use_cache:
            try:
                data = self._cache[key]
            except KeyError:
                data = None
        if data is None:
            data = self.fetch(settings)
            if self.get_option("cache"):
                self._cache[key] = data
        self.populate(data, settings)

    def populate(self, data, settings):
        for group in GROUPS:
            if group != "msr" or self.get_option("desired_label"):
                self.inventory.add_group(group)
        if self.get_option("connection_vars"):
            for var, value in (("msr_mke_url", settings["mke_url"]), ("msr_mke_username", settings["mke_username"]),
                               ("msr_mke_ca", settings["mke_ca"]), ("msr_ca", settings["msr_ca"]),
                               ("msr_mke_insecure_tls", settings["mke_insecure_tls"]),
                               ("msr_insecure_tls", settings["msr_insecure_tls"])):
                if value not in (None, False):
                    self.inventory.set_variable("all", var, value)
        replicas = {}
        for r in data["replicas"]:
            if r["node"]:
                replicas.setdefault(r["node"], r)
        wanted = self.get_option("desired_label")
        strict = self.get_option("strict")
        for node in data["nodes"]:
            name = node["name"]
            self.inventory.add_host(name, group="mke_managers" if node["role"] == "manager" else "mke_workers")
            hostvars = {"ansible_host": node["address"], "msr_node_name": name, "mke_role": node["role"],
                        "mke_node_state": node["state"], "mke_availability": node["availability"],
                        "mke_labels": node["labels"] or {}}
            replica = replicas.get(name)
            if replica:
                self.inventory.add_child("msr_replicas", name)
                hostvars.update(msr_replica_id=replica["id"], msr_replica_state=replica["state"],
                                msr_replica_health=replica["health"], msr_replica_version=replica["version"])
            if wanted and label_matches(node["labels"] or {}, wanted):
                self.inventory.add_child("msr", name)
            for var, value in hostvars.items():
                self.inventory.set_variable(name, var, value)
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
