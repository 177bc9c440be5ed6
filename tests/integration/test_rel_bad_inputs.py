# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability, bad inputs (issue 10, point 4): each bad input given to the playbook a user would run
(`ansible-playbook msr.replicas.<name>`), in check mode and for real, is refused before any change, with a
message that names the problem and the fix (both asserted word for word). Nothing changed means, as the lab
itself reports it: the replicas, every container on every node (read with the docker CLI through each node's
own engine), every LB pool (HAProxy's runtime and file, NGINX's file), the image storage, and no backup
written; and no task of either run reported a change.

Where the input would lead to a change if it were not refused, the msr group asks for one (five hosts: two
joins), so a missing refusal shows as a change. The module-level refusals (credentials, CAs) are in
test_bad_inputs.py, the preflight role's own report in test_preflight.py, scale_down's other refusals in
test_playbooks_scale.py; here each is what the playbook run says.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

import reliability
from msrint import STATE_DIR
from pbutil import ev
from pools import runtime
from test_bad_inputs import WRONG_PASSWORD, other_ca_pem
from test_roles import HAPROXY_LBS, pools

pytestmark = pytest.mark.timeout(300)

FIVE = ["worker1", "worker2", "worker3", "worker4", "worker5"]
THREE = FIVE[:3]
PREFLIGHT = "preflight: %d problem(s) to fix before changing MSR:\n"


