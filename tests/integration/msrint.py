# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the integration suite: the msrint lab, the ansible-playbook runner (see conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = ROOT / ".venv" / "bin"
MSR_LAB = str(BIN / "msr-lab")


def _worker_lab(name, subnet, worker):
    """Under pytest-xdist each worker (gw0, gw1, ...) runs its own lab: gw0 the base name and subnet,
    gwN the name with N appended on the subnet 2N further up (10.80 -> 10.82, 10.84, ...)."""
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if index == 0:
        return name, subnet
    octets = subnet.split(".")
    octets[1] = str(int(octets[1]) + 2 * index)
    return "%s%d" % (name, index), ".".join(octets)


LAB_NAME, LAB_SUBNET = _worker_lab(os.environ.get("MSR_INT_LAB_NAME", "msrint"),
                                   os.environ.get("MSR_INT_LAB_SUBNET", "10.80.0.0/24"),
                                   os.environ.get("PYTEST_XDIST_WORKER", ""))
STATE_DIR = Path("/var/lib/msr-lab-%s" % LAB_NAME)
# Joins in the lab take this long (msr-lab up --join-seconds); short keeps the suite fast.
JOIN_SECONDS = 1.0
# Two HAProxy LBs and one NGINX (lb1, lb2, lb3): the roles keep several LB hosts of both kinds in step.
LB_KINDS = "haproxy,haproxy,nginx"


def lab_env(name=None, **extra):
    env = dict(os.environ)
    env["MSR_LAB_NAME"] = name or LAB_NAME
    env.pop("MSR_LAB_DIR", None)
    env.update(extra)
    return env


class PlaybookRun:
    """One ansible-playbook run: rc, stdout, stderr and the recorded task results."""

    def __init__(self, args, proc, records, playbook):
        self.args = args
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.records = records
        self.playbook = playbook

    def task(self, name, host=None):
        """The (last) recorded result of the task called ``name``."""
        found = [r for r in self.records if r["task"] == name and (host is None or r["host"] == host)]
        assert found, "task %r has no recorded result; tasks: %s\n%s" % (
            name, [r["task"] for r in self.records], self.output)
        return found[-1]

    def result(self, name, host=None):
        return self.task(name, host)["result"]

    @property
    def output(self):
        return "rc=%s\n--- stdout\n%s\n--- stderr\n%s" % (self.rc, self.stdout[-6000:], self.stderr[-3000:])


