# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every rule of _preflight and its exact message, on cluster_info-shaped views."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._preflight import evaluate, tls_ready

GIB = 1024 ** 3
ALL_CHECKS = ["mke_tls", "msr_tls", "msr_hosts", "msr_even", "msr_many", "msr_duplicate_node", "msr_host_groups",
              "docker_sdk", "paramiko", "mke_managers", "mke_manager_down", "msr_node_missing", "msr_node_manager",
              "msr_node_down", "msr_node_availability", "msr_node_workloads", "msr_node_resources",
              "storage_shared", "msr_versions", "msr_version", "mke_admin_scheduling"]


def node(name, role="worker", state="ready", availability="active", reachability=None, cpus=4.0,
         memory=32 * GIB, workloads=()):
    if role == "manager" and reachability is None:
        reachability = "reachable" if state == "ready" else "unreachable"
    return {"name": name, "role": role, "state": state, "availability": availability, "reachability": reachability,
            "message": "Healthy MKE %s" % role if state == "ready" else "Node is down: heartbeat failure",
            "cpus": cpus, "memory_bytes": memory, "workloads": list(workloads)}


def replica(rid, node_name, version="2.9.16", ghost=False):
    return {"id": rid, "node": node_name, "version": version, "ghost": ghost, "state": "ghost" if ghost else "healthy"}


def cluster(managers=3, workers=5, replicas=3, driver="s3", nfs=None, scheduling=True):
    nodes = [node("manager%d" % i, role="manager") for i in range(1, managers + 1)]
    nodes += [node("worker%d" % i) for i in range(1, workers + 1)]
    reps = [replica("%012x" % (0xa0 + i), "worker%d" % i) for i in range(1, replicas + 1)]
    return {"changed": False, "nodes": nodes, "replicas": reps,
            "storage": {"driver": driver, "drivers": [driver] if driver else [], "nfs": nfs},
            "version": "2.9.16" if replicas else None,
            "mke": {"admin_scheduling": scheduling, "user_scheduling": None, "error": None}}


def hosts(*names, groups=("msr", "mke_workers")):
    return [{"host": n, "groups": list(groups)} for n in names]


THREE = hosts("worker1", "worker2", "worker3")
SETTINGS = {"mke_url": "https://mke.example.com", "mke_ca": True, "msr_ca": True, "msr_version": "2.9.16"}
REQ = {"python": "/usr/bin/python3", "docker_host": "ssh://manager1",
       "docker": {"importable": True, "version": "7.2.0", "error": None},
       "paramiko": {"importable": True, "version": "5.1.0", "error": None, "needed": True}}


def run(info=None, host_list=None, settings=None, requirements=None, **changes):
    s = dict(SETTINGS, **changes)
    if settings:
        s.update(settings)
    return evaluate(cluster() if info is None else info, THREE if host_list is None else host_list, s,
                    REQ if requirements is None else requirements)


def messages(report, check=None):
    return [f["message"] for f in report["failures"] if check is None or f["check"] == check]


def warned(report, check=None):
    return [w["message"] for w in report["cautions"] if check is None or w["check"] == check]


def test_a_clean_cluster_passes_every_check():
    report = run()
    assert report["ok"] is True and report["failures"] == [] and report["cautions"] == []
    assert report["failed_checks"] == []
    assert sorted(report["checked"]) == sorted(ALL_CHECKS)


def test_everything_wrong_at_once_is_reported_at_once():
    info = cluster(managers=2, driver="filesystem", scheduling=False)
    info["nodes"][0]["state"] = "down"
    info["nodes"][0]["reachability"] = "unreachable"
    info["replicas"][1]["version"] = "2.9.15"
    w2 = [n for n in info["nodes"] if n["name"] == "worker2"][0]
    w2["workloads"] = [{"name": "web", "image": "nginx:1.25", "state": "running", "namespace": None}]
    bad_hosts = hosts("worker1", "worker2", "manager2") + hosts("worker4", groups=["msr", "apps"])
    req = copy.deepcopy(REQ)
    req["docker"] = {"importable": False, "version": None, "error": "ModuleNotFoundError: No module named 'docker'"}
    report = run(info, bad_hosts, requirements=req, msr_version="2.9.16", mke_ca=False, mke_insecure_tls=True)
    assert report["failed_checks"] == sorted([
        "mke_managers", "mke_manager_down", "msr_even", "msr_host_groups", "msr_node_manager", "msr_node_workloads",
        "storage_shared", "msr_versions", "mke_admin_scheduling", "docker_sdk"])
    assert report["ok"] is False


