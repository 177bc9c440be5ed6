# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""AWX / AAP: the execution environment and reconcile as an AWX job.

test_execution_environment (no lab, offline): the collection tarball from `ansible-galaxy collection
build`, installed into an empty collections dir, is what `ansible-builder introspect` reads (the Python and
system requirements of meta/execution-environment.yml cover every third-party import in plugins/), and
`ansible-builder create` turns extensions/ee/execution-environment.yml into a build context.

test_reconcile_as_awx_jobs (lab): ansible-runner, the engine AWX runs jobs with, on private data dirs
laid out as AWX's RunJob lays them out (awx/main/tasks/jobs.py): project/ with the user's playbook,
requirements_collections/ with the installed tarball, inventory/hosts as AWX's inventory script, the
job template's extra vars and survey answers in env/extravars, the custom credential type's extra_vars
injector in its own env/tmp* file passed by `-e @` in env/cmdline, the Machine credential's key in
env/ssh_key (runner hands it to ssh-agent), AWX's task environment in env/envvars and its runner
settings in env/settings. The credential type and the survey come from docs/docsite/rst/guide_awx.rst,
so the guide shows what was run. Asserted as AWX reads a job: artifacts/<ident>/status and rc, the job
events (runner_on_ok / runner_on_failed, playbook_on_stats with its artifact_data from set_stats), and no
secret in any artifact. Jobs: a wrong MKE password (Failed), the scheduled report on drift (Successful,
nothing changed), remediation in an EE without the bootstrap host's key in ~/.ssh/known_hosts (Failed,
nothing changed), remediation (Successful, converged, its backup in msr_backup_dir), the next report
(in sync, changed=0).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ansible_runner
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment
from packaging.requirements import Requirement
from tarball import build_and_install, hermetic_env, sh

from msrint import BIN, ROOT, STATE_DIR

pytestmark = pytest.mark.timeout(600)

GUIDE = ROOT / "docs" / "docsite" / "rst" / "guide_awx.rst"
EE_DIR = ROOT / "extensions" / "ee"
# What `pip install docker` brings along: the SDK's own imports, not requirements of the collection.
DOCKER_DEPS = {"requests", "urllib3"}
RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
TASKS = ("Read the cluster through the MKE and MSR APIs", "Compare the cluster with the inventory", "Show the drift")


def run(argv, env, cwd=None):
    return sh(argv, env, cwd, timeout=120, allow_warnings=True)


@pytest.fixture(scope="module")
def built():
    """The collection tarball and an empty collections dir it was installed into."""
    top = Path(tempfile.mkdtemp(prefix="msr-awx-"))
    try:
        env = hermetic_env(top / "home")
        tarball, _collections, installed = build_and_install(ROOT, top, env, timeout=120, allow_warnings=True)
        assert (installed / "meta" / "execution-environment.yml").is_file()
        yield {"top": top, "env": env, "tarball": tarball, "collections": top / "collections", "installed": installed}
    finally:
        shutil.rmtree(top, ignore_errors=True)


def third_party_imports(tree):
    found = set()
    for path in tree.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("ansible", "ansible_collections", "__future__"):
                    found.add(top)
    return found


def test_execution_environment(built):
    env, installed = built["env"], built["installed"]
    out = run([BIN / "ansible-builder", "introspect", built["collections"]], env)
    deps = yaml.safe_load(out)
    python = {Requirement(line.split("#")[0]).name: Requirement(line.split("#")[0]) for line in deps["python"]}
    assert all(line.endswith("# from collection msr.replicas") for line in deps["python"] + deps["system"]), deps
    assert set(python) == {"docker", "paramiko"}, deps
    # Every third-party import of the shipped plugins is covered (requests and urllib3 come with docker).
    assert third_party_imports(installed / "plugins") - DOCKER_DEPS <= set(python), third_party_imports(installed / "plugins")
    # The ranges admit the versions the whole test suite runs with.
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    for name, req in python.items():
        assert req.specifier.contains(pins[name]), (req, pins[name])
    system = [line.split("#")[0].strip() for line in deps["system"]]
    assert "openssh-client [platform:dpkg]" in system and "openssh-clients [platform:rpm]" in system, system
    # bindep accepts the file and finds its Debian package installed on this (Debian) controller.
    run([BIN / "bindep", "-b", "-f", installed / "meta" / "ee-bindep.txt"], env)

    ctx = built["top"] / "context"
    run([BIN / "ansible-builder", "create", "-f", EE_DIR / "execution-environment.yml", "-c", ctx,
         "--output-filename", "Containerfile"], env, cwd=EE_DIR)
    containerfile = (ctx / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile).group(1).split()
    core = Requirement(next(r for r in refs if r.startswith("ansible-core")))
    runner = Requirement(next(r for r in refs if r.startswith("ansible-runner")))
    assert core.specifier.contains(pins["ansible-core"]) and not core.specifier.contains("2.20.0"), core
    assert runner.specifier.contains(pins["ansible-runner"]), runner
    assert ('ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml '
            '--collections-path "/usr/share/ansible/collections"') in containerfile
    # The build introspects the installed collections, so it picks up meta/execution-environment.yml.
    assert "introspect.py introspect --write-bindep=/tmp/src/bindep.txt --write-pip=/tmp/src/requirements.txt" in containerfile
    assert "install-from-bindep" in containerfile
    galaxy = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["msr.replicas"], galaxy
    assert {"assemble", "install-from-bindep", "introspect.py"} <= {p.name for p in (ctx / "_build" / "scripts").iterdir()}


