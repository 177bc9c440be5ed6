# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reconcile playbook through bin/msr-reconcile on the lab: every drift found, report mode changes
nothing (exit 1), remediation fixes what it may (exit 0, then changed=0) and reports the rest (exit 1),
quorum loss is an error (exit 2) with the explanation in the report, the lock (exit 3) dies with its
holder, and the MKE password shows nowhere."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from msr_lab.lb.haproxy import haproxy_cmd
from pools import runtime

from msrint import BIN, ROOT, STATE_DIR

pytestmark = pytest.mark.timeout(420)

WRAPPER = str(ROOT / "bin" / "msr-reconcile")
HAPROXY_LBS = ("lb1", "lb2")
PARTIAL = "0123456789ab"
REPORT_KEYS = {"in_sync", "actions", "blocked_actions", "refusals", "warnings", "drift", "quorum", "replicas",
               "lb_pools", "remediated", "started_at", "duration_s", "status"}


def wrapper_argv(lab, *args, inventory=None):
    return [WRAPPER, "--ansible-playbook", str(BIN / "ansible-playbook"), "-i", str(inventory or lab.inventory),
            "--lock", str(lab.workdir / "reconcile.lock"), *args]


def reconcile(lab, *args, inventory=None, timeout=300, env=None):
    """Run the wrapper (``env``: more environment); returns (exit code, output, report)."""
    report = lab.workdir / "reconcile-report.json"
    if report.exists():
        report.unlink()
    if "--remediate" in args:
        lab.touched()
    proc = subprocess.run(wrapper_argv(lab, "--report", str(report), *args, inventory=inventory),
                          env=lab.ansible_env(**(env or {})), capture_output=True, text=True, timeout=timeout,
                          cwd=str(lab.workdir))
    out = proc.stdout + proc.stderr
    data = json.loads(report.read_text()) if report.exists() else None
    if data is not None:
        assert oct(report.stat().st_mode & 0o777) == "0o600"
        assert REPORT_KEYS <= set(data), sorted(data)
        assert lab.password not in report.read_text()
    assert lab.password not in out
    return proc.returncode, out, data


def lb_state(lab):
    """What reconcile must leave alone: the LB config files and HAProxy's runtime membership and MAINT flags."""
    out = {}
    for lb, path in (("lb1", "/etc/haproxy/haproxy.cfg"), ("lb2", "/etc/haproxy/haproxy.cfg"),
                     ("lb3", "/etc/nginx/nginx.conf")):
        out[lb] = {"file": lab.ssh(lb, "cat %s" % path).stdout}
        if lb in HAPROXY_LBS:
            out[lb]["runtime"] = {b: {n: s == "MAINT" for n, s in v.items()} for b, v in runtime(lb).items()}
    return out


def cluster_state(lab):
    return ({rid: r["node"] for rid, r in lab.replicas().items()}, lab.containers("worker4"))


def kinds(report):
    return sorted((d["kind"], d.get("lb_host") or d.get("node") or d.get("replica_id")) for d in report["drift"])


def wait_runtime(lb, name, timeout=20):
    deadline = time.time() + timeout
    while not any(name in servers for servers in runtime(lb).values()):
        assert time.time() < deadline, "%s never in the runtime of %s" % (name, lb)
        time.sleep(0.3)


def inject_fixable_drift(lab):
    # A ghost on worker3 (the pools still hold it), a partial join on worker4 (containers, no member),
    # worker1 forced out of lb2 through the runtime API, and a server on lb1 that runs no replica.
    lab.fault("ghost", "worker3")
    lab.ssh("worker4", "docker create --name dtr-rethinkdb-%s mirantis/dtr:2.9.16" % PARTIAL)
    for backend in ("msr_http", "msr_https"):
        haproxy_cmd(STATE_DIR, "lb2", "set server %s/worker1 state maint" % backend)
    lab.ssh("lb1", r"sed -i '/^\s*server worker1 .*:80 /a\    server bogus %s:80 check' "
                   "/etc/haproxy/haproxy.cfg && service haproxy reload" % lab.hosts["worker5"])
    wait_runtime("lb1", "bogus")


