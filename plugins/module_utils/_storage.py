# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the storage module decides, without I/O: the wanted MSR storage section from the current one and
the options, what differs, masking of secrets, and the refusals. PRIVATE to this collection.

The storage section is the distribution ``storage`` configuration that
``/api/v0/admin/settings/registry/simple`` reads and replaces (msr2.md 2.5): one driver key plus the
driver-independent ``delete``, ``maintenance``, ``redirect`` and ``cache`` sections.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._msr import STORAGE_OPTION_KEYS

DRIVERS = ("filesystem", "s3", "azure", "gcs", "swift", "oss")
MASK = "********"
# MSR mounts its storage volume at /storage and stores that whatever a PUT says (msr2.md 2.5).
FILESYSTEM_ROOT = "/storage"
# The secret parameters of each driver (distribution's driver docs) ...
SECRET_KEYS = {
    "s3": ("secretkey", "sessiontoken"),
    "azure": ("accountkey",),
    "gcs": ("credentials",),
    "swift": ("password", "secretkey", "applicationcredentialsecret"),
    "oss": ("accesskeysecret",),
}
# ... and, for parameters this list does not know, names that say "secret".
SECRET_WORDS = ("secret", "password", "passwd", "token", "credential", "privatekey", "accountkey")


def is_secret(driver, key):
    """Whether parameter ``key`` of ``driver`` is a secret (any driver's, when ``driver`` is None)."""
    low = key.lower()
    known = SECRET_KEYS.get(driver, ()) if driver else [k for keys in SECRET_KEYS.values() for k in keys]
    return low in known or any(w in low for w in SECRET_WORDS)


def redacted(value):
    """A value MSR shows in place of a secret (asterisks): it cannot be compared or sent back."""
    if isinstance(value, dict):
        return any(redacted(v) for v in value.values())
    return isinstance(value, str) and value != "" and set(value) == {"*"}


def driver_of(storage):
    """The one driver key of a storage section, None when there is none."""
    keys = sorted(k for k in storage if k not in STORAGE_OPTION_KEYS)
    if len(keys) > 1:
        raise MsrError("MSR reports more than one storage driver (%s): set one with driver" % ", ".join(keys))
    return keys[0] if keys else None


def secret_values(storage):
    """Every secret value of a storage section (to keep them out of messages)."""
    driver = driver_of(storage)
    params = storage.get(driver) if driver else None
    found = []
    for key, value in (params or {}).items() if isinstance(params, dict) else ():
        if is_secret(driver, key):
            found.extend(leaves(value))
    return [v for v in found if v]


def leaves(value):
    """The scalar values inside ``value``, as text (what no_log masking needs)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in leaves(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


def mask(storage, secret_keys=(), changed_secrets=()):
    """A copy with every secret value (and those of ``secret_keys``) replaced by MASK, ``MASK (changed)``
    for the ones being changed."""
    out = copy.deepcopy(storage)
    driver = driver_of(storage)
    params = out.get(driver) if driver else None
    if isinstance(params, dict):
        for key in params:
            if (is_secret(driver, key) or key in secret_keys) and params[key] not in (None, ""):
                params[key] = MASK + (" (changed)" if key in changed_secrets else "")
    return out


def _norm(value):
    """What MSR means by a value: 5 and "5", true and "True" are the same setting."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.lower() if value.lower() in ("true", "false") else value
    if isinstance(value, dict):
        return dict((k, _norm(v)) for k, v in value.items() if v not in (None, ""))
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def _flat(storage):
    """{"s3.bucket": "x", "delete.enabled": "false", ...}: normalised, with MSR's defaults filled in
    (delete and read-only mode are off unless set; an empty value is no value)."""
    flat = {}
    for section, body in storage.items():
        if not isinstance(body, dict):
            flat[section] = _norm(body)
            continue
        driver_section = section not in STORAGE_OPTION_KEYS
        stack = [(section, body)]
        while stack:
            prefix, item = stack.pop()
            for key, value in item.items():
                path = "%s.%s" % (prefix, key)
                if isinstance(value, dict) and not driver_section:
                    stack.append((path, value))
                elif value not in (None, ""):
                    flat[path] = _norm(value)
    flat.setdefault("delete.enabled", "false")
    flat.setdefault("maintenance.readonly.enabled", "false")
    return flat


