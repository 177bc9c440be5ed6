"""MSR's own TLS (msr2.md §2.7): the cluster's CA, each replica's certificate, GET /ca, and the CA,
certificate and key given to install, over real TLS on each node's own address."""
from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from install_env import ADDRS, background_loop, pki_env, tls_get
from logrus import fatal_lines

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from msr_lab.common.httpbase import Request
from msr_lab.common.pki import Authority, cert_pem, certificate_hosts, key_pem
from msr_lab.common.pkicheck import BundleError, check_bundle

WORKER_HOSTS = [f"worker{i}" for i in range(1, 5)] + [ADDRS[f"worker{i}"] for i in range(1, 5)] + ["lb1", ADDRS["lb1"]]


@pytest.fixture(scope="module")
def loop():
    with background_loop() as lp:
        yield lp


@pytest.fixture
def penv(loop, tmp_path):
    with pki_env(loop, tmp_path) as env:
        yield env


def organisation(hosts=WORKER_HOSTS):
    """An organisation's CA and a certificate for the workers and the LB: (CA PEM, cert PEM, key PEM)."""
    ca = Authority.new("test organisation CA")
    cert, key = ca.issue(hosts)
    return ca.cert_pem, cert, key


def intermediate(root: Authority) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test intermediate CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(root.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root.key, hashes.SHA256()))
    return Authority(cert, key)


def refused(code, err) -> str:
    lines = fatal_lines(err)
    assert code == 1 and len(lines) == 1, err
    return lines[0]


def served_cert(env, rid) -> str:
    cluster = env.lab.cluster
    return cluster.tls.certificate(rid, cluster.replica_hosts(rid))[0]


# ---------------------------------------------------------------- the CA that install generates

def test_install_makes_a_cluster_ca_and_a_certificate_per_replica(penv):
    code, _, err = penv.install("--dtr-external-url", "https://msr.lab.example:4443")
    assert code == 0, err
    code, _, err = penv.join("worker2", "0000000000a2")
    assert code == 0, err
    cluster = penv.lab.cluster
    ca = cluster.tls.ca_pem
    assert cluster.tls.generated and ca != penv.ca and ca != penv.lab.config["ca_pem"]
    # each certificate names its own node (hostname and address) and the external host, nothing else
    assert certificate_hosts(served_cert(penv, "0000000000a1")) == ({"worker1", "msr.lab.example"}, {ADDRS["worker1"]})
    assert certificate_hosts(served_cert(penv, "0000000000a2")) == ({"worker2", "msr.lab.example"}, {ADDRS["worker2"]})
    for rid in ("0000000000a1", "0000000000a2"):
        check_bundle(ca, *cluster.tls.certificate(rid, cluster.replica_hosts(rid)))   # issued by the cluster CA
    a1, a2 = penv.serve("0000000000a1"), penv.serve("0000000000a2")
    for (addr, port), other in ((a1, ADDRS["worker2"]), (a2, ADDRS["worker1"])):
        assert tls_get(addr, port, ca)[0] == 200
        assert tls_get(addr, port, ca, hostname="msr.lab.example")[0] == 200
        assert tls_get(addr, port, ca, "/ca") == (200, ca)             # no auth, the same CA on every replica
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            tls_get(addr, port, ca, hostname=other)                  # not valid for another node's address
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            tls_get(addr, port, ca, hostname="worker3")
        for untrusted in (penv.ca, None):                            # the MKE CA verifies no replica
            with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
                tls_get(addr, port, untrusted)


def test_ca_is_https_only(penv):
    penv.install()
    app = penv.lab.cluster.app_for("0000000000a1")
    resp = asyncio.run(app(Request("GET", "/ca", {"host": ADDRS["worker1"]}, b"", "127.0.0.1:5555", False)))
    assert resp.status == 301 and dict(resp.headers)["Location"] == f"https://{ADDRS['worker1']}/ca"
    resp = asyncio.run(app(Request("GET", "/ca", {}, b"", "127.0.0.1:5555", True)))
    assert resp.status == 200 and resp.body.decode() == penv.lab.cluster.tls.ca_pem