# ---- TLS choices ---------------------------------------------------------------------------------

def test_mke_tls_neither_and_both():
    report = run(mke_ca=False)
    assert messages(report, "mke_tls") == [
        "MKE TLS: neither msr_mke_ca nor msr_mke_insecure_tls is set; give MKE's CA certificate (PEM text, served "
        "at https://mke.example.com/ca) in msr_mke_ca, or set msr_mke_insecure_tls: true to skip verification "
        "(a lab only)"]
    assert messages(run(mke_insecure_tls=True), "mke_tls") == [
        "MKE TLS: msr_mke_ca is given and msr_mke_insecure_tls is true; keep only one: the CA (verification on) or "
        "msr_mke_insecure_tls (verification off)"]
    assert messages(run(mke_ca=False, mke_insecure_tls=True), "mke_tls") == []


def test_msr_tls_neither_and_both():
    report = run(msr_ca=False)
    assert messages(report, "msr_tls") == [
        "MSR TLS: neither msr_ca nor msr_insecure_tls is set; give MSR's own CA certificate (PEM text; every replica "
        "serves it at https://<replica>/ca, and MKE's CA does not verify MSR) in msr_ca (before an install: "
        "msr_dtr_ca, the CA given to install), or set msr_insecure_tls: true to skip verification (a lab only)"]
    assert messages(run(msr_insecure_tls=True), "msr_tls") == [
        "MSR TLS: msr_ca is given and msr_insecure_tls is true; keep only one: MSR's CA (verification on) or "
        "msr_insecure_tls (verification off)"]
    assert messages(run(msr_ca=False, msr_insecure_tls=True), "msr_tls") == []


def test_msr_dtr_ca_is_msr_trust_only_before_an_install():
    assert messages(run(cluster(replicas=0), msr_ca=False, msr_dtr_ca=True, storage_driver="s3"), "msr_tls") == []
    assert len(messages(run(msr_ca=False, msr_dtr_ca=True), "msr_tls")) == 1   # installed: MSR's own CA


@pytest.mark.parametrize("settings,ready", [
    ({"mke_ca": True, "msr_ca": True}, True),
    ({"mke_insecure_tls": True, "msr_insecure_tls": True}, True),
    ({"mke_ca": True, "msr_dtr_ca": True}, True),
    ({"mke_ca": True}, False),
    ({"msr_ca": True}, False),
    ({"mke_ca": True, "mke_insecure_tls": True, "msr_ca": True}, False),
    ({"mke_ca": True, "msr_ca": True, "msr_insecure_tls": True}, False),
])
def test_tls_ready_is_what_cluster_info_accepts(settings, ready):
    assert tls_ready(settings) is ready


def test_not_read_cluster_still_reports_the_inventory_checks():
    report = evaluate(None, hosts("worker1", "worker2"), dict(SETTINGS, mke_ca=False), REQ)
    assert report["failed_checks"] == ["mke_not_read", "mke_tls", "msr_even", "msr_hosts"]
    assert messages(report, "mke_not_read") == [
        "MKE: the checks that read MKE and MSR (managers, MSR nodes, workloads, storage, versions, admin "
        "scheduling, resources) did not run: fix the TLS settings above, then run preflight again"]
    # a cluster_info task the role skipped reads the same
    skipped = evaluate({"skipped": True, "changed": False}, hosts("worker1", "worker2"), dict(SETTINGS, mke_ca=False))
    assert skipped["failed_checks"] == report["failed_checks"]


