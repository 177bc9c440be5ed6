# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bin/msr-reconcile without a lab: command line, lock, exit codes, report, with a stand-in ansible-playbook."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_loader = importlib.machinery.SourceFileLoader("msr_reconcile", os.path.join(ROOT, "bin", "msr-reconcile"))
_spec = importlib.util.spec_from_loader("msr_reconcile", _loader)
mr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mr)

FAKE = textwrap.dedent("""\
    #!%s
    # Stands in for ansible-playbook: writes the report named by the last -e JSON, as the playbook does.
    import json, os, sys
    args = sys.argv[1:]
    ours = json.loads(args[len(args) - 1 - args[::-1].index("-e") + 1])
    with open(os.environ["FAKE_ARGV"], "w") as f:
        json.dump(args, f)
    if os.environ.get("FAKE_LOG"):
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(json.dumps(ours) + "\\n")
    cluster = ours.get("msr_cluster", "")
    status = os.environ.get("FAKE_STATUS_" + cluster, os.environ.get("FAKE_STATUS", "in_sync"))
    if os.environ.get("FAKE_HANG") == cluster:
        import time
        time.sleep(30)
    if status != "none":
        with open(ours["msr_reconcile_report"], "w") as f:
            json.dump({"status": status, "drift": [{"kind": "version", "message": "m", "fixable": False}]
                       if status == "drift" else [], "drift_found": [], "refusals": [],
                       "error": "quorum is lost" if status == "error" else None,
                       "started_at": "2026-01-01T00:00:00Z", "duration_s": 1.5,
                       "remediated": ours["msr_remediate"]}, f)
    print("PLAY RECAP")
    sys.exit(int(os.environ.get("FAKE_RC_" + cluster, os.environ.get("FAKE_RC", "0"))))
    """) % sys.executable


@pytest.fixture
def fake(tmp_path, monkeypatch):
    path = tmp_path / "ansible-playbook"
    path.write_text(FAKE)
    path.chmod(0o755)
    monkeypatch.setenv("FAKE_ARGV", str(tmp_path / "argv.json"))
    return path


