# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared option spec, TLS and HTTP plumbing for the MKE and MSR clients. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import io
import json
import socket
import ssl
import time

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible.module_utils.six.moves.urllib.request import getproxies, proxy_bypass

USER_AGENT = "ansible-httpget"   # what ansible.module_utils.urls sends: servers see one client either way


class MsrError(Exception):
    """An error whose message is meant for the user as it is."""


class AuthError(MsrError):
    """HTTP 401: the credentials (or a token made from them) were refused."""


class DeadlineError(MsrError):
    """The caller's overall deadline (HttpClient.deadline) passed; ``last`` is the error seen before it."""

    def __init__(self, msg, last=None):
        MsrError.__init__(self, msg)
        self.last = last


def connection_argument_spec():
    """The MKE/MSR access options shared by every module (documented in msr.replicas.connection)."""
    return dict(
        mke_url=dict(type="str", required=True),
        mke_username=dict(type="str", default="admin"),
        mke_password=dict(type="str", required=True, no_log=True),
        mke_ca=dict(type="str"),
        mke_insecure_tls=dict(type="bool", default=False),
        msr_url=dict(type="str"),
        msr_ca=dict(type="str"),
        msr_insecure_tls=dict(type="bool", default=False),
        api_timeout=dict(type="int", default=30),
        api_retries=dict(type="int", default=3),
    )


def check_connection_params(module):
    """Fail early on URLs and TLS settings that cannot work or would expose the password; warn about insecure ones."""
    p = module.params
    if _scheme(p["mke_url"]) == "http":
        module.fail_json(msg="mke_url must be an https:// URL, got '%s': over http:// the MKE admin password "
                             "would cross the network in clear" % p["mke_url"])
    if _scheme(p["mke_url"]) != "https":
        module.fail_json(msg="mke_url must be an https:// URL (https://host[:port]), got '%s'" % p["mke_url"])
    if p["msr_url"] and _scheme(p["msr_url"]) == "http":
        module.fail_json(msg="msr_url must be an https:// URL, got '%s': MSR admin calls carry the MKE admin "
                             "password and never go over plain HTTP" % p["msr_url"])
    if p["msr_url"] and _scheme(p["msr_url"]) != "https":
        module.fail_json(msg="msr_url must be an https:// URL (https://host[:port]), got '%s'" % p["msr_url"])
    if p["mke_ca"] and p["mke_insecure_tls"]:
        module.fail_json(msg="mke_ca and mke_insecure_tls are mutually exclusive: give the MKE CA or disable verification, not both")
    if not p["mke_ca"] and not p["mke_insecure_tls"]:
        module.fail_json(msg="one of mke_ca (the MKE CA certificate, PEM text) or mke_insecure_tls=true is required")
    if p["mke_insecure_tls"]:
        module.warn("mke_insecure_tls is true: the MKE certificate is NOT verified and the admin password "
                    "can be intercepted. Pass the MKE CA in mke_ca instead.")
    if p["api_retries"] < 1:
        module.fail_json(msg="api_retries must be 1 or more")
    if p["api_timeout"] < 1:
        module.fail_json(msg="api_timeout must be 1 or more")
    if p["msr_ca"] and p["msr_insecure_tls"]:
        module.fail_json(msg="msr_ca and msr_insecure_tls are mutually exclusive: give MSR's CA or disable verification, not both")
    if not p["msr_ca"] and not p["msr_insecure_tls"]:
        module.fail_json(msg="one of msr_ca (MSR's own CA certificate, PEM text; every replica serves it at "
                             "https://<replica>/ca) or msr_insecure_tls=true is required: MSR replicas have "
                             "certificates of their own, which the MKE CA does not verify")
    if p["msr_insecure_tls"]:
        module.warn("msr_insecure_tls is true: MSR replica certificates are NOT verified and the admin password "
                    "sent to MSR can be intercepted. Pass MSR's CA in msr_ca instead.")


def _scheme(url):
    return (url or "").split("://", 1)[0].lower() if "://" in (url or "") else ""


