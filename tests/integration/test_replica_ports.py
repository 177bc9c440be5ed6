# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A replica on non-default ports: the join waits on the right port and cluster_info finds it there."""

from __future__ import annotations

import pytest
from msrint import replica_task

pytestmark = pytest.mark.timeout(180)


def test_join_on_other_ports_is_found_on_them(lab):
    lab.fresh(replicas=1)
    task = replica_task("join worker4 on 8081/4443", node="worker4", replica_http_port=8081, replica_https_port=4443)
    run = lab.run(lab.play([task, {"name": "read", "msr.replicas.cluster_info": {}, "register": "info"}]))
    assert run.rc == 0, run.output
    joined = run.result("join worker4 on 8081/4443", "manager1")
    assert joined["changed"] is True and joined["health"] == "OK", joined
    flags = joined["cmd"]
    assert flags[flags.index("--replica-https-port") + 1] == "4443"
    assert flags[flags.index("--replica-http-port") + 1] == "8081"

    # the lab publishes those ports on dtr-nginx, and the replica answers there, not on 443
    ports = lab.ssh("worker4", "docker ps --filter name=dtr-nginx- --format '{{.Ports}}'").stdout.strip()
    assert ports == "0.0.0.0:8081->80/tcp, 0.0.0.0:4443->443/tcp", ports
    info = {r["node"]: r for r in run.result("read", "manager1")["replicas"]}
    assert info["worker4"]["url"] == "https://%s:4443" % lab.hosts["worker4"]
    assert info["worker4"]["ping"] == 200 and info["worker4"]["health"] == "OK"
    assert info["worker1"]["url"] == "https://%s" % lab.hosts["worker1"]
