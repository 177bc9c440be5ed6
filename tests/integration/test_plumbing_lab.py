# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module_utils against the lab itself, without ansible-playbook: the docker SDK reaching a lab
engine through a TLS listener (verified, client certificate required), the bootstrapper reading install's
TLS material from its environment, backup's tar on stdout, MKE token expiry, config-toml and the deadline.
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import select
import selectors
import shutil
import socket
import ssl
import sys
import tarfile
import tempfile
import threading
import time

import pytest
from msrint import ROOT, STATE_DIR


def _importable_collection():
    """The checkout as ansible_collections.msr.replicas, as tests/unit/conftest.py does it."""
    try:
        import ansible_collections.msr.replicas.plugins  # noqa: F401
        return
    except ImportError:
        pass
    tmp = tempfile.mkdtemp(prefix="msr-plumbing-")
    atexit.register(shutil.rmtree, tmp, True)
    os.makedirs(os.path.join(tmp, "ansible_collections", "msr"))
    os.symlink(str(ROOT), os.path.join(tmp, "ansible_collections", "msr", "replicas"))
    sys.path.insert(0, tmp)
    for name in [m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")]:
        del sys.modules[name]


_importable_collection()

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot  # noqa: E402
from ansible_collections.msr.replicas.plugins.module_utils._backup import run_backup  # noqa: E402
from ansible_collections.msr.replicas.plugins.module_utils._common import DeadlineError, HttpClient  # noqa: E402
from ansible_collections.msr.replicas.plugins.module_utils._mke import MkeClient  # noqa: E402


def make_pki(tmp):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(cn, issuer_key, issuer, key, ca=False, sans=None):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    def save(name, *objs):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            for o in objs:
                f.write(o.public_bytes(serialization.Encoding.PEM) if isinstance(o, x509.Certificate) else
                        o.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("lab engine CA", ca_key, None, ca_key, ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = cert("another CA", other_key, None, other_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = cert("127.0.0.1", ca_key, ca.subject, srv_key, sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = cert("msr-replicas", ca_key, ca.subject, cli_key)
    return {"ca": save("ca.pem", ca), "other_ca": save("other.pem", other), "server": save("srv.pem", srv, srv_key),
            "client_cert": save("cli.pem", cli), "client_key": save("cli.key", cli_key)}


class TlsToUnix:
    """dockerd --tlsverify in front of a lab engine: TLS on 127.0.0.1 (client certificate required),
    bytes relayed to the node's docker.sock; hijacked attach streams pass through as they are."""

    def __init__(self, pki, sock_path):
        self.sock_path = sock_path
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki["server"])
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(pki["ca"])
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.host = "tcp://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.relayed = 0
        self.closed = False
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                raw, _addr = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        raw.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        upstream = socket.socket(socket.AF_UNIX)
        self.sockets += [tls, upstream]
        try:
            upstream.connect(self.sock_path)
        except OSError:
            # the engine is gone: the client sees the connection close, not a reply it waits for
            tls.close()
            upstream.close()
            return
        self.relayed += 1
        self._relay(tls, upstream)

    @staticmethod
    def _relay(tls, upstream):
        """Both directions in this one thread: an SSL object read in one thread while another writes it
        can lose a record under load, and the client then waits for a reply that never comes."""
        tls.setblocking(False)
        upstream.settimeout(None)
        sel = selectors.DefaultSelector()
        sel.register(tls, selectors.EVENT_READ)
        sel.register(upstream, selectors.EVENT_READ)
        try:
            while True:
                # a record already decrypted waits inside the SSL object, where select cannot see it
                ready = [tls] if tls.pending() else [key.fileobj for key, _ in sel.select()]
                for src in ready:
                    try:
                        data = src.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    if not data:
                        return
                    if src is tls:
                        upstream.sendall(data)
                    else:
                        _send_tls(tls, data)
        except OSError:
            pass
        finally:
            sel.close()
            for s in (tls, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


def _send_tls(tls, data):
    view = memoryview(data)
    while view:
        try:
            view = view[tls.send(view):]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            select.select([], [tls], [], 1.0)


@pytest.fixture
def tls_engine(lab, tmp_path):
    pki = make_pki(str(tmp_path))
    proxy = TlsToUnix(pki, str(STATE_DIR / "nodes" / "manager1" / "run" / "docker.sock"))
    try:
        yield proxy, pki
    finally:
        proxy.close()


def runner(proxy, pki, **tls):
    tls = tls or {"ca_cert": pki["ca"], "client_cert": pki["client_cert"], "client_key": pki["client_key"]}
    return boot.Bootstrapper(proxy.host, timeout=120, tls=tls)


def ucp(lab):
    v = lab.vars
    return {"--ucp-url": v["msr_mke_url"], "--ucp-username": v["msr_mke_username"]}


def env(lab):
    return boot.environment(lab.vars["msr_mke_password"], lab.vars["msr_mke_ca"])


def image(lab):
    return lab.vars["msr_image"], lab.vars["msr_version"]


def test_engine_trust_over_tcp(lab, tls_engine):
    proxy, pki = tls_engine
    with pytest.raises(boot.BootstrapperError, match="not signed by the CA in docker_tls_ca_cert"):
        runner(proxy, pki, ca_cert=pki["other_ca"], client_cert=pki["client_cert"], client_key=pki["client_key"]).client()
    with pytest.raises(boot.BootstrapperError, match="client certificate"):
        runner(proxy, pki, ca_cert=pki["ca"]).client()
    with pytest.raises(boot.BootstrapperError, match="Plain TCP is never used"):
        boot.Bootstrapper(proxy.host).client()
    assert proxy.relayed == 0   # nothing reached the engine
    assert runner(proxy, pki).client().ping() is True
    assert proxy.relayed >= 1


def test_backup_tar_on_stdout_over_tls(lab, tls_engine):
    lab.fresh(replicas=1)
    proxy, pki = tls_engine
    rid = next(iter(lab.replicas()))
    repo, version = image(lab)
    argv = boot.build_argv("backup", dict(ucp(lab), **{"--existing-replica-id": rid, "--nocolor": True}), version)
    dest = os.path.join(tempfile.mkdtemp(prefix="msr-plumbing-backup-"), "backup.tar")
    try:
        result = run_backup(runner(proxy, pki), repo, version, argv, env(lab), dest, "msr-replicas-backup-tls")
        assert result.error is None and result.rc == 0, (result.rc, result.error, result.parser.lines)
        assert "Backup is complete" in result.parser.phases
        with tarfile.open(dest) as tar:
            assert tar.getnames()
    finally:
        shutil.rmtree(os.path.dirname(dest), ignore_errors=True)
    # the log is stderr only: no tar bytes in it, and no secret
    blob = "\n".join(result.parser.lines)
    assert "\x00" not in blob and lab.vars["msr_mke_password"] not in blob
    assert result.cmd[:5] == ["docker", "-H", proxy.host, "run", "--rm"] and "--log-driver" in result.cmd


def test_failed_run_over_tls_reports_the_log(lab, tls_engine):
    proxy, pki = tls_engine
    repo, version = image(lab)
    argv = boot.build_argv("destroy", dict(ucp(lab), **{"--replica-id": "0123456789ab", "--nocolor": True}), version)
    result = runner(proxy, pki).run(repo, version, argv, env(lab))
    assert not result.ok and result.rc == 1
    assert result.failure().startswith("No containers or volumes of replica 0123456789ab were found")


def test_install_reads_tls_material_from_the_environment(lab, tls_engine):
    lab.fresh(replicas=0)
    lab.touched()
    lab.cli("fault", "admin-scheduling", "on")
    proxy, pki = tls_engine
    repo, version = image(lab)
    v = lab.vars
    flags = dict(ucp(lab), **{"--ucp-node": "worker1", "--replica-id": "0000000000a1",
                              "--dtr-external-url": v["msr_external_url"]})
    argv = boot.build_argv("install", flags, version)
    run_env = dict(env(lab), **boot.flag_environment(
        "install", {"--dtr-ca": v["msr_dtr_ca"], "--dtr-cert": v["msr_dtr_cert"], "--dtr-key": v["msr_dtr_key"]},
        version))
    result = runner(proxy, pki).run(repo, version, argv, run_env)
    assert result.ok, result.parser.lines
    assert "BEGIN" not in " ".join(result.cmd) and "-e" in result.cmd and "MSR_KEY" in result.cmd
    # the replica's certificate now chains to the organisation CA, and it serves that CA
    http = HttpClient("https://%s" % lab.hosts["worker1"], ca_pem=v["msr_dtr_ca"], what="MSR")
    _status, _data, served = http.request("GET", "/ca", headers={"Accept": "*/*"})
    assert served.strip() == v["msr_dtr_ca"].strip()


def mke(lab, **kw):
    v = lab.vars
    return MkeClient(v["msr_mke_url"], v["msr_mke_username"], v["msr_mke_password"], ca_pem=v["msr_mke_ca"], **kw)


def test_expired_token_is_refreshed(lab):
    c = mke(lab)
    try:
        lab.cli("fault", "token-expiry", "1")
        assert c.nodes()
        time.sleep(1.3)
        assert c.nodes()   # the first token is dead by now: a second login made this work
    finally:
        lab.cli("fault", "clear")


def test_scheduling_from_config_toml(lab):
    c = mke(lab)
    try:
        lab.cli("fault", "admin-scheduling", "off")
        assert c.scheduling() == {"admin_scheduling": False, "user_scheduling": None, "error": None}
        lab.cli("fault", "admin-scheduling", "on")
        assert c.scheduling()["admin_scheduling"] is True
    finally:
        lab.cli("fault", "admin-scheduling", "on")


def test_deadline_bounds_a_slow_mke(lab):
    c = mke(lab, timeout=30, retries=3)
    c.nodes()   # logged in
    try:
        lab.cli("fault", "mke-latency", "5000")
        c.http.deadline = time.time() + 1.5
        start = time.time()
        with pytest.raises(DeadlineError, match=r"the wait timed out .*last error: did not answer GET /nodes within 1"):
            c.nodes()
        assert time.time() - start < 4
    finally:
        lab.cli("fault", "clear")
