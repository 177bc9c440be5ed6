"""One MSR replica's HTTP front end (what its dtr-nginx container serves), as observed by that replica.

Everything is answered from the shared Cluster, filtered through this replica's own view: a replica
cut off in a minority sees the others as unreachable and cannot read or write the database.
"""
from __future__ import annotations

import copy
import secrets

from msr_lab.common.httpbase import Request, Response, json_response, text_response
from msr_lab.mke.auth import request_authorized

STORAGE_DRIVERS = ("filesystem", "s3", "azure", "gcs", "swift", "oss", "inmemory")
STORAGE_EXTRAS = ("delete", "maintenance", "redirect", "cache")
# Paths the HTTP port serves itself; everything else (/ca too) is redirected to HTTPS like real MSR.
PLAIN_HTTP_PATHS = ("/_ping", "/health", "/nginx_status")
READ_ERROR = ("gorethink: Cannot perform read: primary replica for shard [\"\", +inf) not available in: "
              "r.DB(\"dtr2\").Table(\"{table}\")")
WRITE_ERROR = ("gorethink: Cannot perform write: primary replica for shard [\"\", +inf) not available in: "
               "r.DB(\"dtr2\").Table(\"{table}\")")


def msr_error(status: int, code: str, message: str, headers=None) -> Response:
    return json_response(status, {"errors": [{"code": code, "message": message}]}, headers)


