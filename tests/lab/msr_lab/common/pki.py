"""Certificates of the lab: authorities, server certificates, and TLS contexts built from them.

Three kinds of authority use this module: the MKE CA (`LabPKI`, files in <state>/pki, signs only MKE's
certificate), each MSR cluster's own CA (kept in memory with the cluster, msr/tls.py) and the
"organisation" CA of the inventory (`LabPKI` with the prefix "org-"). Real clients (curl, the docker
SDK, the bootstrapper's --ucp-ca check) must succeed with the right CA and fail with any other, so every
certificate is a real X.509 chain naming only what its server answers on.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
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


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def split_hosts(hosts) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of a list of host strings, each kept once, in order."""
    names, ips = [], []
    for h in hosts:
        try:
            ip = str(ipaddress.ip_address(h))
        except ValueError:
            if h and h not in names:
                names.append(h)
        else:
            if ip not in ips:
                ips.append(ip)
    return names, ips


class Authority:
    """A CA held in memory: its certificate and key, and the server certificates it issues."""

    def __init__(self, cert: x509.Certificate, key):
        self.cert = cert
        self.key = key

    @classmethod
    def new(cls, cn: str, path_length: int | None = 0) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(cn)
        now = _now()
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, cert_text: bytes | str, key_text: bytes | str) -> Authority:
        as_bytes = (lambda t: t.encode() if isinstance(t, str) else t)
        return cls(x509.load_pem_x509_certificate(as_bytes(cert_text)),
                   serialization.load_pem_private_key(as_bytes(key_text), None))

    @property
    def cert_pem(self) -> str:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)

    def issue(self, hosts, cn: str | None = None) -> tuple[str, str]:
        """A server certificate for exactly `hosts` (DNS names and IP addresses): (cert PEM, key PEM)."""
        names, ips = split_hosts(hosts)
        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        now = _now()
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(cn or (names + ips + ["msr-lab"])[0]))
                   .issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return cert_pem(builder.sign(self.key, hashes.SHA256())), key_pem(key)


def certificate_hosts(cert_text: str) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) a PEM certificate (the first of a chain) is valid for."""
    cert = x509.load_pem_x509_certificate(cert_text.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), {str(i) for i in san.get_values_for_type(x509.IPAddress)}


def server_context(chain_pem: str, key_text: str) -> ssl.SSLContext:
    """A server context from PEM text in memory: the key never touches the disk (a memfd, not a file)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    fd = os.memfd_create(f"msr-lab-tls-{secrets.token_hex(4)}", os.MFD_CLOEXEC)
    try:
        os.write(fd, (chain_pem.rstrip("\n") + "\n" + key_text.rstrip("\n") + "\n").encode())
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return ctx


def _write_key(path: Path, text: str) -> None:
    # Create with 0600 from the start so the key is never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class LabPKI:
    """A CA and one server certificate kept as files: <prefix>ca.pem ca.key server.pem server.key."""

    def __init__(self, directory, prefix: str = "", ca_name: str = "msr-lab MKE CA"):
        self.dir = Path(directory)
        self.ca_name = ca_name
        self.ca_path = self.dir / f"{prefix}ca.pem"
        self.ca_key_path = self.dir / f"{prefix}ca.key"
        self.cert_path = self.dir / f"{prefix}server.pem"
        self.key_path = self.dir / f"{prefix}server.key"

    @property
    def ca_pem(self) -> str:
        return self.ca_path.read_text()

    @property
    def cert_pem(self) -> str:
        return self.cert_path.read_text()

    @property
    def key_pem(self) -> str:
        return self.key_path.read_text()

    def ensure(self, names, ips=()) -> None:
        """Create what is missing; reissue the server cert unless it names exactly `names` and `ips`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        names = sorted(set(names))
        ips = sorted({str(ipaddress.ip_address(i)) for i in ips})
        if self.ca_path.exists() and self.ca_key_path.exists():
            ca = Authority.load(self.ca_path.read_bytes(), self.ca_key_path.read_bytes())
        else:
            ca = Authority.new(self.ca_name)
            _write_key(self.ca_key_path, ca.key_pem)
            self.ca_path.write_text(ca.cert_pem)
            # A new CA invalidates any older server cert.
            self.cert_path.unlink(missing_ok=True)
        if self._server_cert_names(ca.cert, names, ips):
            return
        cert, key = ca.issue(names + ips)
        _write_key(self.key_path, key)
        self.cert_path.write_text(cert)

    def _server_cert_names(self, ca_cert, names, ips) -> bool:
        if not (self.cert_path.exists() and self.key_path.exists()):
            return False
        if x509.load_pem_x509_certificate(self.cert_path.read_bytes()).issuer != ca_cert.subject:
            return False
        have_names, have_ips = certificate_hosts(self.cert_path.read_text())
        return have_names == set(names) and have_ips == set(ips)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert_path), str(self.key_path))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA (for tests and the bootstrapper)."""
        return ssl.create_default_context(cafile=str(self.ca_path))
