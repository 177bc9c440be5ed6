# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The argv audit shared by test_secrets_audit*.py and test_rel_secrets.py: a sampler thread over
/proc/*/cmdline of EVERY process on the machine.

The lab's nodes are PID namespaces below the host's, so one scan of the host's /proc covers the controller
(ansible-playbook, its workers, the module processes and their paramiko connections) and every node (sshd
sessions, the module process on a manager, `docker system dial-stdio`). Each process is attributed to a node
through its network namespace (net_ns_of).
"""

from __future__ import annotations

import json
import os
import threading
import time

from msrint import STATE_DIR


class ArgvSampler(threading.Thread):
    """Reads the argv of every process every ``interval`` s until stop(); ``hits[name]`` holds the
    (pid, net ns, argv) that contained ``needles[name]`` (bytes), ``seen`` every distinct (net ns, argv)."""

    def __init__(self, needles, interval=0.05):
        super().__init__(daemon=True)
        self.needles = needles                   # name -> bytes
        self.interval = interval
        self.stop_event = threading.Event()
        self.hits = {name: [] for name in needles}
        self.seen = {}                           # (net ns, cmdline bytes) -> (pid, first time)
        self.rounds = 0
        self.processes_read = 0

    def run(self):
        while not self.stop_event.is_set():
            now = time.time()
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as fh:
                        cmd = fh.read()
                    net = os.readlink("/proc/%s/ns/net" % pid)
                except OSError:
                    continue                      # gone meanwhile
                self.processes_read += 1
                key = (net, cmd)
                if key not in self.seen:
                    self.seen[key] = (pid, now)
                for name, needle in self.needles.items():
                    if needle in cmd:
                        self.hits[name].append((pid, net, cmd))
            self.rounds += 1
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join(5)

    def commands_in(self, net):
        return [cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip()
                for (n, cmd) in self.seen if n == net]


def net_ns_of(node):
    """The network namespace (as /proc/<pid>/ns/net reads) of a lab node."""
    desc = json.loads((STATE_DIR / "lab.json").read_text())
    netns = desc["nodes"][node]["netns"]
    return "net:[%d]" % os.stat("/run/netns/%s" % netns).st_ino


class ContainerSampler(threading.Thread):
    """The bootstrapper's argv and output: its container lives on a node's engine (the lab runs it as a program
    inside the engine, not as a process), so this polls that engine every ``interval`` s for the containers
    named ``prefix`` and reads each one's argv (Path, Args, Config.Cmd/Entrypoint) and its log as the engine
    keeps it. ``hits[name]``: (container name, "argv" or "log") that held ``needles[name]``."""

    def __init__(self, socket_path, needles, prefix="msr-replicas-", interval=0.02):
        super().__init__(daemon=True)
        import docker
        self.client = docker.DockerClient(base_url="unix://%s" % socket_path, timeout=10)
        self.needles = needles
        self.prefix = prefix
        self.interval = interval
        self.stop_event = threading.Event()
        self.hits = {name: [] for name in needles}
        self.containers = {}                     # name -> argv text
        self.log_bytes = {}                      # name -> bytes of its log last read
        self.errors = []                         # polls that failed (the engine restarting)

    def _check(self, name, where, data):
        for key, needle in self.needles.items():
            if needle in data and (name, where) not in self.hits[key]:
                self.hits[key].append((name, where))

    def poll(self):
        import docker
        # /containers/json alone (one request): its Command is the container's argv (path and args).
        for c in self.client.api.containers(all=True, filters={"name": self.prefix}):
            name = (c.get("Names") or ["/?"])[0].lstrip("/")
            argv = json.dumps(c.get("Command")).encode()
            self.containers[name] = argv.decode()
            self._check(name, "argv", argv)
            try:
                log = self.client.api.logs(c["Id"], stdout=True, stderr=True)
            except docker.errors.APIError:
                continue                          # removed meanwhile, or a log driver that keeps none
            self.log_bytes[name] = max(len(log), self.log_bytes.get(name, 0))
            self._check(name, "log", log)

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.poll()
            except Exception as exc:              # the engine restarting (a fault): try again
                self.errors.append(repr(exc))
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join(15)
        self.client.close()
