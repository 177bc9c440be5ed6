# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the reliability suite (test_rel_*.py): the MSR API, repositories written before a scenario and
looked for on every replica after it, and the report (docs/reliability.md) each scenario adds a row to.

Rows go to docs/reliability.json keyed by scenario, so a partial run updates only what it ran; at the end of
the session (conftest.py, on the xdist controller) docs/reliability.md is rendered from that file.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import json
import ssl
import urllib.error
import urllib.request

from msrint import ROOT

REPORT_JSON = ROOT / "docs" / "reliability.json"
REPORT_MD = ROOT / "docs" / "reliability.md"
SECTIONS = ("Traffic", "Nothing lost", "Faults", "Bad inputs", "Secrets")


def admin_auth(lab):
    """The Authorization header of the MKE admin (MSR takes MKE's credentials as basic auth)."""
    token = base64.b64encode(("%s:%s" % (lab.vars["msr_mke_username"], lab.password)).encode()).decode()
    return {"Authorization": "Basic " + token}


def msr_api(lab, method, path, body=None, node="worker1", timeout=10):
    """(status, JSON) of one MSR API call on the replica of ``node`` (or an address), as the MKE admin,
    verified with MSR's own CA."""
    ctx = ssl.create_default_context(cadata=lab.vars["msr_ca"])
    host = lab.hosts.get(node, node)
    req = urllib.request.Request("https://%s%s" % (host, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers=dict(admin_auth(lab), **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def write_repos(lab, prefix, count=10, node="worker1"):
    """Create ``count`` repositories admin/<prefix>-<i> through one replica; returns their full names."""
    names = []
    for i in range(count):
        name = "%s-%02d" % (prefix, i)
        status, doc = msr_api(lab, "POST", "/api/v0/repositories/admin",
                              {"name": name, "visibility": "private", "shortDescription": "written by %s" % prefix},
                              node=node)
        assert status == 201, (name, status, doc)
        names.append("admin/" + name)
    return names


def repos_on(lab, node):
    """The repository names one replica serves (GET /api/v0/repositories on that replica's node)."""
    status, doc = msr_api(lab, "GET", "/api/v0/repositories", node=node)
    assert status == 200, (node, status, doc)
    return sorted("%s/%s" % (r["namespace"], r["name"]) for r in doc["repositories"])


def repos_everywhere(lab):
    """{node: [repository names]} read on the replica of every node that runs one."""
    return {r["node"]: repos_on(lab, r["node"]) for r in lab.replicas().values()}


def assert_kept(lab, names):
    """Every one of ``names`` is served by every replica; returns how many replicas were read."""
    seen = repos_everywhere(lab)
    assert seen, "no replica to read"
    for node, have in seen.items():
        missing = sorted(set(names) - set(have))
        assert not missing, "replica on %s lost %s" % (node, missing)
    return len(seen)


def record(section, scenario, tried, happened, survived, **figures):
    """One row of docs/reliability.md. ``figures``: e.g. sent=, failed=, repos_before=, repos_after=."""
    assert section in SECTIONS, section
    row = {"section": section, "scenario": scenario, "tried": tried, "happened": happened, "survived": survived,
           "figures": figures, "date": datetime.date.today().isoformat()}
    REPORT_JSON.parent.mkdir(exist_ok=True)
    with open(REPORT_JSON.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # xdist workers record at the same time
        rows = json.loads(REPORT_JSON.read_text()) if REPORT_JSON.exists() else {}
        rows[scenario] = row
        REPORT_JSON.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _figures(fig):
    return ", ".join("%s %s" % (k.replace("_", " "), v) for k, v in fig.items()) or "-"


def render():
    """docs/reliability.md from docs/reliability.json."""
    if not REPORT_JSON.exists():
        return
    rows = json.loads(REPORT_JSON.read_text())
    out = ["# Reliability and security report", "",
           "Written by the reliability suite (`tests/integration/test_rel_*.py`, part of `make test`) from",
           "`docs/reliability.json`; each row is what one scenario tried on the lab, what happened, and what survived.",
           "Traffic is HTTPS through the lab's load balancers from the test process; repositories are written and",
           "read through the MSR API of every replica.", ""]
    for section in SECTIONS:
        mine = sorted((r for r in rows.values() if r["section"] == section), key=lambda r: r["scenario"])
        if not mine:
            continue
        out += ["## %s" % section, "", "| Scenario | Tried | What happened | What survived | Figures | Run |",
                "|---|---|---|---|---|---|"]
        out += ["| %s | %s | %s | %s | %s | %s |" % tuple(_cell(x) for x in (
            r["scenario"], r["tried"], r["happened"], r["survived"], _figures(r["figures"]), r["date"]))
            for r in mine]
        out.append("")
    REPORT_MD.write_text("\n".join(out))