def test_failed_cluster_info_is_one_failure():
    report = run({"failed": False, "msg": "MKE rejected the credentials for user 'admin' (HTTP 401)"})
    assert messages(report) == [
        "MKE: cannot read the cluster through https://mke.example.com: MKE rejected the credentials for user "
        "'admin' (HTTP 401); check msr_mke_url, msr_mke_username and msr_mke_password, and msr_mke_ca (or "
        "msr_mke_insecure_tls: true), then run preflight again (the checks that need MKE did not run)"]


def test_msr_version_unset_when_the_cluster_was_not_read():
    report = evaluate(None, THREE, dict(SETTINGS, mke_ca=False, msr_version=""))
    assert messages(report, "msr_version") == [
        "msr_version: not set; set it to the MSR version the replicas run (or will run)"]


# ---- group msr -----------------------------------------------------------------------------------

def test_no_msr_hosts():
    report = run(host_list=[])
    assert messages(report, "msr_hosts") == [
        "group msr: no hosts; list the MKE workers that should run MSR replicas (3, 5 or 7) in group msr"]
    assert "msr_even" not in report["failed_checks"]


def test_fewer_than_three_msr_hosts_and_the_override():
    one = hosts("worker1")
    assert messages(run(host_list=one), "msr_hosts") == [
        "group msr: 1 host(s) (worker1); a highly available MSR needs at least 3 replicas on 3 dedicated MKE "
        "workers: add hosts to group msr (3, 5 or 7), or set msr_allow_small_cluster: true for a lab or test "
        "cluster"]
    report = run(cluster(replicas=1), one, allow_small_cluster=True)
    assert report["ok"] and warned(report) == [
        "group msr: 1 host(s) (worker1), accepted because msr_allow_small_cluster is true: fewer than 3 replicas "
        "tolerate no replica failure"]


def test_two_msr_hosts_are_small_and_even():
    two = hosts("worker1", "worker2")
    report = run(cluster(replicas=2), two)
    assert report["failed_checks"] == ["msr_even", "msr_hosts"]
    report = run(cluster(replicas=2), two, allow_small_cluster=True, allow_even=True)
    assert report["ok"] and [w["check"] for w in report["cautions"]] == ["msr_hosts", "msr_even"]


def test_even_target_and_its_override():
    four = hosts("worker1", "worker2", "worker3", "worker4")
    assert messages(run(host_list=four), "msr_even") == [
        "group msr: 4 hosts, an even number: 4 replicas tolerate no more failures than 3; use 3, 5 or 7 hosts, or "
        "set msr_allow_even: true"]
    report = run(host_list=four, allow_even=True)
    assert report["ok"] and warned(report) == [
        "group msr: 4 hosts, an even number, accepted because msr_allow_even is true: 4 replicas tolerate no more "
        "failures than 3"]


def test_more_than_seven_is_a_warning():
    nine = hosts(*["worker%d" % i for i in range(1, 10)])
    report = run(cluster(workers=9), nine)
    assert report["ok"] and warned(report) == [
        "group msr: 9 hosts; more than 7 replicas make every metadata commit (pushes, tag updates) slower, since "
        "each write must reach a majority of the replicas (Mirantis reference architecture): 3, 5 or 7 are "
        "recommended"]
    seven = hosts(*["worker%d" % i for i in range(1, 8)])
    assert warned(run(cluster(workers=7), seven)) == []
    assert warned(run(cluster(workers=7), seven, max_replicas=5), "msr_many")


def test_two_hosts_naming_one_node():
    same = [{"host": "worker1", "node": "worker1"}, {"host": "w1.example.com", "node": "worker1"},
            {"host": "worker2.example.com"}]
    report = run(host_list=same)
    assert messages(report, "msr_duplicate_node") == [
        "worker1, w1.example.com: these msr hosts all name MKE node worker1; give each host its own msr_node_name"]
    # worker2.example.com's node defaults to its short name, which MKE lists
    assert "msr_node_missing" not in report["failed_checks"]


