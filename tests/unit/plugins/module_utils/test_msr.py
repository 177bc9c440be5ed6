# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import base64

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError, msr_tls
from ansible_collections.msr.replicas.plugins.module_utils._msr import MsrClient, parse_cluster_status, parse_storage


def client(api, pki, **kw):
    kw.setdefault("ca_pem", pki["ca"])
    return MsrClient(api.url, "admin", "s3cret", timeout=5, **kw)


def test_ping_200(https_api, pki, fixture):
    https_api.add("GET", "/_ping", (200, fixture("msr_ping_ok.json")))
    assert client(https_api, pki).ping() == {"status": 200, "healthy": True, "error": ""}
    # /_ping is unauthenticated: no credentials are sent.
    assert "Authorization" not in https_api.requests[0]["headers"]


def test_ping_503_is_data_not_error(https_api, pki, fixture):
    https_api.add("GET", "/_ping", (503, fixture("msr_ping_unhealthy.json")))
    assert client(https_api, pki).ping() == {"status": 503, "healthy": False,
                                             "error": "rethinkdb: replica is not ready"}
    assert len(https_api.requests) == 1


def test_ping_unreachable(pki):
    r = MsrClient("https://127.0.0.1:1", "admin", "x", ca_pem=pki["ca"], timeout=2).ping()
    assert r["status"] is None and not r["healthy"] and "could not be reached" in r["error"]


def test_ping_wrong_ca(https_api, pki, fixture):
    https_api.add("GET", "/_ping", (200, fixture("msr_ping_ok.json")))
    r = client(https_api, pki, ca_pem=pki["other_ca"]).ping()
    assert r["status"] is None and r["error"].startswith("TLS verification of")
    assert "msr_ca" in r["error"]


def test_cluster_status_basic_auth(https_api, pki, fixture):
    https_api.add("GET", "/api/v0/meta/cluster_status", (200, fixture("msr_cluster_status.json")))
    st = client(https_api, pki).cluster_status()
    assert st["replica_health"] == {"f2277ad178f7": "OK", "f3712d9c419a": "OK", "f58cf364e3df": "OK"}
    assert st["current_issues"][0]["critical"] is False
    auth = https_api.requests[0]["headers"]["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"admin:s3cret").decode()


def test_cluster_status_27_shape(fixture):
    st = parse_cluster_status(fixture("msr_cluster_status_27.json"))
    assert st["current_issues"] == []
    assert st["replica_health"]["56b65e8c1404"].startswith("Replica reported health too long ago")


def test_cluster_status_401(https_api, pki, fixture):
    https_api.add("GET", "/api/v0/meta/cluster_status", (401, fixture("msr_errors_401.json")))
    with pytest.raises(MsrError) as exc:
        client(https_api, pki).cluster_status()
    assert str(exc.value) == "MSR replica %s rejected the credentials for user 'admin' (HTTP 401)" % https_api.url


def test_settings(https_api, pki, fixture):
    https_api.add("GET", "/api/v0/meta/settings", (200, fixture("msr_settings.json")))
    assert client(https_api, pki).settings()["replicaID"] == "f2277ad178f7"


@pytest.mark.parametrize("name,driver", [("msr_storage_s3.json", "s3"), ("msr_storage_filesystem.json", "filesystem")])
def test_storage_driver(https_api, pki, fixture, name, driver):
    https_api.add("GET", "/api/v0/admin/settings/registry/simple", (200, fixture(name)))
    assert client(https_api, pki).storage()["driver"] == driver


def test_storage_ambiguous_or_missing():
    assert parse_storage({}) == {"driver": None, "drivers": []}
    assert parse_storage({"storage": {"s3": {}, "azure": {}}})["driver"] is None


def test_not_json(https_api, pki):
    https_api.add("GET", "/api/v0/meta/settings", (200, b"<html>login</html>"))
    with pytest.raises(MsrError, match="did not return a JSON object"):
        client(https_api, pki).settings()


@pytest.mark.parametrize("params,expected", [
    ({"mke_ca": "MKE", "msr_ca": None, "msr_insecure_tls": None, "mke_insecure_tls": False}, (None, False)),
    ({"mke_ca": "MKE", "msr_ca": "MSR", "msr_insecure_tls": None, "mke_insecure_tls": False}, ("MSR", False)),
    # mke_insecure_tls says nothing about MSR: no fallback (check_connection_params then asks for MSR trust)
    ({"mke_ca": None, "msr_ca": None, "msr_insecure_tls": False, "mke_insecure_tls": True}, (None, False)),
    ({"mke_ca": None, "msr_ca": "MSR", "msr_insecure_tls": None, "mke_insecure_tls": True}, ("MSR", False)),
    ({"mke_ca": "MKE", "msr_ca": None, "msr_insecure_tls": True, "mke_insecure_tls": False}, (None, True)),
])
def test_msr_trust_is_msr_own_ca_never_mke(params, expected):
    assert msr_tls(params) == expected
