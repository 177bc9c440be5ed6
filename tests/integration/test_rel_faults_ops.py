# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability, faults around operations (issue 10, point 3), through the playbooks and bin/msr-reconcile:
quorum lost, two reconcile runs at the same moment, an LB host down during a scale-down, and the controller
killed with SIGKILL mid-join and mid-remove. Each scenario: the run completes or fails with a clear message,
the cluster ends healthy or unchanged, no healthy replica is lost, a re-run converges, and the repositories
written before are on every replica after. One lab serves all (3 -> 5 -> 3 -> 5 -> 3 replicas)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import docker
import pytest
from pools import runtime
from reliability import assert_kept, record, write_repos
from test_reconcile import wrapper_argv
from test_roles import nodes_of, pools, recap_changed

from msrint import BIN, JOIN_SECONDS, STATE_DIR
from pbutil import settled_pools

pytestmark = pytest.mark.timeout(600)

THREE = ["worker1", "worker2", "worker3"]
FIVE = THREE + ["worker4", "worker5"]
# The role's backups before each change are test_roles' and the backup tests' business.
NO_BACKUP = {"msr_backup_before_change": False, "lb_pool_up_timeout": 20}
BOOTSTRAP_HOST = "manager1"      # the inventory's msr_bootstrap_host: where the bootstrappers run


def reconcile_report(lab, name, *args, inventory=None):
    """(argv, report path) of one bin/msr-reconcile run with its own report file."""
    report = lab.workdir / ("%s.json" % name)
    if report.exists():
        report.unlink()
    return wrapper_argv(lab, "--report", str(report), *args, inventory=inventory), report


def bootstrappers(lab):
    """{name: status} of the collection's bootstrapper containers on the bootstrap host (the node's own docker)."""
    out = lab.ssh(BOOTSTRAP_HOST, "docker ps -a --filter label=com.msr.replicas.command "
                                  "--format '{{.Names}}\t{{.State}}'").stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _children():
    kids = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(pid))
    return kids


def kill_controller(proc):
    """SIGKILL the controller as a crash would: ansible-playbook's process group and every process under it.
    ansible-core runs each worker in a session of its own (setsid), so killing the group alone would leave the
    worker running the module to its end; everything is stopped first so nothing forks while it is killed."""
    stopped = set()
    while True:
        kids, todo, found = _children(), [proc.pid], set()
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo += kids.get(pid, [])
        new = found - stopped
        if not new:
            break
        for pid in new:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped |= new
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    return len(stopped)


def start_playbook(lab, name, inventory, extra_vars):
    args = [str(BIN / "ansible-playbook"), "-i", str(inventory), "msr.replicas.%s" % name, "-e", json.dumps(extra_vars)]
    lab.touched()
    log = open(lab.workdir / ("killed-%s.log" % name), "w")
    try:
        return subprocess.Popen(args, env=lab.ansible_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(lab.workdir))
    finally:
        log.close()


CLEANUP_TASK = "Remove the bootstrapper containers that killed runs left"


def kill_when_bootstrapper_runs(lab, proc, command, timeout=120):
    """Kill the controller once a ``command`` bootstrapper container runs on the bootstrap host; returns its name.

    Polled on the node's engine socket, not with docker over ssh: an ssh round trip on a loaded machine can take
    longer than a remove bootstrapper runs."""
    engine = docker.APIClient(base_url="unix://%s" % (STATE_DIR / "nodes" / BOOTSTRAP_HOST / "run" / "docker.sock"),
                              version="1.45")
    deadline = time.time() + timeout
    try:
        while True:
            listed = engine.containers(filters={"label": "com.msr.replicas.command=%s" % command, "status": "running"})
            running = [c["Names"][0].lstrip("/") for c in listed]
            running = [n for n in running if n.startswith("msr-replicas-%s-" % command)]
            if running:
                kill_controller(proc)
                return running[0]
            assert proc.poll() is None, "the run ended (rc %s) before a %s bootstrapper was seen" % (
                proc.returncode, command)
            assert time.time() < deadline, "no %s bootstrapper within %d s" % (command, timeout)
            time.sleep(0.05)
    finally:
        engine.close()
        if proc.poll() is None:
            kill_controller(proc)


def killed_program(lab, name):
    """The lab's record of the killed run's bootstrapper (events.log), for a failure message."""
    rid = name.rsplit("-", 1)[1]
    lines = (STATE_DIR / "events.log").read_text().splitlines() if (STATE_DIR / "events.log").exists() else []
    return [line for line in lines if rid in line][-5:]


