# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HttpClient's deadline and the connection option checks."""

from __future__ import annotations

import socket
import time

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _common
from ansible_collections.msr.replicas.plugins.module_utils._common import (
    DeadlineError,
    HttpClient,
    MsrError,
    check_connection_params,
    connection_argument_spec,
    msr_tls,
)


def client(url, pki, clock=None, **kw):
    kw.setdefault("timeout", 30)
    if clock is not None:
        kw.update(sleep=clock.sleep, clock=clock)
    return HttpClient(url, ca_pem=pki["ca"], **kw)


@pytest.fixture
def silent_server():
    # Accepts connections and never answers: every try times out.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield "https://127.0.0.1:%d" % srv.getsockname()[1]
    srv.close()


def test_request_is_cut_to_the_time_left(silent_server, pki):
    http = client(silent_server, pki, timeout=30, retries=3, deadline=time.time() + 1.5)
    start = time.time()
    with pytest.raises(DeadlineError) as exc:
        http.request("GET", "/nodes")
    took = time.time() - start
    # api_timeout is 30 s, but the wait had 1.5 s left: one short try, and no retry that cannot finish.
    assert 1.2 < took < 4, took
    msg = str(exc.value)
    assert msg.startswith("MKE at %s: the wait timed out before GET /nodes could be tried again; last error: did not "
                          "answer GET /nodes within 1." % silent_server), msg
    assert exc.value.last.startswith("did not answer GET /nodes within 1.")
    assert isinstance(exc.value, MsrError)


def test_no_request_after_the_deadline(https_api, pki):
    https_api.add("GET", "/nodes", (200, []))
    http = client(https_api.url, pki, deadline=time.time() - 1)
    with pytest.raises(DeadlineError) as exc:
        http.request("GET", "/nodes")
    assert str(exc.value) == "MKE at %s: the wait timed out before GET /nodes could be sent" % https_api.url
    assert exc.value.last is None
    assert https_api.requests == []


def test_no_retry_that_would_start_after_the_deadline(https_api, pki, clock):
    https_api.add("GET", "/nodes", (500, {"message": "boom"}))
    http = client(https_api.url, pki, clock=clock, retries=5, deadline=clock.now + 2.5)
    with pytest.raises(DeadlineError) as exc:
        http.request("GET", "/nodes")
    # try 1, sleep 1 s (1.5 s left), try 2, a 2 s backoff would end past the deadline: stop there.
    assert clock.slept == [1]
    assert len(https_api.requests) == 2
    assert str(exc.value) == ('MKE at %s: the wait timed out before GET /nodes could be tried again; last error: '
                              'answered GET /nodes with HTTP 500: {"message": "boom"}' % https_api.url)


def test_socket_timeout_is_min_of_api_timeout_and_time_left(monkeypatch, pki, clock):
    seen = []

    def fake_open(self, method, path, data, headers, timeout):
        seen.append(timeout)
        clock.now += timeout
        raise socket.timeout("timed out")

    monkeypatch.setattr(_common.KeepAlive, "open", fake_open)
    http = client("https://mke.example.com", pki, clock=clock, timeout=10, retries=3, deadline=clock.now + 13.5)
    with pytest.raises(DeadlineError) as exc:
        http.request("GET", "/nodes")
    # 10 s (api_timeout), then 1 s backoff and the 2.5 s left; then nothing is left for another try.
    assert seen == [10, 2.5]
    assert "last error: did not answer GET /nodes within 2.5 s" in str(exc.value)

    seen[:] = []
    http.deadline = None
    with pytest.raises(MsrError) as exc:
        http.request("GET", "/nodes")
    assert seen == [10, 10, 10]   # no deadline: the retries as they always were
    assert str(exc.value) == ("MKE at https://mke.example.com did not answer GET /nodes within 10 s (3 tries)")
    assert not isinstance(exc.value, DeadlineError)


def test_deadline_passing_during_the_last_try(monkeypatch, pki, clock):
    def fake_open(self, method, path, data, headers, timeout):
        clock.now += timeout
        raise socket.timeout("timed out")

    monkeypatch.setattr(_common.KeepAlive, "open", fake_open)
    http = client("https://mke.example.com", pki, clock=clock, timeout=10, retries=1, deadline=clock.now + 4)
    with pytest.raises(DeadlineError) as exc:
        http.request("GET", "/nodes")
    assert str(exc.value) == ("MKE at https://mke.example.com: the wait timed out during GET /nodes; last error: did "
                              "not answer GET /nodes within 4 s")


def test_401_is_an_auth_error(https_api, pki):
    https_api.add("GET", "/nodes", (401, {"message": "unauthorized"}))
    with pytest.raises(_common.AuthError, match=r"MKE rejected the credentials for user 'admin' \(HTTP 401\)"):
        client(https_api.url, pki).request("GET", "/nodes", user="admin")


# -- connection options ---------------------------------------------------------------------------

class Module:
    def __init__(self, **params):
        self.params = dict((k, v.get("default")) for k, v in connection_argument_spec().items())
        self.params.update(mke_url="https://mke.example.com", mke_password="pw", mke_ca="CA", msr_ca="MSR CA")
        self.params.update(params)
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, msg, **kw):
        raise AssertionError(msg)