def plan(current, driver=None, options=None, secret_options=None, delete_enabled=None, readonly=None,
         update_secrets="always"):
    """The wanted storage section and what differs from ``current``.

    Options given are set (``None`` removes a parameter); parameters not given keep their current value
    unless the driver changes. Returns a dict: ``changed``, ``body`` (the full section to PUT, secrets
    included), ``changes`` (sorted names of what differs, never values), ``driver``, ``switch_from``
    (the current driver when it changes), ``unverified`` (secrets MSR redacts, so not compared),
    ``changed_secrets`` (secret parameters among the changes) and ``warnings``. Raises MsrError for what cannot be done.
    """
    options = options or {}
    secret_options = secret_options or {}
    both = sorted(set(options) & set(secret_options))
    if both:
        raise MsrError("%s given in both options and secret_options: give each parameter once" % ", ".join(both))
    current_driver = driver_of(current)
    driver = driver or current_driver
    if driver is None:
        raise MsrError("MSR has no storage driver set up: give driver (and its options)")
    warnings = []
    switch_from = current_driver if current_driver not in (None, driver) else None
    params = {} if switch_from else copy.deepcopy(current.get(driver) or {})
    for given in (options, secret_options):
        for key, value in given.items():
            if value is None:
                params.pop(key, None)
            elif key not in params or _norm(params[key]) != _norm(value):
                params[key] = value     # an equal value keeps MSR's spelling, so the diff shows no change
    if driver == "filesystem":
        root = params.get("rootdirectory")
        if root not in (None, "", FILESYSTEM_ROOT):
            warnings.append("MSR keeps filesystem storage in %s (where its volume is mounted): rootdirectory "
                            "%s is ignored" % (FILESYSTEM_ROOT, root))
        params["rootdirectory"] = FILESYSTEM_ROOT

    body = dict((k, copy.deepcopy(v)) for k, v in current.items() if k in STORAGE_OPTION_KEYS)
    body[driver] = params
    if delete_enabled is not None:
        body["delete"] = dict(body.get("delete") or {}, enabled=delete_enabled)
    if readonly is not None:
        maintenance = dict(body.get("maintenance") or {})
        maintenance["readonly"] = dict(maintenance.get("readonly") or {}, enabled=readonly)
        body["maintenance"] = maintenance

    before, after = _flat(current), _flat(body)
    secret_paths = dict(("%s.%s" % (driver, k), k) for k in params if is_secret(driver, k) or k in secret_options)
    changes, unverified = [], []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        key = secret_paths.get(path)
        if key is not None and not switch_from and redacted((current.get(driver) or {}).get(key)):
            unverified.append(key)
            if update_secrets != "always":
                continue
        changes.append(path)
    if switch_from:
        changes.insert(0, "driver")
    changed = bool(changes)
    if changed:
        missing = sorted(k for k in params if k not in secret_options and redacted(params[k]))
        if missing:
            raise MsrError("cannot change the %s storage settings without %s: MSR does not return %s, so give "
                           "%s in secret_options" % (driver, ", ".join(missing),
                                                     "it" if len(missing) == 1 else "them",
                                                     "it" if len(missing) == 1 else "them"))
    changed_secrets = sorted(secret_paths[p] for p in changes if p in secret_paths)
    return {"changed": changed, "body": body, "changes": changes, "driver": driver, "switch_from": switch_from,
            "unverified": sorted(unverified), "changed_secrets": changed_secrets, "warnings": warnings}


def switch_refusal(plan_result, repositories, force):
    """(error or None, warning or None) for a driver switch on a cluster whose ``repositories`` (names)
    are not empty: the images stay in the old storage, where MSR would no longer look."""
    old, new = plan_result["switch_from"], plan_result["driver"]
    if not old or not repositories:
        return None, None
    what = "%s %s%s" % ("repository" if len(repositories) == 1 else "repositories",
                        ", ".join(repositories[:3]), ", ..." if len(repositories) > 3 else "")
    if not force:
        return ("refusing to switch the storage driver from %s to %s: the cluster holds images (%s) that stay "
                "in the %s storage, where MSR no longer finds them; move them first, or set force: true"
                % (old, new, what, old)), None
    return None, ("switching the storage driver from %s to %s although the cluster holds images (%s): "
                  "force is true, and MSR no longer serves the images in the %s storage" % (old, new, what, old))


def scrub(text, secrets):
    """``text`` with every secret value in ``secrets`` replaced by MASK."""
    for value in sorted(set(s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def replica_for_storage(view):
    """The address to read and write the storage settings through: the one that answered cluster_status
    (a healthy replica first), once the cluster is known to have quorum. Writes need a healthy majority;
    without one MSR answers errors, so refuse before, with the reason, in check mode too."""
    if not view.get("status_available"):
        if not view.get("replicas"):
            raise MsrError("MKE shows no MSR replica (no dtr-rethinkdb-<id> container) and no msr_url answered: "
                           "is MSR installed?")
        errors = [i["message"] for i in view.get("issues") or [] if i.get("kind") == "no_cluster_status"]
        raise MsrError("cannot read the storage settings: %s" % (
            errors[0] if errors else "no MSR replica answered /api/v0/meta/cluster_status"))
    q = view.get("quorum") or {}
    if q.get("has_quorum") is not True:
        raise MsrError("cannot read or change the storage settings: only %s of %s MSR replicas are healthy and "
                       "%s are needed for quorum; without a healthy majority MSR can neither read nor write its "
                       "settings (restore quorum first, see the emergency-repair runbook)"
                       % (q.get("healthy"), q.get("size"), q.get("majority")))
    return view["observer"]


def shared_storage_warning(plan_result, view):
    """Filesystem storage is local to each replica unless its volume is shared (NFS, msr2.md 2.5)."""
    size = (view.get("quorum") or {}).get("size") or 0
    if plan_result["changed"] and plan_result["driver"] == "filesystem" and size > 1:
        return ["the filesystem storage driver with %d replicas: images pushed to one replica are not visible on "
                "the others unless their volume is shared (NFS)" % size]
    return []


def database_hint(text):
    """Why an MSR 5xx on a settings call happened, when its text says so (RethinkDB without a primary)."""
    if "Cannot perform write" in text or "Cannot perform read" in text:
        return (" (MSR could not use its database: the replica asked is not with a healthy majority of "
                "replicas; restore quorum first)")
    return ""
