# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Sizing advice: the replica count from the failures to tolerate, the concurrent scans and the peak pull
load, after Mirantis' MSR 2.x reference architecture (seed 003). Pure. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# "in excess of 1400 concurrent pulls of 1 GB container images using NFS-backed storage with 3 replicas"
TESTED_PULLS, TESTED_REPLICAS = 1400, 3
HA_MINIMUM = 3
COMMIT_WARNING_ABOVE = 7
FILESYSTEM = ("filesystem", "nfs")
BLOB = ("s3", "azure", "gcs", "swift", "oss")
KEYS = ("failures", "scans", "peak_pulls", "storage", "current")


def odd_up(n):
    return n if n % 2 else n + 1


def _count(inputs, key):
    value = inputs.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not str(value).isdigit():
        raise ValueError("%s must be a whole number of 0 or more, got %r" % (key, value))
    return int(value)


def advise(inputs):
    """{replicas, tolerates, by: [{need, replicas, reason}], warnings, suggestions, current, change}."""
    unknown = sorted(set(inputs) - set(KEYS))
    if unknown:
        raise ValueError("unknown input %s (give %s)" % (", ".join(unknown), ", ".join(KEYS)))
    failures, scans, pulls = (_count(inputs, k) for k in ("failures", "scans", "peak_pulls"))
    storage = str(inputs.get("storage") or "").lower() or None
    if storage and storage not in FILESYSTEM + BLOB:
        raise ValueError("storage %r: give the MSR storage driver (%s)" % (storage, ", ".join(FILESYSTEM + BLOB)))
    by, suggestions, warnings = [], [], []

    n = max(HA_MINIMUM, 2 * failures + 1)
    by.append({"need": "failures", "replicas": n, "reason": (
        "%d replicas keep a majority of %d with %d failed (2 x %d + 1; 3 is the minimum for high availability, "
        "1 replica is for testing only)" % (n, n // 2 + 1, (n - 1) // 2, failures))})
    if scans:
        n = odd_up(scans)
        by.append({"need": "scans", "replicas": n, "reason": (
            "MSR runs at most one vulnerability scan per replica: %d concurrent scans need %d replicas%s"
            % (scans, scans, ", %d to stay odd" % n if n != scans else ""))})
    if pulls:
        per_replica = TESTED_PULLS / TESTED_REPLICAS
        if storage in BLOB:
            by.append({"need": "peak_pulls", "replicas": HA_MINIMUM, "reason": (
                "with %s storage MSR redirects layer pulls to the backing store, so %d concurrent pulls load the "
                "store, not the replicas" % (storage, pulls))})
            suggestions.append("size the %s store's read throughput for %d concurrent pulls" % (storage, pulls))
        else:
            need = odd_up(max(HA_MINIMUM, -(-pulls * TESTED_REPLICAS // TESTED_PULLS)))
            by.append({"need": "peak_pulls", "replicas": need, "reason": (
                "%d replicas on filesystem (NFS) storage served over %d concurrent 1 GB pulls in Mirantis' tests, "
                "about %d per replica: %d concurrent pulls need %d" % (TESTED_REPLICAS, TESTED_PULLS, per_replica,
                                                                       pulls, need))})
            if need > HA_MINIMUM:
                suggestions.append("for pull throughput, MSR caches near the pulling nodes are the alternative to "
                                   "more replicas; the NICs, the load balancer and the storage's IOPS are the usual "
                                   "bottlenecks first")
    top = max(by, key=lambda b: b["replicas"])
    n = top["replicas"]
    if n > COMMIT_WARNING_ABOVE:
        warnings.append("%d replicas is above %d: every metadata update (a push, a tag) commits to a larger quorum "
                        "and slower (already 5 and 7 commit slower than 3)" % (n, COMMIT_WARNING_ABOVE))
        if top["need"] == "scans":
            suggestions.append("for scan throughput, faster replica hosts are the alternative to more replicas")
    elif n > HA_MINIMUM:
        warnings.append("%d replicas commit metadata updates slower than 3 (a larger quorum)" % n)
    out = {"replicas": n, "tolerates": (n - 1) // 2, "majority": n // 2 + 1, "driven_by": top["need"], "by": by,
           "warnings": warnings, "suggestions": suggestions, "current": None, "change": None}
    if inputs.get("current") is not None:
        current = _count(inputs, "current")
        out.update(current=current, change=n - current)
    return out
