# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The msr.replicas.preflight role on the lab: a play `hosts: localhost` importing the role, one failing task
listing every failure (each asserted word for word), real Ansible warnings, and nothing changed (the lab's own
status before and after, in check mode too)."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

import pytest
import yaml

pytestmark = pytest.mark.timeout(300)

REPORT = "Preflight | report"
QUIET = {"preflight_min_memory_gb": 4}      # the lab's nodes have 4 GiB (4.3 GB): no resource warnings
NO_SDK = {"ansible_python_interpreter": "/usr/bin/python3"}   # Debian's Python, without docker or paramiko
FILESYSTEM_LAB = ("--managers", "2", "--storage", "filesystem", "--heartbeat-seconds", "1")


def play(variables=None):
    return yaml.safe_dump([{
        "name": "preflight on the lab", "hosts": "localhost", "gather_facts": False, "vars": variables or {},
        "tasks": [{"name": "Check the prerequisites", "ansible.builtin.import_role": {"name": "msr.replicas.preflight"}}],
    }], sort_keys=False)


def inventory(lab, msr, groups=None):
    """The lab's inventory with group msr = ``msr`` and extra ``groups`` ({name: [hosts]})."""
    inv = yaml.safe_load(lab.inventory.read_text())
    children = inv["all"]["children"]
    children["msr"] = {"hosts": {h: {"ansible_host": lab.hosts[h]} for h in msr}}
    for name, members in (groups or {}).items():
        children[name] = {"hosts": {h: {"ansible_host": lab.hosts[h]} for h in members}}
    path = lab.workdir / ("inventory-%s.yml" % uuid.uuid4().hex[:8])
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def snapshot(lab):
    """What the lab itself reports (not through the collection) that a read-only run must leave as it was."""
    st = lab.status()
    nodes = [{k: n.get(k) for k in ("name", "role", "state", "availability", "engine", "partitioned", "workloads")}
             for n in st["nodes"]]
    replicas = {r["id"]: {k: r.get(k) for k in lab.STABLE} for r in st["cluster"]["replicas"]}
    # each LB's pool as administered (not its health checks and counters, which move on their own)
    pools = {lb: [{"backend": s.get("backend"), "name": s.get("name"), "addr": s.get("addr"),
                   "admin": admin_state(s.get("status"))} for s in pool]
             if isinstance(pool, list) else pool for lb, pool in st["lb"].items()}
    return {"nodes": nodes, "replicas": replicas, "faults": st["faults_active"], "storage": st["cluster"].get("storage"),
            "lb": pools}


def admin_state(status):
    status = (status or "").upper()
    return "maint" if "MAINT" in status else "drain" if "DRAIN" in status else "ready"


def preflight(lab, msr=None, groups=None, variables=None, extra_vars=None, check=False):
    """Run the role; assert it changed nothing; return (run, the report task's result)."""
    before = snapshot(lab)
    path = inventory(lab, msr, groups) if msr is not None else None
    run = lab.run(play(dict(QUIET, **(variables or {}))), check=check, extra_vars=extra_vars, inventory=path,
                  touches=False)
    assert all(r["result"].get("changed") is not True for r in run.records), run.output
    found = [r for r in run.records if r["task"].endswith(REPORT)]
    assert found, run.output
    assert snapshot(lab) == before
    return run, found[-1]["result"]


def failures(result):
    return [f["message"] for f in result.get("failures", [])]