def test_report_then_remediate_then_in_sync_and_unfixable_drift_left(lab):
    lab.fresh(replicas=3)
    ghost = lab.replica_on("worker3")["id"]
    inject_fixable_drift(lab)
    before_cluster, before_lb = cluster_state(lab), lb_state(lab)

    started = time.time()
    code, out, report = reconcile(lab)
    report_s = time.time() - started
    assert code == 1, out
    assert report["status"] == "drift" and not report["in_sync"] and not report["remediated"]
    found = kinds(report)
    ghost_kind = [d["kind"] for d in report["drift"] if d.get("replica_id") == ghost]
    assert ghost_kind and ghost_kind[0] in ("ghost", "unreachable"), report["drift"]   # MKE's heartbeat decides
    for expected in [("partial_join", "worker4"), ("missing_replica", "worker3"), ("lb_missing", "lb2"),
                     ("lb_extra", "lb1")]:
        assert expected in found, found
    assert any(d["kind"] == "lb_extra" and d["lb_host"] == "lb1" and d["node"] == "bogus" for d in report["drift"])
    assert [a["action"] for a in report["actions"]][:3] == ["destroy", "remove", "join"], report["actions"]
    assert report["lb_pools"]["lb2"] == ["worker2", "worker3"]
    assert out.startswith("msr-reconcile: drift (exit 1): status drift"), out
    # Report mode changed nothing: cluster, partial join's containers, pools (files and runtime).
    assert cluster_state(lab) == before_cluster and lb_state(lab) == before_lb

    started = time.time()
    # The role's backups before each change are test_roles' business; here they would only add time.
    code, out, report = reconcile(lab, "--remediate", "-v", "-e", "msr_backup_before_change=false")
    remediate_s = time.time() - started
    assert code == 0, out
    assert report["status"] == "converged" and report["in_sync"] and report["remediated"], report
    assert report["drift"] == [] and len(report["drift_found"]) >= 5
    reps = lab.replicas()
    assert sorted(r["node"] for r in reps.values()) == ["worker1", "worker2", "worker3"]
    assert ghost not in reps and all(r["health"] == "OK" for r in reps.values())
    assert [c for c in lab.containers("worker4") if PARTIAL in c] == []
    for lb in HAPROXY_LBS:
        pools = runtime(lb)
        assert {b: sorted(v) for b, v in pools.items()} == {b: ["worker1", "worker2", "worker3"] for b in pools}, pools
        assert "MAINT" not in json.dumps(pools)
        assert "bogus" not in lab.ssh(lb, "cat /etc/haproxy/haproxy.cfg").stdout
    assert report["lb_pools"] == {lb: ["worker1", "worker2", "worker3"] for lb in ("lb1", "lb2", "lb3")}

    # In sync now: the playbook itself reports changed=0, and the wrapper exits 0.
    run = lab.run("msr.replicas.reconcile", touches=False)
    assert run.rc == 0, run.output
    recap = [ln for ln in run.stdout.splitlines() if ln.startswith("localhost")][-1]
    assert "changed=0" in recap and "failed=0" in recap, recap
    assert "MSR reconcile: IN SYNC" in run.stdout and lab.password not in run.stdout

    # Sizing advice in the report: the observed s3 storage and count filled in, the user's needs given.
    sizing = {"failures": 1, "scans": 4, "peak_pulls": 5000}
    code, out, report = reconcile(lab, "-e", json.dumps({"msr_sizing": sizing}))
    assert code == 0 and report["status"] == "in_sync", out
    advice = report["sizing"]
    assert (advice["replicas"], advice["driven_by"], advice["current"], advice["change"]) == (5, "scans", 3, 2), advice
    assert [b["need"] for b in advice["by"]] == ["failures", "scans", "peak_pulls"]
    assert "with s3 storage MSR redirects layer pulls to the backing store" in advice["by"][2]["reason"], advice
    code, out, report = reconcile(lab, "-e", json.dumps({"msr_sizing": {"scans": "several"}}))
    assert code == 2 and report["status"] == "error" and "msr_sizing: scans must be a whole number" in report["error"]

    # Unfixable: another version, and worker3 outside a smaller msr group (no scale-down without the flag).
    inv = yaml.safe_load(lab.inventory.read_text())
    inv["all"]["children"]["msr"]["hosts"].pop("worker3")
    small = lab.workdir / "inventory-small.yml"
    small.write_text(yaml.safe_dump(inv))
    before = cluster_state(lab)
    code, out, report = reconcile(lab, "--remediate", "-e", "msr_version=2.9.15", inventory=small)
    assert code == 1, out
    assert report["status"] == "drift" and report["actions"] == [] and not report["remediated"]
    assert {d["kind"] for d in report["drift"]} == {"version", "outside_desired"}
    assert not any(d["fixable"] for d in report["drift"])
    assert any("upgrade" in d["message"] for d in report["drift"] if d["kind"] == "version")
    assert any("msr_allow_scale_down" in w for w in report["warnings"] + [d["message"] for d in report["drift"]])
    assert cluster_state(lab) == before
    print("reconcile report run %.1f s, remediation run %.1f s" % (report_s, remediate_s))


