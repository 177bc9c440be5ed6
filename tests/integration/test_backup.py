# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""msr.replicas.backup against the lab: the tar streamed from the bootstrapper's stdout into a 0600 file
(over ssh:// to the controller, and over the node's own socket on the node), check mode that runs nothing,
the default replica, the refusals (unhealthy or unknown replica_id, quorum lost), and the password audit:
never in -vvv output, the recorded results, or the bootstrapper container's argv as the engine reports it.

An EngineWatch thread polls every node's engine (through its socket on the host) for containers the
backup could start, so "nothing ran" is observed on the engines, not inferred from the module's result.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tarfile
import threading
import time

import docker
import pytest

from msrint import STATE_DIR

pytestmark = pytest.mark.timeout(240)

VERSION = "2.9.16"
# The lab bootstrapper's backup layout (tests/lab/msr_lab/bootstrapper/archive.py).
ROOT = "dtr-backup-v%s" % VERSION
MEMBERS = sorted([ROOT, ROOT + "/rethink", ROOT + "/rethink/dtr2", ROOT + "/ca", ROOT + "/backup.json",
                  ROOT + "/rethink/dtr2/repositories.json", ROOT + "/rethink/dtr2/properties.json",
                  ROOT + "/rethink/dtr2/storage.json", ROOT + "/cluster.json", ROOT + "/ca/ca.pem",
                  ROOT + "/ca/ca.key"])
PREFIXES = ("msr-replicas-", "dtr-backup")


class EngineWatch(threading.Thread):
    """Every container whose name starts with one of PREFIXES on any node's engine, with its inspect data."""

    def __init__(self, nodes, interval=0.02):
        super().__init__(daemon=True)
        self.clients = dict((n, docker.APIClient(base_url="unix://%s" % (STATE_DIR / "nodes" / n / "run" /
                                                                         "docker.sock"), version="1.45"))
                            for n in nodes)
        self.interval = interval
        self.stop_event = threading.Event()
        self.seen = {}          # (node, name) -> inspect attrs (the first successful inspect)
        self.rounds = 0

    def run(self):
        while not self.stop_event.is_set():
            for node, api in self.clients.items():
                try:
                    listed = api.containers(all=True)
                except Exception:
                    continue            # the engine is down in some faults; nothing can start there then
                for c in listed:
                    name = c["Names"][0].lstrip("/")
                    if name.startswith(PREFIXES) and (node, name) not in self.seen:
                        try:
                            self.seen[(node, name)] = api.inspect_container(c["Id"])
                        except Exception:
                            self.seen[(node, name)] = None      # gone between list and inspect
            self.rounds += 1
            self.stop_event.wait(self.interval)

    def stop(self):
        self.stop_event.set()
        self.join(5)

    def names(self):
        return sorted("%s/%s" % key for key in self.seen)


def watching(lab):
    w = EngineWatch(sorted(n for n in lab.hosts if not n.startswith("lb")))
    w.start()
    return w


def backup_task(name, delegate=False, register=None, **params):
    task = {"name": name, "msr.replicas.backup": params}
    if delegate:
        task["delegate_to"] = "localhost"
    if register:
        task["register"] = register
    return task


def lowest_healthy(lab):
    return sorted(rid for rid, r in lab.replicas().items() if r["health"] == "OK")[0]


def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        names = sorted(m.name for m in tar.getmembers())
        info = json.loads(tar.extractfile(ROOT + "/backup.json").read())
    return names, info


def test_backup_over_ssh_into_a_local_file_check_mode_then_real(lab):
    lab.fresh(replicas=3)
    password = lab.password
    expected = lowest_healthy(lab)
    before = lab.replicas()
    backups = lab.workdir / "backups"
    backups.mkdir(exist_ok=True)
    dest = backups / "msr.tar"
    ssh_host = "ssh://root@%s" % lab.hosts["manager1"]
    task = backup_task("backup", delegate=True, dest=str(dest), docker_host=ssh_host)

    # Check mode: a prediction, twice the same, and not one container on any engine.
    watch = watching(lab)
    checks = [lab.run(lab.play([task]), check=True, touches=False) for _ in range(2)]
    time.sleep(0.2)
    watch.stop()
    assert watch.rounds > 10
    assert watch.names() == []
    for run in checks:
        assert run.rc == 0, run.output
    predicted = checks[0].result("backup")
    assert predicted == checks[1].result("backup")
    assert predicted["changed"] is True and predicted["replica_id"] == expected and predicted["version"] == VERSION
    assert predicted["path"] == str(dest) and predicted["sha256"] is None
    assert predicted["diff"]["before"]["state"] == "absent" and predicted["diff"]["after"]["state"] == "file"
    assert predicted["cmd"] == ["docker", "-H", ssh_host, "run", "--rm", "--log-driver", "none", "-e", "UCP_CA",
                                "-e", "UCP_PASSWORD", "mirantis/dtr:%s" % VERSION, "backup", "--existing-replica-id",
                                expected, "--ucp-url", lab.vars["msr_mke_url"], "--ucp-username", "admin",
                                "--nocolor"]
    assert not dest.exists() and os.listdir(str(backups)) == []
    assert lab.replicas() == before

    # For real, at -vvv, with MKE slowed down so the bootstrapper container lives long enough to inspect.
    lab.fault("mke-latency", 150)
    watch = watching(lab)
    try:
        run = lab.run(lab.play([task]), verbosity=3)
    finally:
        watch.stop()
        lab.fault("mke-latency", 0)
    assert run.rc == 0, run.output
    r = run.result("backup")
    assert r["changed"] is True and r["replica_id"] == expected and r["cmd"] == predicted["cmd"]
    data = dest.read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600 and r["mode"] == "0600"
    assert r["size"] == len(data) and r["sha256"] == hashlib.sha256(data).hexdigest()
    names, info = tar_members(data)
    assert names == MEMBERS
    assert info["replicaID"] == expected and info["version"] == VERSION
    assert sorted(info["replicaIDs"]) == sorted(before)
    assert os.listdir(str(backups)) == ["msr.tar"]              # no temporary file left
    assert "Backup is complete" in r["phases"] and r["diff"]["after"]["sha256"] == r["sha256"]

    # The engines saw the bootstrapper on manager1 (the docker_host) and its reader on the replica's node.
    boots = [(node, a) for (node, name), a in watch.seen.items() if name.startswith("msr-replicas-backup-")]
    assert [node for node, _ in boots] == ["manager1"], watch.names()
    attrs = boots[0][1]
    assert attrs is not None, "the bootstrapper container was gone before it could be inspected"
    node_of = lab.replicas()[expected]["node"]
    assert any(node == node_of and name.startswith("dtr-backup") for node, name in watch.seen), watch.names()
    assert attrs["HostConfig"]["LogConfig"]["Type"] == "none"
    assert attrs["Config"]["Cmd"][:3] == ["backup", "--existing-replica-id", expected]
    argv = json.dumps([attrs["Path"], attrs["Args"], attrs["Config"]["Cmd"], attrs["Config"].get("Entrypoint")])
    assert password not in argv
    assert "UCP_PASSWORD=%s" % password in attrs["Config"]["Env"]      # the secret travels in the env
    # ... and the container is gone from every engine.
    for node, api in watch.clients.items():
        assert [c for c in api.containers(all=True) if c["Names"][0].lstrip("/").startswith(PREFIXES)] == [], node

    # The audit: never in the -vvv output or the recorded results; the invocation (shown only from -vvv; the
    # task ran in Ansible's own process, so no connection was logged) was shown, masked.
    assert "-vvv" in run.args and '"invocation": {' in run.stdout
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in run.stdout
    for text in (run.stdout, run.stderr):
        assert password not in text
    for rec in run.records + checks[0].records:
        assert password not in json.dumps(rec), rec["task"]
    assert "UCP_PASSWORD" in r["cmd"] and not any(password in part or "UCP_PASSWORD=" in part for part in r["cmd"])

    # force: false keeps the file and runs nothing; the default (force) replaces it with a new backup.
    watch = watching(lab)
    keep = lab.run(lab.play([backup_task("keep", delegate=True, dest=str(dest), docker_host=ssh_host,
                                         force=False)]), touches=False)
    watch.stop()
    assert keep.rc == 0, keep.output
    k = keep.result("keep")
    assert k["changed"] is False and k["sha256"] == r["sha256"] and watch.names() == []
    assert dest.read_bytes() == data


def test_backup_on_the_node_into_a_directory_uses_the_documented_name(lab):
    lab.fresh(replicas=3)
    expected = lowest_healthy(lab)
    directory = "/tmp/msr-backups"
    play = lab.play([
        {"name": "backup dir", "ansible.builtin.file": {"path": directory, "state": "directory", "mode": "0700"}},
        backup_task("backup", dest=directory + "/"),
    ])
    run = lab.run(play)
    assert run.rc == 0, run.output
    r = run.result("backup")
    assert r["changed"] is True and r["replica_id"] == expected      # the same replica as from the controller
    name = os.path.basename(r["path"])
    assert os.path.dirname(r["path"]) == directory
    assert re.match(r"^dtr-metadata-%s-backup-\d{8}-\d\d_\d\d_\d\d\.tar$" % re.escape(VERSION), name), name
    out = lab.ssh("manager1", "cd %s && ls -A && stat -c '%%a %%s' %s && sha256sum %s && tar tf %s"
                  % (directory, name, name, name)).stdout.splitlines()
    assert out[0] == name                                               # the only file: no temporary left
    assert out[1] == "600 %d" % r["size"]
    assert out[2].split()[0] == r["sha256"]
    assert sorted(n.rstrip("/") for n in out[3:]) == MEMBERS
    assert [c for c in lab.containers("manager1") if c.startswith("msr-replicas-")] == []


def test_backup_refuses_an_unhealthy_or_unknown_replica_and_skips_it_by_default(lab):
    lab.fresh(replicas=3)
    lowest = lowest_healthy(lab)
    node = lab.replicas()[lowest]["node"]
    lab.fault("stop-replica", node)
    try:
        dest = lab.workdir / "refused.tar"
        cases = [
            (backup_task("named unhealthy", delegate=True, dest=str(dest), replica_id=lowest),
             "replica_id %s is not healthy" % lowest),
            (backup_task("unknown", delegate=True, dest=str(dest), replica_id="0123456789ab"),
             "replica_id 0123456789ab is not a replica of this cluster"),
        ]
        watch = watching(lab)
        for task, msg in cases:
            task["ignore_errors"] = True
            for check in (True, False):
                run = lab.run(lab.play([task]), check=check, touches=False)
                assert run.rc == 0, run.output
                rec = run.task(task["name"])
                assert rec["status"] == "failed" and rec["result"]["msg"].startswith(msg), rec
                assert rec["result"]["changed"] is False
        watch.stop()
        assert watch.names() == [] and not dest.exists()

        # The default goes to the next healthy replica (quorum holds: 2 of 3).
        run = lab.run(lab.play([backup_task("default", delegate=True, dest=str(dest),
                                            docker_host="ssh://root@%s" % lab.hosts["manager1"])]))
        assert run.rc == 0, run.output
        r = run.result("default")
        assert r["changed"] is True and r["replica_id"] != lowest and r["replica_id"] == lowest_healthy(lab)
        assert tar_members(dest.read_bytes())[1]["replicaID"] == r["replica_id"]
    finally:
        lab.fault("start-replica", node)
    lab.wait_healthy()


def test_backup_refused_without_quorum_and_nothing_runs(lab):
    lab.fresh(replicas=3)
    lab.fault("quorum-loss")
    assert lab.status()["cluster"]["has_quorum"] is False
    dest = lab.workdir / "no-quorum.tar"
    task = backup_task("backup", delegate=True, dest=str(dest), docker_host="ssh://root@%s" % lab.hosts["manager1"])
    task["ignore_errors"] = True
    watch = watching(lab)
    msgs = []
    for check in (True, False):
        run = lab.run(lab.play([task]), check=check, touches=False)
        assert run.rc == 0, run.output
        rec = run.task("backup")
        assert rec["status"] == "failed" and rec["result"]["changed"] is False, rec
        msgs.append(rec["result"]["msg"])
    watch.stop()
    assert msgs[0] == msgs[1]
    # Without quorum every /_ping fails, the survivor's too (msr2.md 2.2).
    assert msgs[0].startswith("refusing to back up: only 0 of 3 replicas are healthy and 2 are needed for quorum")
    assert "emergency-repair" in msgs[0]
    assert watch.names() == [] and not dest.exists()
