"""Checks of a CA, certificate and key given to the bootstrapper (install --dtr-ca/--dtr-cert/--dtr-key).

The texts are Go's (crypto/tls, crypto/x509), as the real bootstrapper is a Go program: users recognise
"tls: private key does not match public key" and "x509: certificate signed by unknown authority".
"""
from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization


class BundleError(Exception):
    """`part` says which input is wrong: ca, cert, key, pair (key vs certificate), chain or date."""

    def __init__(self, part: str, message: str):
        super().__init__(message)
        self.part = part


def _certs(text: str, part: str) -> list[x509.Certificate]:
    what = "CA certificate" if part == "ca" else "certificate"
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise BundleError(part, f"tls: failed to find any PEM data in {what} input")
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise BundleError(part, f"x509: malformed {what}") from None


def _key(text: str):
    if "PRIVATE KEY-----" not in text:
        raise BundleError("key", "tls: failed to find any PEM data in key input")
    try:
        return serialization.load_pem_private_key(text.encode(), None)
    except TypeError:
        raise BundleError("key", "tls: failed to parse private key: the key is encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise BundleError("key", "tls: failed to parse private key") from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(child: x509.Certificate, parent: x509.Certificate, below: int) -> bool:
    """`parent` signed `child` and may be a CA with `below` intermediate CAs under it."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        constraints = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return True
    return constraints.ca and (constraints.path_length is None or constraints.path_length >= below)


def _in_date(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def check_bundle(ca_text: str, cert_text: str, key_text: str) -> None:
    """Raise BundleError unless the key matches the certificate and the certificate chains to the CA.

    `cert_text` may carry intermediates after the leaf ("append its public key certificate at the end
    of the file to establish a chain of trust", the install reference); `ca_text` may hold several CAs.
    """
    cas = _certs(ca_text, "ca")
    chain = _certs(cert_text, "cert")
    key = _key(key_text)
    leaf = chain[0]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise BundleError("pair", "tls: private key does not match public key")
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in chain + cas:
        if not _in_date(cert, now):
            raise BundleError("date", "x509: certificate has expired or is not yet valid: current time "
                              f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} is outside "
                              f"{cert.not_valid_before_utc.strftime('%Y-%m-%dT%H:%M:%SZ')} - "
                              f"{cert.not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    current, below = leaf, 0          # below: intermediate CAs between `current`'s issuer and the leaf
    rest = chain[1:]
    while True:
        if any(current == ca or _issued_by(current, ca, below) for ca in cas):
            return
        parent = next((c for c in rest if _issued_by(current, c, below)), None)
        if parent is None:
            raise BundleError("chain", "x509: certificate signed by unknown authority")
        rest.remove(parent)
        current, below = parent, below + 1
