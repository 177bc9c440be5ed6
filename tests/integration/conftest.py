# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests: the msr.replicas modules driven by ansible-playbook against the msr-lab.

How to run (as root, from the repository root, after `make venv`):

    .venv/bin/pytest -q tests/integration

The session fixture ``lab`` runs ``msr-lab up`` under MSR_LAB_NAME=msrint on the bridge subnet
10.80.0.0/24 (so the suite can run beside other labs, e.g. the default one or msrsys/10.79.0.0/24) and
ALWAYS runs ``msr-lab down`` at the end, whatever happened. Override the name/subnet with
MSR_INT_LAB_NAME / MSR_INT_LAB_SUBNET. Tests that need a particular starting state call
``lab.fresh(replicas=N)``, which recreates the lab (~4 s) unless it is still untouched with N replicas.

Ansible runs hermetically: HOME, ANSIBLE_HOME and ANSIBLE_LOCAL_TEMP point into a session temp dir; HOME
is the directory written by ``msr-lab ssh-config --home`` so the docker SDK's paramiko transport
(docker_host ssh://...) trusts exactly the lab's host keys. The collection is made importable through
<tmp>/collections/ansible_collections/msr/replicas -> the repository root (a symlink, so the code under
test is the checkout itself). The test-only callback callback_plugins/msr_record.py records every task
result as JSON so tests assert on changed/diff/msg/warnings, while stdout keeps the default callback's
human output (the secrets audit greps it at -vvv).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from msrint import LAB_NAME, MSR_LAB, Lab


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the msr-lab needs root")
    if not Path(MSR_LAB).exists():
        pytest.skip("no %s; run `make venv`" % MSR_LAB)
    workdir = Path(tempfile.mkdtemp(prefix="msr-int-"))
    lab = Lab(workdir)
    try:
        # A lab left over by an interrupted earlier run of this suite (same name) goes first.
        lab.down()
        started = time.time()
        lab.up(replicas=1)
        print("msr-lab %s up in %.1f s" % (LAB_NAME, time.time() - started))
        yield lab
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_sessionfinish(session):
    """The xdist controller (or a run without xdist) renders docs/reliability.md from the rows the
    reliability scenarios recorded (reliability.record)."""
    if not hasattr(session.config, "workerinput"):
        from reliability import render
        render()


# Seconds each file takes on one worker (measured on 2 cores, rounded). Only the order of files depends on it:
# heaviest first (with --no-loadscope-reorder), so xdist does not start a long file last.
FILE_SECONDS = {
    "test_rel_faults_join.py": 400, "test_clusters.py": 300, "test_playbooks_replace.py": 300,
    "test_playbooks_scale.py": 265,
    "test_rel_faults_ops.py": 250, "test_rel_traffic.py": 225, "test_roles.py": 210, "test_rel_secrets.py": 200,
    "test_install_backup_repair.py": 195, "test_reconcile.py": 180, "test_preflight.py": 160, "test_faults.py": 145,
    "test_rel_bad_inputs.py": 145, "test_backup.py": 140, "test_lb_pool_module.py": 130,
    "test_rel_repair_restore.py": 110, "test_replica_lifecycle.py": 75, "test_release.py": 75, "test_awx.py": 75,
    "test_demo.py": 60, "test_inventory_mke.py": 90, "test_perf_counts.py": 40,
}


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 60))
