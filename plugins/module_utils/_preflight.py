# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight role's decisions: every prerequisite of an HA MSR cluster, checked without I/O.
PRIVATE to this collection.

``evaluate()`` takes what was read (a msr.replicas.cluster_info result with ``workloads: true``, a
msr.replicas.requirements_info result), the inventory (the hosts of group ``msr``) and the settings, and
returns every failure and warning at once. Each message starts with what it is about (a host, ``MKE``,
``group msr``, ...) and says how to fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible.module_utils.parsing.convert_bool import boolean

# Inventory groups an MSR host may be in without running another workload: the implicit groups, the
# desired set itself, and the MKE workers group of the inventory contract (MSR nodes are MKE workers).
NEUTRAL_GROUPS = ("all", "ungrouped", "msr", "mke_workers")
SHARED_DRIVERS = ("s3", "azure", "gcs", "swift", "oss", "nfs")
DEFAULTS = {
    "allow_even": False,
    "allow_small_cluster": False,
    "msr_version": None,
    "storage_driver": None,
    "shared_filesystem": False,
    "mke_url": None,
    "mke_ca": False,
    "mke_insecure_tls": False,
    "msr_ca": False,
    "msr_insecure_tls": False,
    "msr_dtr_ca": False,
    "min_cpus": 2,
    "min_memory_gb": 16,
    "max_replicas": 7,
    "neutral_groups": (),
    "allowed_containers": (),
    "module_host": "localhost",
    "docker_host": None,
}
GB = 10 ** 9   # the system requirements say "16GB"; decimal, so a 16 GiB machine with kernel reservations passes


class Report:
    def __init__(self):
        self.failures = []
        self.warnings = []
        self.checked = []

    def fail(self, check, subject, message):
        self.failures.append({"check": check, "subject": subject, "message": "%s: %s" % (subject, message)})

    def warn(self, check, subject, message):
        self.warnings.append({"check": check, "subject": subject, "message": "%s: %s" % (subject, message)})

    def ran(self, check):
        if check not in self.checked:
            self.checked.append(check)

    def result(self):
        # "cautions", not "warnings": a module result's warnings key is Ansible's own (plain texts)
        return {"ok": not self.failures, "failures": self.failures, "cautions": self.warnings,
                "failed_checks": sorted(set(f["check"] for f in self.failures)), "checked": self.checked}


