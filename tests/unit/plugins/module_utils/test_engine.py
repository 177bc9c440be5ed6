# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Docker engine over TCP: the real docker SDK against a TLS listener on 127.0.0.1 (a CA, an engine
certificate and a client certificate made here), and the option checks that keep plain TCP out."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine

ENGINE_NAME = "engine.test"   # the only name in the engine certificate: 127.0.0.1 is not in it


def _pki(tmp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1)))

    def ca(cn):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (builder(cn, name(cn), key)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return key, cert

    def leaf(ca_key, ca_cert, cn, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (builder(cn, ca_cert.subject, key)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    def write(fname, data):
        path = os.path.join(tmp, fname)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def pem(cert):
        return cert.public_bytes(serialization.Encoding.PEM)

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key, ca_cert = ca("engine CA")
    _other_key, other_ca = ca("another CA")
    srv_key, srv_cert = leaf(ca_key, ca_cert, ENGINE_NAME, ExtendedKeyUsageOID.SERVER_AUTH, [x509.DNSName(ENGINE_NAME)])
    ip_key, ip_cert = leaf(ca_key, ca_cert, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                           [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli_key, cli_cert = leaf(ca_key, ca_cert, "msr-replicas", ExtendedKeyUsageOID.CLIENT_AUTH)
    return {"ca": write("ca.pem", pem(ca_cert)), "other_ca": write("other-ca.pem", pem(other_ca)),
            "server": write("server.pem", pem(srv_cert) + pem_key(srv_key)),
            "server_ip": write("server-ip.pem", pem(ip_cert) + pem_key(ip_key)),
            "client_cert": write("client.pem", pem(cli_cert)), "client_key": write("client-key.pem", pem_key(cli_key))}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return _pki(str(tmp_path_factory.mktemp("engine-pki")))


class FakeEngine:
    """Enough of the Engine API for the SDK to connect (GET /version) and ping, over TLS only."""

    def __init__(self, pki, client_ca=False, cert="server"):
        self.requests = []
        self.connections = 0
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                engine.requests.append(self.path)
                if self.path == "/version":
                    body = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.24", "Version": "23.0.9"}).encode()
                elif self.path.endswith("/_ping"):
                    body = b"OK"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def get_request(self):
                engine.connections += 1
                return ThreadingHTTPServer.get_request(self)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki[cert])
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(pki["ca"])
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.host = "tcp://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake_engine(pki, monkeypatch):
    # A CA bundle in the environment must not replace the engine's CA (requests would let it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    monkeypatch.setenv("CURL_CA_BUNDLE", pki["other_ca"])
    started = []

    def start(**kw):
        e = FakeEngine(pki, **kw)
        started.append(e)
        return e
    yield start
    for e in started:
        e.close()


def connect(e, **tls):
    return boot.Bootstrapper(e.host, timeout=5, tls=tls).client()


def test_sdk_connects_with_the_right_ca_and_hostname(fake_engine, pki):
    e = fake_engine()
    assert connect(e, ca_cert=pki["ca"], hostname=ENGINE_NAME).ping() is True
    assert e.requests == ["/version", "/v1.41/_ping"]


def test_certificate_for_the_address_needs_no_hostname(fake_engine, pki):
    e = fake_engine(cert="server_ip")
    assert connect(e, ca_cert=pki["ca"]).ping() is True


def test_wrong_ca_fails(fake_engine, pki):
    e = fake_engine()
    with pytest.raises(boot.BootstrapperError) as exc:
        connect(e, ca_cert=pki["other_ca"], hostname=ENGINE_NAME)
    assert str(exc.value).startswith("TLS to the Docker engine at %s failed: the engine certificate is not signed by "
                                     "the CA in docker_tls_ca_cert. (" % e.host)
    assert exc.value.started is False
    assert e.requests == []


def test_hostname_is_checked(fake_engine, pki):
    e = fake_engine()
    with pytest.raises(boot.BootstrapperError, match="does not name the host of docker_host; set docker_tls_hostname"):
        connect(e, ca_cert=pki["ca"])
    with pytest.raises(boot.BootstrapperError, match="does not carry docker_tls_hostname"):
        connect(e, ca_cert=pki["ca"], hostname="other.test")
    assert e.requests == []


def test_client_certificate(fake_engine, pki):
    e = fake_engine(client_ca=True)
    with pytest.raises(boot.BootstrapperError, match=r"the engine (asks for a client certificate|ended the TLS connection; it may want a client certificate)"):
        connect(e, ca_cert=pki["ca"], hostname=ENGINE_NAME)
    c = connect(e, ca_cert=pki["ca"], hostname=ENGINE_NAME, client_cert=pki["client_cert"], client_key=pki["client_key"])
    assert c.ping() is True


def test_verify_false_connects_without_ca(fake_engine):
    e = fake_engine()
    assert connect(e, verify=False).ping() is True


def test_no_plain_tcp(fake_engine):
    e = fake_engine()
    with pytest.raises(boot.BootstrapperError) as exc:
        boot.Bootstrapper(e.host, timeout=5).client()
    assert str(exc.value) == engine.plain_tcp_refusal(e.host)
    assert "Plain TCP is never used" in str(exc.value)
    assert e.connections == 0   # refused before any connection
    # And the listener really is TLS-only: a plain-TCP client gets nowhere.
    with pytest.raises(docker.errors.DockerException):
        docker.DockerClient(base_url=e.host, timeout=5, version="auto")
    assert e.requests == []


def test_verify_without_ca_refused():
    with pytest.raises(boot.BootstrapperError, match="needs the engine's CA"):
        boot.Bootstrapper("tcp://127.0.0.1:1", tls={"verify": True}).client()


# -- option checks --------------------------------------------------------------------------------

class Module:
    def __init__(self, **params):
        self.params = dict((k, v.get("default")) for k, v in engine.docker_argument_spec().items())
        self.params.update(params)
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, msg, **kw):
        raise AssertionError(msg)


def check(**params):
    m = Module(**params)
    try:
        engine.validate_docker_params(m)
    except AssertionError as exc:
        return str(exc), m.warnings
    return None, m.warnings


def test_spec_defaults_verify_on():
    spec = engine.docker_argument_spec()
    assert spec["docker_tls_verify"] == {"type": "bool", "default": True}
    assert spec["docker_host"]["default"] == "unix:///var/run/docker.sock"
    assert all(spec[k]["type"] == "path" for k in ("docker_tls_ca_cert", "docker_tls_client_cert", "docker_tls_client_key"))


def test_tcp_without_tls_refused():
    msg, _w = check(docker_host="tcp://10.0.0.5:2376")
    assert msg == engine.plain_tcp_refusal("tcp://10.0.0.5:2376")
    assert msg.startswith("docker_host tcp://10.0.0.5:2376 is a TCP address, which needs TLS: give the engine's CA "
                          "in docker_tls_ca_cert")


def test_tls_files_must_exist(pki, tmp_path):
    missing = str(tmp_path / "nope.pem")
    assert check(docker_host="tcp://h:2376", docker_tls_ca_cert=missing)[0] == (
        "docker_tls_ca_cert: the file %s does not exist" % missing)
    assert check(docker_host="tcp://h:2376", docker_tls_ca_cert=pki["ca"], docker_tls_client_cert=pki["client_cert"],
                 docker_tls_client_key=missing)[0] == "docker_tls_client_key: the file %s does not exist" % missing
    assert check(docker_host="tcp://h:2376", docker_tls_ca_cert=pki["ca"],
                 docker_tls_client_cert=pki["client_cert"])[0] == (
        "docker_tls_client_cert and docker_tls_client_key must be given together")


def test_tls_ok_and_tls_from_params(pki):
    params = dict(docker_host="tcp://h:2376", docker_tls_ca_cert=pki["ca"], docker_tls_client_cert=pki["client_cert"],
                  docker_tls_client_key=pki["client_key"], docker_tls_hostname=ENGINE_NAME)
    assert check(**params) == (None, [])
    assert engine.tls_from_params(Module(**params).params) == {
        "ca_cert": pki["ca"], "client_cert": pki["client_cert"], "client_key": pki["client_key"], "verify": True,
        "hostname": ENGINE_NAME}
    assert engine.tls_from_params(Module().params) is None


def test_verify_false_warns():
    msg, warnings = check(docker_host="tcp://h:2376", docker_tls_verify=False)
    assert msg is None
    assert warnings == ["docker_tls_verify is false: the certificate of the Docker engine at tcp://h:2376 is NOT "
                        "verified, and the MKE password the bootstrapper gets can be intercepted. Give the engine's "
                        "CA in docker_tls_ca_cert instead."]


def test_verify_false_and_ca_exclusive(pki):
    msg, _w = check(docker_host="tcp://h:2376", docker_tls_verify=False, docker_tls_ca_cert=pki["ca"])
    assert msg.startswith("docker_tls_ca_cert and docker_tls_verify=false are mutually exclusive")


def test_bad_scheme_and_ignored_tls(pki):
    assert check(docker_host="http://h:2375")[0] == (
        "docker_host must be unix:///path, ssh://user@host or tcp://host:port, got 'http://h:2375'")
    msg, warnings = check(docker_host="ssh://root@m1", docker_tls_ca_cert=pki["ca"])
    assert msg is None and warnings == ["docker_tls_ca_cert only apply to a tcp:// docker_host; ignored for ssh://root@m1"]
    assert check() == (None, [])