def test_other_inventory_groups():
    listed = hosts("worker1", "worker2") + hosts("worker3", groups=["msr", "mke_workers", "web", "dc_east"])
    assert messages(run(host_list=listed), "msr_host_groups") == [
        "worker3: also in inventory group(s) dc_east, web; an MSR node must be dedicated: take it out of those "
        "groups, or add them to preflight_neutral_groups if they run nothing (a site or environment group)"]
    assert messages(run(host_list=listed, neutral_groups=["dc_*"]), "msr_host_groups") == [
        "worker3: also in inventory group(s) web; an MSR node must be dedicated: take it out of those groups, or add "
        "them to preflight_neutral_groups if they run nothing (a site or environment group)"]
    assert run(host_list=listed, neutral_groups=["dc_*", "web"])["ok"]


@pytest.mark.parametrize("group", ["msr_lb", "mke_managers"])
def test_lb_and_manager_groups_are_workload_groups(group):
    listed = hosts("worker1", "worker2") + hosts("worker3", groups=["msr", group])
    assert messages(run(host_list=listed), "msr_host_groups") == [
        "worker3: also in inventory group(s) %s; an MSR node must be dedicated: take it out of those groups, or add "
        "them to preflight_neutral_groups if they run nothing (a site or environment group)" % group]


# ---- MKE managers --------------------------------------------------------------------------------

@pytest.mark.parametrize("count,message", [
    (1, "MKE: 1 manager(s) (manager1); a highly available MKE needs at least 3 managers, an odd number (3 or 5): "
        "join or promote managers until there are 3 or 5"),
    (2, "MKE: 2 manager(s) (manager1, manager2); a highly available MKE needs at least 3 managers, an odd number "
        "(3 or 5): join or promote managers until there are 3 or 5"),
    (4, "MKE: 4 managers (manager1, manager2, manager3, manager4), an even number: Raft tolerates no more manager "
        "failures with 4 than with 3; run 3 or 5 managers (promote or demote one)"),
])
def test_manager_count(count, message):
    assert messages(run(cluster(managers=count)), "mke_managers") == [message]


def test_five_managers_pass_seven_warn():
    assert run(cluster(managers=5))["ok"] and not run(cluster(managers=5))["cautions"]
    report = run(cluster(managers=7))
    assert report["ok"] and warned(report) == [
        "MKE: 7 managers; more managers make Raft's commits of cluster state slower (Mirantis reference "
        "architecture): 3 or 5 are recommended"]


def test_manager_down_or_unreachable():
    info = cluster()
    info["nodes"][1].update(state="down", reachability="unreachable", message="Node is down: heartbeat failure")
    info["nodes"][2].update(reachability="unreachable")
    assert messages(run(info), "mke_manager_down") == [
        "manager2: MKE manager is down (reachability unreachable: Node is down: heartbeat failure); bring it back, or "
        "demote and remove it from MKE (docker node demote, docker node rm) and join a healthy manager",
        "manager3: MKE manager is ready (reachability unreachable: Healthy MKE manager); bring it back, or demote and "
        "remove it from MKE (docker node demote, docker node rm) and join a healthy manager"]


# ---- msr nodes -----------------------------------------------------------------------------------

def test_msr_host_not_in_mke():
    listed = THREE[:2] + [{"host": "worker9.example.com"}]
    assert messages(run(host_list=listed), "msr_node_missing") == [
        "worker9.example.com: MKE has no node named worker9 (msr_node_name, by default the short inventory "
        "hostname); join the host to MKE as a worker, or set msr_node_name to its MKE node name (docker node ls)"]


def test_msr_host_is_a_manager():
    listed = THREE[:2] + hosts("manager1")
    assert messages(run(host_list=listed), "msr_node_manager") == [
        "manager1: MKE node manager1 is a manager; MSR replicas run on dedicated MKE workers (MSR system "
        "requirements): put a worker in group msr instead"]


def test_msr_node_down_and_drained():
    info = cluster()
    info["nodes"][4].update(state="down", message="Node is down: heartbeat failure")     # worker2
    info["nodes"][5].update(availability="drain")                                        # worker3
    report = run(info)
    assert messages(report, "msr_node_down") == [
        "worker2: MKE node worker2 is down (Node is down: heartbeat failure); bring the node back (its engine and "
        "network), or take the host out of group msr"]
    assert messages(report, "msr_node_availability") == [
        "worker3: MKE node worker3 has availability drain; set it active (docker node update --availability active "
        "worker3), or take the host out of group msr"]