def check(**params):
    m = Module(**params)
    try:
        check_connection_params(m)
    except AssertionError as exc:
        return str(exc), m.warnings
    return None, m.warnings


def test_defaults_are_accepted():
    assert check() == (None, [])


def test_http_mke_url_refused():
    assert check(mke_url="http://mke.example.com")[0] == (
        "mke_url must be an https:// URL, got 'http://mke.example.com': over http:// the MKE admin password would "
        "cross the network in clear")
    assert check(mke_url="HTTP://mke.example.com")[0].startswith("mke_url must be an https:// URL, got 'HTTP://")
    assert check(mke_url="mke.example.com")[0] == (
        "mke_url must be an https:// URL (https://host[:port]), got 'mke.example.com'")


def test_http_msr_url_refused():
    assert check(msr_url="http://msr.example.com")[0] == (
        "msr_url must be an https:// URL, got 'http://msr.example.com': MSR admin calls carry the MKE admin password "
        "and never go over plain HTTP")
    assert check(msr_url="msr.example.com:443")[0] == (
        "msr_url must be an https:// URL (https://host[:port]), got 'msr.example.com:443'")
    assert check(msr_url="https://msr.example.com") == (None, [])


def test_msr_trust_is_explicit_and_never_mke_s():
    spec = connection_argument_spec()
    assert spec["msr_insecure_tls"] == {"type": "bool", "default": False}
    # mke_insecure_tls no longer implies anything for MSR
    msg, warnings = check(mke_ca=None, mke_insecure_tls=True, msr_ca=None)
    assert msg.startswith("one of msr_ca (MSR's own CA certificate, PEM text; every replica serves it at "
                          "https://<replica>/ca) or msr_insecure_tls=true is required")
    assert msr_tls({"mke_insecure_tls": True, "mke_ca": None, "msr_ca": None, "msr_insecure_tls": False}) == (None, False)
    assert msr_tls({"msr_ca": "PEM", "msr_insecure_tls": False}) == ("PEM", False)


def test_msr_insecure_tls_warns():
    msg, warnings = check(msr_ca=None, msr_insecure_tls=True)
    assert msg is None
    assert warnings == ["msr_insecure_tls is true: MSR replica certificates are NOT verified and the admin password "
                        "sent to MSR can be intercepted. Pass MSR's CA in msr_ca instead."]
    # also when MKE is insecure too: each trust is its own
    msg, warnings = check(mke_ca=None, mke_insecure_tls=True, msr_ca=None, msr_insecure_tls=True)
    assert msg is None and len(warnings) == 2
    assert check(msr_insecure_tls=True)[0].startswith("msr_ca and msr_insecure_tls are mutually exclusive")


def test_requests_of_one_client_share_one_connection(https_api, pki):
    https_api.protocol = "HTTP/1.1"
    https_api.add("GET", "/nodes", (500, {"message": "boom"}), (200, [{"id": "n1"}]))
    https_api.add("POST", "/auth/login", (200, {"auth_token": "t"}))
    http = client(https_api.url, pki, sleep=lambda s: None)
    assert http.request("GET", "/nodes")[1] == [{"id": "n1"}]   # a 500 answered, retried on the same connection
    assert http.request("POST", "/auth/login", body={"username": "admin"})[1] == {"auth_token": "t"}
    assert http.request("GET", "/nodes")[0] == 200
    assert len(https_api.requests) == 4
    assert len({r["client"] for r in https_api.requests}) == 1
    assert https_api.requests[2]["body"] == b'{"username": "admin"}'
    assert https_api.requests[2]["headers"]["Content-Type"] == "application/json"


def test_a_connection_the_server_closed_is_opened_again_once(https_api, pki):
    https_api.protocol = "HTTP/1.1"

    def answer_then_hang_up(handler):
        handler.close_connection = True   # no "Connection: close": the client learns it on the next request
        return 200, {"ok": True}

    https_api.add("GET", "/nodes", answer_then_hang_up)
    http = client(https_api.url, pki, retries=1)
    assert http.request("GET", "/nodes")[1] == {"ok": True}
    assert http.request("GET", "/nodes")[1] == {"ok": True}   # one try, yet the dead connection cost none
    assert len(https_api.requests) == 2
    assert len({r["client"] for r in https_api.requests}) == 2


def test_basic_auth_over_the_kept_connection(https_api, pki):
    https_api.protocol = "HTTP/1.1"
    https_api.add("GET", "/api/v0/meta/cluster_status", (200, {}))
    client(https_api.url, pki).request("GET", "/api/v0/meta/cluster_status", auth=("admin", "s3cr:et"))
    seen = https_api.requests[0]["headers"]
    assert seen["Authorization"] == "Basic YWRtaW46czNjcjpldA=="
    assert seen["User-Agent"] == "ansible-httpget"


def test_a_proxy_in_the_environment_goes_through_urllib(monkeypatch, https_api, pki):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    proxied = client("https://mke.example.com", pki, retries=1)
    assert proxied.keepalive is None
    with pytest.raises(MsrError, match=r"could not be reached for GET /nodes: .*Connection refused"):
        proxied.request("GET", "/nodes")   # through urllib, to the proxy, which is not there
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    https_api.add("GET", "/nodes", (200, []))
    http = client(https_api.url, pki)
    assert http.keepalive is not None and http.request("GET", "/nodes")[0] == 200