def inventory(lab, msr, node_names=None):
    """The lab inventory with group msr = ``msr`` (hosts as the lab has them, ``node_names`` overriding
    msr_node_name of some)."""
    data = yaml.safe_load(lab.inventory.read_text())
    children = data["all"]["children"]
    hosts = {n: hv for g in children.values() for n, hv in (g.get("hosts") or {}).items()}
    node_names = node_names or {}
    children["msr"] = {"hosts": {n: dict(hosts[n], **({"msr_node_name": node_names[n]} if n in node_names else {}))
                                 for n in msr}}
    path = lab.workdir / ("inventory-bad-%s%s.yml" % ("-".join(msr), "-renamed" if node_names else ""))
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def engine_containers(node):
    """(id, name, state) of every container on a node, from the docker CLI on that node's own engine socket."""
    sock = STATE_DIR / "nodes" / node / "run" / "docker.sock"
    out = subprocess.run(["docker", "-H", "unix://%s" % sock, "ps", "-a", "--no-trunc",
                          "--format", "{{.ID}} {{.Names}} {{.State}}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return sorted(tuple(line.split()) for line in out.splitlines() if line.strip())


def snapshot(lab):
    """What a refused run must leave as it was, read from the lab (not through the collection)."""
    st = lab.status()
    nodes = [n["name"] for n in st["nodes"] if n["role"] != "lb"]     # every MKE node (an LB host runs no engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        containers = dict(zip(nodes, pool.map(engine_containers, nodes)))
    admin = {lb: {b: {s: ("maint" if "MAINT" in st else "drain" if "DRAIN" in st else "ready")
                      for s, st in servers.items()} for b, servers in runtime(lb).items()} for lb in HAPROXY_LBS}
    return {"replicas": lab.replicas(), "containers": containers, "pools": pools(lab), "admin": admin,
            "storage": st["cluster"].get("storage")}


def refusal(run):
    """The message of the task that stopped the run."""
    failed = [r for r in run.records if r["status"] == "failed"]
    assert failed, run.output
    return failed[-1]["result"]["msg"]


# ---- the table: (scenario, playbook, msr group, msr_node_name overrides, extra vars, message, problem, fix) --
# extra vars and the message are functions of the lab (its addresses, CAs, replica IDs).

def _preflight(*lines):
    return PREFLIGHT % len(lines) + "\n".join("- " + line for line in lines)


def _mke_unreadable(lab, why):
    return _preflight("MKE: cannot read the cluster through %s: %s; check msr_mke_url, msr_mke_username and "
                      "msr_mke_password, and msr_mke_ca (or msr_mke_insecure_tls: true), then run preflight again (the checks that need MKE did not run)" % (lab.vars["msr_mke_url"], why))


def _tls_failed(url, fix):
    return "TLS verification of %s failed: unable to get local issuer certificate. %s" % (url, fix)


MSR_CA_FIX = "Give MSR's own CA in msr_ca (every replica serves it at https://<replica>/ca) or set msr_insecure_tls: true"

CASES = [
    ("even target count", "scale_up", FIVE[:4], None, lambda lab: {},
     lambda lab: _preflight("group msr: 4 hosts, an even number: 4 replicas tolerate no more failures than 3; use 3, 5 "
                            "or 7 hosts, or set msr_allow_even: true"),
     "4 hosts, an even number", "use 3, 5 or 7 hosts, or set msr_allow_even: true"),
    ("fewer than 3 msr hosts", "scale_up", ["worker1"], None, lambda lab: {},
     lambda lab: _preflight("group msr: 1 host(s) (worker1); a highly available MSR needs at least 3 replicas on 3 "
                            "dedicated MKE workers: add hosts to group msr (3, 5 or 7), or set msr_allow_small_cluster: "
                            "true for a lab or test cluster"),
     "1 host(s) (worker1)", "add hosts to group msr (3, 5 or 7), or set msr_allow_small_cluster: true"),
    ("MKE manager in msr", "scale_up", FIVE[:4] + ["manager1"], None, lambda lab: {},
     lambda lab: _preflight("manager1: also in inventory group(s) mke_managers; an MSR node must be dedicated: take it "
                            "out of those groups, or add them to preflight_neutral_groups if they run nothing (a site "
                            "or environment group)",
                            "manager1: MKE node manager1 is a manager; MSR replicas run on dedicated MKE workers (MSR "
                            "system requirements): put a worker in group msr instead"),
     "MKE node manager1 is a manager", "put a worker in group msr instead"),
    ("local filesystem storage, 3 replicas", "install", THREE, None,
     lambda lab: {"msr_storage": {"driver": "filesystem"}},
     lambda lab: "install: the msr group has 3 hosts but the image storage is the local filesystem of each replica "
                 "(msr_storage.driver is filesystem): images pushed to one replica would be missing on the others. Set "
                 "msr_storage to shared storage (a driver such as s3 with options and secret_options, or nfs_url: "
                 "nfs://<host>/<path>), or keep a single host in msr.",
     "the image storage is the local filesystem of each replica (msr_storage.driver is filesystem)",
     "Set msr_storage to shared storage"),
    ("unknown node name", "scale_up", FIVE, {"worker4": "worker-4"}, lambda lab: {},
     lambda lab: _preflight("worker4: MKE has no node named worker-4 (msr_node_name, by default the short inventory "
                            "hostname); join the host to MKE as a worker, or set msr_node_name to its MKE node name "
                            "(docker node ls)"),
     "MKE has no node named worker-4", "set msr_node_name to its MKE node name"),
    ("wrong password", "scale_up", FIVE, None, lambda lab: {"msr_mke_password": WRONG_PASSWORD},
     lambda lab: _mke_unreadable(lab, "MKE rejected the credentials for user 'admin' (HTTP 401)"),
     "MKE rejected the credentials for user 'admin' (HTTP 401)", "msr_mke_username and msr_mke_password"),
    ("wrong MKE CA", "scale_up", FIVE, None, lambda lab: {"msr_mke_ca": other_ca_pem()},
     lambda lab: _mke_unreadable(lab, _tls_failed(lab.vars["msr_mke_url"], "Give the MKE CA in mke_ca (it is served at "
                                                  "%s/ca) or set mke_insecure_tls: true" % lab.vars["msr_mke_url"])),
     "TLS verification of %s failed", "Give the MKE CA in mke_ca"),
    # the MKE CA where MSR's belongs, the likeliest mistake (both are in the lab inventory)
    ("wrong MSR CA", "scale_up", FIVE, None, lambda lab: {"msr_ca": lab.vars["msr_mke_ca"]},
     lambda lab: [_preflight("MSR storage: the image storage could not be read (no replica answered: %s), so preflight "
                             "cannot tell whether it is shared; make a replica answer (msr_ca, its health), then run "
                             "preflight again" % _tls_failed("https://%s" % lab.hosts[n], MSR_CA_FIX)) for n in THREE],
     "unable to get local issuer certificate", MSR_CA_FIX),
    ("empty scale-down list", "scale_down", THREE, None,
     lambda lab: {"msr_scale_down_nodes": [], "msr_skip_confirmation": True},
     lambda lab: "scale_down: msr_scale_down_nodes must be a non-empty list of the MKE nodes whose replicas go, e.g. "
                 "-e '{\"msr_scale_down_nodes\": [\"worker-4\"]}' (got [])",
     "must be a non-empty list", "-e '{\"msr_scale_down_nodes\": [\"worker-4\"]}'"),
    ("malformed replica ID", "replace", THREE, None, lambda lab: {"msr_replace_replica_id": "0123456789xy"},
     lambda lab: "replace: msr_replace_replica_id 0123456789xy is not a 12-hex replica ID; give the ID of the failed "
                 "replica, 12 characters 0-9 and a-f (msr.replicas.cluster_info lists the IDs; the containers of a "
                 "replica are dtr-<service>-<ID>)",
     "0123456789xy is not a 12-hex replica ID", "give the ID of the failed replica, 12 characters 0-9 and a-f"),
    ("bootstrapper version not the cluster's", "scale_up", FIVE, None, lambda lab: {"msr_version": "2.9.15"},
     lambda lab: _preflight("msr_version: is 2.9.15 but the replicas run 2.9.16; set msr_version: 2.9.16 (the "
                            "bootstrapper refuses to join a replica of another version), or upgrade MSR first"),
     "is 2.9.15 but the replicas run 2.9.16", "set msr_version: 2.9.16"),
    ("replica ID of another node", "replace", THREE, None,
     lambda lab: {"msr_replace_node": "worker2", "msr_replace_replica_id": lab.replica_on("worker1")["id"]},
     lambda lab: "replace: msr_replace_node worker2 and msr_replace_replica_id %s are both set (the ID may be of a "
                 "replica on another node); set exactly one of msr_replace_node (the MKE node of the failed replica) and "
                 "msr_replace_replica_id (its 12-hex ID, for a ghost or a replica whose node is gone)"
                 % lab.replica_on("worker1")["id"],
     "are both set (the ID may be of a replica on another node)", "set exactly one of msr_replace_node"),
    ("tcp docker_host without TLS", "scale_up", FIVE, None,
     lambda lab: {"msr_docker_host": "tcp://%s:2375" % lab.hosts["manager1"]},
     lambda lab: "replica: msr_docker_host tcp://%s:2375 is a TCP address, and the bootstrapper's environment carries "
                 "the MKE password: the roles reach the bootstrapper's engine over SSH or a unix socket only (the backup "
                 "before each change refuses TCP too). Leave msr_docker_host unset (ssh://<ansible_user>@<ansible_host> "
                 "of msr_bootstrap_host), or set it to ssh://<user>@<host> of an MKE manager." % lab.hosts["manager1"],
     "is a TCP address", "Leave msr_docker_host unset"),
]


@pytest.fixture(scope="module")
def before(lab):
    lab.fresh(replicas=3)
    lab.wait_healthy()
    return snapshot(lab)


@pytest.mark.parametrize("scenario,playbook,msr,node_names,extra,message,problem,fix", CASES,
                         ids=[c[0].replace(" ", "_") for c in CASES])
def test_bad_input_is_refused_before_any_change(lab, before, scenario, playbook, msr, node_names, extra, message,
                                                problem, fix):
    lab.fresh(replicas=3)       # the runs below change nothing, so this is the same lab as `before` read
    backups = lab.workdir / ("backups-bad-%s" % re.sub(r"\W+", "-", scenario))
    inv = inventory(lab, msr, node_names)
    expected = message(lab)
    expected = expected if isinstance(expected, list) else [expected]
    if "%s" in problem:
        problem = problem % lab.vars["msr_mke_url"]
    said = []
    for check in (True, False):
        run = lab.run("msr.replicas." + playbook, check=check, inventory=inv, touches=False,
                      extra_vars=ev(lab, backups, **extra(lab)))
        mode = "check mode" if check else "real run"
        assert run.rc != 0, (mode, run.output)
        msg = refusal(run)
        assert msg in expected, (mode, msg, expected)
        assert problem in msg and fix in msg, (mode, msg)
        assert not [r["task"] for r in run.records if r["result"].get("changed")], (mode, run.output)
        assert WRONG_PASSWORD not in run.stdout + run.stderr
        assert not backups.exists(), mode
        assert snapshot(lab) == before, "%s of %s changed the lab" % (mode, scenario)
        said.append(msg)
    assert said[0] == said[1], "check mode predicted another refusal: %s" % said
    containers = sum(len(c) for c in before["containers"].values())
    reliability.record(
        "Bad inputs", "bad input: %s" % scenario,
        "ansible-playbook msr.replicas.%s with %s (msr group: %s), check mode then for real"
        % (playbook, ", ".join("%s=%s" % (k, "<other CA>" if "BEGIN CERTIFICATE" in str(v) else
                                          "<not the password>" if v == WRONG_PASSWORD else v)
                               for k, v in extra(lab).items()) or "the group as given",
           ", ".join("%s (msr_node_name %s)" % (h, node_names[h]) if node_names and h in node_names else h for h in msr)),
        said[1],
        "refused in both runs before any change: %d replicas, %d containers on %d nodes, the LB pools (HAProxy runtime "
        "and file, NGINX file) and the storage as before; no backup written"
        % (len(before["replicas"]), containers, len(before["containers"])),
        runs=2, replicas=len(before["replicas"]), containers=containers)