class MsrApp:
    def __init__(self, lab, rid: str):
        self.lab = lab
        self.rid = rid
        self.requests = 0
        self.accepted = 0

    @property
    def cluster(self):
        return self.lab.cluster

    async def __call__(self, req: Request) -> Response:
        self.requests += 1
        self.accepted += 1
        return self.handle(req)

    def handle(self, req: Request) -> Response:
        path = req.path
        method = "GET" if req.method == "HEAD" else req.method
        r = self.cluster.replicas.get(self.rid)
        if r is None:
            return text_response(502, "502 Bad Gateway: this replica is no longer part of the cluster\n")
        if not req.tls and path not in PLAIN_HTTP_PATHS:
            host = (req.headers.get("host") or self.lab.nodes[r.node].addr).rsplit(":", 1)[0]
            port = "" if r.https_port == 443 else f":{r.https_port}"
            return Response(301, b"", [("Location", f"https://{host}{port}{req.target}"),
                                       ("Content-Type", "text/html")])
        if path == "/ca" and method == "GET":
            # MSR's own CA (or the one given with --dtr-ca), for clients to trust: no auth, no database
            return text_response(200, self.cluster.tls.ca_pem, "application/x-pem-file")
        if path == "/_ping" and method == "GET":
            healthy, error = self.cluster.ping(self.rid)
            return json_response(200 if healthy else 503, {"Error": error, "Healthy": healthy})
        if path == "/v2/_catalog" or path.rstrip("/") == "/v2":
            return self.registry(req, path)
        if not self.authenticated(req):
            return msr_error(401, "NOT_AUTHENTICATED", "The client is not authenticated.",
                             [("WWW-Authenticate", 'Basic realm="MSR"')])
        if path == "/health" and method == "GET":
            healthy, error = self.cluster.ping(self.rid)
            return json_response(200 if healthy else 503, {"Error": error, "Health": healthy})
        if path == "/nginx_status" and method == "GET":
            return text_response(200, f"Active connections: 1 \nserver accepts handled requests\n"
                                      f" {self.accepted} {self.accepted} {self.requests} \n"
                                      f"Reading: 0 Writing: 1 Waiting: 0 \n")
        if path == "/api/v0/meta/cluster_status" and method == "GET":
            return self.cluster_status()
        if path == "/api/v0/meta/settings":
            if method == "GET":
                return self.get_settings()
            if method == "POST":
                return self.post_settings(req)
        if path == "/api/v0/admin/settings/registry/simple":
            if method == "GET":
                return self.get_storage()
            if method == "PUT":
                return self.put_storage(req)
        return msr_error(404, "NOT_FOUND", f"no such endpoint: {req.method} {path}")

    # ---------------------------------------------------------------- auth and database access

    def authenticated(self, req: Request) -> bool:
        return request_authorized(self.lab, req)

    def db_error(self, write: bool, table: str) -> Response | None:
        """None if this replica can use the database, else the error it answers with."""
        with self.lab.lock:
            r = self.cluster.replicas.get(self.rid)
            if r is None or not self.cluster.alive(self.rid):
                return msr_error(503, "UNKNOWN", "rethinkdb: no connection to the local database server: "
                                                 f"dial tcp: lookup dtr-rethinkdb-{self.rid}: no such host")
            if r.state == "joining":
                return msr_error(503, "UNKNOWN", f"replica {self.rid} is not ready: join in progress")
            if not self.cluster.has_quorum(self.rid):
                text = (WRITE_ERROR if write else READ_ERROR).format(table=table)
                return msr_error(500, "UNKNOWN", text)
        return None

    # ---------------------------------------------------------------- endpoints

    def cluster_status(self) -> Response:
        with self.lab.lock:
            if not self.cluster.alive(self.rid):
                return msr_error(500, "UNKNOWN", "rethinkdb: no connection to the local database server")
            return json_response(200, self.cluster.cluster_status(self.rid))

    def settings_doc(self) -> dict:
        r = self.cluster.replicas[self.rid]
        doc = copy.deepcopy(self.cluster.settings)
        doc.update({"replicaID": self.rid, "dtrHost": self.dtr_host(), "replicaHTTPPort": r.http_port,
                    "replicaHTTPSPort": r.https_port, "version": r.version,
                    "nfsHost": self.cluster.nfs_url if self.cluster.nfs else ""})
        return doc

    def dtr_host(self) -> str:
        return self.cluster.dtr_host(self.rid)

    def get_settings(self) -> Response:
        with self.lab.lock:
            err = self.db_error(False, "properties")
            return err or json_response(200, self.settings_doc())

    def post_settings(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return msr_error(400, "INVALID_JSON", "the request body must be a JSON object")
        with self.lab.lock:
            err = self.db_error(True, "properties")
            if err:
                return err
            for key in ("replicaID", "version"):  # read-only, as in MSR
                body.pop(key, None)
            self.cluster.settings.update(body)
            doc = self.settings_doc()
        self.lab.changed()
        return json_response(200, doc)

    def get_storage(self) -> Response:
        with self.lab.lock:
            err = self.db_error(False, "properties")
            return err or json_response(200, {"storage": copy.deepcopy(self.cluster.storage)})

    def put_storage(self, req: Request) -> Response:
        try:
            body = req.json()
        except ValueError:
            body = None
        storage = body.get("storage") if isinstance(body, dict) else None
        if not isinstance(storage, dict):
            return msr_error(400, "INVALID_JSON", 'the request body must be {"storage": {...}}')
        drivers = [k for k in storage if k not in STORAGE_EXTRAS]
        if len(drivers) != 1 or drivers[0] not in STORAGE_DRIVERS or not isinstance(storage[drivers[0]], dict):
            return msr_error(400, "INVALID_SETTINGS",
                             f"storage must configure exactly one driver of {', '.join(STORAGE_DRIVERS)}")
        driver = drivers[0]
        params = storage[driver]
        if driver == "s3" and str(params.get("accesskey", "")).startswith("BAD"):
            return msr_error(400, "INVALID_SETTINGS",
                             "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our "
                             f"records. status code: 403, request id: {secrets.token_hex(8).upper()}")
        if driver == "filesystem":
            params["rootdirectory"] = "/storage"  # MSR always mounts its storage volume there
        with self.lab.lock:
            err = self.db_error(True, "properties")
            if err:
                return err
            self.cluster.storage = copy.deepcopy(storage)
            doc = {"storage": copy.deepcopy(storage)}
        self.lab.changed()
        return json_response(202, doc)

    def registry(self, req: Request, path: str) -> Response:
        headers = [("Docker-Distribution-Api-Version", "registry/2.0")]
        if not self.authenticated(req):
            host = self.dtr_host()
            headers.append(("WWW-Authenticate",
                            f'Bearer realm="https://{host}/auth/token",service="{host}"'))
            return json_response(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                                   "detail": None}]}, headers)
        err = self.db_error(False, "repositories")
        if err:
            err.headers.extend(headers)
            return err
        if path == "/v2/_catalog":
            with self.lab.lock:
                repos = sorted(self.cluster.repositories)
            return json_response(200, {"repositories": repos}, headers)
        return json_response(200, {}, headers)
