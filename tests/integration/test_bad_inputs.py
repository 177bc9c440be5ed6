# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad credentials and TLS trust: clear failures that change nothing; mke_insecure_tls works but warns."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from msrint import replica_task

pytestmark = pytest.mark.timeout(120)

WRONG_PASSWORD = "not-the-lab-password-7f3a"


def other_ca_pem():
    """A self-signed CA that did not sign the lab's certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "not-the-lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def snapshot(lab):
    """What must not change: cluster membership/health and every container on the involved nodes."""
    return ({rid: (r["node"], r["state"], r["health"]) for rid, r in lab.replicas().items()},
            {n: lab.containers(n) for n in ("manager1", "worker3")})


def join_and_info(**overrides):
    join = replica_task("join worker3", node="worker3", **overrides)
    join["ignore_errors"] = True
    info = {"name": "read the cluster", "msr.replicas.cluster_info": dict(overrides), "ignore_errors": True}
    return [join, info]


def test_wrong_password_fails_clearly_and_changes_nothing(lab):
    lab.fresh(replicas=1)
    before = snapshot(lab)
    # Through a variable, as a real password would come (ansible-core 2.19 quotes the task's source
    # lines when a task fails, so a literal in the playbook would be printed by Ansible itself).
    run = lab.run(lab.play(join_and_info(mke_password="{{ wrong_password }}")),
                  extra_vars={"wrong_password": WRONG_PASSWORD}, touches=False)
    assert run.rc == 0, run.output     # ignore_errors: the play goes on to the second task
    expected = "MKE rejected the credentials for user 'admin' (HTTP 401)"
    for name in ("join worker3", "read the cluster"):
        rec = run.task(name)
        assert rec["status"] == "failed", rec
        assert rec["result"]["msg"] == expected
        assert rec["result"].get("changed") in (False, None)
    join = run.result("join worker3")
    assert "cmd" not in join and "phases" not in join    # nothing was even planned
    assert WRONG_PASSWORD not in run.stdout + run.stderr
    assert snapshot(lab) == before
    assert lab.replica_on("worker3") is None


def test_untrusted_ca_fails_clearly_and_changes_nothing(lab):
    lab.fresh(replicas=1)
    before = snapshot(lab)
    run = lab.run(lab.play(join_and_info(mke_ca="{{ other_ca }}")), extra_vars={"other_ca": other_ca_pem()},
                  touches=False)
    assert run.rc == 0, run.output
    url = lab.vars["msr_mke_url"]
    for name in ("join worker3", "read the cluster"):
        rec = run.task(name)
        assert rec["status"] == "failed", rec
        assert rec["result"]["msg"] == (
            "TLS verification of %s failed: unable to get local issuer certificate. Give the MKE CA in mke_ca "
            "(it is served at %s/ca) or set mke_insecure_tls: true" % (url, url))
    assert snapshot(lab) == before
    assert lab.replica_on("worker3") is None


def test_the_mke_ca_does_not_verify_msr(lab):
    """MSR replicas have certificates of their own CA: msr_ca is required, and the MKE CA in its place fails
    the TLS check with a hint, before anything changes."""
    lab.fresh(replicas=1)
    before = snapshot(lab)
    run = lab.run(lab.play(join_and_info(msr_ca=None)), touches=False)
    assert run.rc == 0, run.output
    for name in ("join worker3", "read the cluster"):
        msg = run.result(name)["msg"]
        assert msg.startswith("one of msr_ca (MSR's own CA certificate, PEM text; every replica serves it at "
                              "https://<replica>/ca) or msr_insecure_tls=true is required"), msg
    run = lab.run(lab.play(join_and_info(msr_ca="{{ msr_mke_ca }}")), touches=False)
    assert run.rc == 0, run.output
    url = "https://%s" % lab.hosts["worker1"]
    join = run.task("join worker3")
    assert join["status"] == "failed" and "refusing to join" in join["result"]["msg"], join
    # cluster_info reports what it could not verify instead of failing
    info = run.result("read the cluster")
    texts = " ".join(i["message"] for i in info["issues"])
    assert ("TLS verification of %s failed" % url) in texts and "Give MSR's own CA in msr_ca" in texts, texts
    assert snapshot(lab) == before
    assert lab.replica_on("worker3") is None


def test_mke_insecure_tls_works_and_warns(lab):
    lab.fresh(replicas=1)
    seeded = lab.replica_on("worker1")["id"]
    tasks = [
        {"name": "read the cluster", "msr.replicas.cluster_info": {"mke_ca": None, "mke_insecure_tls": True}},
        replica_task("plan a join", node="worker3", mke_ca=None, mke_insecure_tls=True),
    ]
    run = lab.run(lab.play(tasks), check=True)
    assert run.rc == 0, run.output
    info = run.result("read the cluster")
    assert [r["id"] for r in info["replicas"]] == [seeded] and info["replicas"][0]["healthy"] is True
    plan = run.result("plan a join")
    assert plan["changed"] is True and plan["action"] == "join"
    # The bootstrapper gets --ucp-insecure-tls and no UCP_CA.
    assert "--ucp-insecure-tls" in plan["cmd"] and "UCP_CA" not in plan["cmd"]
    for name in ("read the cluster", "plan a join"):
        warnings = run.result(name).get("warnings") or []
        assert any("mke_insecure_tls is true: the MKE certificate is NOT verified" in w for w in warnings), warnings
    assert "[WARNING]: mke_insecure_tls is true" in run.stderr + run.stdout

    # And a real join works without the CA.
    run = lab.run(lab.play([replica_task("join insecurely", node="worker3", mke_ca=None,
                                         mke_insecure_tls=True)]))
    assert run.rc == 0, run.output
    r = run.result("join insecurely")
    assert r["changed"] is True and r["healthy"] is True
    assert "--ucp-insecure-tls" in r["cmd"] and "UCP_CA" not in r["cmd"]
    assert lab.replicas()[r["replica_id"]]["node"] == "worker3"