def call(fake, tmp_path, *args):
    out, err = io.StringIO(), io.StringIO()
    code = mr.run(["--ansible-playbook", str(fake), "--lock", str(tmp_path / "lock"), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_build_command_puts_the_wrappers_vars_last_and_no_secret():
    args = mr.parse_args(["-i", "a.yml", "-i", "b.yml", "--remediate", "--check", "-e", "msr_version=2.9.16"])
    argv = mr.build_command(args, "/tmp/r.json")
    assert argv[:6] == ["ansible-playbook", "-i", "a.yml", "-i", "b.yml", "msr.replicas.reconcile"]
    assert "--check" in argv and argv[-4:-2] == ["-e", "msr_version=2.9.16"]
    assert json.loads(argv[-1]) == {"msr_reconcile_report": "/tmp/r.json", "msr_remediate": True}
    assert json.loads(mr.build_command(mr.parse_args(["--allow-scale-down"]), "r")[-1])["msr_allow_scale_down"]


@pytest.mark.parametrize("value, refused", [
    ("msr_mke_password=x", True), ('{"msr_mke_password": "x"}', True), ("msr_dtr_key=x", True),
    ("api_token=x", True), ("@vault.yml", False), ("msr_version=2.9.16", False), ("msr_allow_even=true", False),
])
def test_inline_secrets_are_refused(value, refused):
    assert bool(mr.secret_extra_vars([value])) is refused


@pytest.mark.parametrize("report, rc, code", [
    ({"status": "in_sync"}, 0, 0), ({"status": "converged"}, 0, 0), ({"status": "drift"}, 0, 1),
    ({"status": "error"}, 2, 2), ({"status": "error"}, 0, 2), ({"status": "in_sync"}, 2, 2),
    ({"status": "weird"}, 0, 2), (None, 0, 2), (None, 2, 2),
])
def test_exit_code(report, rc, code):
    assert mr.exit_code(report, rc) == code


@pytest.mark.parametrize("status, rc, code", [("in_sync", 0, 0), ("converged", 0, 0), ("drift", 0, 1),
                                              ("error", 2, 2), ("none", 2, 2), ("none", 0, 2)])
def test_run_maps_the_report_to_the_exit_code(fake, tmp_path, monkeypatch, status, rc, code):
    monkeypatch.setenv("FAKE_STATUS", status)
    monkeypatch.setenv("FAKE_RC", str(rc))
    report = tmp_path / "out" / "report.json"
    report.parent.mkdir()
    got, out, _err = call(fake, tmp_path, "--report", str(report))
    assert got == code
    assert out.startswith("msr-reconcile: ")
    if status == "none":
        assert not report.exists() and "wrote no report" in out and "PLAY RECAP" in out
        return
    data = json.loads(report.read_text())
    assert data["status"] == status and data["exit_code"] == code and data["playbook_rc"] == rc
    assert data["started_at"] == "2026-01-01T00:00:00Z" and data["duration_s"] == 1.5   # the playbook's kept
    assert data["wrapper_duration_s"] >= 0
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    if status == "error":
        assert "error: quorum is lost" in out
    if status == "drift":
        assert "version (not fixable here): m" in out


def test_run_passes_remediate_and_refuses_inline_secrets(fake, tmp_path):
    code = call(fake, tmp_path, "--remediate", "-i", "inv.yml")[0]
    assert code == 0
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert json.loads(argv[-1])["msr_remediate"] is True and argv[:2] == ["-i", "inv.yml"]
    code, out, err = call(fake, tmp_path, "-e", "msr_mke_password=hunter2")
    assert code == 2 and "hunter2" not in out + err and "secrets" in err


def test_lock_held_exits_3_at_once_and_a_killed_holder_leaves_it_free(fake, tmp_path):
    lock = tmp_path / "lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, os, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
        """), str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        code, out, err = call(fake, tmp_path)
        assert code == 3 and time.monotonic() - started < 2
        assert err.strip() == "msr-reconcile: another run holds the lock %s; exiting" % lock
        assert not (tmp_path / "argv.json").exists()     # the playbook never ran
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, _out, _err = call(fake, tmp_path)
    assert code == 0
    fd = mr.acquire_lock(str(lock))
    assert fd is not None and mr.acquire_lock(str(lock)) is None     # flock is per open file
    os.close(fd)


def test_summary_and_default_lock():
    lines = mr.summary({"status": "drift", "drift_found": [1, 2], "drift": [
        {"kind": "lb_missing", "fixable": True, "message": "worker1 missing from lb1"}], "duration_s": 3,
        "remediated": True}, 1, "/r.json")
    assert lines[0] == "msr-reconcile: drift (exit 1): status drift, 2 drift(s) found, 1 left, remediated, 3 s, report /r.json"
    assert lines[1] == "  lb_missing: worker1 missing from lb1"
    assert mr.default_lock().endswith(".lock")


INVENTORY = textwrap.dedent("""\
    #!%s
    # Stands in for ansible-inventory --list --export: the all group's vars from FAKE_INVENTORY_VARS.
    import json, os, sys
    assert sys.argv[1:3] == ["--list", "--export"], sys.argv
    print(json.dumps({"all": {"children": ["ungrouped"], "vars": json.loads(os.environ["FAKE_INVENTORY_VARS"])}}))
    """) % sys.executable


def runs(tmp_path):
    return [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]


def test_each_cluster_runs_in_turn_with_its_own_report_and_the_worst_exit(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_STATUS_build", "drift")
    report = str(tmp_path / "reconcile-{cluster}.json")
    code, out, err = call(fake, tmp_path, "--cluster", "prod,build", "--cluster", "prod", "--report", report)
    assert code == mr.EXIT_DRIFT, (out, err)
    assert [r["msr_cluster"] for r in runs(tmp_path)] == ["prod", "build"]
    assert len({r["msr_reconcile_report"] for r in runs(tmp_path)}) == 2      # a scratch file each
    prod = json.loads((tmp_path / "reconcile-prod.json").read_text())
    build = json.loads((tmp_path / "reconcile-build.json").read_text())
    assert (prod["cluster"], prod["status"], prod["exit_code"]) == ("prod", "in_sync", 0)
    assert (build["cluster"], build["status"], build["exit_code"]) == ("build", "drift", 1)
    lines = out.splitlines()
    assert lines[0].startswith("msr-reconcile prod: ok (exit 0)") and lines[1].startswith("msr-reconcile build: drift")
    assert lines[-1] == "msr-reconcile: 2 clusters, exit 1: prod ok, build drift"


def test_a_failed_or_hung_cluster_does_not_stop_the_next(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_STATUS_prod", "none")          # the playbook died before writing its report
    monkeypatch.setenv("FAKE_RC_prod", "2")
    monkeypatch.setenv("FAKE_HANG", "qa")
    report = str(tmp_path / "r-{cluster}.json")
    code, out, err = call(fake, tmp_path, "--cluster", "prod,qa,build", "--report", report, "--timeout", "3")
    assert code == mr.EXIT_ERROR
    assert [r["msr_cluster"] for r in runs(tmp_path)] == ["prod", "qa", "build"]
    assert json.loads((tmp_path / "r-build.json").read_text())["status"] == "in_sync"
    assert not (tmp_path / "r-prod.json").exists() and not (tmp_path / "r-qa.json").exists()
    assert "msr-reconcile prod: error (exit 2): the playbook wrote no report" in out
    assert "ran longer than --timeout 3 s" in err
    assert out.splitlines()[-1] == "msr-reconcile: 3 clusters, exit 2: prod error, qa error, build ok"


def test_all_reads_the_clusters_from_the_inventory(fake, tmp_path, monkeypatch):
    inventory = tmp_path / "ansible-inventory"
    inventory.write_text(INVENTORY)
    inventory.chmod(0o755)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_INVENTORY_VARS", json.dumps({"msr_clusters": ["build", "prod"], "msr_version": "2.9"}))
    code, out, err = call(fake, tmp_path, "--cluster", "all")       # ansible-inventory next to ansible-playbook
    assert code == 0, (out, err)
    assert [r["msr_cluster"] for r in runs(tmp_path)] == ["build", "prod"]
    monkeypatch.setenv("FAKE_INVENTORY_VARS", json.dumps({"msr_version": "2.9"}))
    code, out, err = call(fake, tmp_path, "--cluster", "all")
    assert code == mr.EXIT_ERROR and "sets no msr_clusters" in err and len(runs(tmp_path)) == 2


def test_several_clusters_need_a_report_name_per_cluster(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log"))
    code, out, err = call(fake, tmp_path, "--cluster", "prod,build", "--report", str(tmp_path / "r.json"))
    assert code == mr.EXIT_ERROR and "--report must hold {cluster}" in err
    assert not (tmp_path / "log").exists()                 # refused before any playbook ran
    code, out, err = call(fake, tmp_path, "--cluster", "prod", "--report", str(tmp_path / "r.json"))
    assert code == 0 and json.loads((tmp_path / "r.json").read_text())["cluster"] == "prod"
