"""The lab PKI: one CA that signs one server certificate used by MKE and every MSR replica.

Real clients (curl, the docker SDK, the bootstrapper's --ucp-ca check) must succeed with the lab CA
and fail without it, so the certificate is a real X.509 chain rather than a self-signed leaf.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 3650


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "msr-lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # Create with 0600 from the start so the key is never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class LabPKI:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.ca_path = self.dir / "ca.pem"
        self.ca_key_path = self.dir / "ca.key"
        self.cert_path = self.dir / "server.pem"
        self.key_path = self.dir / "server.key"

    @property
    def ca_pem(self) -> str:
        return self.ca_path.read_text()

    def ensure(self, names, ips=()) -> None:
        """Create what is missing; reissue the server cert only if it lacks a wanted SAN."""
        self.dir.mkdir(parents=True, exist_ok=True)
        names = sorted(set(names))
        ips = sorted({str(ipaddress.ip_address(i)) for i in ips})
        now = datetime.datetime.now(datetime.timezone.utc)
        if self.ca_path.exists() and self.ca_key_path.exists():
            ca_cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            ca_key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), None)
        else:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            subject = _name("msr-lab CA")
            ca_cert = (x509.CertificateBuilder()
                       .subject_name(subject).issuer_name(subject)
                       .public_key(ca_key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(days=1))
                       .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                       .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                      critical=True)
                       .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                                      critical=False)
                       .sign(ca_key, hashes.SHA256()))
            _write_key(self.ca_key_path, ca_key)
            self.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
            # A new CA invalidates any older server cert.
            self.cert_path.unlink(missing_ok=True)
        if self._server_cert_covers(ca_cert, names, ips):
            return
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (x509.CertificateBuilder()
                .subject_name(_name(names[0] if names else "msr-lab"))
                .issuer_name(ca_cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write_key(self.key_path, key)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _server_cert_covers(self, ca_cert, names, ips) -> bool:
        if not (self.cert_path.exists() and self.key_path.exists()):
            return False
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        if cert.issuer != ca_cert.subject:
            return False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have_names = set(san.get_values_for_type(x509.DNSName))
        have_ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
        return set(names) <= have_names and set(ips) <= have_ips

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the lab CA (for tests and the bootstrapper)."""
        return ssl.create_default_context(cafile=str(self.ca_path))