# -- reconcile as AWX jobs ---------------------------------------------------------------------------


def guide_block(key):
    """The YAML or JSON code block of the AWX guide whose top level has ``key``."""
    text = GUIDE.read_text()
    for match in re.finditer(r"^\.\. code-block:: (?:yaml|json)\n\n((?:(?:   .*)?\n)+)", text, re.M):
        block = yaml.safe_load("\n".join(line[3:] for line in match.group(1).splitlines()))
        if isinstance(block, dict) and key in block:
            return block
    raise AssertionError("no code block with %r in %s" % (key, GUIDE))


def inventory_script(lab, msr):
    """AWX's inventory/hosts: a script printing the inventory as JSON. The secrets and the connection
    user and key come from credentials, not from the inventory."""
    inv = yaml.safe_load(lab.inventory.read_text())["all"]
    kept = {k: v for k, v in inv["vars"].items()
            if k not in ("msr_mke_url", "msr_mke_username", "msr_mke_password", "msr_mke_ca", "ansible_user",
                         "ansible_ssh_private_key_file") and not k.startswith("msr_dtr_")}   # install's TLS material
    data = {"all": {"vars": kept, "children": list(inv["children"])}, "_meta": {"hostvars": {}}}
    for group, body in inv["children"].items():
        hosts = body.get("hosts") or {}
        if group == "msr":
            hosts = {name: {"ansible_host": lab.hosts[name]} for name in msr}
        data[group] = {"hosts": list(hosts)}
        for name, hv in hosts.items():
            data["_meta"]["hostvars"].setdefault(name, {}).update(hv)
    return "#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n" % json.dumps(data)


def write(path, text, mode=0o400):
    path.write_text(text)
    os.chmod(path, mode)