class Lab:
    """The msrint lab plus a hermetic ansible-playbook runner."""

    def __init__(self, workdir: Path, name=None, subnet=None):
        """``name``, ``subnet``: another lab than the session's (LAB_NAME on LAB_SUBNET), beside it."""
        self.name = name or LAB_NAME
        self.subnet = subnet or LAB_SUBNET
        self.state_dir = Path("/var/lib/msr-lab-%s" % self.name)
        self.workdir = workdir
        self.home = workdir / "home"
        self.inventory = workdir / "inventory.yml"
        self.collections = workdir / "collections"
        self.playbooks = workdir / "playbooks"
        self.playbooks.mkdir(parents=True, exist_ok=True)
        self.vars = {}
        self.hosts = {}
        self.pristine = None   # number of seeded replicas while the lab is untouched since `up`
        self._runs = 0
        self._setup_collection()

    # -- lab ---------------------------------------------------------------------------------------

    def cli(self, *args, check=True, timeout=120):
        proc = subprocess.run([MSR_LAB, *args], env=lab_env(self.name), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("msr-lab %s failed (rc %s):\n%s\n%s"
                                 % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def up(self, replicas=1, options=(), lb_kinds=LB_KINDS):
        """``options``: more `msr-lab up` options (e.g. ("--managers", "2")); the last of a repeated one wins."""
        self.cli("up", "--subnet", self.subnet, "--replicas", str(replicas), "--join-seconds", str(JOIN_SECONDS),
                 "--lb-kind", lb_kinds, *options, timeout=180)
        self.cli("inventory", "-o", str(self.inventory))
        if self.home.exists():
            shutil.rmtree(self.home)
        self.cli("ssh-config", "--home", str(self.home))
        inv = yaml.safe_load(self.inventory.read_text())
        self.vars = inv["all"]["vars"]
        self.hosts = {}
        for group in inv["all"]["children"].values():
            for name, hv in (group.get("hosts") or {}).items():
                self.hosts[name] = hv["ansible_host"]
        self.pristine = (replicas, tuple(options)) if options else replicas

    def inventory_with(self, msr):
        """The lab inventory with the msr group (the desired set) holding these hosts; returns its path."""
        inv = yaml.safe_load(self.inventory.read_text())
        children = inv["all"]["children"]
        hosts = {name: hv for group in children.values() for name, hv in (group.get("hosts") or {}).items()}
        children["msr"] = {"hosts": {name: hosts[name] for name in msr}}
        path = self.workdir / ("inventory-%s.yml" % "-".join(msr or ["none"]))
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path

    def down(self):
        return self.cli("down", check=False, timeout=180)

    def fresh(self, replicas=1, options=()):
        """A lab untouched since `up` with ``replicas`` seeded replicas and these extra `up` options
        (recreated when needed)."""
        if self.pristine == ((replicas, tuple(options)) if options else replicas):
            return
        self.down()
        self.up(replicas, options)

    def touched(self):
        self.pristine = None

    def status(self):
        return json.loads(self.cli("status", "--json").stdout)

    # What the lab reports of a replica that changes only when the replica does (not report ages, timers).
    STABLE = ("id", "node", "version", "state", "health", "ping", "http_port", "https_port")

    def replicas(self):
        """{replica id: replica dict} from the lab's own view (not through the modules), stable fields only."""
        return {r["id"]: {k: r.get(k) for k in self.STABLE} for r in self.status()["cluster"]["replicas"]}

    def wait_healthy(self, timeout=30):
        """Until every replica is healthy as MSR reports it (live, /_ping and the replica_health cache):
        after a restart a replica passes a start period and its next health report first."""
        deadline = time.time() + timeout
        while True:
            reps = self.status()["cluster"]["replicas"]
            if reps and all(r.get("health") == "OK" and r.get("ping") == "OK" and r.get("reported") == "OK"
                            for r in reps):
                return
            if time.time() > deadline:
                raise AssertionError("replicas not healthy within %d s: %s" % (timeout, reps))
            time.sleep(0.3)

    def replica_on(self, node):
        found = [r for r in self.replicas().values() if r.get("node") == node]
        return found[0] if found else None

    def fault(self, kind, *args):
        self.touched()
        return self.cli("fault", kind, *[str(a) for a in args])

    def clear_faults(self):
        """Undo the service faults (msr-lab fault clear) and start every replica a fault stopped."""
        self.fault("clear")
        for r in self.replicas().values():
            if r["state"] != "running":
                self.fault("start-replica", r["id"])

    @property
    def password(self):
        return self.vars["msr_mke_password"]

    def ssh(self, node, command, timeout=30, check=True):
        proc = subprocess.run(["ssh", "-F", str(self.state_dir / "ssh" / "config"), "-o", "BatchMode=yes", node, command],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("ssh %s %r failed (rc %s): %s" % (node, command, proc.returncode, proc.stderr))
        return proc

    def containers(self, node, all_=True):
        """Container names on a node, read with the real docker CLI over ssh (the node's own engine)."""
        out = self.ssh(node, "docker ps %s--format '{{.Names}}'" % ("-a " if all_ else "")).stdout
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    # -- ansible -----------------------------------------------------------------------------------

    def _setup_collection(self):
        link = self.collections / "ansible_collections" / "msr" / "replicas"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT, link)
        probe = subprocess.run([str(BIN / "ansible-doc"), "-t", "module", "msr.replicas.replica"],
                               env=self.ansible_env(), capture_output=True, text=True, timeout=60)
        if probe.returncode != 0 or "msr.replicas.replica" not in probe.stdout:
            # The loader did not follow the symlink: fall back to a copy of the collection.
            os.unlink(link)
            shutil.copytree(ROOT, link, symlinks=True,
                            ignore=shutil.ignore_patterns(".venv", ".git", "output", "__pycache__"))

    def ansible_env(self, **extra):
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("ANSIBLE_"):
                del env[key]
        (self.workdir / "ansible_home").mkdir(exist_ok=True)
        (self.workdir / "local_tmp").mkdir(exist_ok=True)
        self.home.mkdir(exist_ok=True)
        env.update({
            "HOME": str(self.home),
            "ANSIBLE_HOME": str(self.workdir / "ansible_home"),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "local_tmp"),
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "msr_record",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORKS": "12",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "PATH": "%s:%s" % (BIN, env.get("PATH", "/usr/bin:/bin")),
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.update(extra)
        return env

    def play(self, tasks, hosts="manager1", name="msr integration"):
        """A playbook (YAML text) with the lab's MKE options set once through the action group."""
        return yaml.safe_dump([{
            "name": name,
            "hosts": hosts,
            "gather_facts": False,
            "module_defaults": {"group/msr.replicas.msr": {
                "mke_url": "{{ msr_mke_url }}",
                "mke_username": "{{ msr_mke_username }}",
                "mke_password": "{{ msr_mke_password }}",
                "mke_ca": "{{ msr_mke_ca }}",
                "msr_ca": "{{ msr_ca }}",
            }},
            "tasks": tasks,
        }], sort_keys=False)

    def run(self, playbook, check=False, diff=True, verbosity=0, extra_vars=None, timeout=180, env=None,
            touches=True, inventory=None):
        """Run ansible-playbook on YAML text (or a path, or msr.replicas.<name>) against the lab inventory (or ``inventory``, a path).

        ``touches=False``: the caller asserts the run changed nothing, so the lab stays "fresh".
        """
        self._runs += 1
        if isinstance(playbook, Path) or playbook.startswith("msr.replicas."):
            path = playbook   # a file, or the collection's own playbook by FQCN (playbooks/<name>.yml)
        else:
            path = self.playbooks / ("play%03d.yml" % self._runs)
            path.write_text(playbook)
        record = self.workdir / ("records%03d.jsonl" % self._runs)
        args = [str(BIN / "ansible-playbook"), "-i", str(inventory or self.inventory), str(path)]
        if check:
            args.append("--check")
        elif touches:
            self.touched()
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        if extra_vars:
            args += ["-e", json.dumps(extra_vars)]
        proc = subprocess.run(args, env=self.ansible_env(MSR_RECORD_FILE=str(record), **(env or {})),
                              capture_output=True, text=True, timeout=timeout, cwd=str(self.workdir))
        records = []
        if record.exists():
            records = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        return PlaybookRun(args, proc, records, path)


def until(what, predicate, timeout=60, step=0.2):
    """Poll ``predicate`` until it returns something true (returned); fail naming ``what`` after ``timeout`` s."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, "%s: not within %d s" % (what, timeout)
        time.sleep(step)


def replica_task(name, register=None, **params):
    """A msr.replicas.replica task dict."""
    task = {"name": name, "msr.replicas.replica": params}
    if register:
        task["register"] = register
    return task
