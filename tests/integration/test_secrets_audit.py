# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The MKE password never appears in any process's argv, during joins through both docker_host paths.

A sampler thread reads /proc/*/cmdline of EVERY process on the machine every 50 ms. The lab's nodes are
PID namespaces below the host's, so this one scan covers the controller (ansible-playbook, its workers,
the delegated module process and its paramiko connection) and every node (sshd sessions, the module
process on manager1, `docker system dial-stdio`). Each process is attributed to a node through its
network namespace. For completeness every node is also asked once, over ssh during the join, for its
own view of /proc/*/cmdline.

Controls, so a pass means something: the sampler must see the module process and sshd session on
manager1, `docker system dial-stdio` there (the ssh:// path), and ansible-playbook on the controller while
the joins run; and a canary argv started on manager1 during the join must be caught.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from msr_lab.nodes.initfiles import NODE_PYTHON

from argv import ArgvSampler, net_ns_of
from msrint import STATE_DIR, replica_task

pytestmark = pytest.mark.timeout(150)

SLOW_JOIN = 4


def test_password_never_in_argv_output_or_result(lab):
    lab.fresh(replicas=1)
    password = lab.password
    assert len(password) >= 12
    canary = "msr-audit-canary-%s" % secrets.token_hex(6)
    needles = {
        "password": password.encode(),
        "password_b64": base64.b64encode(password.encode()).rstrip(b"="),
        "canary": canary.encode(),
    }
    nodes = sorted(lab.hosts)
    host_net = os.readlink("/proc/self/ns/net")
    manager1_net = net_ns_of("manager1")
    lab.fault("slow-join", SLOW_JOIN)

    ssh_host = "ssh://root@%s" % lab.hosts["manager1"]
    join_ssh = replica_task("join worker3 over ssh", node="worker3", docker_host=ssh_host)
    join_ssh["delegate_to"] = "localhost"
    playbook = lab.play([replica_task("join worker2 on manager1", node="worker2"), join_ssh])

    sampler = ArgvSampler(needles)
    sampler.start()
    box = {}
    runner = threading.Thread(target=lambda: box.update(run=lab.run(playbook, verbosity=3)), daemon=True)
    started = time.time()
    runner.start()

    # Mid-join (the first join's replication step lasts SLOW_JOIN s): inspect the bootstrapper container,
    # start the canary on manager1, and ask every node for its own process list.
    engine = docker.DockerClient(base_url="unix://%s" % (STATE_DIR / "nodes" / "manager1" / "run" / "docker.sock"))
    boot = None
    deadline = time.time() + 30
    while boot is None and time.time() < deadline and runner.is_alive():
        found = engine.containers.list(all=True, filters={"name": "msr-replicas-join-"})
        boot = found[0] if found else None
        if boot is None:
            time.sleep(0.05)
    assert boot is not None, "the bootstrapper container never showed up on manager1"
    attrs = boot.attrs
    assert password not in json.dumps(attrs["Config"]["Cmd"]) + json.dumps(attrs["Args"]) + attrs["Path"]
    assert "UCP_PASSWORD=%s" % password in attrs["Config"]["Env"]      # the secret travels in the env
    canary_proc = subprocess.Popen(
        ["ssh", "-F", str(STATE_DIR / "ssh" / "config"), "manager1", "sh -c 'sleep 1.5; true' %s" % canary],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done"
    with ThreadPoolExecutor(len(nodes)) as pool:
        listings = dict(zip(nodes, pool.map(lambda n: lab.ssh(n, script).stdout, nodes)))
    canary_proc.wait(15)
    runner.join(120)
    sampler.stop()
    elapsed = time.time() - started
    assert not runner.is_alive(), "ansible-playbook did not finish"
    run = box["run"]
    assert run.rc == 0, run.output

    # The joins really happened, through both paths, and lasted long enough to be sampled.
    r_unix = run.result("join worker2 on manager1")
    r_ssh = run.result("join worker3 over ssh")
    assert r_unix["changed"] and r_unix["healthy"] and r_ssh["changed"] and r_ssh["healthy"]
    assert elapsed >= 2 * SLOW_JOIN
    assert sampler.rounds >= 2 * SLOW_JOIN * 10, (sampler.rounds, elapsed)   # >= ~10 scans per second

    # Controls: the sampler saw the join's processes, on the controller and inside manager1.
    host_cmds = sampler.commands_in(host_net)
    m1_cmds = sampler.commands_in(manager1_net)
    assert any("ansible-playbook" in c for c in host_cmds), host_cmds[:50]
    assert any(c.startswith("sshd: root") for c in m1_cmds), m1_cmds
    assert any(c.split(" ")[0] == NODE_PYTHON + "/bin/python" for c in m1_cmds), m1_cmds     # the module
    assert any("docker system dial-stdio" in c for c in m1_cmds), m1_cmds
    assert any(net == manager1_net for _pid, net, _cmd in sampler.hits["canary"]), \
        "the canary argv on manager1 was not caught: the sampler is blind"
    for node in nodes:
        assert "sshd" in listings[node], (node, listings[node])

    # The audit itself: no argv anywhere, no node's own listing, no output, no result holds the password.
    assert sampler.hits["password"] == [], sampler.hits["password"][:3]
    assert sampler.hits["password_b64"] == [], sampler.hits["password_b64"][:3]
    for node, listing in listings.items():
        assert password not in listing, node
    assert "-vvv" in run.args
    assert "ESTABLISH SSH CONNECTION" in run.stdout           # really verbose
    assert password not in run.stdout and password not in run.stderr
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.stdout    # the invocation args were shown, masked
    for rec in run.records:
        assert password not in json.dumps(rec), rec["task"]
    for r in (r_unix, r_ssh):
        assert "UCP_PASSWORD" in r["cmd"] and "-e" in r["cmd"]
        assert not any(password in part or "UCP_PASSWORD=" in part for part in r["cmd"])
        assert not any(password in line for line in r["log"])
    print("argv audit: %d scans, %d process reads, %d distinct argv, %.1f s"
          % (sampler.rounds, sampler.processes_read, len(sampler.seen), elapsed))
