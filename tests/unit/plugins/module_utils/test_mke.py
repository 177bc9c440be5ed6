# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import socket
import time
import urllib.parse

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _common
from ansible_collections.msr.replicas.plugins.module_utils._common import HttpClient, MsrError
from ansible_collections.msr.replicas.plugins.module_utils._mke import (
    MkeClient,
    node_summary,
    parse_scheduling,
    replica_container,
    split_name,
)

RETHINK_PATH = "/containers/json?all=1&filters=" + urllib.parse.quote('{"name":["dtr-rethinkdb-"]}', safe="")
NGINX_PATH = "/containers/json?all=1&filters=" + urllib.parse.quote('{"name":["dtr-nginx-"]}', safe="")


def mke_routes(api, fixture):
    api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    api.add("GET", "/nodes", (200, fixture("mke_nodes.json")))
    api.add("GET", RETHINK_PATH, (200, fixture("mke_containers_rethinkdb.json")))
    api.add("GET", NGINX_PATH, (200, fixture("mke_containers_nginx.json")))
    api.add("GET", "/_ping", (200, b"OK"))


def client(api, pki, **kw):
    kw.setdefault("ca_pem", pki["ca"])
    return MkeClient(api.url, "admin", "s3cret", timeout=5, **kw)


def test_login_then_bearer_and_nodes(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    nodes = client(https_api, pki).nodes()
    assert [n["name"] for n in nodes] == ["ip-172-31-16-116", "worker-1", "worker-2", "worker-3", "worker-4"]
    login, get = https_api.requests
    assert json.loads(login["body"]) == {"username": "admin", "password": "s3cret"}
    assert get["headers"]["Authorization"] == "Bearer " + fixture("mke_login.json")["auth_token"]
    # The password travels only in the login body, never in a header or URL.
    assert "s3cret" not in get["path"] and "s3cret" not in json.dumps(get["headers"])


def test_node_summary_reads_documented_fields(fixture):
    n = node_summary(fixture("mke_nodes.json")[0])
    assert n == {"id": "stn47x52941yu9b8752fadmqv", "name": "ip-172-31-16-116", "role": "manager",
                 "availability": "active", "state": "ready", "message": "Healthy MKE manager",
                 "address": "172.31.16.116", "labels": fixture("mke_nodes.json")[0]["Spec"]["Labels"],
                 "leader": True, "reachability": "reachable", "cpus": None, "memory_bytes": None}


def test_node_summary_reads_cpus_and_memory():
    raw = {"Description": {"Hostname": "w1", "Resources": {"NanoCPUs": 4000000000, "MemoryBytes": 16651931648}}}
    n = node_summary(raw)
    assert (n["cpus"], n["memory_bytes"]) == (4.0, 16651931648)
    half = node_summary({"Description": {"Resources": {"NanoCPUs": 1500000000, "MemoryBytes": "x"}}})
    assert (half["cpus"], half["memory_bytes"]) == (1.5, None)
    assert node_summary({"Description": {"Resources": {"NanoCPUs": True}}})["cpus"] is None


def test_all_containers_asks_every_container(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    https_api.add("GET", "/containers/json?all=1", (200, fixture("mke_containers_all.json")))
    items = client(https_api, pki).all_containers()
    assert len(items) == len(fixture("mke_containers_all.json"))
    assert https_api.requests[-1]["path"] == "/containers/json?all=1"


def test_all_containers_refuses_a_non_list(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    https_api.add("GET", "/containers/json?all=1", (200, {"message": "nope"}))
    with pytest.raises(MsrError, match="did not return a JSON list"):
        client(https_api, pki).all_containers()


def test_replica_containers_hex_ids_label_or_name(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    reps = client(https_api, pki).replica_containers()
    assert [(r["id"], r["node"], r["version"]) for r in reps] == [
        ("f2277ad178f7", "worker-1", "2.9.16"),
        ("f3712d9c419a", "worker-2", "2.9.16"),
        ("f58cf364e3df", "worker-3", "2.9.16"),  # no replica label: the name suffix is used
    ]
    assert https_api.requests[-1]["path"] == RETHINK_PATH


def test_replica_ports_from_nginx(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    ports = client(https_api, pki).replica_ports()
    assert ports == {"f2277ad178f7": {"https": 443, "http": 80}, "f3712d9c419a": {"https": 4443},
                     "f58cf364e3df": {"https": 443}}


def test_label_wins_over_name():
    item = {"Names": ["/node-a/dtr-rethinkdb-000000000001"], "Labels": {"com.docker.dtr.replica": "abcdefabcdef"}}
    assert replica_container(item)["id"] == "abcdefabcdef"
    assert split_name(["/dtr-rethinkdb-a1640e1c15b6"], "dtr-rethinkdb-") == (None, "a1640e1c15b6")
    assert replica_container({"Names": ["/n/dtr-api-a1"], "Labels": {}}) is None


def test_tls_verified_against_given_ca_only(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    with pytest.raises(MsrError) as exc:
        client(https_api, pki, ca_pem=pki["other_ca"]).nodes()
    msg = str(exc.value)
    assert msg.startswith("TLS verification of %s failed" % https_api.url)
    assert "mke_ca" in msg and "/ca" in msg
    assert https_api.requests == []


def test_insecure_skips_verification(https_api, pki, fixture):
    mke_routes(https_api, fixture)
    assert client(https_api, pki, ca_pem=None, insecure=True).ping() is True


def test_bad_ca_text():
    with pytest.raises(MsrError, match="not valid PEM"):
        MkeClient("https://mke", "admin", "x", ca_pem="not a certificate")


def test_401_message(https_api, pki):
    https_api.add("POST", "/auth/login", (401, {"message": "invalid credentials"}))
    with pytest.raises(MsrError) as exc:
        client(https_api, pki).nodes()
    assert str(exc.value) == "MKE rejected the credentials for user 'admin' (HTTP 401)"
    assert len(https_api.requests) == 1  # never retried


def test_5xx_retried_with_backoff_then_ok(https_api, pki, fixture):
    https_api.add("POST", "/auth/login", (502, {"message": "bad gateway"}), (503, {}), (200, fixture("mke_login.json")))
    sleeps = []
    c = client(https_api, pki)
    c.http.sleep = sleeps.append
    assert c.login()
    assert sleeps == [1, 2]


def test_5xx_gives_up_after_retries(https_api, pki):
    https_api.add("GET", "/_ping", (500, {"message": "boom"}))
    https_api.add("GET", "/nodes", (500, {"message": "boom"}))
    c = client(https_api, pki, retries=3)
    c.http.sleep = lambda s: None
    c._token = "t"
    with pytest.raises(MsrError) as exc:
        c.nodes()
    assert str(exc.value) == ('MKE at %s answered GET /nodes with HTTP 500: {"message": "boom"} (3 tries)'
                              % https_api.url)
    assert len(https_api.requests) == 3


def test_4xx_is_final(https_api, pki):
    https_api.add("GET", "/nodes", (403, {"message": "access denied"}))
    c = client(https_api, pki)
    c._token = "t"
    with pytest.raises(MsrError, match=r"MKE answered GET /nodes with HTTP 403: .*access denied"):
        c.nodes()
    assert len(https_api.requests) == 1


def test_timeout_message(pki):
    # A listening socket that never answers: the TLS handshake times out.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    try:
        http = HttpClient("https://127.0.0.1:%d" % srv.getsockname()[1], ca_pem=pki["ca"], timeout=1, retries=2,
                          sleep=lambda s: None)
        start = time.time()
        with pytest.raises(MsrError) as exc:
            MkeClient(http.base_url, "admin", "x", http=http).ping()
        assert "did not answer GET /_ping within 1 s (2 tries)" in str(exc.value)
        assert time.time() - start < 10
    finally:
        srv.close()


def test_connection_refused_message(pki):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = MkeClient("https://127.0.0.1:%d" % port, "admin", "x", ca_pem=pki["ca"], retries=2)
    c.http.sleep = lambda s: None
    with pytest.raises(MsrError, match=r"could not be reached for GET /_ping: .*\(2 tries\)"):
        c.ping()


def test_ca_is_plain_text(https_api, pki):
    https_api.add("GET", "/ca", (200, pki["ca"].encode()))
    assert client(https_api, pki).ca() == pki["ca"]


def test_no_tempfile_for_ca(monkeypatch, pki):
    # The CA stays in memory (cadata); nothing is written that could leak.
    import tempfile
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, **k: pytest.fail("temp file created"))
    ctx = _common.make_ssl_context(pki["ca"], False)
    assert ctx.verify_mode == 2 and ctx.check_hostname


# -- expired tokens: log in once more ------------------------------------------------------------

class TokenMke:
    """MKE's session tokens as the lab's token-expiry fault makes them: a token stops working, a new
    login gives a fresh one; the password can also be changed under us."""

    def __init__(self, api, fixture):
        self.valid = set()
        self.password = "s3cret"
        self.issued = 0
        self.nodes = fixture("mke_nodes.json")
        # the FakeApi has recorded the request (body included) before it asks the handler
        api.add("POST", "/auth/login", lambda handler: self.login(json.loads(api.requests[-1]["body"])["password"]))
        api.add("GET", "/nodes", self.bearer(lambda: (200, self.nodes)))
        api.add("GET", "/api/ucp/config-toml", self.bearer(lambda: (200, CONFIG_TOML.encode())))

    def login(self, password):
        if password != self.password:
            return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]}
        self.issued += 1
        token = "token-%d" % self.issued
        self.valid.add(token)
        return 200, {"auth_token": token, "token_id": "x"}

    def bearer(self, answer):
        def handle(handler):
            token = handler.headers.get("Authorization", "")[len("Bearer "):]
            if token not in self.valid:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized: authentication required"}]}
            return answer()
        return handle

    def expire_all(self):
        self.valid.clear()


@pytest.fixture
def token_mke(https_api, fixture):
    return TokenMke(https_api, fixture)


def paths(api):
    return [(r["method"], r["path"], r["headers"].get("Authorization")) for r in api.requests]


def test_expired_token_logs_in_again_once(https_api, pki, token_mke):
    c = client(https_api, pki)
    assert len(c.nodes()) == 5
    token_mke.expire_all()   # msr-lab fault token-expiry: the session token no longer works
    assert len(c.nodes()) == 5
    assert paths(https_api) == [("POST", "/auth/login", None), ("GET", "/nodes", "Bearer token-1"),
                                ("GET", "/nodes", "Bearer token-1"), ("POST", "/auth/login", None),
                                ("GET", "/nodes", "Bearer token-2")]


def test_second_401_is_the_credentials_error(https_api, pki, token_mke):
    c = client(https_api, pki)
    c.nodes()
    token_mke.expire_all()
    token_mke.password = "changed"   # the new login is refused: a 401 on login itself
    with pytest.raises(MsrError) as exc:
        c.nodes()
    assert str(exc.value) == "MKE rejected the credentials for user 'admin' (HTTP 401)"
    assert [p[:2] for p in paths(https_api)][2:] == [("GET", "/nodes"), ("POST", "/auth/login")]


def test_401_after_a_fresh_login_is_not_retried(https_api, pki, fixture):
    https_api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    https_api.add("GET", "/nodes", (401, {"message": "unauthorized"}))
    with pytest.raises(MsrError, match=r"^MKE rejected the credentials for user 'admin' \(HTTP 401\)$"):
        client(https_api, pki).nodes()
    assert [r["path"] for r in https_api.requests] == ["/auth/login", "/nodes"]


def test_401_twice_with_a_new_token(https_api, pki, fixture):
    https_api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    https_api.add("GET", "/nodes", (200, fixture("mke_nodes.json")), (401, {}), (401, {}))
    c = client(https_api, pki)
    c.nodes()
    with pytest.raises(MsrError, match=r"^MKE rejected the credentials for user 'admin' \(HTTP 401\)$"):
        c.nodes()
    assert [r["path"] for r in https_api.requests] == ["/auth/login", "/nodes", "/nodes", "/auth/login", "/nodes"]


# -- config-toml -------------------------------------------------------------------------------------

with open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "mke_config_toml.toml")) as _f:
    CONFIG_TOML = _f.read()   # as the lab's MKE serves it (msr_lab.mke.config.render)


def test_config_toml_and_scheduling(https_api, pki, token_mke):
    c = client(https_api, pki)
    assert c.config_toml() == CONFIG_TOML
    req = https_api.requests[-1]
    assert req["headers"]["Accept"] == "application/toml" and req["headers"]["Authorization"] == "Bearer token-1"
    assert c.scheduling() == {"admin_scheduling": True, "user_scheduling": None, "error": None}
    token_mke.expire_all()
    assert c.scheduling()["admin_scheduling"] is True   # the token refresh covers it too


def test_scheduling_unreadable_is_reported_not_raised(https_api, pki, fixture):
    https_api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    https_api.add("GET", "/api/ucp/config-toml", (403, {"message": "access denied"}))
    assert client(https_api, pki).scheduling() == {
        "admin_scheduling": None, "user_scheduling": None,
        "error": 'cannot read MKE\'s config-toml: MKE answered GET /api/ucp/config-toml with HTTP 403: '
                 '{"message": "access denied"}'}


def test_scheduling_without_the_key(https_api, pki, fixture):
    https_api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    https_api.add("GET", "/api/ucp/config-toml", (200, b"[auth]\nbackend = \"managed\"\n"))
    assert client(https_api, pki).scheduling() == {
        "admin_scheduling": None, "user_scheduling": None,
        "error": "MKE's config-toml has no boolean [scheduling_configuration] enable_admin_ucp_scheduling"}


TOML_CASES = [
    CONFIG_TOML,
    CONFIG_TOML.replace("enable_admin_ucp_scheduling = true", "enable_admin_ucp_scheduling = false"),
    "[scheduling_configuration]\nenable_admin_ucp_scheduling = true\nenable_user_ucp_scheduling = false\n",
    "[scheduling_configuration]\r\n  enable_admin_ucp_scheduling=false # admins may not\r\n",
    '[ "scheduling_configuration" ]\n"enable_admin_ucp_scheduling" = true\n',
    "scheduling_configuration.enable_admin_ucp_scheduling = true\n[auth]\nbackend = 'managed'\n",
    "scheduling_configuration = { enable_user_ucp_scheduling = true, enable_admin_ucp_scheduling = false }\n",
    # look-alikes that are not the setting
    '[auth]\nnote = """\n[scheduling_configuration]\nenable_admin_ucp_scheduling = true\n"""\n',
    "[auth]\nnote = '''\n[scheduling_configuration]\nenable_admin_ucp_scheduling = true'''\n",
    "# [scheduling_configuration]\n# enable_admin_ucp_scheduling = true\n",
    "[scheduling_configuration.sub]\nenable_admin_ucp_scheduling = true\n",
    "[[scheduling_configuration]]\nenable_admin_ucp_scheduling = true\n",
    "[cluster_config]\nenable_admin_ucp_scheduling = true\n",
    '[scheduling_configuration]\nenable_admin_ucp_scheduling = "true"\n',
    "[scheduling_configuration]\nx.enable_admin_ucp_scheduling = true\n",
    # an array over several lines, with a line that looks like a table header
    '[scheduling_configuration]\ndns = [\n  ["a", "]"],\n  "[x]",\n]\nenable_admin_ucp_scheduling = true\n',
    '[scheduling_configuration]\nlabel = "a # b [c] = d"\nenable_admin_ucp_scheduling = true\n',
    "",
]


def _tomllib_scheduling(text):
    import tomllib
    doc = tomllib.loads(text)
    table = doc.get("scheduling_configuration")
    table = table if isinstance(table, dict) else {}

    def boolean(key):
        value = table.get(key)
        return value if isinstance(value, bool) else None
    return {"admin_scheduling": boolean("enable_admin_ucp_scheduling"),
            "user_scheduling": boolean("enable_user_ucp_scheduling")}


@pytest.mark.parametrize("text", TOML_CASES)
def test_parse_scheduling_agrees_with_a_toml_parser(text):
    assert parse_scheduling(text) == _tomllib_scheduling(text)


def test_parse_scheduling_values():
    assert parse_scheduling(CONFIG_TOML) == {"admin_scheduling": True, "user_scheduling": None}
    assert parse_scheduling(TOML_CASES[2]) == {"admin_scheduling": True, "user_scheduling": False}
    assert parse_scheduling(TOML_CASES[6]) == {"admin_scheduling": False, "user_scheduling": True}
    assert parse_scheduling(TOML_CASES[7]) == {"admin_scheduling": None, "user_scheduling": None}
    assert parse_scheduling(None) == {"admin_scheduling": None, "user_scheduling": None}


def test_service_containers_one_request_split_by_prefix(https_api, pki, fixture):
    """rethinkdb, nginx and registry containers come from one filtered listing, never the whole cluster's."""
    path = "/containers/json?all=1&filters=" + urllib.parse.quote(
        '{"name":["dtr-rethinkdb-","dtr-nginx-","dtr-registry-"]}', safe="")
    everything = fixture("mke_containers_all.json") + fixture("mke_containers_nginx.json")
    https_api.add("POST", "/auth/login", (200, fixture("mke_login.json")))
    https_api.add("GET", path, (200, everything))
    mke = client(https_api, pki)
    listing = mke.service_containers()
    assert [r["path"] for r in https_api.requests] == ["/auth/login", path]
    assert all(any("dtr-registry-" in n for n in c["Names"]) for c in listing["dtr-registry-"])
    assert listing["dtr-registry-"] and listing["dtr-rethinkdb-"]
    assert [r["id"] for r in mke.replica_containers(listing)] == sorted(
        {c["Names"][0].rsplit("-", 1)[1] for c in listing["dtr-rethinkdb-"]})
    assert mke.replica_ports(listing) == {"f2277ad178f7": {"https": 443, "http": 80}, "f3712d9c419a": {"https": 4443},
                                          "f58cf364e3df": {"https": 443}}
    assert len(https_api.requests) == 2   # the listing given is used, nothing asked again