def test_seeded_cluster_has_its_own_ca_and_names_the_lb(penv):
    rep = penv.lab.cluster.seed_install("worker1", "2.9.16", "0000000000b1")
    assert penv.lab.cluster.tls.generated
    assert certificate_hosts(served_cert(penv, rep.id)) == ({"worker1"}, {ADDRS["worker1"], ADDRS["lb1"]})
    addr, port = penv.serve(rep.id)
    assert tls_get(addr, port, penv.lab.cluster.tls.ca_pem, hostname=ADDRS["lb1"])[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(addr, port, penv.ca)


# ---------------------------------------------------------------- --dtr-ca, --dtr-cert, --dtr-key

def test_given_ca_cert_and_key_serve_every_replica(penv):
    ca, cert, key = organisation()
    code, _, err = penv.install("--dtr-ca", ca, "--dtr-cert", cert, "--dtr-key", key)
    assert code == 0, err
    code, _, err = penv.join("worker2", "0000000000a2")        # a later join uses them too
    assert code == 0, err
    assert not penv.lab.cluster.tls.generated and penv.lab.cluster.status()["msr_ca"] == ca
    for rid, node in (("0000000000a1", "worker1"), ("0000000000a2", "worker2")):
        addr, port = penv.serve(rid)
        assert tls_get(addr, port, ca) == (200, '{"Error": "", "Healthy": true}')
        assert tls_get(addr, port, ca, hostname=node)[0] == 200
        assert tls_get(addr, port, ca, "/ca") == (200, ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_get(addr, port, penv.ca)


@pytest.mark.parametrize("image,names,generated", [
    ("mirantis/dtr:2.9.16", ("MSR_CA", "MSR_CERT", "MSR_KEY"), False),
    ("mirantis/dtr:2.8.5", ("DTR_CA", "DTR_CERT", "DTR_KEY"), False),
    ("mirantis/dtr:2.9.16", ("DTR_CA", "DTR_CERT", "DTR_KEY"), True),    # 2.9 reads MSR_*: ignored
])
def test_given_material_from_env_vars(penv, image, names, generated):
    material = organisation()
    env = {"UCP_PASSWORD": "pw", **dict(zip(names, material))}
    code, _, err = penv.install(env=env, image=image)
    assert code == 0, err
    assert penv.lab.cluster.tls.generated is generated
    assert (penv.lab.cluster.tls.ca_pem == material[0]) is not generated


def test_intermediate_appended_to_the_certificate(penv):
    root = Authority.new("test root CA", path_length=1)
    inter = intermediate(root)
    leaf, key = inter.issue(WORKER_HOSTS)
    code, _, err = penv.install("--dtr-ca", root.cert_pem, "--dtr-cert", leaf, "--dtr-key", key)
    assert "x509: certificate signed by unknown authority" in refused(code, err)
    code, _, err = penv.install("--dtr-ca", root.cert_pem, "--dtr-cert", leaf + inter.cert_pem, "--dtr-key", key)
    assert code == 0, err
    addr, port = penv.serve("0000000000a1")
    assert tls_get(addr, port, root.cert_pem)[0] == 200      # the replica sends the chain


def test_check_bundle_follows_path_length_constraints():
    root = Authority.new("test root CA", path_length=0)       # may sign no intermediate CA
    inter = intermediate(root)
    leaf, key = inter.issue(WORKER_HOSTS)
    with pytest.raises(BundleError, match="unknown authority"):
        check_bundle(root.cert_pem, leaf + inter.cert_pem, key)
    check_bundle(inter.cert_pem, leaf, key)                    # the intermediate itself as the CA


def _bad_material():
    ca, cert, key = organisation()
    other_ca, other_cert, other_key = organisation()
    garbled = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    return {
        "key of another certificate": ((ca, cert, other_key), "tls: private key does not match public key"),
        "signed by another CA": ((other_ca, cert, key), "x509: certificate signed by unknown authority"),
        "CA not PEM": (("not a certificate", cert, key), "failed to find any PEM data in CA certificate input"),
        "certificate not PEM": ((ca, "junk", key), "failed to find any PEM data in certificate input"),
        "key not PEM": ((ca, cert, "junk"), "failed to find any PEM data in key input"),
        "garbled certificate": ((ca, garbled, key), "x509: malformed certificate"),
        "no CA": (("", cert, key), "must be given together (missing: --dtr-ca)"),
        "no key": ((ca, cert, ""), "must be given together (missing: --dtr-key)"),
    }


@pytest.mark.parametrize("case", list(_bad_material()))
def test_bad_material_is_refused_and_nothing_installed(penv, case):
    (ca, cert, key), text = _bad_material()[case]
    flags = [f for name, value in (("--dtr-ca", ca), ("--dtr-cert", cert), ("--dtr-key", key)) if value
             for f in (name, value)]
    code, _, err = penv.install(*flags)
    assert text in refused(code, err), case
    assert not penv.lab.cluster.installed and penv.lab.cluster.replicas == {}
    assert not any(n.startswith("dtr-") for n in penv.objects()), penv.objects()


def test_check_bundle_refuses_an_expired_certificate():
    ca = Authority.new("test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=10)).not_valid_after(now - datetime.timedelta(days=1))
            .sign(ca.key, hashes.SHA256()))
    with pytest.raises(BundleError, match="expired") as exc:
        check_bundle(ca.cert_pem, cert_pem(cert), key_pem(key))
    assert exc.value.part == "date"