def msr_tls(params):
    """(ca_pem, insecure) for MSR replicas: MSR's own CA or the explicit msr_insecure_tls, never MKE's trust."""
    return params.get("msr_ca"), bool(params.get("msr_insecure_tls"))


def make_ssl_context(ca_pem, insecure):
    """A context that trusts only ``ca_pem`` (no system CAs), or verifies nothing when insecure."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        # cadata keeps the PEM in memory: no temporary file to leak or clean up.
        return ssl.create_default_context(cadata=to_text(ca_pem))
    except (ssl.SSLError, ValueError) as exc:
        raise MsrError("the CA certificate is not valid PEM text: %s" % to_native(exc))


def _is_timeout(exc):
    if isinstance(exc, socket.timeout):
        return True
    reason = getattr(exc, "reason", None)
    return isinstance(reason, socket.timeout) or "timed out" in to_native(reason or exc)


class KeepAlive:
    """One persistent HTTP/1.1 connection to a base URL, reused by every request of one HttpClient.

    A task that polls health makes dozens of requests to one API; a TLS handshake for each costs more
    than the request itself. A connection the server has closed while idle is opened again once."""

    def __init__(self, base_url, context):
        parts = urlsplit(base_url)
        self.https = parts.scheme.lower() == "https"
        self.netloc = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.context = context
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def open(self, method, path, data, headers, timeout):
        """(status, headers, body bytes) of one request; OSError and http_client.HTTPException pass through."""
        reused = self.conn is not None
        while True:
            if self.conn is None:
                cls = http_client.HTTPSConnection if self.https else http_client.HTTPConnection
                kwargs = {"context": self.context} if self.https else {}
                self.conn = cls(self.netloc, timeout=timeout, **kwargs)
            else:
                self.conn.timeout = timeout
                if self.conn.sock is not None:
                    self.conn.sock.settimeout(timeout)
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
            except (http_client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused:
                    reused = False   # the server closed the idle connection: once more on a new one
                    continue
                raise
            except Exception:
                self.close()
                raise
            if resp.will_close:
                self.close()
            return resp.status, resp.msg, body


def _proxied(base_url):
    """Whether the environment names a proxy for this URL (https_proxy, no_proxy): then urllib goes."""
    parts = urlsplit(base_url)
    return parts.scheme.lower() in getproxies() and not proxy_bypass(parts.hostname or "")


class HttpClient:
    """JSON over HTTPS with bounded retries.

    Retries only what can heal by itself (timeouts, refused/reset connections, 5xx) with exponential
    backoff; a 4xx or a TLS verification failure is final at once.

    ``deadline`` (epoch seconds, or None) bounds a whole wait made of many requests: each request's
    socket timeout is cut to the time left, no try starts once it has passed, and then the request
    raises DeadlineError with the last error seen.
    """

    def __init__(self, base_url, ca_pem=None, insecure=False, timeout=30, retries=3, what="MKE",
                 tls_hint=None, sleep=time.sleep, clock=time.time, deadline=None):
        self.base_url = base_url.rstrip("/")
        self.context = make_ssl_context(ca_pem, insecure) if self.base_url.lower().startswith("https://") else None
        self.timeout = timeout
        self.retries = max(1, retries)
        self.what = what
        self.tls_hint = tls_hint
        self.sleep = sleep
        self.clock = clock
        self.deadline = deadline
        self.keepalive = None if _proxied(self.base_url) else KeepAlive(self.base_url, self.context)

    def _time_left(self, method, path, last, backoff=0):
        """The socket timeout for the next try, after ``backoff`` seconds of sleep; DeadlineError when none is left."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - self.clock() - backoff
        if left <= 0:
            raise DeadlineError("%s at %s: the wait timed out before %s %s could %s%s"
                                % (self.what, self.base_url, method, path, "be tried again" if last else "be sent",
                                   "; last error: %s" % last if last else ""), last=last)
        return min(self.timeout, left)

    def request(self, method, path, body=None, headers=None, auth=None, accept=(200,), tries=None,
                user=None):
        """Return (status, parsed JSON or None, raw text). ``auth`` is (user, password) for basic auth."""
        url = self.base_url + path
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        kwargs = dict(method=method, url=url, data=data, headers=hdrs, follow_redirects="safe", use_proxy=True)
        if self.context is not None:
            kwargs["context"] = self.context
        if auth:
            kwargs.update(url_username=auth[0], url_password=auth[1], force_basic_auth=True)
        tries = tries or self.retries
        last = None
        for attempt in range(tries):
            backoff = 2 ** (attempt - 1) if attempt else 0
            timeout = self._time_left(method, path, last, backoff)
            if backoff:
                self.sleep(backoff)
            try:
                return self._decode(*self._open(kwargs, path, auth, timeout))
            except HTTPError as exc:
                text = to_text(exc.read() if exc.fp else b"", errors="replace")
                if exc.code in accept:
                    return self._decode(exc.code, text)
                if exc.code == 401:
                    raise AuthError("%s rejected the credentials for user '%s' (HTTP 401)"
                                    % (self.what, user or (auth[0] if auth else "?")))
                if exc.code >= 500:
                    last = "answered %s %s with HTTP %d: %s" % (method, path, exc.code, _short(text))
                    continue
                raise MsrError("%s answered %s %s with HTTP %d: %s" % (self.what, method, path, exc.code, _short(text)))
            except (URLError, socket.error, ssl.SSLError, http_client.HTTPException) as exc:
                reason = exc if isinstance(exc, ssl.SSLError) else getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLCertVerificationError) or isinstance(exc, ssl.SSLCertVerificationError):
                    raise MsrError("TLS verification of %s failed: %s.%s"
                                   % (self.base_url, to_native(getattr(reason, "verify_message", reason)),
                                      (" " + self.tls_hint) if self.tls_hint else ""))
                if _is_timeout(exc):
                    last = "did not answer %s %s within %s s" % (method, path, _seconds(timeout))
                else:
                    last = "could not be reached for %s %s: %s" % (method, path, to_native(reason))
        if self.deadline is not None and self.clock() >= self.deadline:
            raise DeadlineError("%s at %s: the wait timed out during %s %s; last error: %s"
                                % (self.what, self.base_url, method, path, last), last=last)
        raise MsrError("%s at %s %s (%d %s)" % (self.what, self.base_url, last, tries, "try" if tries == 1 else "tries"))

    def _open(self, kwargs, path, auth, timeout):
        """(status, body) of one try; HTTPError for a status of 400 or more, as urllib raises it."""
        if self.keepalive is not None:
            headers = dict(kwargs["headers"], **{"User-Agent": USER_AGENT})
            if auth:
                token = base64.b64encode(to_bytes("%s:%s" % auth, errors="surrogate_or_strict"))
                headers["Authorization"] = "Basic " + to_native(token)
            data = to_bytes(kwargs["data"]) if kwargs["data"] is not None else None
            status, resp_headers, body = self.keepalive.open(kwargs["method"], path, data, headers, timeout)
            if status >= 400:
                raise HTTPError(kwargs["url"], status, resp_headers.get("Status", ""), resp_headers, io.BytesIO(body))
            if not 300 <= status < 400:
                return status, body
            # a redirect: urllib follows it (safe methods only), as without keep-alive
        # Imported here: it is three quarters of this module's import time, and most runs never need it.
        from ansible.module_utils.urls import Request
        resp = Request().open(timeout=timeout, **kwargs)
        return resp.getcode(), resp.read()

    @staticmethod
    def _decode(status, raw):
        text = to_text(raw, errors="replace")
        try:
            return status, json.loads(text) if text.strip() else None, text
        except ValueError:
            return status, None, text


def _seconds(value):
    return "%d" % value if value == int(value) else "%.1f" % value


def _short(text, limit=300):
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "..."


def poll_pause(reads, first, longest):
    """The pause after the ``reads``-th read of a wait: ``first``, doubling up to ``longest``. A wait that
    ends soon (the new replica's health report is due within seconds) ends soon after, and a long one
    still reads the cluster only every ``longest`` seconds."""
    return min(longest, first * (2 ** max(reads - 1, 0)))