def test_workloads_and_allowed_containers():
    info = cluster()
    info["nodes"][4]["workloads"] = [
        {"name": "node-exporter", "image": "prom/node-exporter:1.8", "state": "running", "namespace": None},
        {"name": "web", "image": "nginx:1.25", "state": "exited", "namespace": None}]
    assert messages(run(info), "msr_node_workloads") == [
        "worker2: MKE node worker2 runs containers that are neither MSR's nor MKE's own: node-exporter "
        "(prom/node-exporter:1.8, running), web (nginx:1.25, exited); an MSR node must be dedicated: move them to "
        "other nodes, or list their names in preflight_allowed_containers if they belong on every node (a "
        "monitoring agent, say)"]
    assert messages(run(info, allowed_containers=["node-exporter"]), "msr_node_workloads") == [
        "worker2: MKE node worker2 runs containers that are neither MSR's nor MKE's own: web (nginx:1.25, exited); an "
        "MSR node must be dedicated: move them to other nodes, or list their names in preflight_allowed_containers "
        "if they belong on every node (a monitoring agent, say)"]
    assert run(info, allowed_containers=["node-*", "w?b"])["ok"]


def test_workloads_on_other_nodes_do_not_matter():
    info = cluster()
    info["nodes"][7]["workloads"] = [{"name": "web", "image": "nginx:1.25", "state": "running", "namespace": None}]
    assert run(info)["ok"]      # worker5 is not in group msr


def test_resources_below_the_system_requirements_warn():
    info = cluster()
    info["nodes"][3].update(cpus=2.0, memory_bytes=4 * GIB)      # worker1: the lab's nodes
    info["nodes"][4].update(cpus=1.0)                      # worker2
    info["nodes"][5].update(cpus=None, memory_bytes=None)        # worker3: MKE did not say
    report = run(info)
    assert report["ok"] and warned(report, "msr_node_resources") == [
        "worker1: MKE node worker1 has 4.3 GB of memory (minimum 16 GB), less than the MSR system requirements ask "
        "of a node running MSR; give it more, or lower preflight_min_cpus / preflight_min_memory_gb for a lab",
        "worker2: MKE node worker2 has 1 vCPUs (minimum 2), less than the MSR system requirements ask of a node "
        "running MSR; give it more, or lower preflight_min_cpus / preflight_min_memory_gb for a lab"]
    assert not warned(run(info, min_cpus=1, min_memory_gb=4), "msr_node_resources")


def test_sixteen_gib_meets_sixteen_gb():
    info = cluster()
    info["nodes"][3]["memory_bytes"] = 16 * GIB - 400 * 1024 ** 2     # a 16 GiB VM after kernel reservations
    assert not warned(run(info))


# ---- storage -------------------------------------------------------------------------------------

def test_local_filesystem_with_several_replicas():
    assert messages(run(cluster(driver="filesystem", nfs=False)), "storage_shared") == [
        "MSR storage: images are on the local filesystem of each replica (driver filesystem, no NFS volume) while 3 "
        "replicas are or will be running: an image pushed through one replica is missing on the others; move image "
        "storage to shared storage (s3, azure, gcs, swift, oss, or NFS) with msr.replicas.storage before adding "
        "replicas, or set preflight_shared_filesystem: true if the storage volume is one shared mount on every node"]


def test_filesystem_is_fine_on_nfs_or_a_declared_shared_mount_or_alone():
    assert run(cluster(driver="filesystem", nfs=True))["ok"]
    assert run(cluster(driver="filesystem", nfs=False), shared_filesystem=True)["ok"]
    report = run(cluster(replicas=1, driver="filesystem"), hosts("worker1"), allow_small_cluster=True)
    assert "storage_shared" not in report["failed_checks"]


def test_one_replica_on_filesystem_growing_to_three_fails():
    report = run(cluster(replicas=1, driver="filesystem", nfs=False))
    assert "while 3 replicas are or will be running" in messages(report, "storage_shared")[0]