def test_local_storage_lock_and_quorum_loss(lab):
    lab.fresh(replicas=3, options=("--storage", "filesystem"))
    lab.fault("stop-replica", "worker2")
    stopped = lab.replica_on("worker2")["id"]
    before, before_lb = cluster_state(lab), lb_state(lab)
    # --check with --remediate: the role predicts in check mode, nothing changes, the drift stays (exit 1).
    code, out, report = reconcile(lab, "--check", "--remediate", "-v")
    assert code == 1, out
    assert report["status"] == "drift" and not report["remediated"]
    assert "remove the replica" in out.lower() or "Remove the replica" in out
    found = kinds(report)
    assert ("unhealthy", "worker2") in found and ("missing_replica", "worker2") in found, found
    assert ("lb_unhealthy", "lb1") in found, found
    local = [d for d in report["drift"] if d["kind"] == "local_storage"]
    assert len(local) == 1 and not local[0]["fixable"] and "local_storage" in out
    assert [(a["action"], a.get("node")) for a in report["actions"] if a["action"] in ("remove", "join")] == [
        ("remove", "worker2"), ("join", "worker2")]
    assert report["actions"][[a["action"] for a in report["actions"]].index("remove")]["replica_id"] == stopped
    assert cluster_state(lab) == before and lb_state(lab) == before_lb

    # A bad variable is refused first, naming it.
    run = lab.run("msr.replicas.reconcile", extra_vars={"msr_remediate": "maybe"}, touches=False)
    assert run.rc != 0
    failed = [r for r in run.records if r["status"] == "failed"]
    assert [r["task"] for r in failed] == ["Refuse bad variables"], failed
    assert "msr_remediate must be true or false" in failed[0]["result"]["msg"]

    # While one run holds the lock, another exits 3 at once; SIGKILL of the holder frees it.
    lock = lab.workdir / "reconcile.lock"
    holder = subprocess.Popen(wrapper_argv(lab), env=lab.ansible_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, cwd=str(lab.workdir))
    try:
        deadline = time.time() + 10
        while not (lock.exists() and lock.read_text().strip() == str(holder.pid)):
            assert time.time() < deadline and holder.poll() is None, "the first run never took the lock"
            time.sleep(0.05)
        started = time.time()
        second = subprocess.run(wrapper_argv(lab), env=lab.ansible_env(), capture_output=True, text=True, timeout=30)
        assert second.returncode == 3 and time.time() - started < 3, second
        assert second.stderr.strip() == "msr-reconcile: another run holds the lock %s; exiting" % lock
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        fd = os.open(str(lock), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # free at once: raises if still held
        os.close(fd)
    finally:
        try:
            os.killpg(holder.pid, signal.SIGKILL)     # its ansible-playbook, orphaned by the SIGKILL
        except ProcessLookupError:
            pass

    lab.fault("quorum-loss")
    code, out, report = reconcile(lab, "--remediate")
    assert code == 2, out
    assert report["status"] == "error" and not report["remediated"] and report["actions"] == []
    assert report["drift"][0]["kind"] == "quorum_lost"
    assert "emergency" in report["error"].lower() and report["refusals"]
    assert "emergency" in out.lower()

    # MKE unreachable (every request 500): an error too, the report written with MKE's answer.
    lab.fault("mke-error", "500", "0")
    try:
        code, out, report = reconcile(lab)
    finally:
        lab.fault("clear")
    assert code == 2, out
    assert report["status"] == "error" and "MKE" in report["error"] and "HTTP 500" in report["error"]