def warnings(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def mke_url(lab):
    return lab.vars["msr_mke_url"]


@contextmanager
def faults(lab, steps, undo):
    """Inject ``steps`` (msr-lab fault argument lists), always ``undo`` them; a lab that is back exactly as it
    was stays "fresh" for the next test (no new `up`)."""
    pristine, before = lab.pristine, snapshot(lab)
    try:
        for step in steps:
            lab.fault(*step)
        yield
    finally:
        for step in undo:
            lab.fault(*step)
    if snapshot(lab) == before:
        lab.pristine = pristine


def wait_mke_down(lab, node, timeout=15):
    deadline = time.time() + timeout
    while {n["name"]: n["mke_state"] for n in lab.status()["nodes"]}[node] != "down":
        assert time.time() < deadline, "MKE did not show %s down" % node
        time.sleep(0.2)


# ---- the default lab: 3 managers, 5 workers, 3 replicas on s3 --------------------------------------

@pytest.mark.parametrize("check", [False, True], ids=["normal", "check_mode"])
def test_a_clean_lab_passes(lab, check):
    lab.fresh(replicas=3)
    run, result = preflight(lab, check=check)
    assert run.rc == 0, run.output
    assert result["ok"] is True and result["failures"] == [] and result["cautions"] == []
    assert warnings(result) == []
    assert {"mke_managers", "msr_node_workloads", "storage_shared", "mke_admin_scheduling", "docker_sdk",
            "paramiko", "msr_version"} <= set(result["checked"])
    assert "ok=" in run.stdout and "changed=0" in run.stdout and "failed=0" in run.stdout


def test_no_secret_in_any_output(lab):
    """At -vvv: the MKE password reaches cluster_info through module_defaults and appears nowhere."""
    lab.fresh(replicas=3)
    before = snapshot(lab)
    run = lab.run(play(QUIET), verbosity=3, touches=False)
    assert run.rc == 0, run.output
    assert lab.password not in run.stdout + run.stderr
    assert lab.password not in str(run.records)
    assert snapshot(lab) == before


def test_the_system_requirements_are_warnings(lab):
    lab.fresh(replicas=3)
    run, result = preflight(lab, variables={"preflight_min_memory_gb": 16})
    assert run.rc == 0, run.output
    expected = ["%s: MKE node %s has 4.3 GB of memory (minimum 16 GB), less than the MSR system requirements ask of "
                "a node running MSR; give it more, or lower preflight_min_cpus / preflight_min_memory_gb for a lab"
                % (n, n) for n in ("worker1", "worker2", "worker3")]
    assert warnings(result) == expected
    for text in expected:       # shown as Ansible warnings
        assert "[WARNING]: " + text[:60] in run.stdout + run.stderr


def test_even_target_and_its_override(lab):
    lab.fresh(replicas=3)
    four = ["worker1", "worker2", "worker3", "worker4"]
    run, result = preflight(lab, msr=four)
    assert run.rc != 0
    assert failures(result) == ["group msr: 4 hosts, an even number: 4 replicas tolerate no more failures than 3; "
                                "use 3, 5 or 7 hosts, or set msr_allow_even: true"]
    assert run.task(run.records[-1]["task"])["status"] == "failed"
    run, result = preflight(lab, msr=four, extra_vars={"msr_allow_even": True})
    assert run.rc == 0, run.output
    assert warnings(result) == ["group msr: 4 hosts, an even number, accepted because msr_allow_even is true: 4 "
                                "replicas tolerate no more failures than 3"]


def test_fewer_than_three_msr_hosts_with_and_without_the_override(lab):
    lab.fresh(replicas=3)
    run, result = preflight(lab, msr=["worker1"])
    assert run.rc != 0
    assert failures(result) == [
        "group msr: 1 host(s) (worker1); a highly available MSR needs at least 3 replicas on 3 dedicated MKE "
        "workers: add hosts to group msr (3, 5 or 7), or set msr_allow_small_cluster: true for a lab or test cluster"]
    run, result = preflight(lab, msr=["worker1"], extra_vars={"msr_allow_small_cluster": True})
    assert run.rc == 0, run.output
    assert warnings(result) == ["group msr: 1 host(s) (worker1), accepted because msr_allow_small_cluster is true: "
                                "fewer than 3 replicas tolerate no replica failure"]


def test_msr_hosts_must_be_dedicated_workers(lab):
    """A manager in group msr, a worker running an application container, a worker in another workload group."""
    lab.fresh(replicas=3)
    with faults(lab, [("workload", "worker2")], undo=[("clear",)]):
        msr, groups = ["worker1", "worker2", "manager2", "worker3", "worker4"], {"apps": ["worker4"]}
        run, result = preflight(lab, msr=msr, groups=groups)
        assert run.rc != 0
        assert failures(result) == [
            "manager2: also in inventory group(s) mke_managers; an MSR node must be dedicated: take it out of those "
            "groups, or add them to preflight_neutral_groups if they run nothing (a site or environment group)",
            "worker4: also in inventory group(s) apps; an MSR node must be dedicated: take it out of those groups, or "
            "add them to preflight_neutral_groups if they run nothing (a site or environment group)",
            "worker2: MKE node worker2 runs containers that are neither MSR's nor MKE's own: web (nginx:1.25, "
            "running); an MSR node must be dedicated: move them to other nodes, or list their names in "
            "preflight_allowed_containers if they belong on every node (a monitoring agent, say)",
            "manager2: MKE node manager2 is a manager; MSR replicas run on dedicated MKE workers (MSR system "
            "requirements): put a worker in group msr instead"]
        # the user's own exceptions: a neutral group, an allowed container
        run, result = preflight(lab, msr=msr, groups=groups, variables={
            "preflight_neutral_groups": ["ap*"], "preflight_allowed_containers": ["web"]})
        assert result["failed_checks"] == ["msr_host_groups", "msr_node_manager"]
        assert failures(result)[0].startswith("manager2: also in inventory group(s) mke_managers;")
    assert lab.containers("worker2") == sorted(c for c in lab.containers("worker2") if c.startswith("dtr-"))


def test_admin_scheduling_off(lab):
    lab.fresh(replicas=3)
    with faults(lab, [("admin-scheduling", "off")], undo=[("admin-scheduling", "on")]):
        run, result = preflight(lab)
        assert run.rc != 0
        assert failures(result) == [
            "MKE: admins may not run containers on managers or MSR nodes (enable_admin_ucp_scheduling is false), so "
            "the bootstrapper's install, join and backup fail with 'could not find any nodes on which the container "
            "could be created'; allow it in MKE (admin settings, orchestration, or [scheduling_configuration] "
            "enable_admin_ucp_scheduling = true through PUT /api/ucp/config-toml)"]


def test_msr_version_must_match_the_replicas(lab):
    lab.fresh(replicas=3)
    run, result = preflight(lab, extra_vars={"msr_version": "2.9.15"})
    assert run.rc != 0
    assert failures(result) == [
        "msr_version: is 2.9.15 but the replicas run 2.9.16; set msr_version: 2.9.16 (the bootstrapper refuses to "
        "join a replica of another version), or upgrade MSR first"]


def test_no_ca_given(lab):
    lab.fresh(replicas=3)
    # (the lab's inventory also has msr_dtr_ca, which counts as MSR's CA while MSR may not be installed)
    run, result = preflight(lab, extra_vars={"msr_mke_ca": "", "msr_ca": "", "msr_dtr_ca": ""})
    assert run.rc != 0
    assert failures(result) == [
        "MKE TLS: neither msr_mke_ca nor msr_mke_insecure_tls is set; give MKE's CA certificate (PEM text, served at "
        "%s/ca) in msr_mke_ca, or set msr_mke_insecure_tls: true to skip verification (a lab only)" % mke_url(lab),
        "MSR TLS: neither msr_ca nor msr_insecure_tls is set; give MSR's own CA certificate (PEM text; every replica "
        "serves it at https://<replica>/ca, and MKE's CA does not verify MSR) in msr_ca (before an install: "
        "msr_dtr_ca, the CA given to install), or set msr_insecure_tls: true to skip verification (a lab only)",
        "MKE: the checks that read MKE and MSR (managers, MSR nodes, workloads, storage, versions, admin scheduling, "
        "resources) did not run: fix the TLS settings above, then run preflight again"]
    info = [r for r in run.records if r["task"].endswith("Preflight | read the cluster through MKE")][0]
    assert info["status"] == "skipped"     # MKE was not asked without a trust choice


def test_insecure_tls_is_an_explicit_choice(lab):
    lab.fresh(replicas=3)
    run, result = preflight(lab, extra_vars={"msr_mke_ca": "", "msr_mke_insecure_tls": True})
    assert run.rc == 0, run.output
    info = [r for r in run.records if r["task"].endswith("Preflight | read the cluster through MKE")][0]
    assert any("mke_insecure_tls is true" in w for w in warnings(info["result"]))


def test_a_missing_docker_sdk_where_the_replica_module_runs(lab):
    lab.fresh(replicas=3)
    run, result = preflight(lab, variables=NO_SDK)
    assert run.rc != 0
    host = "ssh://root@%s" % lab.hosts[lab.vars["msr_bootstrap_host"]]      # the replica role's docker_host
    assert failures(result) == [
        "localhost: the docker SDK for Python is not importable by /usr/bin/python3 (ModuleNotFoundError: No module "
        "named 'docker'), and msr.replicas.replica runs the bootstrapper with it there; install it for that "
        "interpreter (pip install docker, or the python3-docker package), or set ansible_python_interpreter to a "
        "Python that has it",
        "localhost: paramiko is not importable by /usr/bin/python3 (ModuleNotFoundError: No module named "
        "'paramiko'), and docker_host %s is an ssh:// URL (the docker SDK's SSH transport uses paramiko); install it "
        "for that interpreter (pip install paramiko, or the python3-paramiko package)" % host]


def test_mke_that_cannot_be_read(lab):
    lab.fresh(replicas=3)
    with faults(lab, [("mke-error", "500", "0")], undo=[("clear",)]):
        run, result = preflight(lab)
    assert run.rc != 0
    assert result["failed_checks"] == ["mke_not_read"]
    message = failures(result)[0]
    assert message.startswith("MKE: cannot read the cluster through %s: " % mke_url(lab)) and "HTTP 500" in message
    assert message.endswith("; check msr_mke_url, msr_mke_username and msr_mke_password, and msr_mke_ca (or "
                            "msr_mke_insecure_tls: true), then run preflight again (the checks that need MKE did not "
                            "run)")


# ---- 2 managers, filesystem storage, a fast heartbeat ---------------------------------------------

def test_local_filesystem_storage(lab):
    lab.fresh(replicas=1, options=FILESYSTEM_LAB)
    run, result = preflight(lab, msr=["worker1", "worker2", "worker3"])
    assert run.rc != 0
    assert "MSR storage: images are on the local filesystem of each replica (driver filesystem, no NFS volume) " \
           "while 3 replicas are or will be running: an image pushed through one replica is missing on the others; " \
           "move image storage to shared storage (s3, azure, gcs, swift, oss, or NFS) with msr.replicas.storage " \
           "before adding replicas, or set preflight_shared_filesystem: true if the storage volume is one shared " \
           "mount on every node" in failures(result)
    # one replica alone may keep images on its own disk
    run, result = preflight(lab, msr=["worker1"], extra_vars={"msr_allow_small_cluster": True})
    assert "storage_shared" not in result["failed_checks"]


def test_managers_too_few_and_one_down(lab):
    lab.fresh(replicas=1, options=FILESYSTEM_LAB)
    run, result = preflight(lab)
    assert "MKE: 2 manager(s) (manager1, manager2); a highly available MKE needs at least 3 managers, an odd number " \
           "(3 or 5): join or promote managers until there are 3 or 5" in failures(result)
    assert "mke_manager_down" not in result["failed_checks"]
    with faults(lab, [("partition", "manager2")], undo=[("heal", "manager2")]):
        wait_mke_down(lab, "manager2")
        run, result = preflight(lab)
        assert "manager2: MKE manager is down (reachability unreachable: Node is down: heartbeat failure); bring it " \
               "back, or demote and remove it from MKE (docker node demote, docker node rm) and join a healthy " \
               "manager" in failures(result)


def test_every_failure_at_once(lab):
    lab.fresh(replicas=1, options=FILESYSTEM_LAB)
    steps = [("partition", "manager2"), ("workload", "worker2"), ("admin-scheduling", "off")]
    with faults(lab, steps, undo=[("clear",), ("admin-scheduling", "on")]):
        wait_mke_down(lab, "manager2")
        args = dict(msr=["worker1", "worker2", "manager1", "worker3"], groups={"apps": ["worker3"]},
                    variables=NO_SDK, extra_vars={"msr_version": "2.9.15"})
        run, result = preflight(lab, **args)
        checked_run, checked = preflight(lab, check=True, **args)
    assert run.rc != 0 and checked_run.rc == run.rc
    assert checked["failures"] == result["failures"]     # check mode predicts the same refusal
    assert result["failed_checks"] == sorted([
        "mke_managers", "mke_manager_down", "msr_even", "msr_node_manager", "msr_node_workloads", "msr_host_groups",
        "storage_shared", "msr_version", "mke_admin_scheduling", "docker_sdk", "paramiko"])
    # one failing task, whose message lists them all
    failed = [r for r in run.records if r["status"] == "failed"]
    assert [r["task"] for r in failed] == [run.records[-1]["task"]] and failed[0]["task"].endswith(REPORT)
    lines = failed[0]["result"]["msg"].splitlines()
    assert len(failures(result)) == 12      # manager1 and worker3 are both in another inventory group
    assert lines[0] == "preflight: 12 problem(s) to fix before changing MSR:"
    assert lines[1:] == ["- " + m for m in failures(result)]


# ---- other labs ----------------------------------------------------------------------------------

def test_nfs_storage_is_shared(lab):
    lab.fresh(replicas=3, options=("--storage", "nfs"))
    run, result = preflight(lab)
    assert run.rc == 0, run.output
    info = [r for r in run.records if r["task"].endswith("Preflight | read the cluster through MKE")][0]["result"]
    assert (info["storage"]["driver"], info["storage"]["nfs"]) == ("filesystem", True)


def test_more_than_seven_replicas_warn(lab):
    lab.fresh(replicas=1, options=("--workers", "9"))
    run, result = preflight(lab, msr=["worker%d" % i for i in range(1, 10)])
    assert run.rc == 0, run.output
    assert warnings(result) == [
        "group msr: 9 hosts; more than 7 replicas make every metadata commit (pushes, tag updates) slower, since each "
        "write must reach a majority of the replicas (Mirantis reference architecture): 3, 5 or 7 are recommended"]


def test_before_an_install(lab):
    """No MSR yet: msr_dtr_ca is MSR's CA, the storage comes from msr_storage, MKE ships without admin scheduling."""
    lab.fresh(replicas=0)
    run, result = preflight(lab, msr=["worker1", "worker2", "worker3"])
    assert run.rc != 0
    assert result["failed_checks"] == ["mke_admin_scheduling", "storage_shared"]
    assert "MSR storage: MSR is not installed yet and msr_storage is not set: install would keep images on the local " \
           "filesystem of its node, which 3 replicas cannot share; set msr_storage.driver to s3, azure, gcs, swift " \
           "or oss (or nfs with msr_storage.nfs_url)" in failures(result)
    with faults(lab, [("admin-scheduling", "on")], undo=[("admin-scheduling", "off")]):
        run, result = preflight(lab, msr=["worker1", "worker2", "worker3"],
                                extra_vars={"msr_storage": {"driver": "s3", "secret_options": {"secretkey": "S3cr3t"}}})
        assert run.rc == 0, run.output
        assert "S3cr3t" not in run.stdout + run.stderr + str(run.records)   # only the driver is read
