# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures for the API client tests: recorded JSON and a real HTTPS server on 127.0.0.1 whose
certificate is signed by a CA made in the test, so TLS verification is exercised for real."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


@pytest.fixture
def fixture():
    return load_fixture


class Clock:
    """A clock that only sleep() moves: call it, or use it as the time module (time(), sleep())."""

    def __init__(self, now=1000.0):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def _make_ca_and_cert():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_cert(cert):
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("unit test CA")).issuer_name(name("unit test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem_cert(ca), pem_cert(cert), key_pem


@pytest.fixture(scope="session")
def pki():
    ca_pem, cert_pem, key_pem = _make_ca_and_cert()
    other_ca, _c, _k = _make_ca_and_cert()
    return {"ca": ca_pem, "cert": cert_pem, "key": key_pem, "other_ca": other_ca}


class FakeApi:
    """Routes: {(method, path_with_query): handler}; a handler returns (status, body) where body is
    JSON-able or bytes, or is such a tuple directly. Every request is recorded."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.url = None
        # HTTP/1.1: the handler keeps each connection open after an answer, as MKE and MSR do
        self.protocol = "HTTP/1.0"

    def add(self, method, path, *answers):
        # Several answers are served in order; the last one repeats.
        self.routes[(method, path)] = list(answers)


def _handler(api):
    class Handler(BaseHTTPRequestHandler):
        @property
        def protocol_version(self):
            return api.protocol

        def log_message(self, *args):
            pass

        def _serve(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            api.requests.append({"method": method, "path": self.path, "headers": dict(self.headers), "body": body,
                                 "client": self.client_address})
            answers = api.routes.get((method, self.path))
            if not answers:
                status, payload = 404, {"message": "page not found"}
            else:
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                status, payload = answer(self) if callable(answer) else answer
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

    return Handler


@pytest.fixture
def https_api(pki):
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file = os.path.join(tmp, "cert.pem")
        with open(cert_file, "w") as f:
            f.write(pki["cert"] + pki["key"])
        ctx.load_cert_chain(cert_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = "https://127.0.0.1:%d" % server.server_address[1]
    yield api
    server.shutdown()
    server.server_close()
