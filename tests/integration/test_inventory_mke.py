# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The msr.replicas.mke inventory plugin against the lab's MKE: the groups and host variables from MKE's nodes
and MSR's replicas, the desired group from a node label set through MKE's API (POST /nodes/{id}/update, as
`docker node update --label-add` sends it), the cache (no secret in it; --flush-cache reads again), and the
scheduled reconcile joining the replicas that labelling asked for."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request

import pytest
import yaml
from test_reconcile import reconcile

from msrint import BIN

pytestmark = pytest.mark.timeout(300)

LABEL = "com.mirantis.msr.replica"


def mke_api(lab, method, path, body=None, token=None):
    ctx = ssl.create_default_context(cadata=lab.vars["msr_mke_ca"])
    req = urllib.request.Request(lab.vars["msr_mke_url"] + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        data = resp.read()
    return json.loads(data) if data else None


def label(lab, *nodes, value="true"):
    """Label MKE nodes as an operator does: read each node, send back its spec with the label, at its version."""
    token = mke_api(lab, "POST", "/auth/login", {"username": lab.vars["msr_mke_username"],
                                                 "password": lab.password})["auth_token"]
    for name in nodes:
        node = mke_api(lab, "GET", "/nodes/" + name, token=token)
        spec = dict(node["Spec"], Labels=dict(node["Spec"]["Labels"], **{LABEL: value}))
        mke_api(lab, "POST", "/nodes/%s/update?version=%d" % (node["ID"], node["Version"]["Index"]), spec, token)
    lab.touched()


def inventories(lab):
    """(mke.yml, lbs.yml): the plugin's config (the CA as a file, the password only in the environment) and the
    rest of what the playbooks need (the LB hosts, SSH settings, the password as a vars entry)."""
    ca = lab.workdir / "mke-ca.pem"
    ca.write_text(lab.vars["msr_mke_ca"])
    mke = lab.workdir / "lab.mke.yml"
    mke.write_text(yaml.safe_dump({
        "plugin": "msr.replicas.mke", "mke_url": lab.vars["msr_mke_url"], "mke_ca": str(ca),
        "msr_ca": lab.vars["msr_ca"], "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(lab.workdir / "inventory-cache"), "cache_timeout": 3600}))
    static = yaml.safe_load(lab.inventory.read_text())
    lbs = lab.workdir / "lbs.yml"
    lbs.write_text(yaml.safe_dump({"all": {"vars": static["all"]["vars"],
                                           "children": {"msr_lb": static["all"]["children"]["msr_lb"]}}}))
    return mke, lbs


def inventory(lab, mke, *args):
    env = lab.ansible_env(MSR_MKE_PASSWORD=lab.password)
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(mke), *args], env=env, capture_output=True,
                         text=True, timeout=120, cwd=str(lab.workdir))
    assert out.returncode == 0, out.stderr
    assert lab.password not in out.stdout + out.stderr
    return out.stdout


def plain(value):
    """ansible-inventory --list marks what the plugin read from MKE as unsafe (never templated): the values."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value


def listed(lab, mke, *args):
    return plain(json.loads(inventory(lab, mke, "--list", *args)))


def groups_of(listing):
    return {g: sorted(listing[g].get("hosts", [])) for g in ("mke_managers", "mke_workers", "msr_replicas", "msr")}


def test_mke_inventory_then_labels_ask_for_replicas(lab):
    lab.fresh(replicas=3)
    label(lab, "worker1", "worker2", "worker3")
    mke, lbs = inventories(lab)
    listing = listed(lab, mke, "--flush-cache")
    workers = ["worker%d" % i for i in range(1, 6)]
    assert groups_of(listing) == {"mke_managers": ["manager1", "manager2", "manager3"], "mke_workers": workers,
                                  "msr_replicas": workers[:3], "msr": workers[:3]}
    reps = lab.replicas()
    hv = listing["_meta"]["hostvars"]
    status = {n["name"]: n for n in lab.status()["nodes"]}
    for name in workers[:3]:
        rid = [r for r, v in reps.items() if v["node"] == name][0]
        assert (hv[name]["msr_replica_id"], hv[name]["msr_replica_state"], hv[name]["msr_replica_version"]) == (
            rid, "healthy", lab.vars["msr_version"]), hv[name]
        assert hv[name]["msr_replica_health"] == "OK" and hv[name]["mke_labels"][LABEL] == "true"
    for name in status:
        if name in hv:
            assert hv[name]["ansible_host"] == status[name]["addr"] and hv[name]["msr_node_name"] == name
    assert "msr_replica_id" not in hv["worker4"]
    # the connection settings on all (ansible-inventory shows them in every host's variables)
    assert hv["manager1"]["msr_mke_url"] == lab.vars["msr_mke_url"] and hv["worker5"]["msr_mke_username"] == "admin"
    assert hv["worker1"]["msr_mke_ca"].strip() == lab.vars["msr_mke_ca"].strip()
    assert hv["worker1"]["msr_ca"].strip() == lab.vars["msr_ca"].strip()
    assert "msr_mke_password" not in json.dumps(listing)
    # The password from a vaulted file instead of the environment.
    vault_pass = lab.workdir / "vault-pass"
    vault_pass.write_text("lab-vault-passphrase\n")
    secret_file = lab.workdir / "mke-password.vault"
    secret_file.write_text(lab.password)
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(vault_pass), str(secret_file)],
                   env=lab.ansible_env(), check=True, capture_output=True, timeout=60)
    assert lab.password not in secret_file.read_text()
    vaulted = lab.workdir / "vaulted.mke.yml"
    vaulted.write_text(yaml.safe_dump(dict(yaml.safe_load(mke.read_text()), cache=False,
                                           mke_password_file=str(secret_file))))
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(vaulted), "--list"],
                         env=lab.ansible_env(ANSIBLE_VAULT_PASSWORD_FILE=str(vault_pass)), capture_output=True,
                         text=True, timeout=120, cwd=str(lab.workdir))
    assert out.returncode == 0 and groups_of(plain(json.loads(out.stdout)))["msr"] == workers[:3], out.stderr
    assert lab.password not in out.stdout + out.stderr

    graph = inventory(lab, mke, "--graph")
    assert "@msr:" in graph and "@msr_replicas:" in graph and "|--worker3" in graph

    cached = list((lab.workdir / "inventory-cache").iterdir())
    assert cached and all(lab.password not in p.read_text() for p in cached)

    # The cache answers until flushed: labels set since show only after --flush-cache.
    label(lab, "worker4", "worker5")
    assert groups_of(listed(lab, mke))["msr"] == workers[:3]
    assert groups_of(listed(lab, mke, "--flush-cache"))["msr"] == workers

    # The scheduled reconcile sees the labels as the desired replicas, reports, then joins them.
    both = ("-i", str(lbs))
    secret = {"MSR_MKE_PASSWORD": lab.password}
    code, out, report = reconcile(lab, *both, inventory=mke, env=secret)
    assert code == 1 and report["status"] == "drift", out
    assert sorted(d["node"] for d in report["drift"] if d["kind"] == "missing_replica") == ["worker4", "worker5"]
    code, out, report = reconcile(lab, *both, "--remediate", "-e", "msr_backup_before_change=false",
                                  inventory=mke, timeout=400, env=secret)
    assert code == 0 and report["status"] == "converged", out
    assert sorted(r["node"] for r in lab.replicas().values()) == workers
    listing = listed(lab, mke, "--flush-cache")
    assert groups_of(listing)["msr_replicas"] == workers


def test_bad_settings_are_named_and_nothing_is_read(lab):
    lab.fresh(replicas=3)
    path = lab.workdir / "bad.mke.yml"
    for config, message in (
            ({"mke_url": "http://" + lab.vars["msr_mke_url"].split("://")[1]}, "mke_url must be an https:// URL"),
            ({"mke_url": lab.vars["msr_mke_url"]}, "give mke_ca (the CA, PEM text or a file) or mke_insecure_tls"),
    ):
        path.write_text(yaml.safe_dump(dict({"plugin": "msr.replicas.mke", "msr_insecure_tls": True}, **config)))
        out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
                             env=lab.ansible_env(MSR_MKE_PASSWORD=lab.password), capture_output=True, text=True,
                             timeout=60, cwd=str(lab.workdir))
        assert message in out.stderr, out.stderr
        assert lab.password not in out.stdout + out.stderr