def test_more_replicas_running_than_desired_counts():
    report = run(cluster(replicas=3, driver="filesystem"), hosts("worker1"), allow_small_cluster=True)
    assert "while 3 replicas are or will be running" in messages(report, "storage_shared")[0]


@pytest.mark.parametrize("driver", ["s3", "azure", "gcs", "swift", "oss"])
def test_object_storage_is_shared(driver):
    assert run(cluster(driver=driver))["ok"]


def test_storage_that_could_not_be_read():
    info = cluster()
    info["storage"] = {"driver": None, "drivers": [], "error": "MSR answered GET ... with HTTP 500"}
    assert messages(run(info), "storage_shared") == [
        "MSR storage: the image storage could not be read (MSR answered GET ... with HTTP 500), so preflight cannot "
        "tell whether it is shared; make a replica answer (msr_ca, its health), then run preflight again"]


def test_storage_no_replica_answered_says_why():
    """A wrong msr_ca fails every replica alike: the first one's error (with its hint) is shown, once."""
    info = cluster()
    info["storage"] = {"driver": None, "drivers": []}
    tls = ("TLS verification of https://%s failed: unable to get local issuer certificate. Give MSR's own CA in msr_ca "
           "(every replica serves it at https://<replica>/ca) or set msr_insecure_tls: true")
    info["issues"] = [{"kind": "no_cluster_status", "severity": "critical", "replica_id": None,
                       "message": "no replica answered /api/v0/meta/cluster_status: %s; %s"
                       % (tls % "10.0.0.21", tls % "10.0.0.22")}]
    assert messages(run(info), "storage_shared") == [
        "MSR storage: the image storage could not be read (no replica answered: %s), so preflight cannot tell whether "
        "it is shared; make a replica answer (msr_ca, its health), then run preflight again" % (tls % "10.0.0.21")]
    info["issues"] = []
    assert "(no replica answered), so" in messages(run(info), "storage_shared")[0]


@pytest.mark.parametrize("driver,ok", [("s3", True), ("nfs", True), ("oss", True), ("filesystem", False), ("", False)])
def test_storage_before_an_install_comes_from_msr_storage(driver, ok):
    report = run(cluster(replicas=0), storage_driver=driver)
    assert ("storage_shared" not in report["failed_checks"]) is ok
    if not ok:
        what = "msr_storage is not set" if not driver else "msr_storage.driver is filesystem"
        assert messages(report, "storage_shared") == [
            "MSR storage: MSR is not installed yet and %s: install would keep images on the local filesystem of its "
            "node, which 3 replicas cannot share; set msr_storage.driver to s3, azure, gcs, swift or oss (or nfs "
            "with msr_storage.nfs_url)" % what]


def test_ghosts_do_not_count_as_running_or_as_versions():
    info = cluster(replicas=1, driver="filesystem")
    info["replicas"].append(dict(replica("0000000000ff", None, version=None, ghost=True)))
    report = run(info, hosts("worker1"), allow_small_cluster=True)
    assert "storage_shared" not in report["failed_checks"] and "msr_versions" not in report["failed_checks"]


# ---- versions ------------------------------------------------------------------------------------

def test_replicas_with_different_versions():
    info = cluster()
    info["replicas"][0]["version"] = "2.9.15"
    assert messages(run(info), "msr_versions") == [
        "MSR: the replicas run different versions (2.9.15 on worker1; 2.9.16 on worker2, worker3); finish the upgrade "
        "so that every replica runs one version (mirantis/dtr upgrade), then run preflight again"]


def test_msr_version_mismatch_and_unset():
    assert messages(run(msr_version="2.9.15"), "msr_version") == [
        "msr_version: is 2.9.15 but the replicas run 2.9.16; set msr_version: 2.9.16 (the bootstrapper refuses to "
        "join a replica of another version), or upgrade MSR first"]
    assert messages(run(msr_version=""), "msr_version") == [
        "msr_version: not set; set it to the version the replicas run (2.9.16)"]
    assert messages(run(cluster(replicas=0), msr_version="", storage_driver="s3"), "msr_version") == [
        "msr_version: not set; set it to the MSR version to install (2.9.x)"]
    assert run(cluster(replicas=0), msr_version="2.9.10", storage_driver="s3")["ok"]


