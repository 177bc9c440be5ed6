# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo` (scripts/demo.sh) does what the README says it does: the collection from its release tarball,
preflight changing nothing, scale_up joining worker2 and worker3 into the HAProxy pool, msr-reconcile in
sync (exit 0), and the status, pool, backups and report it points at. It runs on this worker's lab name and
subnet, so the next test recreates the lab."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from msrint import LAB_SUBNET, ROOT, STATE_DIR, lab_env

pytestmark = pytest.mark.timeout(300)


def recaps(out):
    return [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
            for line in out.splitlines() if line.startswith("localhost ") and "ok=" in line]


def test_demo_does_what_the_readme_says(lab):
    lab.down()
    lab.touched()
    env = lab_env(MSR_DEMO_SUBNET=LAB_SUBNET, PATH="%s:%s" % (ROOT / ".venv" / "bin", os.environ["PATH"]))
    demo = STATE_DIR / "demo"
    try:
        proc = subprocess.run([str(ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                              timeout=280)
        out = proc.stdout
        assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
        installed = demo / "collections" / "ansible_collections" / "msr" / "replicas"
        # The playbooks ran from the installed tarball, not from this checkout.
        assert (installed / "MANIFEST.json").is_file() and not installed.is_symlink()
        assert re.search(r"msr\.replicas msr-replicas-\d+\.\d+\.\d+\.tar\.gz installed into", out)
        assert "%s/roles/replica/tasks/_join_node.yml" % installed in out
        preflight, scale_up = recaps(out)
        assert preflight["changed"] == 0 and preflight["failed"] == 0
        assert scale_up["changed"] > 0 and scale_up["failed"] == 0
        for node in ("worker2", "worker3"):
            assert "%s: join: Join is complete" % node in out
        assert "msr-reconcile: ok (exit 0): status in_sync, 0 drift(s) found" in out
        assert "quorum: 3/3 healthy, majority 2: ok" in out
        pool = re.findall(r"^  (msr_https?)/(worker\d) UP$", out, re.M)
        assert sorted(pool) == sorted((b, w) for b in ("msr_http", "msr_https") for w in ("worker1", "worker2",
                                                                                          "worker3"))
        assert len(re.findall(r"^-rw------- .* dtr-metadata-2\.9\.16-backup-.*\.tar$", out, re.M)) == 2
        assert "in_sync=True, 3 of 3 replicas healthy (majority 2), actions=0" in out
        # What the lab itself says, not the demo's own printout.
        nodes = sorted(r["node"] for r in lab.replicas().values() if r["health"] == "OK")
        assert nodes == ["worker1", "worker2", "worker3"]
    finally:
        subprocess.run([str(ROOT / ".venv" / "bin" / "msr-lab"), "down"], env=lab_env(), capture_output=True,
                       timeout=120)
        # The session's lab is up for every test, as the fixture leaves it: a test after this one that
        # reads the lab without lab.fresh() (the TLS relay to manager1's engine) would find no engine socket.
        lab.up(replicas=1)
