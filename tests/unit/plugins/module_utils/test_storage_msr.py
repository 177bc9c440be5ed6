# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The MSR client's storage calls against a real HTTPS server that answers like MSR (the answers below
were recorded from msr-lab, which follows msr2.md 2.5). The module tests reuse this server."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.msr.replicas.plugins.module_utils import _storage
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._msr import MsrClient

PATH = "/api/v0/admin/settings/registry/simple"
# Recorded: GET on a fresh `msr-lab up` (s3 is its default storage).
RECORDED_S3 = {"storage": {"s3": {"bucket": "msr-lab", "region": "us-east-1", "regionendpoint": "",
                                  "rootdirectory": "", "secure": True}}}
# Recorded: PUT {"storage": {"s3": {"accesskey": "BADKEY", ...}}} -> 400.
RECORDED_BAD_KEY = {"errors": [{"code": "INVALID_SETTINGS", "message": (
    "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records. status code: 403, "
    "request id: B06715D8468933CF")}]}
# Recorded: GET and PUT on the one running replica of three after `msr-lab fault quorum-loss` -> 500.
NO_PRIMARY = ('gorethink: Cannot perform %s: primary replica for shard ["", +inf) not available in: '
              'r.DB("dtr2").Table("properties")')
RECORDED_NO_QUORUM = {
    "GET": {"errors": [{"code": "UNKNOWN", "message": NO_PRIMARY % "read"}]},
    "PUT": {"errors": [{"code": "UNKNOWN", "message": NO_PRIMARY % "write"}]},
}
# Recorded: GET /api/v0/repositories after POST /api/v0/repositories/admin {"name": "app", ...}.
RECORDED_REPOSITORIES = {"repositories": [{
    "id": "392ed899-e905-4d26-8108-b752453ca958", "namespace": "admin", "namespaceType": "user", "name": "app",
    "shortDescription": "", "longDescription": "", "visibility": "private", "scanOnPush": False,
    "immutableTags": False, "enableManifestLists": False, "pulls": 0, "pushes": 0, "tagLimit": 0}]}
DRIVERS = ("filesystem", "s3", "azure", "gcs", "swift", "oss", "inmemory")
EXTRAS = ("delete", "maintenance", "redirect", "cache")


class StorageMsr:
    """The storage and repository endpoints of one MSR replica, refusing what MSR refuses.

    ``redact``: answer GET with secrets as asterisks, as a real MSR might (msr2.md leaves it open);
    the PUT still stores what it is given, so sending a redacted value back would break the storage.
    """

    def __init__(self):
        self.storage = copy.deepcopy(RECORDED_S3["storage"])
        self.repositories = []
        self.quorum = True
        self.redact = False
        self.requests = []
        self.url = None

    def answer(self, method, path, body):
        if path == PATH and method in ("GET", "PUT"):
            if not self.quorum:
                return 500, RECORDED_NO_QUORUM[method]
            return self.get() if method == "GET" else self.put(body)
        if path.split("?")[0] == "/api/v0/repositories" and method == "GET":
            if not self.quorum:
                return 500, RECORDED_NO_QUORUM["GET"]
            return 200, {"repositories": copy.deepcopy(self.repositories)}
        return 404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint: %s %s" % (method, path)}]}

    def get(self):
        doc = copy.deepcopy(self.storage)
        if self.redact:
            for driver, params in doc.items():
                for key in params if driver not in EXTRAS else ():
                    if _storage.is_secret(driver, key) and params[key]:
                        params[key] = "*" * 8
        return 200, {"storage": doc}

    def put(self, body):
        storage = body.get("storage") if isinstance(body, dict) else None
        if not isinstance(storage, dict):
            return 400, {"errors": [{"code": "INVALID_JSON", "message": 'the request body must be {"storage": {...}}'}]}
        drivers = [k for k in storage if k not in EXTRAS]
        if len(drivers) != 1 or drivers[0] not in DRIVERS or not isinstance(storage[drivers[0]], dict):
            return 400, {"errors": [{"code": "INVALID_SETTINGS", "message": "storage must configure exactly one "
                                     "driver of %s" % ", ".join(DRIVERS)}]}
        params = storage[drivers[0]]
        if drivers[0] == "s3" and str(params.get("accesskey", "")).startswith("BAD"):
            return 400, RECORDED_BAD_KEY
        if drivers[0] == "filesystem":
            params["rootdirectory"] = "/storage"
        self.storage = copy.deepcopy(storage)
        return 202, {"storage": copy.deepcopy(storage)}

    def puts(self):
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "PUT"]


