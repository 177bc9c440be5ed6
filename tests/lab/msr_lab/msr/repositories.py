"""The repository API of a replica (`/api/v0/repositories...`), on the replica's copy of the metadata.

Documents have DTR's shape (id, namespace, namespaceType, name, descriptions, visibility, scanOnPush,
immutableTags, enableManifestLists, pulls, pushes, tagLimit); errors are DTR's `{"errors": [...]}`.
"""
from __future__ import annotations

import re
import uuid

from msr_lab.common.httpbase import Request, Response, json_response

NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
NAME_MAX = 255
SHORT_MAX = 140
VISIBILITIES = ("public", "private")
# The MKE organisation every MKE cluster has; the admin user is the other namespace the lab knows [I].
ORGANIZATION = "docker-datacenter"
BOOLEANS = ("scanOnPush", "immutableTags", "enableManifestLists")
STRINGS = ("shortDescription", "longDescription")


class RepoError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def namespaces(lab) -> dict[str, str]:
    """The MKE accounts repositories can live in: name -> namespaceType."""
    return {lab.config.get("mke_username", "admin"): "user", ORGANIZATION: "organization"}


def check_namespace(lab, namespace: str) -> str:
    kind = namespaces(lab).get(namespace)
    if kind is None:
        raise RepoError(404, "NO_SUCH_ACCOUNT", f"An account with the name {namespace!r} does not exist.")
    return kind


def _fields(body, creating: bool) -> dict:
    """The settable fields of a create (POST) or update (PATCH) body, checked."""
    if not isinstance(body, dict):
        raise RepoError(400, "INVALID_JSON", "The request body must be a JSON object.")
    out = {}
    if creating:
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > NAME_MAX or not NAME_RE.match(name):
            raise RepoError(400, "INVALID_REPOSITORY_NAME",
                            f"Invalid repository name {name!r}: use lowercase letters, digits and single "
                            f"separators (. _ -) between them, at most {NAME_MAX} characters.")
        out["name"] = name
    if "visibility" in body or creating:
        visibility = body.get("visibility")
        if visibility not in VISIBILITIES:
            raise RepoError(400, "INVALID_JSON", f"visibility must be one of: {', '.join(VISIBILITIES)} "
                                                 f"(got {visibility!r}).")
        out["visibility"] = visibility
    for key in STRINGS:
        if key in body:
            if not isinstance(body[key], str):
                raise RepoError(400, "INVALID_JSON", f"{key} must be a string.")
            out[key] = body[key]
    if len(out.get("shortDescription", "")) > SHORT_MAX:
        raise RepoError(400, "INVALID_JSON", f"shortDescription must be at most {SHORT_MAX} characters.")
    for key in BOOLEANS:
        if key in body:
            if not isinstance(body[key], bool):
                raise RepoError(400, "INVALID_JSON", f"{key} must be a boolean.")
            out[key] = body[key]
    if "tagLimit" in body:
        limit = body["tagLimit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise RepoError(400, "INVALID_JSON", "tagLimit must be a non-negative integer.")
        out["tagLimit"] = limit
    return out


def new_repository(namespace: str, kind: str, fields: dict) -> dict:
    doc = {"id": str(uuid.uuid4()), "namespace": namespace, "namespaceType": kind, "name": fields["name"],
           "shortDescription": "", "longDescription": "", "visibility": fields["visibility"],
           "scanOnPush": False, "immutableTags": False, "enableManifestLists": False,
           "pulls": 0, "pushes": 0, "tagLimit": 0}
    doc.update(fields)
    return doc


def no_such_repository(namespace: str, name: str) -> RepoError:
    return RepoError(404, "NO_SUCH_REPOSITORY", f"A repository named {namespace}/{name} does not exist.")


def _sorted(repos: dict) -> list[dict]:
    return [repos[k] for k in sorted(repos)]


class RepositoryRoutes:
    """Mixed into msr.app.MsrApp, which provides lab, rid, cluster, db_error and msr_error."""

    def repositories(self, req: Request, method: str, rest: str) -> Response:
        parts = [p for p in rest.split("/") if p]
        try:
            if not parts and method == "GET":
                return self._read(lambda repos: {"repositories": _sorted(repos)})
            if len(parts) == 1 and method in ("GET", "POST"):
                namespace = parts[0]
                kind = check_namespace(self.lab, namespace)
                if method == "GET":
                    return self._read(lambda repos: {"repositories": [r for r in _sorted(repos)
                                                                      if r["namespace"] == namespace]})
                return self._create(namespace, kind, req)
            if len(parts) == 2 and method in ("GET", "DELETE", "PATCH"):
                namespace, name = parts
                check_namespace(self.lab, namespace)
                if method == "GET":
                    return self._read(lambda repos: self._one(repos, namespace, name))
                if method == "PATCH":
                    return self._update(namespace, name, req)
                return self._delete(namespace, name)
        except RepoError as e:
            return self.msr_error(e.status, e.code, e.message)
        return self.msr_error(404, "NOT_FOUND", f"no such endpoint: {req.method} {req.path}")

    @staticmethod
    def _one(repos: dict, namespace: str, name: str) -> dict:
        doc = repos.get(f"{namespace}/{name}")
        if doc is None:
            raise no_such_repository(namespace, name)
        return doc

    def _read(self, view) -> Response:
        with self.lab.lock:
            err = self.db_error(False, "repositories")
            if err:
                return err
            return json_response(200, view(self.cluster.read_metadata(self.rid)["repositories"]))

    def _write(self, status: int, mutate) -> Response:
        with self.lab.lock:
            err = self.db_error(True, "repositories")
            if err:
                return err
            doc = self.cluster.write_metadata(self.rid, lambda data: mutate(data["repositories"]))
        self.lab.changed()
        return Response(204, b"", []) if status == 204 else json_response(status, doc)

    @staticmethod
    def _body(req: Request):
        try:
            return req.json()
        except ValueError:
            return None

    def _create(self, namespace: str, kind: str, req: Request) -> Response:
        fields = _fields(self._body(req), creating=True)

        def create(repos: dict) -> dict:
            key = f"{namespace}/{fields['name']}"
            if key in repos:
                raise RepoError(400, "REPOSITORY_EXISTS", f"A repository named {key} already exists.")
            repos[key] = new_repository(namespace, kind, fields)
            return repos[key]
        return self._write(201, create)

    def _update(self, namespace: str, name: str, req: Request) -> Response:
        fields = _fields(self._body(req), creating=False)

        def update(repos: dict) -> dict:
            doc = self._one(repos, namespace, name)
            doc.update(fields)
            return doc
        return self._write(200, update)

    def _delete(self, namespace: str, name: str) -> Response:
        def delete(repos: dict) -> None:
            self._one(repos, namespace, name)
            del repos[f"{namespace}/{name}"]
        return self._write(204, delete)

    def catalog(self) -> list[str]:
        """/v2/_catalog: the same repositories as namespace/name (the caller checked the database)."""
        return sorted(self.cluster.read_metadata(self.rid)["repositories"])