def plant_leftover(lab, command):
    """An exited bootstrapper container on the bootstrap host, as a run killed after its start leaves it."""
    name = "msr-replicas-%s-0123456789ab" % command
    lab.ssh(BOOTSTRAP_HOST, "docker run --name %s --label com.msr.replicas.command=%s %s:%s help %s >/dev/null" % (
        name, command, lab.vars.get("msr_image", "mirantis/dtr"), lab.vars["msr_version"], command))
    assert bootstrappers(lab) == {name: "exited"}
    return name


def cleared_by(run):
    """The leftover bootstrapper containers a run removed, by the replica module or bootstrapper_cleanup."""
    return [c for r in run.records for c in (r["result"].get("cleared_bootstrappers") or [])
            + ((r["result"].get("removed") or []) if r["task"].endswith(CLEANUP_TASK) else [])]


def no_maint(lb):
    return {b: {n: s for n, s in v.items() if s != "UP"} for b, v in runtime(lb).items() if any(
        s != "UP" for s in v.values())}


def test_quorum_lost_then_two_reconcile_runs_at_once_then_lb_down_during_scale_down(lab):
    lab.fresh(replicas=3)
    repos = write_repos(lab, "fault-ops", count=6)
    inv5 = lab.inventory_with(FIVE)

    # -- quorum lost: the change playbook and reconcile refuse, pointing at emergency-repair; nothing changes.
    lab.fault("quorum-loss")
    before = lab.replicas()
    stopped = sorted(rid for rid, r in before.items() if r["state"] != "running")
    assert stopped, before
    run = lab.run("msr.replicas.scale_up", inventory=inv5, extra_vars=dict(NO_BACKUP, msr_preflight=False))
    out = " ".join(run.stdout.split())
    assert run.rc != 0 and "ansible-playbook msr.replicas.emergency_repair" in out, run.output
    assert lab.replicas() == before
    argv, report_path = reconcile_report(lab, "quorum", "--remediate", inventory=inv5)
    proc = subprocess.run(argv, env=lab.ansible_env(), capture_output=True, text=True, timeout=300)
    report = json.loads(report_path.read_text())
    assert proc.returncode == 2 and report["drift"][0]["kind"] == "quorum_lost", proc.stdout + proc.stderr
    assert "emergency" in report["error"].lower() and report["actions"] == []
    quorum_kind = report["drift"][0]["kind"]
    assert lab.replicas() == before
    for rid in stopped:
        lab.fault("start-replica", rid)
    lab.wait_healthy(timeout=60)
    kept = assert_kept(lab, repos)
    refusal = [line for line in run.stdout.splitlines() if "are needed" in line][:1]

    # -- two reconcile runs at the same moment, with drift to fix (worker4 and worker5 desired, no replica):
    # one takes the lock and joins both, the other exits 3 at once; then a third run finds nothing to do.
    runs = []
    for name in ("first", "second"):
        argv, report_path = reconcile_report(lab, name, "--remediate", "-e", "msr_backup_before_change=false",
                                             inventory=inv5)
        runs.append((argv, report_path))
    lab.touched()
    started = time.time()
    procs = [subprocess.Popen(argv, env=lab.ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=str(lab.workdir)) for argv, _r in runs]
    ended = {}
    while len(ended) < len(procs):
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = time.time() - started
        assert time.time() - started < 400, "the reconcile runs did not end"
        time.sleep(0.05)
    results = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=30)
        results.append((p.returncode, out, err, ended[i]))
    codes = sorted(r[0] for r in results)
    assert codes == [0, 3], results
    winner = [i for i, r in enumerate(results) if r[0] == 0][0]
    loser = 1 - winner
    assert results[loser][2].strip() == "msr-reconcile: another run holds the lock %s; exiting" % (
        lab.workdir / "reconcile.lock"), results[loser]
    assert not runs[loser][1].exists(), "the locked run wrote a report"
    report = json.loads(runs[winner][1].read_text())
    assert report["status"] == "converged" and report["remediated"], report
    joins = [d["node"] for d in report["drift_found"] if d["kind"] == "missing_replica"]
    assert sorted(joins) == ["worker4", "worker5"] and report["drift"] == [], report
    assert len(lab.replicas()) == 5 and nodes_of(lab) == FIVE and all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, FIVE)
    argv, report_path = reconcile_report(lab, "third", "--remediate", inventory=inv5)
    third = subprocess.run(argv, env=lab.ansible_env(), capture_output=True, text=True, timeout=300)
    again = json.loads(report_path.read_text())
    assert third.returncode == 0 and again["in_sync"] and again["actions"] == [], third.stdout
    kept_lock = assert_kept(lab, repos)
    record("Faults", "fault: quorum lost",
           "quorum-loss (%d of 3 replicas stopped), then scale_up to 5 and msr-reconcile --remediate" % len(stopped),
           "scale_up refused (%s, pointing at the emergency_repair playbook); reconcile exit %d, drift %s; nothing "
           "changed; after start-replica a reconcile run joined the two missing replicas"
           % (refusal[0].strip(" \"") if refusal else "quorum lost", proc.returncode, quorum_kind),
           "all 3 replicas, every repository on each; then 5 replicas", repos_before=len(repos),
           repos_after_on_each=len(repos), replicas_read=kept)
    record("Faults", "fault: two reconcile runs at once",
           "two bin/msr-reconcile --remediate started together, worker4 and worker5 missing",
           "one exit 0 (converged: joined %s, one replica each), the other exit %d after %.1f s: %s; the locked run "
           "wrote no report; a third run exit %d, in sync" % (
               ", ".join(sorted(joins)), results[loser][0], results[loser][3], results[loser][2].strip(),
               third.returncode),
           "5 healthy replicas, pools in step, every repository on each", repos_after_on_each=len(repos),
           replicas_read=kept_lock)

    # -- an LB host down during a scale-down: the run stops at that host, naming it, before any remove.
    lab.fault("lb-down", "lb2")
    down = dict(NO_BACKUP, msr_scale_down_nodes=["worker4", "worker5"], msr_skip_confirmation=True)
    try:
        before = lab.replicas()
        run = lab.run("msr.replicas.scale_down", inventory=inv5, extra_vars=dict(down, lb_pool_task_timeout=30),
                      timeout=300)
        assert run.rc != 0, run.output
        failed = [r for r in run.records if r["status"] in ("failed", "unreachable")]
        assert failed and failed[-1].get("delegated_to") == "lb2", (failed, run.output)
        message = " ".join(str(failed[-1]["result"].get("msg", "")).split())
        how = failed[-1]["status"]
        assert "lb2" in run.stdout, run.output
        assert lab.replicas() == before, "a replica was removed while lb2's pool still holds it"
        assert not [r for r in run.records if r["task"].endswith("Remove the replica") and r["status"] == "ok"]
    finally:
        lab.fault("lb-up", "lb2")
    lb1_after = pools(lab)["lb1"]
    run = lab.run("msr.replicas.scale_down", inventory=inv5, extra_vars=down, timeout=300)
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE and all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, THREE)
    assert no_maint("lb1") == {} and no_maint("lb2") == {}
    run = lab.run("msr.replicas.scale_down", inventory=lab.inventory_with(THREE), extra_vars=down)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    kept = assert_kept(lab, repos)
    record("Faults", "fault: LB host down during scale-down",
           "lb-down lb2, then scale_down worker4 and worker5 (5 -> 3)",
           "the run stopped, %s at lb2 (%s); worker4 drained from lb1 only (lb1 runtime %s), no replica "
           "removed; after lb-up the re-run removed both, then changed=0" % (how, message[:120], lb1_after["runtime"]),
           "3 healthy replicas, every LB pool in step, every repository on each", replicas_removed_while_lb_down=0,
           repos_after_on_each=len(repos), replicas_read=kept)