def _handler(api):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw})
            expected = "Basic " + base64.b64encode(b"admin:pw").decode()
            if self.headers.get("Authorization") != expected:
                status, doc = 401, {"errors": [{"code": "NOT_AUTHENTICATED", "message": "The client is not authenticated."}]}
            else:
                status, doc = api.answer(self.command, self.path, json.loads(raw) if raw else None)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = _serve

    return Handler


@contextlib.contextmanager
def serve(pki):
    """A StorageMsr behind HTTPS on 127.0.0.1 with the test CA's certificate."""
    api = StorageMsr()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file = os.path.join(tmp, "cert.pem")
        with open(cert_file, "w") as f:
            f.write(pki["cert"] + pki["key"])
        ctx.load_cert_chain(cert_file)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    api.url = "https://127.0.0.1:%d" % server.server_address[1]
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def msr_api(pki):
    with serve(pki) as api:
        yield api


def client(api, pki, retries=1):
    return MsrClient(api.url, "admin", "pw", ca_pem=pki["ca"], timeout=5, retries=retries)


def test_storage_settings_is_the_raw_section(msr_api, pki):
    assert client(msr_api, pki).storage_settings() == RECORDED_S3["storage"]
    assert msr_api.requests[0]["path"] == PATH


def test_put_storage_sends_the_section_with_basic_auth(msr_api, pki):
    doc = client(msr_api, pki).put_storage({"filesystem": {"rootdirectory": "/tmp"}})
    assert doc == {"storage": {"filesystem": {"rootdirectory": "/storage"}}}   # MSR forces the root
    put = msr_api.requests[-1]
    assert put["method"] == "PUT" and put["path"] == PATH
    assert json.loads(put["body"]) == {"storage": {"filesystem": {"rootdirectory": "/tmp"}}}
    assert put["headers"]["Content-Type"] == "application/json"
    assert client(msr_api, pki).storage_settings() == {"filesystem": {"rootdirectory": "/storage"}}


def test_put_storage_refusal_carries_msr_reason(msr_api, pki):
    with pytest.raises(MsrError) as err:
        client(msr_api, pki, retries=3).put_storage({"s3": {"bucket": "b", "accesskey": "BADKEY"}})
    assert str(err.value) == ("MSR refused the storage settings: HTTP 400 INVALID_SETTINGS: InvalidAccessKeyId: The "
                              "AWS Access Key Id you provided does not exist in our records. status code: 403, "
                              "request id: B06715D8468933CF")
    assert len(msr_api.puts()) == 1          # a 4xx is final: not retried
    assert msr_api.storage == RECORDED_S3["storage"]


def test_no_quorum_is_retried_then_explained(msr_api, pki, monkeypatch):
    msr_api.quorum = False
    c = client(msr_api, pki, retries=2)
    monkeypatch.setattr(c.http, "sleep", lambda s: None)
    with pytest.raises(MsrError) as err:
        c.put_storage({"filesystem": {}})
    text = str(err.value)
    assert "HTTP 500" in text and "Cannot perform write" in text and "(2 tries)" in text
    assert _storage.database_hint(text).startswith(" (MSR could not use its database")
    assert len(msr_api.puts()) == 2


def test_repositories_names_and_page_size(msr_api, pki):
    assert client(msr_api, pki).repositories() == []
    msr_api.repositories = RECORDED_REPOSITORIES["repositories"]
    assert client(msr_api, pki).repositories() == ["admin/app"]
    assert msr_api.requests[-1]["path"] == "/api/v0/repositories?pageSize=10"


def test_wrong_answer_shapes_are_errors(msr_api, pki, monkeypatch):
    monkeypatch.setattr(msr_api, "answer", lambda m, p, b: (200, {"storage": "s3"}))
    with pytest.raises(MsrError, match='returned no "storage" object'):
        client(msr_api, pki).storage_settings()
    monkeypatch.setattr(msr_api, "answer", lambda m, p, b: (200, {"items": []}))
    with pytest.raises(MsrError, match="returned no repositories list"):
        client(msr_api, pki).repositories()
