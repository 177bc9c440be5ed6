# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How the bootstrapper's Docker engine is reached: the docker_* options, TLS, and errors worth a hint.
PRIVATE to this collection.

The bootstrapper's environment holds the MKE password, so the engine is reached over its unix socket,
SSH (paramiko, known hosts only), or TCP with TLS (verified against the engine's CA unless the user
explicitly turns verification off): never plain TCP.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback
import warnings

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

try:
    import docker
    from docker.errors import DockerException
    from docker.tls import TLSConfig
    from requests.adapters import HTTPAdapter
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import InsecureRequestWarning
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        pass

try:
    import paramiko
    _SSH_ERRORS = (paramiko.SSHException,)
except ImportError:
    _SSH_ERRORS = ()

# What a dropped socket, SSH link or engine error raises out of the docker SDK: requests' errors are
# OSErrors, urllib3's raw stream errors are not, paramiko's are neither; EOFError is a closed SSH channel.
CONNECTION_ERRORS = (DockerException, OSError, EOFError) + _SSH_ERRORS + (
    (Urllib3Error, RequestException) if HAS_DOCKER else ())

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def connect(docker_host, timeout, tls=None):
    """A docker.DockerClient for ``docker_host``; MsrError with a hint when it cannot be had.

    ``tls`` (see tls_from_params) is required for tcp://.
    """
    if not HAS_DOCKER:
        raise MsrError("the docker SDK for Python is required")
    # use_ssh_client=False: paramiko with ~/.ssh/config, known_hosts and RejectPolicy.
    kwargs = dict(base_url=docker_host, use_ssh_client=False, timeout=timeout, version="auto")
    if docker_host.startswith("tcp://"):
        if not tls:
            raise MsrError(plain_tcp_refusal(docker_host))
        kwargs["tls"] = make_tls_config(tls)
    try:
        return docker.DockerClient(**kwargs)
    except CONNECTION_ERRORS as exc:
        raise MsrError(explain_connect_error(docker_host, exc))


def _ssh_target(docker_host):
    rest = docker_host[len("ssh://"):]
    user, hostport = rest.rpartition("@")[::2]
    host, port = hostport.partition(":")[::2]
    return user or None, host, port or "22"


def explain_connect_error(docker_host, exc):
    """A message that tells the user what to do, for errors raised while connecting to the engine."""
    text = str(exc)
    if docker_host.startswith("ssh://"):
        user, host, port = _ssh_target(docker_host)
        key = host if port == "22" else "[%s]:%s" % (host, port)
        if "not found in known_hosts" in text:
            return ("the SSH host key of %s is not trusted: it is not in ~/.ssh/known_hosts of the user running "
                    "the module (unknown host keys are rejected). Verify the key and add it, for example with "
                    "'ssh-keyscan -p %s %s >> ~/.ssh/known_hosts' after checking its fingerprint, or by connecting "
                    "once with ssh. (%s)" % (key, port, host, text))
        if "Authentication failed" in text or "No authentication methods" in text:
            return ("SSH authentication to %s@%s failed: %s. The docker SDK (paramiko) uses the IdentityFile of "
                    "~/.ssh/config, the ssh-agent and ~/.ssh/id_rsa, id_ecdsa or id_ed25519 (no passphrases)."
                    % (user or "<default user>", host, text))
        return "cannot reach the Docker engine over SSH at %s: %s" % (docker_host, text)
    if docker_host.startswith("tcp://"):
        for needle, hint in _TLS_HINTS:
            if needle in text:
                return "TLS to the Docker engine at %s failed: %s. (%s)" % (docker_host, hint, text)
    return "cannot reach the Docker engine at %s: %s" % (docker_host, text)


_TLS_HINTS = (
    ("mismatch", "the engine certificate does not name the host of docker_host; set docker_tls_hostname to a "
                 "name it carries"),
    ("doesn't match", "the engine certificate does not carry docker_tls_hostname"),
    ("CERTIFICATE_VERIFY_FAILED", "the engine certificate is not signed by the CA in docker_tls_ca_cert"),
    ("CERTIFICATE_REQUIRED", "the engine asks for a client certificate; give docker_tls_client_cert and "
                             "docker_tls_client_key"),
    # TLS 1.3 sends the alert after the handshake, so the client often sees only the connection end.
    ("EOF occurred in violation of protocol", "the engine ended the TLS connection; it may want a client "
                                              "certificate it trusts (docker_tls_client_cert and docker_tls_client_key)"),
    ("WRONG_VERSION_NUMBER", "the engine does not speak TLS on that port"),
)


def docker_argument_spec():
    """The engine options of the modules that run the bootstrapper (documented in msr.replicas.docker)."""
    return dict(
        docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
        docker_tls_ca_cert=dict(type="path"),
        docker_tls_client_cert=dict(type="path"),
        docker_tls_client_key=dict(type="path", no_log=False),
        docker_tls_verify=dict(type="bool", default=True),
        docker_tls_hostname=dict(type="str"),
    )


