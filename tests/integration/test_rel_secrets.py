# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets (issue 10, point 5): during every playbook, run at -vvvv, the MKE password and the MSR certificate
key (msr_dtr_key) never appear in any process argv on any node or the controller, in the output, in the JSON
report, in any log file, or in a backup's file name; every backup is mode 0600 in a directory only its owner
reads.

One lab sequence: fresh MKE (no replica, admin scheduling on) -> preflight -> install worker1 with our own CA,
certificate and key (msr_dtr_ca/cert/key, in the inventory as a user would vault them) and S3 storage ->
scale_up to three -> backup -> replace a stopped replica -> scale_down one -> reconcile (remediation, with
msr_reconcile_report) -> quorum loss -> emergency_repair -> bin/msr-reconcile --report.

For each run, looked at:
- argv: argv.ArgvSampler over /proc/*/cmdline of every process on the machine (controller and every node),
  and argv.ContainerSampler over the bootstrap host's engine for the bootstrapper's container argv and log
  (the lab runs containers as programs inside its engine, not as processes);
- the output at -vvvv (stdout, stderr) and every task result (the msr_record callback's JSON);
- the JSON reports (msr_reconcile_report, msr-reconcile --report);
- logs: ANSIBLE_LOG_PATH, every *.log under the lab's state dir (daemon, node init, sshd), every node's
  /var/log (what a node wrote is its overlay's upper/var/log, the rest is the host's /var/log below it, read
  too), and the log of every container on every engine;
- the backup directory: names, modes.
Controls, so a pass means something: a canary argv on the controller and on manager1, a canary bootstrapper
container's argv and a canary line in a node's /var/log are caught by the same scans; every run shows
ansible-playbook on the controller and (when it reaches an engine) `docker system dial-stdio` on manager1;
the runs that start a bootstrapper are seen to; the Ansible log and the nodes' sshd logs grow during each run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import docker
import pytest
from reliability import record
from test_install_backup_repair import inventory, org_pki
from test_reconcile import wrapper_argv

from argv import ArgvSampler, ContainerSampler, net_ns_of
from msrint import STATE_DIR
from pbutil import ev

pytestmark = pytest.mark.timeout(600)

THREE = ["worker1", "worker2", "worker3"]
# A fresh MKE on which the install may schedule; short lab clocks (health reports, container start, MKE's
# heartbeat) only make the waits for a healthy replica or a node shown down shorter.
FRESH = ("--admin-scheduling", "on", "--health-period", "1", "--starting-seconds", "1", "--heartbeat-seconds", "3")
STORAGE = {"driver": "s3", "options": {"bucket": "secrets", "region": "eu-west-1"},
           "secret_options": {"accesskey": "AKIASECRETSAUDIT", "secretkey": "s3-Secret-of-the-secrets-audit"}}
BACKUP_NAME = re.compile(r"^dtr-metadata-2\.9\.16-backup-\d{8}-\d{2}_\d{2}_\d{2}\.tar$")
CANARY_LOG = "/var/log/msr-secrets-canary.log"


def log_files(ansible_log):
    """Every log file: Ansible's, the lab's (*.log under its state dir), every node's /var/log (its overlay's
    upper/var/log over the host's /var/log, which is also the controller's)."""
    found = {ansible_log}
    found.update(p for p in STATE_DIR.rglob("*.log") if p.is_file())
    found.update(p for p in STATE_DIR.glob("nodes/*/upper/var/log/**/*") if p.is_file())
    found.update(p for p in Path("/var/log").rglob("*") if p.is_file())
    return sorted(found)


def engine_logs():
    """{node/container: its log as the engine keeps it} on every node's engine."""
    out = {}
    for sock in sorted(STATE_DIR.glob("nodes/*/run/docker.sock")):
        client = docker.DockerClient(base_url="unix://%s" % sock, timeout=10)
        try:
            for c in client.containers.list(all=True):
                try:
                    out["%s/%s" % (sock.parts[-3], c.name)] = c.logs(stdout=True, stderr=True)
                except docker.errors.APIError:
                    pass                              # removed meanwhile
        finally:
            client.close()
    return out


