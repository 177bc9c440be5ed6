# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The preflight_check and requirements_info modules: one failure listing every problem, real warnings,
never a change; what is importable where the replica module runs."""

from __future__ import annotations

import json
import sys

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils import _engine, _requirements
from ansible_collections.msr.replicas.plugins.modules import preflight_check, requirements_info

GIB = 1024 ** 3


def node(name, role="worker", memory=32 * GIB, workloads=()):
    return {"name": name, "role": role, "state": "ready", "availability": "active",
            "reachability": "reachable" if role == "manager" else None, "message": "Healthy",
            "cpus": 4.0, "memory_bytes": memory, "workloads": list(workloads)}


def info(**changes):
    doc = {"changed": False, "nodes": [node("manager%d" % i, "manager") for i in (1, 2, 3)]
           + [node("worker%d" % i) for i in (1, 2, 3, 4)],
           "replicas": [{"id": "%012d" % i, "node": "worker%d" % i, "version": "2.9.16", "ghost": False}
                        for i in (1, 2, 3)],
           "storage": {"driver": "s3", "drivers": ["s3"], "nfs": None},
           "mke": {"admin_scheduling": True, "user_scheduling": None, "error": None}}
    doc.update(changes)
    return doc


HOSTS = [{"host": "worker%d" % i, "groups": ["msr", "mke_workers"]} for i in (1, 2, 3)]
SETTINGS = {"mke_ca": True, "msr_ca": True, "msr_version": "2.9.16", "mke_url": "https://mke.example.com"}


def run_module(capsys, module, args, check=False):
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def warnings(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


@pytest.mark.parametrize("check", [False, True])
def test_clean_cluster_passes_without_change(capsys, check):
    out = run_module(capsys, preflight_check, {"cluster_info": info(), "hosts": HOSTS, "settings": SETTINGS}, check)
    assert out.get("failed") is not True and out["changed"] is False
    assert out["ok"] is True and out["failures"] == [] and "storage_shared" in out["checked"]


@pytest.mark.parametrize("check", [False, True])
def test_every_failure_in_one_message(capsys, check):
    nodes = info()["nodes"]
    nodes[4]["workloads"] = [{"name": "web", "image": "nginx:1.25", "state": "running", "namespace": None}]
    out = run_module(capsys, preflight_check, {
        "cluster_info": info(nodes=nodes, mke={"admin_scheduling": False}),
        "hosts": HOSTS + [{"host": "worker4", "groups": ["msr"]}], "settings": SETTINGS}, check)
    assert out["failed"] is True and out["changed"] is False
    assert out["failed_checks"] == ["mke_admin_scheduling", "msr_even", "msr_node_workloads"]
    lines = out["msg"].splitlines()
    assert lines[0] == "preflight: 3 problem(s) to fix before changing MSR:"
    assert lines[1:] == ["- " + f["message"] for f in out["failures"]]
    assert lines[1].startswith("- group msr: 4 hosts, an even number")
    assert lines[2].startswith("- worker2: MKE node worker2 runs containers that are neither MSR's nor MKE's own: web")
    assert lines[3].startswith("- MKE: admins may not run containers")


def test_warnings_are_ansible_warnings(capsys):
    nodes = info()["nodes"]
    nodes[3]["memory_bytes"] = 4 * GIB
    out = run_module(capsys, preflight_check, {
        "cluster_info": info(nodes=nodes), "hosts": HOSTS[:1],
        "settings": dict(SETTINGS, allow_small_cluster=True)})
    assert out.get("failed") is not True and out["ok"] is True
    assert warnings(out) == [w["message"] for w in out["cautions"]]
    assert [w["check"] for w in out["cautions"]] == ["msr_hosts", "msr_node_resources"]


def test_no_cluster_info_and_typed_settings(capsys):
    settings = {"mke_ca": "no", "msr_ca": "yes", "msr_version": "2.9.16"}
    out = run_module(capsys, preflight_check, {"hosts": HOSTS, "settings": settings})
    assert out["failed_checks"] == ["mke_not_read", "mke_tls"]


def test_requirements_info_reports_what_imports(capsys):
    out = run_module(capsys, requirements_info, {"docker_host": "ssh://root@10.0.0.11"}, check=True)
    assert out["changed"] is False and out["python"] == sys.executable
    assert out["docker"] == {"importable": True, "version": _engine.docker.__version__, "error": None}
    assert out["paramiko"]["importable"] is True and out["paramiko"]["needed"] is True
    out = run_module(capsys, requirements_info, {})
    assert out["docker_host"] == "unix:///var/run/docker.sock" and out["paramiko"]["needed"] is False


def test_requirements_info_without_the_modules(capsys, monkeypatch):
    monkeypatch.setattr(_engine, "HAS_DOCKER", False)
    monkeypatch.setattr(_engine, "DOCKER_IMPORT_ERROR", "Traceback ...\nModuleNotFoundError: No module named 'docker'\n")
    monkeypatch.setattr(_requirements, "paramiko", None)
    monkeypatch.setattr(_requirements, "PARAMIKO_IMPORT_ERROR", "ModuleNotFoundError: No module named 'paramiko'")
    out = run_module(capsys, requirements_info, {"docker_host": "ssh://manager1"})
    assert out.get("failed") is not True
    assert out["docker"] == {"importable": False, "version": None,
                             "error": "ModuleNotFoundError: No module named 'docker'"}
    assert out["paramiko"] == {"importable": False, "version": None, "needed": True,
                               "error": "ModuleNotFoundError: No module named 'paramiko'"}
