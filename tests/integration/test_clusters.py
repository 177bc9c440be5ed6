# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Two MKE/MSR clusters in one inventory, on two labs side by side: the session's lab is cluster prod, a second
lab (its own MKE, CA, credentials, nodes and LB) is cluster build. Every run names its clusters (msr_cluster);
each cluster's hosts come from its group, each report is the cluster's own, and a cluster that fails neither
stops nor changes the other."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from msr_lab.lb.haproxy import haproxy_servers

from msrint import LAB_NAME, LAB_SUBNET, Lab
from test_reconcile import REPORT_KEYS, wrapper_argv
from test_roles import nodes_of

pytestmark = pytest.mark.timeout(900)

THREE = ["worker1", "worker2", "worker3"]


@pytest.fixture(scope="module")
def build_lab():
    octets = LAB_SUBNET.split(".")
    octets[1] = str(int(octets[1]) + 1)    # xdist workers' labs take every second /16 from LAB_SUBNET up
    workdir = Path(tempfile.mkdtemp(prefix="msr-int-build-"))
    other = Lab(workdir, name=LAB_NAME + "b", subnet=".".join(octets))
    try:
        other.down()
        other.up(replicas=1, options=("--workers", "3"), lb_kinds="haproxy")
        yield other
    finally:
        other.down()
        shutil.rmtree(workdir, ignore_errors=True)


def combined(labs, desired, workdir):
    """One inventory of both labs: hosts named <cluster>-<node> (msr_node_name the MKE node), each lab's variables
    as its cluster group's, the usual groups holding the hosts of both; and a HOME whose ssh files trust both."""
    children = {g: {"hosts": {}} for g in ("mke_managers", "mke_workers", "msr", "msr_lb")}
    home = workdir / "home-both"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    config, known = [], []
    for cluster, lab in labs.items():
        src = yaml.safe_load(lab.inventory.read_text())["all"]
        hosts = {}
        for group, body in src["children"].items():
            for name, hv in (body.get("hosts") or {}).items():
                full = "%s-%s" % (cluster, name)
                hosts[full] = dict(hosts.get(full, {}), **hv, msr_node_name=name)
                if group != "msr":
                    children[group]["hosts"][full] = {}
        for name in desired[cluster]:
            children["msr"]["hosts"]["%s-%s" % (cluster, name)] = {}
        variables = dict(src["vars"], msr_bootstrap_host="%s-%s" % (cluster, src["vars"]["msr_bootstrap_host"]))
        children[cluster] = {"vars": variables, "hosts": hosts}
        key = home / ".ssh" / ("id_%s" % cluster)
        shutil.copyfile(lab.home / ".ssh" / "id_ed25519", key)
        key.chmod(0o600)
        config.append((lab.home / ".ssh" / "config").read_text()
                      .replace(str(lab.home / ".ssh" / "id_ed25519"), str(key))
                      .replace(str(lab.home / ".ssh" / "known_hosts"), str(home / ".ssh" / "known_hosts")))
        known.append((lab.home / ".ssh" / "known_hosts").read_text())
    (home / ".ssh" / "config").write_text("\n".join(config))
    (home / ".ssh" / "known_hosts").write_text("".join(known))
    path = workdir / "inventory-both.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": {"msr_clusters": list(labs)}, "children": children}},
                                   sort_keys=False))
    return path, {"HOME": str(home)}


def haproxy_pool(lab, lb):
    return sorted({s["name"] for s in haproxy_servers(lab.state_dir, lb) if s["backend"] == "msr_https"})


def state(lab, lbs):
    return lab.replicas(), {lb: haproxy_pool(lab, lb) for lb in lbs}


def wrapper(lab, inventory, env, *args):
    proc = subprocess.run(wrapper_argv(lab, *args, inventory=inventory),
                          env=lab.ansible_env(**env), capture_output=True, text=True, timeout=600,
                          cwd=str(lab.workdir))
    return proc.returncode, proc.stdout + proc.stderr