def test_different_versions_and_no_msr_version():
    info = cluster()
    info["replicas"][0]["version"] = "2.9.15"
    assert run(info, msr_version="")["failed_checks"] == ["msr_version", "msr_versions"]


# ---- MKE scheduling ------------------------------------------------------------------------------

def test_admin_scheduling_off():
    assert messages(run(cluster(scheduling=False)), "mke_admin_scheduling") == [
        "MKE: admins may not run containers on managers or MSR nodes (enable_admin_ucp_scheduling is false), so the "
        "bootstrapper's install, join and backup fail with 'could not find any nodes on which the container could be "
        "created'; allow it in MKE (admin settings, orchestration, or [scheduling_configuration] "
        "enable_admin_ucp_scheduling = true through PUT /api/ucp/config-toml)"]


def test_admin_scheduling_unknown():
    info = cluster(scheduling=None)
    info["mke"]["error"] = "cannot read MKE's config-toml: MKE answered GET /api/ucp/config-toml with HTTP 403"
    assert messages(run(info), "mke_admin_scheduling") == [
        "MKE: cannot tell whether admins may run containers on managers and MSR nodes (cannot read MKE's config-toml: "
        "MKE answered GET /api/ucp/config-toml with HTTP 403); make sure enable_admin_ucp_scheduling is true in MKE's "
        "configuration"]
    del info["mke"]
    assert "cluster_info returned no mke settings" in messages(run(info), "mke_admin_scheduling")[0]


# ---- where the replica module runs ---------------------------------------------------------------

def test_docker_sdk_missing():
    req = copy.deepcopy(REQ)
    req["docker"] = {"importable": False, "version": None, "error": "ModuleNotFoundError: No module named 'docker'"}
    assert messages(run(requirements=req)) == [
        "localhost: the docker SDK for Python is not importable by /usr/bin/python3 (ModuleNotFoundError: No module "
        "named 'docker'), and msr.replicas.replica runs the bootstrapper with it there; install it for that "
        "interpreter (pip install docker, or the python3-docker package), or set ansible_python_interpreter to a "
        "Python that has it"]


def test_paramiko_missing_matters_only_for_ssh():
    req = copy.deepcopy(REQ)
    req["paramiko"].update(importable=False, version=None, error="ModuleNotFoundError: No module named 'paramiko'")
    assert messages(run(requirements=req, module_host="awx-runner")) == [
        "awx-runner: paramiko is not importable by /usr/bin/python3 (ModuleNotFoundError: No module named "
        "'paramiko'), and docker_host ssh://manager1 is an ssh:// URL (the docker SDK's SSH transport uses "
        "paramiko); install it for that interpreter (pip install paramiko, or the python3-paramiko package)"]
    req["paramiko"]["needed"] = False
    assert run(requirements=req)["ok"]


def test_requirements_not_found_out():
    assert messages(evaluate(cluster(), THREE, SETTINGS, {"msg": "Failed to connect to the host via ssh"})) == [
        "localhost: could not find out which Python modules the replica module can import there (Failed to connect "
        "to the host via ssh); make the host reachable, or set preflight_module_host to where msr.replicas.replica "
        "runs"]
    assert "docker_sdk" not in evaluate(cluster(), THREE, SETTINGS, None)["checked"]


# ---- settings ------------------------------------------------------------------------------------

def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="unknown setting.s. allow_evn"):
        evaluate(cluster(), THREE, {"allow_evn": True})


def test_boolean_settings_from_templates():
    four = hosts("worker1", "worker2", "worker3", "worker4")
    assert "msr_even" in run(host_list=four, allow_even="false")["failed_checks"]
    assert "msr_even" not in run(host_list=four, allow_even="true")["failed_checks"]
    with pytest.raises(TypeError):
        run(host_list=four, allow_even="perhaps")


def test_inputs_are_not_changed():
    info, listed = cluster(), hosts("worker1", "worker2", "worker3", "worker4")
    before = copy.deepcopy((info, listed))
    run(info, listed)
    assert (info, listed) == before