_TLS_FILES = ("docker_tls_ca_cert", "docker_tls_client_cert", "docker_tls_client_key")


def validate_docker_params(module):
    """Fail on engine settings that cannot work or would send the password in clear; warn about insecure ones."""
    p = module.params
    host = p["docker_host"] or DEFAULT_DOCKER_HOST
    scheme = host.split("://", 1)[0] if "://" in host else ""
    if scheme not in ("unix", "ssh", "tcp"):
        module.fail_json(msg="docker_host must be unix:///path, ssh://user@host or tcp://host:port, got '%s'" % host)
    given = [k for k in _TLS_FILES + ("docker_tls_hostname",) if p.get(k)]
    if scheme != "tcp":
        if given:
            module.warn("%s only apply to a tcp:// docker_host; ignored for %s" % (", ".join(given), host))
        return
    if bool(p.get("docker_tls_client_cert")) != bool(p.get("docker_tls_client_key")):
        module.fail_json(msg="docker_tls_client_cert and docker_tls_client_key must be given together")
    for key in _TLS_FILES:
        if p.get(key) and not os.path.isfile(p[key]):
            module.fail_json(msg="%s: the file %s does not exist" % (key, p[key]))
    if p["docker_tls_verify"] and not p.get("docker_tls_ca_cert"):
        module.fail_json(msg=plain_tcp_refusal(host))
    if not p["docker_tls_verify"]:
        if p.get("docker_tls_ca_cert"):
            module.fail_json(msg="docker_tls_ca_cert and docker_tls_verify=false are mutually exclusive: give the "
                                 "engine's CA or disable verification, not both")
        module.warn("docker_tls_verify is false: the certificate of the Docker engine at %s is NOT verified, and "
                    "the MKE password the bootstrapper gets can be intercepted. Give the engine's CA in "
                    "docker_tls_ca_cert instead." % host)


def plain_tcp_refusal(host):
    return ("docker_host %s is a TCP address, which needs TLS: give the engine's CA in docker_tls_ca_cert (and "
            "docker_tls_client_cert and docker_tls_client_key when the engine checks clients), or set "
            "docker_tls_verify=false. Plain TCP is never used: the bootstrapper's environment carries the MKE "
            "password." % host)


def tls_from_params(params):
    """The ``tls`` argument of Bootstrapper from the docker_* options; None unless docker_host is tcp://."""
    if not (params.get("docker_host") or "").startswith("tcp://"):
        return None
    return {"ca_cert": params.get("docker_tls_ca_cert"), "client_cert": params.get("docker_tls_client_cert"),
            "client_key": params.get("docker_tls_client_key"), "verify": params.get("docker_tls_verify") is not False,
            "hostname": params.get("docker_tls_hostname")}


def make_tls_config(tls):
    """A docker.tls.TLSConfig that verifies the engine against ``tls["ca_cert"]`` unless verify is false."""
    verify = tls.get("verify", True) is not False
    if verify and not tls.get("ca_cert"):
        raise MsrError("TLS to the Docker engine needs the engine's CA (docker_tls_ca_cert) or verify=false")
    cert = (tls["client_cert"], tls.get("client_key")) if tls.get("client_cert") else None
    try:
        return _EngineTLSConfig(hostname=tls.get("hostname") if verify else None, client_cert=cert,
                                ca_cert=tls.get("ca_cert") if verify else None, verify=verify)
    except DockerException as exc:
        raise MsrError("invalid TLS settings for the Docker engine: %s" % exc)


if HAS_DOCKER:
    class _HostnameAdapter(HTTPAdapter):
        """Checks the engine certificate against docker_tls_hostname instead of the address in docker_host."""

        def __init__(self, hostname, **kwargs):
            self.hostname = hostname
            HTTPAdapter.__init__(self, **kwargs)

        def init_poolmanager(self, *args, **kwargs):
            kwargs.update(assert_hostname=self.hostname, server_hostname=self.hostname)
            HTTPAdapter.init_poolmanager(self, *args, **kwargs)

    class _EngineTLSConfig(TLSConfig):
        # The SDK calls configure_client before its first request (the API version), so what it sets
        # holds for every request of the client.
        def __init__(self, hostname=None, **kwargs):
            TLSConfig.__init__(self, **kwargs)
            self.hostname = hostname

        def configure_client(self, client):
            TLSConfig.configure_client(self, client)
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the session's CA (and turn
            # verify=False back on), and would send engine calls through HTTPS_PROXY: the engine's trust
            # is the options' alone.
            client.trust_env = False
            if not self.verify:
                # validate_docker_params has warned once, in the module's own words.
                warnings.simplefilter("ignore", InsecureRequestWarning)
            if self.hostname:
                client.mount("https://", _HostnameAdapter(self.hostname))