def test_controller_killed_mid_join_and_mid_remove(lab):
    lab.fresh(replicas=3)
    repos = write_repos(lab, "fault-kill", count=6)
    inv5 = lab.inventory_with(FIVE)

    # -- mid-join: the join's bootstrapper runs on the bootstrap host (a slow replication gives the window).
    lab.fault("slow-join", 6)
    try:
        proc = start_playbook(lab, "scale_up", inv5, NO_BACKUP)
        name = kill_when_bootstrapper_runs(lab, proc, "join")
        killed_id = name.rsplit("-", 1)[1]
        # As with a real engine, the container outlives its client: the join goes on.
        left = bootstrappers(lab)
        assert left.get(name) == "running", left
        run = lab.run("msr.replicas.scale_up", inventory=inv5, extra_vars=NO_BACKUP, timeout=400)
    finally:
        lab.fault("slow-join", JOIN_SECONDS)
    assert run.rc == 0, run.output
    reps = lab.replicas()
    assert nodes_of(lab) == FIVE and all(r["health"] == "OK" for r in reps.values()), reps
    assert reps.get(killed_id, {}).get("node") == "worker4", "the killed run's replica %s was not kept: %s\n%s\n%s" % (
        killed_id, reps, killed_program(lab, name), run.output[-6000:])
    cleared = cleared_by(run)
    assert [c for c in cleared if c.startswith(name + " ")], (cleared, run.output)
    assert bootstrappers(lab) == {}
    assert pools(lab) == settled_pools(lab, FIVE)
    run = lab.run("msr.replicas.scale_up", inventory=inv5, extra_vars=NO_BACKUP)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    kept = assert_kept(lab, repos)
    record("Faults", "fault: controller SIGKILL mid-join",
           "scale_up 3 -> 5, the controller (ansible-playbook and its workers) killed with SIGKILL while the join "
           "bootstrapper of worker4 ran",
           "the bootstrapper container kept running (as a real engine's does); the re-run waited for it, kept its "
           "replica %s, removed its exited container, joined worker5; a further run changed=0" % killed_id,
           "5 healthy replicas, pools in step, every repository on each", repos_after_on_each=len(repos),
           replicas_read=kept)

    # -- mid-remove: after the drain, while the remove bootstrapper runs (MKE latency stretches it).
    down = dict(NO_BACKUP, msr_scale_down_nodes=["worker4", "worker5"], msr_skip_confirmation=True)
    lab.fault("mke-latency", 300)
    try:
        proc = start_playbook(lab, "scale_down", inv5, down)
        name = kill_when_bootstrapper_runs(lab, proc, "remove")
        state_at_kill = {lb: no_maint(lb) for lb in ("lb1", "lb2")}
        after_kill = bootstrappers(lab).get(name)
    finally:
        lab.fault("mke-latency", 0)
    run = lab.run("msr.replicas.scale_down", inventory=inv5, extra_vars=down, timeout=400)
    assert run.rc == 0, run.output
    assert nodes_of(lab) == THREE and all(r["health"] == "OK" for r in lab.replicas().values())
    assert pools(lab) == settled_pools(lab, THREE)
    assert no_maint("lb1") == {} and no_maint("lb2") == {}
    # Whichever remove the kill caught, the re-run clears its container: through the next remove's bootstrapper
    # run, or, when the kill caught the last one and nothing is left to run, through bootstrapper_cleanup.
    cleared = cleared_by(run)
    assert [c for c in cleared if c.startswith(name + " ")], (name, cleared, run.output)
    assert bootstrappers(lab) == {}, cleared
    assert lab.containers("worker4") == [] and lab.containers("worker5") == []
    run = lab.run("msr.replicas.scale_down", inventory=lab.inventory_with(THREE), extra_vars=down)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
    kept = assert_kept(lab, repos)
    record("Faults", "fault: controller SIGKILL mid-remove",
           "scale_down 5 -> 3, the controller killed with SIGKILL while the remove bootstrapper ran (after the "
           "drain; HAProxy runtime then: %s)" % json.dumps(state_at_kill),
           "the remove bootstrapper %s was %s after the kill; the re-run removed the rest and cleared (%s); a "
           "further run changed=0" % (name, after_kill, ", ".join(cleared) or "nothing left to clear"),
           "3 healthy replicas, pools in step with no DRAIN or MAINT left, every repository on each",
           repos_after_on_each=len(repos), replicas_read=kept)

    # -- a killed run's exited container and nothing else to do (the kill above may catch either remove): check
    # mode predicts its removal, the run removes it and nothing else, the next run has nothing to do.
    planted = plant_leftover(lab, "remove")
    inv3 = lab.inventory_with(THREE)
    check = lab.run("msr.replicas.scale_down", inventory=inv3, extra_vars=down, check=True, touches=False)
    assert check.rc == 0 and recap_changed(check) == 1, check.output
    assert cleared_by(check) == [planted + " (remove, exit status 0)"], check.output
    assert bootstrappers(lab) == {planted: "exited"}
    run = lab.run("msr.replicas.scale_down", inventory=inv3, extra_vars=down)
    assert run.rc == 0 and recap_changed(run) == 1 and cleared_by(run) == [planted + " (remove, exit status 0)"], \
        run.output
    assert bootstrappers(lab) == {} and nodes_of(lab) == THREE
    run = lab.run("msr.replicas.scale_down", inventory=inv3, extra_vars=down)
    assert run.rc == 0 and recap_changed(run) == 0, run.output