class AwxJob:
    """One AWX job of the reconcile job template: its private data dir, run through ansible-runner."""

    def __init__(self, lab, built, job_id, msr, survey, credential_inputs, backups, known_hosts=True):
        self.lab, self.ident = lab, job_id
        self.pdd = Path(tempfile.mkdtemp(prefix="awx_%d_" % job_id))
        os.chmod(self.pdd, 0o700)
        for sub in ("project", "inventory", "env"):
            (self.pdd / sub).mkdir()
        (self.pdd / "cp").mkdir(mode=0o700)
        project = self.pdd / "project"
        (project / "collections").mkdir()
        (project / "collections" / "requirements.yml").write_text(
            yaml.safe_dump({"collections": [{"name": "msr.replicas", "version": ">=0.1.0"}]}))
        (project / "reconcile.yml").write_text(
            "---\n- name: Reconcile\n  ansible.builtin.import_playbook: msr.replicas.reconcile\n")
        (project / "ansible.cfg").write_text("[ssh_connection]\npipelining = True\n")
        # The project update installs collections/requirements.yml here (runner's /runner/requirements_collections).
        shutil.copytree(built["collections"], self.pdd / "requirements_collections", symlinks=True)
        hosts = self.pdd / "inventory" / "hosts"
        write(hosts, inventory_script(lab, msr), 0o700)

        extravars = {"awx_job_id": job_id, "tower_job_id": job_id, "awx_job_launch_type": "scheduled",
                     "awx_job_template_name": "msr-reconcile", "awx_inventory_name": "msr", "awx_schedule_name": "every 30 min",
                     # the job template's extra vars: backups to a path AWX exposes to jobs, as the EE's own files go
                     "msr_backup_dir": str(backups)}
        extravars.update(survey)
        write(self.pdd / "env" / "extravars", yaml.safe_dump(extravars))

        args = ["-u", "root", "--forks=12"]
        # The custom credential type: AWX renders its extra_vars injector in a Jinja sandbox into a file.
        ctype = guide_block("injectors")
        sandbox = ImmutableSandboxedEnvironment()
        injected = {k: sandbox.from_string(v).render(**credential_inputs) for k, v in ctype["injectors"]["extra_vars"].items()}
        handle, cred_file = tempfile.mkstemp(dir=self.pdd / "env")
        os.close(handle)
        write(Path(cred_file), yaml.safe_dump(injected))
        args += ["-e", "@%s" % cred_file]
        write(self.pdd / "env" / "cmdline", ansible_runner.utils.args2cmdline(*args))
        # The Machine credential's key: runner adds it to an ssh-agent for the run.
        write(self.pdd / "env" / "ssh_key", (STATE_DIR / "ssh" / "id_ed25519").read_text())

        # The EE user's home: only known_hosts, which the docker SDK's paramiko reads (no key, no ssh config).
        home = self.pdd / "home"
        (home / ".ssh").mkdir(parents=True)
        if known_hosts:
            shutil.copy(lab.home / ".ssh" / "known_hosts", home / ".ssh" / "known_hosts")
        paths = "%s:~/.ansible/collections:/usr/share/ansible/collections" % (self.pdd / "requirements_collections")
        envvars = {
            # AWX's ANSIBLE_* settings (awx/settings/defaults.py) and RunJob.build_env
            "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
            "ANSIBLE_FORCE_COLOR": "True", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "AWX_PRIVATE_DATA_DIR": str(self.pdd), "JOB_ID": str(job_id), "INVENTORY_ID": "1",
            "PROJECT_REVISION": "0" * 40, "ANSIBLE_RETRY_FILES_ENABLED": "False", "MAX_EVENT_RES": "700000",
            "AWX_HOST": "https://awx.example.invalid", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.pdd / "cp"),
            "ANSIBLE_COLLECTIONS_PATHS": paths, "ANSIBLE_COLLECTIONS_PATH": paths,
            "ANSIBLE_ROLES_PATH": "%s:~/.ansible/roles" % (self.pdd / "requirements_roles"),
            "HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / ".ansible" / "tmp"),
            "PATH": "%s:/usr/local/bin:/usr/bin:/bin" % BIN, "ANSIBLE_DEPRECATION_WARNINGS": "False",
        }
        write(self.pdd / "env" / "envvars", yaml.safe_dump(envvars))
        write(self.pdd / "env" / "settings", yaml.safe_dump(
            {"job_timeout": 0, "suppress_ansible_output": True, "suppress_output_file": True}))

    def run(self, monkeypatch):
        # Runner starts from its own process environment: keep the test runner's ANSIBLE_* out of the job.
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("ANSIBLE_")]:
                m.delenv(key)
            self.handled = []
            started = time.time()
            self.runner = ansible_runner.run(private_data_dir=str(self.pdd), ident=str(self.ident),
                                             playbook="reconcile.yml", inventory=str(self.pdd / "inventory" / "hosts"),
                                             event_handler=lambda e: self.handled.append(e) or True, quiet=True)
            self.seconds = time.time() - started
        self.artifacts = self.pdd / "artifacts" / str(self.ident)
        self.events = sorted((json.loads(p.read_text()) for p in (self.artifacts / "job_events").glob("*.json")),
                             key=lambda e: e["counter"])
        self.stdout = "\n".join(e.get("stdout", "") for e in self.events)
        return self

    @property
    def status(self):
        return (self.artifacts / "status").read_text(), int((self.artifacts / "rc").read_text())

    def task_events(self, name):
        return [e for e in self.events if e.get("event_data", {}).get("task") == name and e["event"] in RESULTS]

    @property
    def stats(self):
        return next(e for e in self.events if e["event"] == "playbook_on_stats")["event_data"]

    @property
    def result(self):
        return self.stats["artifact_data"]["msr_reconcile_result"]

    def check_no_secret(self, secrets):
        """Nothing under artifacts/ (events, status, command, ...) nor the output holds a secret."""
        assert len(self.handled) == len(self.events) > 0
        assert not (self.artifacts / "ssh_key_data").exists()   # runner's fifo for ssh-add is gone
        for path in self.artifacts.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                for secret in secrets:
                    assert secret not in text, "a secret in %s" % path

    def explain(self):
        return "job %s: %s\n%s" % (self.ident, self.status, self.stdout[-5000:])

    def cleanup(self):
        shutil.rmtree(self.pdd, ignore_errors=True)