class Audit:
    def __init__(self, lab, needles, backups):
        self.lab = lab
        self.needles = needles
        self.backups = backups
        self.ansible_log = lab.workdir / "ansible.log"
        self.engine = STATE_DIR / "nodes" / "manager1" / "run" / "docker.sock"
        self.host_net = os.readlink("/proc/self/ns/net")
        self.m1_net = net_ns_of("manager1")

    def env(self):
        return {"ANSIBLE_LOG_PATH": str(self.ansible_log)}

    def sizes(self):
        return {p: p.stat().st_size for p in log_files(self.ansible_log) if p.exists()}

    def scan(self, label, data, leaks):
        if isinstance(data, str):
            data = data.encode()
        for name, needle in self.needles.items():
            if name != "canary" and needle in data:
                leaks.append("%s in %s" % (name, label))
        return len(data)

    def step(self, playbook, run_fn, rc=0, uses_engine=True, bootstrapper=True, ssh=True, canary=False):
        """Run ``run_fn`` (returns (rc, stdout, {label: text to search}, detail)) while sampling; search
        everything, record the row, then assert: no leak, the controls, the run's exit code ``rc``."""
        before = self.sizes()
        argv, boots = ArgvSampler(self.needles), ContainerSampler(self.engine, self.needles)
        argv.start()
        boots.start()
        started = time.time()
        try:
            if canary:
                self.canaries()
            got_rc, stdout, texts, detail = run_fn()
        finally:
            argv.stop()
            boots.stop()
        elapsed = time.time() - started

        # The search: argv (processes, bootstrapper containers), output and reports, logs, backup names.
        leaks = ["%s in the argv of pid %s (%s)" % (name, pid, net) for name, hits in argv.hits.items()
                 if name != "canary" for pid, net, _cmd in hits]
        leaks += ["%s in the bootstrapper %s's %s" % (name, c, where) for name, hits in boots.hits.items()
                  if name != "canary" for c, where in hits]
        output_bytes = sum(self.scan("%s %s" % (playbook, label), text, leaks) for label, text in texts.items())
        after = self.sizes()
        grown = {p: after[p] - before.get(p, 0) for p in after if after[p] > before.get(p, 0)}
        log_bytes, canary_logged = 0, False
        for path in after:
            data = path.read_bytes()
            log_bytes += self.scan(str(path), data, leaks)
            canary_logged |= self.needles["canary"] in data and "upper/var/log" in str(path)
        container_bytes = sum(self.scan("the log of container %s" % name, log, leaks)
                              for name, log in engine_logs().items())
        backups = sorted(self.backups.iterdir()) if self.backups.exists() else []
        for f in backups:
            self.scan("the backup name %s" % f.name, f.name, leaks)

        started_boots = sorted(n.rsplit("-", 1)[0] for n in boots.containers if "canary" not in n)
        boot_log_bytes = sum(n for name, n in boots.log_bytes.items() if "canary" not in name)
        figures = dict(argv_reads=argv.processes_read, distinct_argv=len(argv.seen), bootstrappers=len(started_boots),
                       bootstrapper_log_bytes=boot_log_bytes, output_bytes=output_bytes, log_bytes_searched=log_bytes,
                       log_bytes_written=sum(grown.values()), container_log_bytes=container_bytes,
                       backups=len(backups), hits=len(leaks))
        record("Secrets", "secrets: %s" % playbook,
               "%s at -vvvv with the MKE password and msr_dtr_key in the inventory; argv of every process and "
               "bootstrapper sampled, output, report, logs and backup names searched" % playbook,
               "rc %s in %.0f s; %d argv scans; bootstrappers seen: %s" % (
                   got_rc, elapsed, argv.rounds, ", ".join(started_boots) or "none"),
               "LEAKED: " + "; ".join(leaks) if leaks else "no secret anywhere; %d backups, modes %s" % (
                   len(backups), ", ".join(sorted({"%o" % (f.stat().st_mode & 0o777) for f in backups})) or "-"),
               **figures)
        print("secrets: %s rc %s %.1f s %s" % (playbook, got_rc, elapsed, figures))
        assert not leaks, leaks

        # Controls: the samplers saw this run's processes and bootstrappers, -vvvv really verbose, the logs
        # really written; the canaries caught.
        host_cmds, m1_cmds = argv.commands_in(self.host_net), argv.commands_in(self.m1_net)
        assert any("ansible-playbook" in c for c in host_cmds), (playbook, host_cmds[:40])
        if uses_engine:
            assert any("docker system dial-stdio" in c for c in m1_cmds), (playbook, m1_cmds)
        if bootstrapper:
            assert started_boots, "%s: no bootstrapper container seen on manager1" % playbook
        if [n for n in started_boots if not n.endswith("-backup")]:      # backups keep no engine log
            assert boot_log_bytes > 0, "%s: the bootstrapper's log was never read: %s" % (playbook, boots.log_bytes)
        assert "Loading callback plugin default of type stdout" in stdout, stdout[-3000:]   # -vvvv: verbose indeed
        assert grown.get(self.ansible_log, 0) > 0, "ANSIBLE_LOG_PATH not written"
        if ssh:
            assert any(p.name == "sshd.log" for p in grown), "no node's sshd log grew: %s" % sorted(grown)
        if canary:
            assert {net for _p, net, _c in argv.hits["canary"]} >= {self.host_net, self.m1_net}, \
                "the canary argv was not caught on the controller and manager1: the sampler is blind"
            assert [c for c, where in boots.hits["canary"] if where == "argv"], "the canary container was missed"
            assert canary_logged, "the canary line in worker1's %s was not found" % CANARY_LOG

        if backups:
            mode = self.backups.stat().st_mode & 0o777
            assert mode & 0o077 == 0, "backup dir %s is mode %o" % (self.backups, mode)
        for f in backups:
            assert BACKUP_NAME.match(f.name), f.name
            assert f.stat().st_mode & 0o777 == 0o600, "%s is mode %o" % (f, f.stat().st_mode & 0o777)
        assert got_rc == rc, detail

    def canaries(self):
        """A canary argv on the controller (the ssh client) and on manager1 (the remote sh), a canary
        bootstrapper container on manager1's engine, a canary line in worker1's /var/log."""
        canary = self.needles["canary"].decode()
        client = docker.DockerClient(base_url="unix://%s" % self.engine, timeout=10)
        made = client.containers.create("mirantis/dtr:2.9.16", command=["join", canary],
                                        name="msr-replicas-canary-%s" % canary[-6:])
        proc = subprocess.Popen(
            ["ssh", "-F", str(STATE_DIR / "ssh" / "config"), "manager1", "sh -c 'sleep 1.5; true' %s" % canary],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.lab.ssh("worker1", "echo %s >> %s" % (canary, CANARY_LOG))
        proc.wait(15)
        made.remove(force=True)
        client.close()


def test_no_secret_in_argv_output_report_logs_or_backup_names(lab):
    lab.fresh(replicas=0, options=FRESH)
    password = lab.password
    pki = org_pki(lab.hosts)
    key = pki["msr_dtr_key"]
    basic = "%s:%s" % (lab.vars["msr_mke_username"], password)
    needles = {
        "MKE password": password.encode(),
        "MKE password (base64)": base64.b64encode(password.encode()).rstrip(b"="),
        "MKE basic auth": base64.b64encode(basic.encode()).rstrip(b"="),
        "msr_dtr_key": key.strip().encode(),
        "msr_dtr_key line": key.splitlines()[1].encode(),
        "S3 secret key": STORAGE["secret_options"]["secretkey"].encode(),
        "canary": ("msr-secrets-canary-%s" % secrets.token_hex(6)).encode(),
    }
    assert len(password) >= 12 and len(key.splitlines()[1]) >= 40
    backups = lab.workdir / "secrets-backups"
    audit = Audit(lab, needles, backups)
    secret_vars = dict(pki, msr_storage=STORAGE)        # in the inventory file, never on a command line

    def play(name, msr, **extra):
        def run_fn():
            run = lab.run("msr.replicas.%s" % name, verbosity=4, inventory=inventory(lab, name, msr, **inv_vars),
                          extra_vars=ev(lab, backups, **extra), env=audit.env(), timeout=300)
            texts = {"stdout": run.stdout, "stderr": run.stderr, "task results": json.dumps(run.records)}
            report = extra.get("msr_reconcile_report")
            if report:
                assert Path(report).stat().st_mode & 0o777 == 0o600
                texts["report"] = Path(report).read_text()
            return run.rc, run.stdout, texts, run.output
        return run_fn

    # Before the install MSR's CA is the one given to install; afterwards the inventory trusts it as msr_ca.
    inv_vars = dict(secret_vars, msr_ca="")
    audit.step("preflight", play("preflight", THREE), uses_engine=False, bootstrapper=False, ssh=False,
               canary=True)
    audit.step("install", play("install", ["worker1"]))
    assert lab.status()["cluster"]["ca_subject"] == "given with --dtr-ca"
    inv_vars = dict(secret_vars, msr_ca=pki["msr_dtr_ca"])
    audit.step("scale_up", play("scale_up", THREE))
    assert sorted(r["node"] for r in lab.replicas().values()) == THREE
    audit.step("backup", play("backup", THREE))
    stopped = lab.replica_on("worker2")["id"]
    lab.fault("stop-replica", "worker2")
    audit.step("replace", play("replace", THREE, msr_replace_node="worker2"))
    assert stopped not in lab.replicas() and lab.replica_on("worker2")
    audit.step("scale_down", play("scale_down", THREE, msr_scale_down_nodes=["worker3"], msr_allow_even=True,
                                  msr_skip_confirmation=True))
    assert lab.replica_on("worker3") is None
    report = lab.workdir / "secrets-reconcile.json"
    audit.step("reconcile", play("reconcile", THREE, msr_remediate=True, msr_reconcile_report=str(report)))
    assert json.loads(report.read_text())["status"] == "converged" and lab.replica_on("worker3")
    lab.fault("quorum-loss")
    audit.step("emergency_repair", play("emergency_repair", THREE, msr_emergency_repair=True,
                                        msr_emergency_repair_confirmed=True))
    assert len(lab.replicas()) == 1

    wrapper_report = lab.workdir / "secrets-msr-reconcile.json"
    inv = inventory(lab, "msr-reconcile", THREE, **inv_vars)

    def wrapper():
        proc = subprocess.run(wrapper_argv(lab, "--report", str(wrapper_report), "-v", inventory=inv),
                              env=lab.ansible_env(ANSIBLE_VERBOSITY="4", **audit.env()), capture_output=True,
                              text=True, timeout=300, cwd=str(lab.workdir))
        assert wrapper_report.stat().st_mode & 0o777 == 0o600
        return proc.returncode, proc.stdout, {"stdout": proc.stdout, "stderr": proc.stderr,
                                              "report": wrapper_report.read_text()}, proc.stdout[-3000:] + proc.stderr
    # Exit 1: drift (one replica of three).
    # Report mode reaches no engine; its ssh to the LB hosts reuses the ControlPersist masters of the runs before.
    audit.step("bin/msr-reconcile", wrapper, rc=1, uses_engine=False, bootstrapper=False, ssh=False)
