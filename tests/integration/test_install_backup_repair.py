# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The install, backup and emergency_repair playbooks on the lab: the install on a fresh MKE (--replicas 0)
with our own CA and shared storage, the refusals before any change, the backups on the controller, and an
emergency repair after a quorum loss, asserted on the cluster (msr-lab status) and the LB pools."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import tarfile
import time
import urllib.request

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pools import runtime_names, wait_up

pytestmark = pytest.mark.timeout(400)

DESIRED = ["worker1", "worker2", "worker3"]
FRESH = ("--admin-scheduling", "on")
STORAGE = {"driver": "s3", "options": {"bucket": "installed", "region": "eu-west-1"},
           "secret_options": {"accesskey": "AKIAINSTALL", "secretkey": "s3-Secret-of-the-install"}}
NAME = re.compile(r"^dtr-metadata-2\.9\.16-backup-\d{8}-\d{2}_\d{2}_\d{2}\.tar$")


def recap_changed(run):
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("localhost")][-1]
    return int(line.split("changed=")[1].split()[0])


def org_pki(hosts):
    """A CA of our own and a certificate for every lab host (names and addresses), as PEM texts."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h3 test organisation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for n in hosts] + [x509.IPAddress(ipaddress.ip_address(a)) for a in hosts.values()]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "msr")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"msr_dtr_ca": ca.public_bytes(pem).decode(), "msr_dtr_cert": cert.public_bytes(pem).decode(),
            "msr_dtr_key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()}


def inventory(lab, name, msr=DESIRED, **all_vars):
    """The lab's inventory with ``msr`` as the msr group (empty on a fresh lab) and these variables."""
    inv = yaml.safe_load(lab.inventory.read_text())
    workers = inv["all"]["children"]["mke_workers"]["hosts"]
    inv["all"]["children"]["msr"]["hosts"] = {n: workers[n] for n in msr}
    inv["all"]["vars"].update(all_vars)
    path = lab.workdir / ("inventory-%s.yml" % name)
    path.write_text(yaml.safe_dump(inv))
    return path


