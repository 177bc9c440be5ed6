# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A long join shows the bootstrapper's phases as they happen, at default verbosity (the replica action
plugin): read from ansible-playbook's terminal line by line, with the time each line arrived."""

from __future__ import annotations

import errno
import json
import os
import pty
import re
import select
import subprocess
import time

import pytest
import yaml

from msrint import BIN, PlaybookRun, replica_task

pytestmark = pytest.mark.timeout(120)

JOIN_SECONDS = 8      # the lab's replication step: the join is long enough to see it stream
PREFIX = "worker2: join: "
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_on_terminal(lab, playbook, check=False, timeout=90):
    """ansible-playbook on a pseudo-terminal, as a user sees it (a pipe would be block-buffered by Python):
    a PlaybookRun plus [(seconds since start, line)]."""
    lab.touched()
    lab._runs += 1
    path = lab.playbooks / ("progress%03d.yml" % lab._runs)
    path.write_text(playbook)
    record = lab.workdir / ("progress-records%03d.jsonl" % lab._runs)
    args = [str(BIN / "ansible-playbook"), "-i", str(lab.inventory), str(path)] + (["--check"] if check else [])
    master, slave = pty.openpty()
    started = time.time()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=str(lab.workdir),
                            env=lab.ansible_env(MSR_RECORD_FILE=str(record)))
    os.close(slave)
    lines, buf = [], b""
    try:
        while True:
            left = started + timeout - time.time()
            assert left > 0, "ansible-playbook still runs after %d s:\n%s" % (timeout, "\n".join(t for _a, t in lines))
            if not select.select([master], [], [], left)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError as exc:   # EIO: the terminal's last writer is gone
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                break
            buf += data
            at = time.time() - started
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                lines.append((at, ANSI.sub("", raw.decode("utf-8", "replace")).rstrip("\r")))
    finally:
        os.close(master)
        proc.wait(timeout=30)
    records = [json.loads(x) for x in record.read_text().splitlines() if x.strip()] if record.exists() else []
    text = "\n".join(t for _a, t in lines)
    done = subprocess.CompletedProcess(args, proc.returncode, stdout=text, stderr="")
    return PlaybookRun(args, done, records, path), lines


def join_play(lab):
    task = replica_task("join worker2", register="joined", node="worker2",
                        docker_host="ssh://root@%s" % lab.hosts["manager1"])
    return lab.play([task], hosts="localhost")


def test_a_long_join_streams_its_phases(lab):
    lab.fresh(replicas=1)
    lab.fault("slow-join", JOIN_SECONDS)   # lab.fault marks the lab touched: the next test gets a fresh one
    before = lab.replicas()

    # Check mode runs nothing: no progress, nothing changes.
    check, lines = run_on_terminal(lab, join_play(lab), check=True)
    assert check.rc == 0, check.output
    assert check.result("join worker2")["action"] == "join"
    assert not [t for _a, t in lines if t.startswith("worker2: ")], check.output
    assert lab.replicas() == before

    run, lines = run_on_terminal(lab, join_play(lab))
    assert run.rc == 0, run.output
    result = run.result("join worker2")
    assert result["changed"] and result["action"] == "join"
    new = lab.replica_on("worker2")
    assert new and new["id"] == result["replica_id"] and new["health"] == "OK", new

    progress = [(at, t[len(PREFIX):]) for at, t in lines if t.startswith(PREFIX)]
    done_at = [at for at, t in lines if t.startswith("changed: [localhost]")]
    assert progress and done_at, run.output
    # it streamed: the first line came while the bootstrapper was still replicating, long before the result
    first = progress[0][0]
    assert done_at[0] - first >= JOIN_SECONDS - 2, (first, done_at, lines)
    complete = [at for at, t in progress if t == "Join is complete"][0]
    assert complete - first >= JOIN_SECONDS - 2, (first, complete)
    assert all(at <= done_at[0] for at, _t in progress)
    shown = [t for _a, t in progress]
    # every phase the module returned, once each and in its order, between the bootstrapper's start and the
    # warnings it logged (the WARNING: lines)
    assert shown[0] == "the bootstrapper msr-replicas-join-%s started" % result["replica_id"], shown
    phases = [t for t in shown[1:] if not t.startswith("WARNING: ")]
    assert phases == result["phases"], (shown, result["phases"])
    assert ["WARNING: " + w for w in result["bootstrapper_warnings"]] == [t for t in shown if t.startswith("WARNING: ")]
    assert "Beginning Docker Trusted Registry replica join" in phases[0] and "Join is complete" in phases
    assert lab.password not in "\n".join(t for _a, t in lines)

    # Nothing to do the second time: nothing runs, nothing is shown. The node comes from module_defaults
    # this time: they still reach the module through its action plugin.
    play = yaml.safe_load(join_play(lab))
    del play[0]["tasks"][0]["msr.replicas.replica"]["node"]
    play[0]["module_defaults"]["msr.replicas.replica"] = {"node": "worker2"}
    again, lines = run_on_terminal(lab, yaml.safe_dump(play, sort_keys=False))
    result = again.result("join worker2")
    assert again.rc == 0 and not result["changed"] and result["node"] == "worker2", again.output
    assert not [t for _a, t in lines if t.startswith("worker2: ")], again.output

    # A removal shows its phases too.
    task = replica_task("remove worker2", node="worker2", state="absent",
                        docker_host="ssh://root@%s" % lab.hosts["manager1"])
    removed, lines = run_on_terminal(lab, lab.play([task], hosts="localhost"))
    result = removed.result("remove worker2")
    assert removed.rc == 0 and result["action"] == "remove", removed.output
    assert lab.replica_on("worker2") is None
    shown = [t[len("worker2: remove: "):] for _a, t in lines if t.startswith("worker2: remove: ")]
    assert [t for t in shown[1:] if not t.startswith("WARNING: ")] == result["phases"] and result["phases"], shown
