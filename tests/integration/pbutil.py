# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the playbook tests: extra vars, settled pools, the backups a run left."""

from __future__ import annotations

import tarfile

from pools import wait_up
from test_roles import HAPROXY_LBS


def ev(lab, backups, **kw):
    out = {"msr_backup_dir": str(backups), "lb_pool_up_timeout": 20}
    out.update(kw)
    return out


def settled_pools(lab, nodes):
    for lb in HAPROXY_LBS:
        wait_up(lb, nodes)
    return {"lb1": {"runtime": nodes, "file": nodes}, "lb2": {"runtime": nodes, "file": nodes}, "lb3": nodes}


def backups_in(directory):
    files = sorted(directory.glob("dtr-metadata-2.9.16-backup-*.tar"))
    for f in files:
        assert f.stat().st_mode & 0o777 == 0o600, f
        with tarfile.open(f, mode="r:") as tar:
            assert tar.getmembers(), "%s is an empty tar" % f
    return files