def served_cert(address):
    """The certificate a replica serves, verified against nothing (we compare it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((address, 443), timeout=5) as sock:
        with ctx.wrap_socket(sock) as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def test_install_check_mode_refusals_then_install_joins_and_is_idempotent(lab):
    lab.fresh(replicas=0, options=FRESH)
    pki = org_pki(lab.hosts)
    inv = inventory(lab, "install", msr_ca="", **pki)
    backups = lab.workdir / "install-backups"
    ev = {"msr_backup_dir": str(backups), "lb_pool_up_timeout": 20}

    # bad variables first, every one named at once
    bad = dict(ev, msr_storage={"nfs_url": "smb://x/y"}, msr_external_url="http://lb", msr_dtr_key="")
    run = lab.run("msr.replicas.install", extra_vars=bad, inventory=inv)
    assert run.rc != 0, run.output
    for text in ("msr_storage.nfs_url", "msr_external_url", "msr_dtr_ca, msr_dtr_cert and msr_dtr_key go together"):
        assert text in run.output, run.output
    # MKE does not let admins schedule on MSR nodes: refused, saying how to allow it
    lab.fault("admin-scheduling", "off")
    run = lab.run("msr.replicas.install", extra_vars=ev, inventory=inv)
    assert run.rc != 0 and "enable_admin_ucp_scheduling = true" in run.output, run.output
    lab.fault("admin-scheduling", "on")
    # three hosts on the local filesystem: refused before anything (a real run; check mode decides the same
    # from the same task)
    run = lab.run("msr.replicas.install", extra_vars=ev, inventory=inv)
    assert run.rc != 0 and "image storage is the local filesystem" in run.output, run.output
    assert "Set msr_storage" in run.output
    assert lab.replicas() == {} and not backups.exists()

    ev["msr_storage"] = STORAGE
    run = lab.run("msr.replicas.install", check=True, extra_vars=ev, inventory=inv)
    assert run.rc == 0, run.output
    assert "would install worker1, set the storage driver s3, then join worker2, worker3" in run.stdout
    assert recap_changed(run) > 0
    assert lab.replicas() == {} and not backups.exists() and runtime_names("lb1") == []

    started = time.time()
    run = lab.run("msr.replicas.install", extra_vars=ev, inventory=inv, timeout=300, verbosity=2)
    print("install of 3 replicas: %.1f s" % (time.time() - started))
    assert run.rc == 0, run.output
    status = lab.status()["cluster"]
    assert sorted(r["node"] for r in status["replicas"]) == DESIRED
    assert all(r["health"] == "OK" for r in status["replicas"])
    assert status["storage"] == "s3" and status["ca_subject"] == "given with --dtr-ca"
    # MSR serves our CA at /ca and our certificate on 443, which our CA verifies
    address = lab.hosts["worker2"]
    assert served_cert(address).strip() == pki["msr_dtr_cert"].strip()
    ctx = ssl.create_default_context(cadata=pki["msr_dtr_ca"])
    with urllib.request.urlopen("https://%s/ca" % address, context=ctx, timeout=5) as resp:
        assert resp.read().decode().strip() == pki["msr_dtr_ca"].strip()
    # the storage as MSR stores it, read back through the module
    stored = [r for r in run.records if r["task"].endswith("Set the shared image storage")][0]["result"]
    assert stored["driver"] == "s3" and stored["storage"]["s3"]["bucket"] == "installed"
    # the secrets never show, not even at -vv
    for secret in ("s3-Secret-of-the-install", "PRIVATE KEY", pki["msr_dtr_key"].splitlines()[1], lab.password):
        assert secret not in run.stdout and secret not in run.stderr
    # a backup before each of the two joins; every replica in the pools
    assert len([p for p in backups.iterdir() if NAME.match(p.name)]) == 2
    for lb in ("lb1", "lb2"):
        wait_up(lb, DESIRED)

    run = lab.run("msr.replicas.install", extra_vars=ev, inventory=inv)
    assert run.rc == 0 and recap_changed(run) == 0, run.output


def test_backup_playbook_names_keeps_and_protects(lab):
    lab.fresh(replicas=1)
    backups = lab.workdir / "backup-playbook"
    ev = {"msr_backup_dir": str(backups), "msr_backup_keep": 1}
    run = lab.run("msr.replicas.backup", extra_vars={"msr_backup_keep": 0}, touches=False)
    assert run.rc != 0 and "msr_backup_keep" in run.output
    run = lab.run("msr.replicas.backup", check=True, extra_vars=ev, touches=False)
    assert run.rc == 0 and not backups.exists(), run.output
    made = []
    for _ in range(2):
        run = lab.run("msr.replicas.backup", extra_vars=ev, touches=False)
        assert run.rc == 0, run.output
        shown = [r for r in run.records if r["task"].endswith("Show the backup")][0]["result"]["msg"]
        path = shown.split()[3].rstrip(":")
        made.append(path)
        assert "sha256" in shown and "bytes" in shown
        time.sleep(1.1)     # the name has a one-second resolution
    files = sorted(p.name for p in backups.iterdir())
    assert files == sorted(p.rsplit("/", 1)[1] for p in made[1:]), (files, made)
    for name in files:
        assert NAME.match(name)
        path = backups / name
        assert path.stat().st_mode & 0o777 == 0o600
        with tarfile.open(path) as tar:
            assert tar.getnames()


def test_emergency_repair_after_quorum_loss(lab):
    lab.fresh(replicas=3)
    backups = lab.workdir / "repair-backups"
    ev = {"msr_backup_dir": str(backups), "lb_pool_up_timeout": 20}
    lab.fault("quorum-loss")
    before = lab.replicas()

    run = lab.run("msr.replicas.emergency_repair", extra_vars=dict(ev, msr_emergency_repair=True), touches=False)
    assert run.rc != 0 and "(missing: msr_emergency_repair_confirmed)" in run.output, run.output
    assert "See docs/docsite/rst/playbook_emergency_repair.rst." in run.output, run.output   # the runbook page
    assert lab.replicas() == before

    ev.update(msr_emergency_repair=True, msr_emergency_repair_confirmed=True)
    run = lab.run("msr.replicas.emergency_repair", check=True, extra_vars=ev)
    assert run.rc == 0, run.output
    assert lab.replicas() == before
    named = [r for r in run.records if r["task"].endswith("Name the replica that is kept")][0]["result"]["msg"]
    kept = named.split()[2]
    survivors = [rid for rid, r in before.items() if r["state"] == "running"]
    assert survivors == [kept], (named, before)

    run = lab.run("msr.replicas.emergency_repair", extra_vars=ev)
    assert run.rc == 0, run.output
    assert "ansible-playbook msr.replicas.scale_up" in run.stdout
    after = lab.replicas()
    assert list(after) == [kept] and after[kept]["health"] == "OK"
    for lb in ("lb1", "lb2"):
        wait_up(lb, [before[kept]["node"]])

    run = lab.run("msr.replicas.emergency_repair", extra_vars=ev)
    assert run.rc == 0 and recap_changed(run) == 0 and "nothing to repair" in run.stdout, run.output
