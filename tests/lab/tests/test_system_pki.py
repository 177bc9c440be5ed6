"""System tests: MSR's own PKI and `install` as the real one, on a lab without MSR (`--replicas 0`).

As automation would: read the inventory, install with the organisation's CA, certificate and key
(msr_dtr_*) and msr_external_url through the real docker CLI, join, check each replica with curl and the
right CA (and that the MKE CA fails), then uninstall as documented and install again with a generated CA
and NFS. The tests share one lab and run in file order.
"""
from __future__ import annotations

import ssl
import subprocess

import pytest
import yaml

from msr_lab.common.pki import certificate_hosts
from system_lab import cli, lab_fixture, replica_id_from

pytestmark = pytest.mark.timeout(120)

lab = lab_fixture("--workers", "3", "--replicas", "0")


def inventory(lab, tmp_path) -> dict:
    out = tmp_path / "inventory.yml"
    cli("inventory", "-o", str(out))
    return yaml.safe_load(out.read_text())["all"]["vars"]


def curl(lab, url: str, ca_text: str, tmp_path) -> subprocess.CompletedProcess:
    ca = tmp_path / "ca.pem"
    ca.write_text(ca_text)
    return subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(ca), url], capture_output=True,
                          text=True, timeout=20, env=lab.docker_env())


def test_mke_certificate_names_only_the_managers(lab):
    for m in lab.names("manager"):
        pem = ssl.get_server_certificate((lab.addr(m), 443))
        assert certificate_hosts(pem) == (set(lab.names("manager")), {lab.addr(x) for x in lab.names("manager")})


def test_inventory_before_install(lab, tmp_path):
    v = inventory(lab, tmp_path)
    assert v["msr_ca"] == ""                                  # no MSR yet: no MSR CA
    assert v["msr_external_url"] == f"https://{lab.addr('lb1')}"
    hosts = lab.names("worker") + lab.names("lb")
    assert certificate_hosts(v["msr_dtr_cert"]) == (set(hosts), {lab.addr(h) for h in hosts})
    assert v["msr_dtr_ca"] not in (v["msr_mke_ca"], v["msr_dtr_cert"])


def allow_admin_scheduling(lab):
    """What an admin does on a fresh MKE before installing MSR (msr2.md §3.3): enable admin scheduling
    through config-toml."""
    token = lab.mke_token()
    _, text, _ = lab.mke("/api/ucp/config-toml", token=token)
    assert "enable_admin_ucp_scheduling = false" in text          # a fresh MKE ships with it off
    status, body, _ = lab.mke("/api/ucp/config-toml", method="PUT", token=token, content_type="application/toml",
                              body=text.replace("enable_admin_ucp_scheduling = false",
                                                "enable_admin_ucp_scheduling = true").encode())
    assert status == 200, body


def test_install_from_automation_with_the_organisation_material(lab, tmp_path):
    v = inventory(lab, tmp_path)
    allow_admin_scheduling(lab)
    r, _ = lab.bootstrap("install", "--ucp-node=worker1", f"--dtr-external-url={v['msr_external_url']}",
                         f"--dtr-ca={v['msr_dtr_ca']}", f"--dtr-cert={v['msr_dtr_cert']}",
                         f"--dtr-key={v['msr_dtr_key']}")
    assert r.returncode == 0, r.stderr
    for node in ("worker2", "worker3"):                      # joins serve the same given certificate
        joined, _ = lab.join(node)
        assert joined.returncode == 0, joined.stderr
    assert lab.msr_ca(refresh=True) == v["msr_dtr_ca"]
    assert inventory(lab, tmp_path)["msr_ca"] == v["msr_dtr_ca"]   # the current cluster's CA
    for node in ("worker1", "worker2", "worker3"):
        url = f"https://{lab.addr(node)}"
        ok = curl(lab, f"{url}/_ping", v["msr_dtr_ca"], tmp_path)
        assert ok.returncode == 0 and '"Healthy": true' in ok.stdout, ok.stderr
        assert curl(lab, f"{url}/ca", v["msr_dtr_ca"], tmp_path).stdout == v["msr_dtr_ca"]
        bad = curl(lab, f"{url}/_ping", v["msr_mke_ca"], tmp_path)
        assert bad.returncode == 60, bad                        # curl: peer certificate cannot be authenticated
    status, settings, _ = lab.msr("worker2", "/api/v0/meta/settings", auth="admin")
    assert status == 200 and settings["dtrHost"] == lab.addr("lb1")
    assert "given with --dtr-ca" in cli("status").stdout


def test_uninstall_then_install_again_with_its_own_ca_and_nfs(lab, tmp_path):
    for node in ("worker3", "worker2"):
        r, _ = lab.remove(lab.replica_on(node))
        assert r.returncode == 0, r.stderr
    last = lab.replica_on("worker1")
    r, _ = lab.bootstrap("destroy", f"--replica-id={last}")
    assert r.returncode == 0, r.stderr
    assert lab.replicas() == {} and lab.status()["cluster"]["installed"] is False
    assert inventory(lab, tmp_path)["msr_ca"] == ""
    org_ca = inventory(lab, tmp_path)["msr_dtr_ca"]
    # install again: a generated CA and NFS storage, followed by a join
    r, _ = lab.bootstrap("install", "--ucp-node=worker2", "--nfs-storage-url=nfs://nfs.msr-lab.invalid/exports/msr")
    assert r.returncode == 0, r.stderr
    rid = replica_id_from(r.stderr)
    r, _ = lab.join("worker3", rid)
    assert r.returncode == 0, r.stderr
    ca = inventory(lab, tmp_path)["msr_ca"]
    assert ca and ca == lab.msr_ca(refresh=True) and ca != org_ca
    for node in ("worker2", "worker3"):
        assert curl(lab, f"https://{lab.addr(node)}/_ping", ca, tmp_path).returncode == 0
        assert curl(lab, f"https://{lab.addr(node)}/_ping", org_ca, tmp_path).returncode == 60
        vols = lab.ssh(node, "docker volume ls -q").stdout.split()
        rid_here = lab.replica_on(node)
        assert f"dtr-nfs-registry-{rid_here}" in vols and f"dtr-registry-{rid_here}" not in vols
    status, settings, _ = lab.msr("worker3", "/api/v0/meta/settings", auth="admin")
    assert status == 200 and settings["nfsHost"] == "nfs://nfs.msr-lab.invalid/exports/msr"
    assert settings["dtrHost"] == lab.addr("worker3")         # no --dtr-external-url this time