def settings_with_defaults(settings):
    """DEFAULTS updated with ``settings``; an unknown key is an error, so a typo cannot turn a check off."""
    settings = dict(settings or {})
    unknown = sorted(k for k in settings if k not in DEFAULTS)
    if unknown:
        raise ValueError("unknown setting(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    merged = dict(DEFAULTS)
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(DEFAULTS[key], bool):
            value = boolean(value, strict=True)   # "false" from a template must not read as true
        elif key in ("min_cpus", "min_memory_gb", "max_replicas"):
            value = float(value) if key != "max_replicas" else int(value)
        merged[key] = value
    return merged


def evaluate(info, hosts, settings=None, requirements=None):
    """{"ok", "failures", "cautions", "failed_checks", "checked"} for the given observations (cautions: the
    warnings).

    ``info``: the cluster_info result, None when it was not read (see tls_ready), or a failed result
    (with ``msg`` and no ``nodes``). ``hosts``: [{"host", "node", "groups"}] for group msr.
    ``requirements``: the requirements_info result, None when not run.
    """
    s = settings_with_defaults(settings)
    if info is not None and info.get("skipped"):
        info = None   # the role's cluster_info task did not run (no TLS trust chosen)
    hosts = [dict(h, node=h.get("node") or short_name(h["host"]), groups=list(h.get("groups") or []))
             for h in hosts or []]
    r = Report()
    check_tls(r, s, info)
    check_group_size(r, s, hosts)
    check_groups(r, s, hosts)
    check_requirements(r, s, requirements)
    if info is None:
        r.fail("mke_not_read", "MKE", "the checks that read MKE and MSR (managers, MSR nodes, workloads, storage, "
                                      "versions, admin scheduling, resources) did not run: fix the TLS settings "
                                      "above, then run preflight again")
    elif "nodes" not in info:
        r.fail("mke_not_read", "MKE", "cannot read the cluster through %s: %s; check msr_mke_url, "
                                      "msr_mke_username and msr_mke_password, and msr_mke_ca (or msr_mke_insecure_tls: "
                                      "true), then run preflight again (the checks that need MKE did "
                                      "not run)" % (s["mke_url"] or "msr_mke_url", info.get("msg") or "unknown error"))
    else:
        check_managers(r, info)
        check_msr_nodes(r, s, info, hosts)
        check_storage(r, s, info, hosts)
        check_versions(r, s, info)
        check_scheduling(r, info)
    if info is None or "nodes" not in info:
        check_version_set(r, s)
    return r.result()


def short_name(host):
    return host.split(".", 1)[0]


def tls_ready(settings):
    """Whether cluster_info can be called: one MKE trust and one MSR trust chosen (it refuses otherwise)."""
    s = settings_with_defaults(settings)
    return bool(s["mke_ca"]) != bool(s["mke_insecure_tls"]) and \
        bool(s["msr_ca"] or s["msr_dtr_ca"]) != bool(s["msr_insecure_tls"])


def _names(items):
    return ", ".join(items) if items else "none"


def check_tls(r, s, info):
    r.ran("mke_tls")
    url = s["mke_url"] or "https://<mke>"
    if s["mke_ca"] and s["mke_insecure_tls"]:
        r.fail("mke_tls", "MKE TLS", "msr_mke_ca is given and msr_mke_insecure_tls is true; keep only one: the CA "
                                     "(verification on) or msr_mke_insecure_tls (verification off)")
    elif not s["mke_ca"] and not s["mke_insecure_tls"]:
        r.fail("mke_tls", "MKE TLS", "neither msr_mke_ca nor msr_mke_insecure_tls is set; give MKE's CA certificate "
                                     "(PEM text, served at %s/ca) in msr_mke_ca, or set msr_mke_insecure_tls: true "
                                     "to skip verification (a lab only)" % url.rstrip("/"))
    r.ran("msr_tls")
    installed = bool(info and info.get("replicas"))
    if s["msr_ca"] and s["msr_insecure_tls"]:
        r.fail("msr_tls", "MSR TLS", "msr_ca is given and msr_insecure_tls is true; keep only one: MSR's CA "
                                     "(verification on) or msr_insecure_tls (verification off)")
    elif not s["msr_ca"] and not s["msr_insecure_tls"] and (installed or not s["msr_dtr_ca"]):
        r.fail("msr_tls", "MSR TLS", "neither msr_ca nor msr_insecure_tls is set; give MSR's own CA certificate "
                                     "(PEM text; every replica serves it at https://<replica>/ca, and MKE's CA does "
                                     "not verify MSR) in msr_ca (before an install: msr_dtr_ca, the CA given to "
                                     "install), or set msr_insecure_tls: true to skip verification (a lab only)")


def check_group_size(r, s, hosts):
    n = len(hosts)
    names = _names([h["host"] for h in hosts])
    r.ran("msr_hosts")
    if n == 0:
        r.fail("msr_hosts", "group msr", "no hosts; list the MKE workers that should run MSR replicas (3, 5 or 7) "
                                         "in group msr")
        return
    if n < 3 and not s["allow_small_cluster"]:
        r.fail("msr_hosts", "group msr", "%d host(s) (%s); a highly available MSR needs at least 3 replicas on 3 "
                                         "dedicated MKE workers: add hosts to group msr (3, 5 or 7), or set "
                                         "msr_allow_small_cluster: true for a lab or test cluster" % (n, names))
    elif n < 3:
        r.warn("msr_hosts", "group msr", "%d host(s) (%s), accepted because msr_allow_small_cluster is true: fewer "
                                         "than 3 replicas tolerate no replica failure" % (n, names))
    r.ran("msr_even")
    if n % 2 == 0 and not s["allow_even"]:
        r.fail("msr_even", "group msr", "%d hosts, an even number: %d replicas tolerate no more failures than %d; "
                                        "use 3, 5 or 7 hosts, or set msr_allow_even: true" % (n, n, n - 1))
    elif n % 2 == 0:
        r.warn("msr_even", "group msr", "%d hosts, an even number, accepted because msr_allow_even is true: %d "
                                        "replicas tolerate no more failures than %d" % (n, n, n - 1))
    r.ran("msr_many")
    if n > int(s["max_replicas"]):
        r.warn("msr_many", "group msr", "%d hosts; more than %d replicas make every metadata commit (pushes, tag "
                                        "updates) slower, since each write must reach a majority of the replicas "
                                        "(Mirantis reference architecture): 3, 5 or 7 are recommended"
                                        % (n, int(s["max_replicas"])))
    r.ran("msr_duplicate_node")
    by_node = {}
    for h in hosts:
        by_node.setdefault(h["node"], []).append(h["host"])
    for node, same in sorted(by_node.items()):
        if len(same) > 1:
            r.fail("msr_duplicate_node", ", ".join(same), "these msr hosts all name MKE node %s; give each host its "
                                                          "own msr_node_name" % node)


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def check_groups(r, s, hosts):
    r.ran("msr_host_groups")
    neutral = list(NEUTRAL_GROUPS) + list(s["neutral_groups"])
    for h in hosts:
        other = sorted(g for g in h["groups"] if not _matches(g, neutral))
        if other:
            r.fail("msr_host_groups", h["host"], "also in inventory group(s) %s; an MSR node must be dedicated: take "
                                                 "it out of those groups, or add them to preflight_neutral_groups if "
                                                 "they run nothing (a site or environment group)" % ", ".join(other))


def check_requirements(r, s, req):
    if req is None:
        return
    where = s["module_host"]
    r.ran("docker_sdk")
    if "docker" not in req:
        r.fail("docker_sdk", where, "could not find out which Python modules the replica module can import there "
                                    "(%s); make the host reachable, or set preflight_module_host to where "
                                    "msr.replicas.replica runs" % (req.get("msg") or "unknown error"))
        return
    python = req.get("python") or "its Python"
    docker = req["docker"]
    if not docker.get("importable"):
        r.fail("docker_sdk", where, "the docker SDK for Python is not importable by %s (%s), and msr.replicas.replica "
                                    "runs the bootstrapper with it there; install it for that interpreter (pip "
                                    "install docker, or the python3-docker package), or set "
                                    "ansible_python_interpreter to a Python that has it"
                                    % (python, docker.get("error") or "not found"))
    r.ran("paramiko")
    paramiko = req.get("paramiko") or {}
    if paramiko.get("needed") and not paramiko.get("importable"):
        r.fail("paramiko", where, "paramiko is not importable by %s (%s), and docker_host %s is an ssh:// URL (the "
                                  "docker SDK's SSH transport uses paramiko); install it for that interpreter (pip "
                                  "install paramiko, or the python3-paramiko package)"
                                  % (python, paramiko.get("error") or "not found", req.get("docker_host")))


def check_managers(r, info):
    managers = [n for n in info["nodes"] if n.get("role") == "manager"]
    names = sorted(n["name"] for n in managers)
    n = len(managers)
    r.ran("mke_managers")
    if n < 3:
        r.fail("mke_managers", "MKE", "%d manager(s) (%s); a highly available MKE needs at least 3 managers, an odd "
                                      "number (3 or 5): join or promote managers until there are 3 or 5"
                                      % (n, _names(names)))
    elif n % 2 == 0:
        r.fail("mke_managers", "MKE", "%d managers (%s), an even number: Raft tolerates no more manager failures with "
                                      "%d than with %d; run 3 or 5 managers (promote or demote one)"
                                      % (n, _names(names), n, n - 1))
    elif n > 5:
        r.warn("mke_managers", "MKE", "%d managers; more managers make Raft's commits of cluster state slower "
                                      "(Mirantis reference architecture): 3 or 5 are recommended" % n)
    r.ran("mke_manager_down")
    for m in sorted(managers, key=lambda x: x["name"]):
        if m.get("state") != "ready" or m.get("reachability") != "reachable":
            r.fail("mke_manager_down", m["name"], "MKE manager is %s (reachability %s: %s); bring it back, or demote "
                                                  "and remove it from MKE (docker node demote, docker node rm) and "
                                                  "join a healthy manager"
                                                  % (m.get("state"), m.get("reachability"), m.get("message") or "-"))


def _gb(value):
    return "%.1f" % (value / float(GB))


def check_msr_nodes(r, s, info, hosts):
    nodes = dict((n["name"], n) for n in info["nodes"])
    for check in ("msr_node_missing", "msr_node_manager", "msr_node_down", "msr_node_availability",
                  "msr_node_workloads", "msr_node_resources"):
        r.ran(check)
    for h in hosts:
        node = nodes.get(h["node"])
        host, name = h["host"], h["node"]
        if node is None:
            r.fail("msr_node_missing", host, "MKE has no node named %s (msr_node_name, by default the short inventory "
                                             "hostname); join the host to MKE as a worker, or set msr_node_name to "
                                             "its MKE node name (docker node ls)" % name)
            continue
        if node.get("role") == "manager":
            r.fail("msr_node_manager", host, "MKE node %s is a manager; MSR replicas run on dedicated MKE workers "
                                             "(MSR system requirements): put a worker in group msr instead" % name)
        if node.get("state") != "ready":
            r.fail("msr_node_down", host, "MKE node %s is %s (%s); bring the node back (its engine and network), or "
                                          "take the host out of group msr" % (name, node.get("state"),
                                                                              node.get("message") or "-"))
        if node.get("availability") != "active":
            r.fail("msr_node_availability", host, "MKE node %s has availability %s; set it active (docker node update "
                                                  "--availability active %s), or take the host out of group msr"
                                                  % (name, node.get("availability"), name))
        extra = [w for w in node.get("workloads") or [] if not _matches(w.get("name") or "", s["allowed_containers"])]
        if extra:
            listed = ", ".join("%s (%s, %s)" % (w["name"], w.get("image"), w.get("state")) for w in extra)
            r.fail("msr_node_workloads", host, "MKE node %s runs containers that are neither MSR's nor MKE's own: %s; an "
                                               "MSR node must be dedicated: move them to other nodes, or list their "
                                               "names in preflight_allowed_containers if they belong on every node (a "
                                               "monitoring agent, say)" % (name, listed))
        check_resources(r, s, host, node)


def check_resources(r, s, host, node):
    short = []
    cpus, memory = node.get("cpus"), node.get("memory_bytes")
    if cpus is not None and cpus < float(s["min_cpus"]):
        short.append("%g vCPUs (minimum %g)" % (cpus, float(s["min_cpus"])))
    if memory is not None and memory < float(s["min_memory_gb"]) * GB:
        short.append("%s GB of memory (minimum %g GB)" % (_gb(memory), float(s["min_memory_gb"])))
    if short:
        r.warn("msr_node_resources", host, "MKE node %s has %s, less than the MSR system requirements ask of a node "
                                           "running MSR; give it more, or lower preflight_min_cpus / "
                                           "preflight_min_memory_gb for a lab" % (node["name"], " and ".join(short)))


def check_storage(r, s, info, hosts):
    r.ran("storage_shared")
    replicas = [x for x in info.get("replicas") or [] if not x.get("ghost")]
    count = max(len(hosts), len(replicas))
    if count <= 1:
        return
    storage = info.get("storage") or {}
    if info.get("replicas"):
        driver = storage.get("driver")
        if driver is None:
            r.fail("storage_shared", "MSR storage", "the image storage could not be read (%s), so preflight cannot tell "
                                                    "whether it is shared; make a replica answer (msr_ca, its health), "
                                                    "then run preflight again" % (storage.get("error")
                                                                                  or _unanswered(info)))
        elif driver == "filesystem" and not storage.get("nfs") and not s["shared_filesystem"]:
            r.fail("storage_shared", "MSR storage", "images are on the local filesystem of each replica (driver "
                                                    "filesystem, no NFS volume) while %d replicas are or will be "
                                                    "running: an image pushed through one replica is missing on the "
                                                    "others; move image storage to shared storage (s3, azure, gcs, "
                                                    "swift, oss, or NFS) with msr.replicas.storage before adding "
                                                    "replicas, or set preflight_shared_filesystem: true if the storage "
                                                    "volume is one shared mount on every node" % count)
        return
    driver = s["storage_driver"] or None
    if driver not in SHARED_DRIVERS and not (driver == "filesystem" and s["shared_filesystem"]):
        what = "msr_storage is not set" if driver is None else "msr_storage.driver is %s" % driver
        r.fail("storage_shared", "MSR storage", "MSR is not installed yet and %s: install would keep images on the "
                                                "local filesystem of its node, which %d replicas cannot share; set "
                                                "msr_storage.driver to s3, azure, gcs, swift or oss (or nfs with "
                                                "msr_storage.nfs_url)" % (what, count))


def _unanswered(info):
    """Why no replica answered cluster_status: the first replica's error (a wrong msr_ca fails them all alike)."""
    prefix = "no replica answered /api/v0/meta/cluster_status: "
    for issue in info.get("issues") or []:
        text = issue.get("message") or ""
        if issue.get("kind") == "no_cluster_status" and text.startswith(prefix) and len(text) > len(prefix):
            return "no replica answered: %s" % text[len(prefix):].split("; ")[0]
    return "no replica answered"


def _version_of(replicas):
    by_version = {}
    for x in replicas:
        if x.get("version"):
            by_version.setdefault(x["version"], []).append(x.get("node") or x["id"])
    return by_version


def check_versions(r, s, info):
    r.ran("msr_versions")
    by_version = _version_of([x for x in info.get("replicas") or [] if not x.get("ghost")])
    if len(by_version) > 1:
        listed = "; ".join("%s on %s" % (v, ", ".join(sorted(nodes))) for v, nodes in sorted(by_version.items()))
        r.fail("msr_versions", "MSR", "the replicas run different versions (%s); finish the upgrade so that every "
                                      "replica runs one version (mirantis/dtr upgrade), then run preflight again"
                                      % listed)
        check_version_set(r, s)
        return
    r.ran("msr_version")
    running = list(by_version)[0] if by_version else None
    wanted = s["msr_version"] or None
    if not wanted:
        r.fail("msr_version", "msr_version", "not set; set it to %s" % (
            "the version the replicas run (%s)" % running if running else "the MSR version to install (2.9.x)"))
    elif running and wanted != running:
        r.fail("msr_version", "msr_version", "is %s but the replicas run %s; set msr_version: %s (the bootstrapper "
                                             "refuses to join a replica of another version), or upgrade MSR first"
                                             % (wanted, running, running))


def check_version_set(r, s):
    r.ran("msr_version")
    if not s["msr_version"]:
        r.fail("msr_version", "msr_version", "not set; set it to the MSR version the replicas run (or will run)")


def check_scheduling(r, info):
    r.ran("mke_admin_scheduling")
    mke = info.get("mke") or {}
    allowed = mke.get("admin_scheduling")
    if allowed is False:
        r.fail("mke_admin_scheduling", "MKE", "admins may not run containers on managers or MSR nodes "
                                              "(enable_admin_ucp_scheduling is false), so the bootstrapper's install, "
                                              "join and backup fail with 'could not find any nodes on which the "
                                              "container could be created'; allow it in MKE (admin settings, "
                                              "orchestration, or [scheduling_configuration] "
                                              "enable_admin_ucp_scheduling = true through PUT /api/ucp/config-toml)")
    elif allowed is None:
        r.fail("mke_admin_scheduling", "MKE", "cannot tell whether admins may run containers on managers and MSR nodes "
                                              "(%s); make sure enable_admin_ucp_scheduling is true in MKE's "
                                              "configuration" % (mke.get("error") or "cluster_info returned no mke "
                                                                 "settings"))
