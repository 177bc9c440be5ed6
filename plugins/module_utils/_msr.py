# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small MSR (one replica) API client. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.msr.replicas.plugins.module_utils._common import HttpClient, MsrError

# Keys of the distribution "storage" section that are options, not the driver.
STORAGE_OPTION_KEYS = ("delete", "maintenance", "redirect", "cache", "tag")
STORAGE_PATH = "/api/v0/admin/settings/registry/simple"
# Answers of a refused PUT that carry MSR's reason; 5xx are retried by HttpClient instead.
REFUSALS = (400, 403, 404, 409, 422)


class MsrClient:
    """Talks to one replica (or the LB in front of them) with MKE admin basic auth."""

    def __init__(self, url, username, password, ca_pem=None, insecure=False, timeout=30, retries=3, http=None):
        self.url = url.rstrip("/")
        self.auth = (username, password)
        self.http = http or HttpClient(
            self.url, ca_pem=ca_pem, insecure=insecure, timeout=timeout, retries=retries,
            what="MSR replica %s" % self.url,
            tls_hint="Give MSR's own CA in msr_ca (every replica serves it at https://<replica>/ca) or set "
                     "msr_insecure_tls: true")

    def ping(self, tries=1):
        """{"status": HTTP status or None, "healthy": bool, "error": text}; never raises for 503."""
        try:
            status, data, raw = self.http.request("GET", "/_ping", accept=(200, 503), tries=tries)
        except MsrError as exc:
            return {"status": None, "healthy": False, "error": str(exc)}
        data = data if isinstance(data, dict) else {}
        # The documented contract: 200 alone means healthy; the body only explains a 503.
        return {"status": status, "healthy": status == 200,
                "error": data.get("Error") or ("" if status == 200 else raw.strip()[:300])}

    def _get(self, path):
        _status, data, _raw = self.http.request("GET", path, auth=self.auth)
        if not isinstance(data, dict):
            raise MsrError("MSR %s GET %s did not return a JSON object" % (self.url, path))
        return data

    def cluster_status(self):
        return parse_cluster_status(self._get("/api/v0/meta/cluster_status"))

    def settings(self):
        return self._get("/api/v0/meta/settings")

    def storage(self):
        return parse_storage(self._get(STORAGE_PATH))

    def storage_settings(self):
        """The whole "storage" section, secrets as MSR returns them (callers mask them)."""
        storage = self._get(STORAGE_PATH).get("storage")
        if not isinstance(storage, dict):
            raise MsrError('MSR %s GET %s returned no "storage" object' % (self.url, STORAGE_PATH))
        return storage

    def put_storage(self, storage):
        """Replace the storage section. MSR answers 202 and checks the settings first (an S3 bucket is
        test-written), so a refusal is a 4xx whose errors say why."""
        status, data, raw = self.http.request("PUT", STORAGE_PATH, body={"storage": storage}, auth=self.auth,
                                              accept=(200, 202) + REFUSALS)
        if status in REFUSALS:
            raise MsrError("MSR refused the storage settings: HTTP %d%s" % (status, error_text(data, raw)))
        return data if isinstance(data, dict) else {}

    def repositories(self, limit=10):
        """Up to ``limit`` repositories as "namespace/name" (MSR pages the list; one page is enough to know
        whether there are any)."""
        data = self._get("/api/v0/repositories?pageSize=%d" % limit)
        repos = data.get("repositories")
        if not isinstance(repos, list):
            raise MsrError("MSR %s GET /api/v0/repositories returned no repositories list" % self.url)
        return ["%s/%s" % (r.get("namespace"), r.get("name")) for r in repos[:limit] if isinstance(r, dict)]


def error_text(data, raw):
    """' CODE: message' from MSR's {"errors": [{"code", "message"}]}, else ': <raw text>'."""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        parts = []
        for e in errors:
            e = e if isinstance(e, dict) else {"message": str(e)}
            parts.append(": ".join(str(x) for x in (e.get("code"), e.get("message")) if x))
        return " " + "; ".join(parts)
    text = " ".join((raw or "").split())[:300]
    return (": " + text) if text else ""


def parse_cluster_status(doc):
    """replica_health and the current issues, from either the top level or rethink_system_tables."""
    health = doc.get("replica_health") or {}
    issues = doc.get("current_issues")
    if issues is None:
        issues = (doc.get("rethink_system_tables") or {}).get("current_issues") or []
    return {
        "replica_health": dict((str(k), v) for k, v in health.items()),
        "current_issues": [i if isinstance(i, dict) else {"description": str(i)} for i in issues],
        "replica_timestamp": doc.get("replica_timestamp") or {},
    }


def parse_storage(doc):
    """{"driver": name or None, "drivers": [...]}: the driver is the one non-option key of "storage"."""
    storage = doc.get("storage")
    if not isinstance(storage, dict):
        return {"driver": None, "drivers": []}
    drivers = sorted(k for k in storage if k not in STORAGE_OPTION_KEYS)
    return {"driver": drivers[0] if len(drivers) == 1 else None, "drivers": drivers}
