"""MSR's own TLS (msr2.md §2.7): the cluster's CA and each replica's certificate.

`install` generates a CA for the cluster (the real one keeps it in the dtr-ca-<id> volumes), and every
replica, the first and each one that joins, gets a certificate from it naming that replica's node
(hostname and address) and the --dtr-external-url host, nothing else. With --dtr-ca/--dtr-cert/--dtr-key
every replica serves the given certificate instead and `GET /ca` returns the given CA. The CA is never
MKE's, so the MKE CA verifies no replica.
"""
from __future__ import annotations

import secrets
import ssl

from msr_lab.common.pki import Authority, server_context


class ClusterTLS:
    def __init__(self, given: tuple[str, str, str] | None = None):
        """given: (CA, certificate chain, key) PEM texts, already checked by the bootstrapper."""
        self.given = given
        self.authority = None if given else Authority.new(f"MSR CA {secrets.token_hex(4)}")
        self._issued: dict[str, tuple[tuple, str, str]] = {}     # rid -> (hosts, cert, key)
        self._contexts: dict[str, tuple[str, ssl.SSLContext]] = {}

    @property
    def generated(self) -> bool:
        return self.given is None

    @property
    def ca_pem(self) -> str:
        if self.given:
            return self.given[0].rstrip("\n") + "\n"
        return self.authority.cert_pem

    @property
    def subject(self) -> str:
        return self.authority.cert.subject.rfc4514_string() if self.authority else "given with --dtr-ca"

    def certificate(self, rid: str, hosts) -> tuple[str, str]:
        """(certificate chain PEM, key PEM) that replica `rid` serves; `hosts` are the names it must carry."""
        if self.given:
            return self.given[1], self.given[2]
        hosts = tuple(hosts)
        issued = self._issued.get(rid)
        if issued is None or issued[0] != hosts:
            cert, key = self.authority.issue(hosts, cn=hosts[0] if hosts else rid)
            issued = self._issued[rid] = (hosts, cert, key)
        return issued[1], issued[2]

    def context(self, rid: str, hosts) -> ssl.SSLContext:
        cert, key = self.certificate(rid, hosts)
        cached = self._contexts.get(rid)
        if cached is None or cached[0] != cert:
            cached = self._contexts[rid] = (cert, server_context(cert, key))
        return cached[1]

    def forget(self, rid: str) -> None:
        self._issued.pop(rid, None)
        self._contexts.pop(rid, None)