def test_two_clusters_one_inventory_each_its_own_and_a_failure_stays_in_its_cluster(lab, build_lab):
    lab.fresh(replicas=1)
    labs = {"prod": lab, "build": build_lab}
    backups = lab.workdir / "backups-{cluster}"
    inventory, env = combined(labs, {"prod": THREE, "build": THREE}, lab.workdir)
    common = {"msr_backup_dir": str(backups), "lb_pool_up_timeout": 20}

    # A run never picks clusters by itself; unknown names and shared files are refused before anything.
    for extra, text in (({}, "the inventory holds the clusters prod, build: name one with -e msr_cluster=NAME"),
                        ({"msr_cluster": "qa"}, "msr_cluster names qa, not among the inventory's clusters"),
                        ({"msr_cluster": "all", "msr_backup_dir": "/tmp/msr-shared"},
                         "the clusters prod, build share msr_backup_dir /tmp/msr-shared")):
        before = state(lab, ("lb1", "lb2")), state(build_lab, ("lb1",))
        run = lab.run("msr.replicas.scale_up", inventory=inventory, env=env, touches=False,
                      extra_vars=dict(common, **extra))
        assert run.rc != 0 and text in run.stdout, run.output
        assert (state(lab, ("lb1", "lb2")), state(build_lab, ("lb1",))) == before

    # The report of each cluster is its own: prod lacks two replicas, build too; both read in one run.
    reports = lab.workdir / "reports"
    reports.mkdir(exist_ok=True)
    code, out = wrapper(lab, inventory, env, "--cluster", "all", "--report", str(reports / "{cluster}.json"))
    assert code == 1, out
    for cluster, other in labs.items():
        data = json.loads((reports / ("%s.json" % cluster)).read_text())
        assert REPORT_KEYS <= set(data) and data["cluster"] == cluster and data["status"] == "drift", data
        assert sorted(r["node"] for r in data["replicas"]) == ["worker1"]
        assert {r["id"] for r in data["replicas"]} == set(other.replicas())
        assert sorted(d["node"] for d in data["drift"] if d["kind"] == "missing_replica") == ["worker2", "worker3"], data["drift"]
        assert other.password not in out
    assert out.splitlines()[-1] == "msr-reconcile: 2 clusters, exit 1: prod drift, build drift", out

    # MKE of prod fails every request: scale_up on both fails prod (unchanged) and scales build up to three,
    # into build's own LB only.
    prod_before = state(lab, ("lb1", "lb2"))
    lab.fault("mke-error", 500, 0)
    try:
        run = lab.run("msr.replicas.scale_up", inventory=inventory, env=env,
                      extra_vars=dict(common, msr_cluster="all"))
        assert run.rc != 0, run.output
        assert state(lab, ("lb1", "lb2")) == prod_before, "the failed cluster changed"
        assert nodes_of(build_lab) == THREE and haproxy_pool(build_lab, "lb1") == THREE
        failed = [(r["host"], r["result"].get("msg")) for r in run.records if r["status"] == "failed"]
        assert len(failed) == 1 and failed[0][0] == "msr-cluster-prod" and "HTTP 500" in failed[0][1], failed
        recap = {ln.split()[0]: ln for ln in run.stdout.splitlines() if ln.startswith("msr-cluster-")}
        assert "failed=1" in recap["msr-cluster-prod"] and "failed=0" in recap["msr-cluster-build"], recap
        assert len(list(Path(str(backups).replace("{cluster}", "build")).glob("*.tar"))) == 2
        assert not Path(str(backups).replace("{cluster}", "prod")).exists()
        code, out = wrapper(lab, inventory, env, "--cluster", "all", "--report", str(reports / "{cluster}.json"))
        assert code == 2, out
        assert json.loads((reports / "build.json").read_text())["status"] == "in_sync"
        assert json.loads((reports / "prod.json").read_text())["status"] == "error"
    finally:
        lab.clear_faults()

    # One named cluster: prod alone, build untouched.
    build_before = state(build_lab, ("lb1",))
    run = lab.run("msr.replicas.scale_up", inventory=inventory, env=env, extra_vars=dict(common, msr_cluster="prod"))
    assert run.rc == 0, run.output
    assert "msr-cluster-build" not in run.stdout
    assert nodes_of(lab) == THREE and all(haproxy_pool(lab, lb) == THREE for lb in ("lb1", "lb2"))
    assert state(build_lab, ("lb1",)) == build_before

    code, out = wrapper(lab, inventory, env, "--cluster", "prod,build",
                        "--report", str(reports / "{cluster}.json"))
    assert code == 0, out
    assert [json.loads((reports / ("%s.json" % c)).read_text())["status"] for c in labs] == ["in_sync", "in_sync"]