def test_reconcile_as_awx_jobs(lab, built, monkeypatch):
    lab.fresh(replicas=2)
    survey = guide_block("spec")
    questions = {q["variable"]: q for q in survey["spec"]}
    assert questions["msr_remediate"]["default"] == "false" and questions["msr_remediate"]["type"] == "multiplechoice"
    inputs = {"mke_url": lab.vars["msr_mke_url"], "mke_username": lab.vars["msr_mke_username"],
              "mke_password": lab.password, "mke_ca": lab.vars["msr_mke_ca"]}
    key = (STATE_DIR / "ssh" / "id_ed25519").read_text().strip().splitlines()[1]
    secrets = [lab.password, key] + ([lab.vars["msr_dtr_key"].strip().splitlines()[1]] if lab.vars.get("msr_dtr_key") else [])
    desired = ["worker1", "worker2", "worker3"]        # worker3 runs no replica: drift
    before = lab.replicas()
    jobs, timings = [], {}
    backups = Path(tempfile.mkdtemp(prefix="msr-awx-backups-"))

    def job(job_id, answers, inputs=inputs, known_hosts=True):
        j = AwxJob(lab, built, job_id, desired, answers, inputs, backups, known_hosts)
        jobs.append(j)
        return j.run(monkeypatch)

    try:
        # A wrong MKE password in the credential: the job fails (AWX: Failed), with the reason in the events.
        bad = job(100, {"msr_remediate": "false"}, dict(inputs, mke_password="not-the-" + lab.password))
        assert bad.status == ("failed", 2), bad.explain()
        assert bad.runner.status == "failed" and bad.runner.rc == 2
        failed = [e for e in bad.events if e["event"] == "runner_on_failed"]
        assert [e["event_data"]["task"] for e in failed] == [TASKS[0], "Fail with the explanation"], bad.explain()
        assert bad.stats["failures"] == {"localhost": 1}
        assert bad.result["status"] == "error" and "MKE" in bad.result["error"], bad.result
        bad.check_no_secret(secrets + ["not-the-" + lab.password])
        timings["failed"] = bad.seconds

        # The scheduled report (survey default): drift found and shown, nothing changed, the job Successful.
        report = job(101, {"msr_remediate": questions["msr_remediate"]["default"]})
        assert report.status == ("successful", 0), report.explain()
        for task in TASKS:
            assert [e["event"] for e in report.task_events(task)] == ["runner_on_ok"], (task, report.explain())
        shown = report.task_events("Show the drift")[0]["event_data"]["res"]["msg"]
        shown = shown if isinstance(shown, list) else shown.splitlines()
        assert any("missing_replica" in line and "worker3" in line for line in shown), shown
        assert report.stats["changed"] == {} and report.stats["failures"] == {}, report.stats
        assert report.result["status"] == "drift" and report.result["in_sync"] is False, report.result
        assert report.result["remediated"] is False
        assert ("missing_replica", "worker3") in [(d["kind"], d["node"]) for d in report.result["drift"]]
        assert lab.replicas() == before
        report.check_no_secret(secrets)
        timings["report"] = report.seconds

        # Remediation in an EE whose ~/.ssh/known_hosts lacks the bootstrap host: AWX's
        # ANSIBLE_HOST_KEY_CHECKING=False does not reach the docker SDK, which refuses the unknown key.
        lab.touched()
        untrusted = job(102, {"msr_remediate": "true"}, known_hosts=False)
        assert untrusted.status == ("failed", 2), untrusted.explain()
        assert "is not trusted" in untrusted.result["error"], untrusted.result
        assert lab.replicas() == before
        untrusted.check_no_secret(secrets)
        timings["untrusted"] = untrusted.seconds

        # Remediate=true from the survey: the replica role joins worker3, and the job says it converged.
        fix = job(103, {"msr_remediate": "true"})
        assert fix.status == ("successful", 0), fix.explain()
        changed = [e["event_data"]["task"] for e in fix.events
                   if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")]
        assert changed, fix.explain()
        assert fix.stats["changed"].get("localhost", 0) >= 1, fix.stats
        assert fix.result["status"] == "converged" and fix.result["remediated"] is True, fix.result
        assert fix.result["drift"] == [] and fix.result["drift_found"], fix.result
        assert sorted(r["node"] for r in lab.replicas().values()) == desired
        assert len(list(backups.glob("dtr-metadata-*-backup-*.tar"))) == 1     # taken before the join
        fix.check_no_secret(secrets)
        timings["remediate"] = fix.seconds

        # The next scheduled report: in sync, changed=0.
        again = job(104, {"msr_remediate": "false"})
        assert again.status == ("successful", 0), again.explain()
        assert again.stats["changed"] == {} and again.stats["ok"].get("localhost", 0) > 0, again.stats
        assert again.result["status"] == "in_sync" and again.result["in_sync"] is True, again.result
        again.check_no_secret(secrets)
        timings["in_sync"] = again.seconds
        print("AWX jobs through ansible-runner: %s" % ", ".join("%s %.1f s" % kv for kv in timings.items()))
    finally:
        for j in jobs:
            j.cleanup()
        shutil.rmtree(backups, ignore_errors=True)
