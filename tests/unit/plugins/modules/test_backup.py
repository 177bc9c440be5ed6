# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""msr.replicas.backup end to end over the in-memory cluster (the real build_view) and the fake engine of
test_backup_stream (a real socket pair; a bootstrapper that reads the same cluster and refuses like the
real one): the choice of replica, every refusal in check mode and for real, the file, the secrets."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.msr.replicas.plugins.module_utils import _backup, _cluster, _engine
from ansible_collections.msr.replicas.plugins.modules import backup
from ansible_collections.msr.replicas.tests.unit.plugins.module_utils.test_backup_stream import (
    CA,
    PASSWORD,
    FakeApi,
    FakeBootstrapper,
    make_tar,
)

A, B, C = "aaaaaaaaaaa1", "bbbbbbbbbbb2", "ccccccccccc3"
MSR_CA = "-----BEGIN CERTIFICATE-----\nMIIBmsr\n-----END CERTIFICATE-----\n"
BASE = {"mke_url": "https://mke.example.com", "mke_password": PASSWORD, "mke_ca": CA, "msr_ca": MSR_CA}


def members_of(cluster):
    """What the fake bootstrapper reads: the cluster's RethinkDB members and their health."""
    def members():
        return {rid: {"healthy": bool(r["node"]) and r["health"] == "OK" and r["ping"] == 200,
                      "version": cluster.version}
                for rid, r in cluster.replicas.items() if r["in_status"]}
    return members


@pytest.fixture
def run(monkeypatch, capsys):
    def _run(cluster, api=None, check=False, has_docker=True, view=None, **args):
        api = api or FakeApi(members_of(cluster))
        runners = []

        def bootstrapper(docker_host, timeout=None):
            runners.append(FakeBootstrapper(api, docker_host, timeout))
            return runners[-1]
        monkeypatch.setattr(backup, "clients_from_params", lambda p: (None, None))
        monkeypatch.setattr(backup, "observe", lambda *a, **k: view if view is not None else cluster.view())
        monkeypatch.setattr(backup.boot, "Bootstrapper", bootstrapper)
        monkeypatch.setattr(_engine, "HAS_DOCKER", has_docker)
        params = dict(BASE, **args)
        params.update(_ansible_check_mode=check, _ansible_diff=True)
        with patch_module_args(params):
            with pytest.raises(SystemExit):
                backup.main()
        out = capsys.readouterr().out
        assert PASSWORD not in out
        result = json.loads(out)
        result["_api"], result["_runners"] = api, runners
        return result
    return _run


def three(fakes):
    return fakes.FakeCluster({A: "worker-1", B: "worker-2", C: "worker-3"})


def public(result):
    return dict((k, v) for k, v in result.items() if not k.startswith("_"))


def warnings(result):
    return [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]


def tmp_files(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


# -- the replica -------------------------------------------------------------------------------------------

def test_choose_replica_default_is_the_lowest_healthy_member(fakes):
    cluster = three(fakes)
    assert _backup.choose_replica(cluster.view())[0]["id"] == A
    cluster.replicas[A].update(health="down", ping=503)
    assert _backup.choose_replica(cluster.view())[0]["id"] == B
    cluster.add("000000000001", "worker-4", health="joining", ping=503, in_status=False)   # a partial join
    assert _backup.choose_replica(cluster.view())[0]["id"] == B
    assert _backup.choose_replica(cluster.view(), C)[0]["id"] == C


@pytest.mark.parametrize("wanted, match", [
    ("dddddddddddd", "replica_id dddddddddddd is not a replica of this cluster (replicas: aaaaaaaaaaa1, "),
    (A, "replica_id aaaaaaaaaaa1 is not healthy (health: down, /_ping: 503)"),
    ("000000000001", "replica_id 000000000001 is not a member of the cluster (a partial join"),
])
def test_choose_replica_refuses_unknown_unhealthy_or_partial(fakes, wanted, match):
    cluster = three(fakes)
    cluster.replicas[A].update(health="down", ping=503)
    cluster.add("000000000001", "worker-4", health="joining", ping=503, in_status=False)
    replica, why = _backup.choose_replica(cluster.view(), wanted)
    assert replica is None and why.startswith(match), why


def test_choose_replica_refuses_without_quorum_or_membership(fakes):
    cluster = three(fakes)
    cluster.replicas[B].update(health="down", ping=503)
    cluster.replicas[C].update(health="down", ping=503)
    replica, why = _backup.choose_replica(cluster.view(), A)     # A itself is healthy: quorum decides
    assert replica is None
    assert why.startswith("refusing to back up: only 1 of 3 replicas are healthy and 2 are needed for quorum")
    assert "emergency-repair" in why
    replica, why = _backup.choose_replica(no_status_view(cluster))
    assert replica is None and "membership and the quorum of the cluster are unknown" in why


def no_status_view(cluster):
    """Containers and /_ping, but no replica answered cluster_status."""
    nodes = cluster.nodes
    containers = [{"id": rid, "node": r["node"], "version": "2.9.16", "container_state": "running"}
                  for rid, r in sorted(cluster.replicas.items())]
    urls = dict((c["id"], "https://10.0.0.%d" % (i + 10)) for i, c in enumerate(containers))
    pings = dict((c["id"], {"status": 200, "healthy": True, "error": ""}) for c in containers)
    return _cluster.build_view(nodes, containers, urls, pings, None, {"driver": "s3", "drivers": ["s3"]},
                               errors=["HTTP 500"])


# -- check mode, then for real -------------------------------------------------------------------------------

def test_check_mode_predicts_then_the_run_writes_the_file(run, fakes, tmp_path):
    cluster = three(fakes)
    dest = str(tmp_path / "msr.tar")
    first = run(cluster, check=True, dest=dest)
    again = run(cluster, check=True, dest=dest)
    assert public(first) == public(again)                  # the same output on every run
    assert first["_api"].calls == [] and first["_runners"] == []   # nothing ran, no engine contacted
    assert not os.path.exists(dest) and os.listdir(str(tmp_path)) == []
    assert first["changed"] is True and first["replica_id"] == A and first["version"] == "2.9.16"
    assert first["path"] == dest and first["size"] is None and first["sha256"] is None
    assert first["diff"] == {"before": {"path": dest, "state": "absent", "sha256": None},
                             "after": {"path": dest, "state": "file", "sha256": None}}

    done = run(cluster, dest=dest)
    assert done["changed"] is True and done["replica_id"] == A and done["cmd"] == first["cmd"]
    assert done["cmd"] == ["docker", "run", "--rm", "--log-driver", "none", "-e", "UCP_CA", "-e", "UCP_PASSWORD",
                           "mirantis/dtr:2.9.16", "backup", "--existing-replica-id", A, "--ucp-url",
                           "https://mke.example.com", "--ucp-username", "admin", "--nocolor"]
    with open(dest, "rb") as fh:
        data = fh.read()
    assert data == make_tar(A)
    assert done["size"] == len(data) and done["sha256"] == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600 and done["mode"] == "0600"
    assert done["diff"]["after"] == {"path": dest, "state": "file", "sha256": done["sha256"]}
    assert "Backup is complete" in done["phases"] and done["bootstrapper_warnings"] == ["a warning for the test"]
    assert tmp_files(str(tmp_path)) == []
    c = done["_api"].created[0]
    assert c["name"].startswith("msr-replicas-backup-") and done["_api"].containers == {}
    assert c["env"] == {"UCP_PASSWORD": PASSWORD, "UCP_CA": CA}
    assert done["_runners"][0].docker_host == "unix:///var/run/docker.sock"
    assert done["_runners"][0].timeout == 1800


def test_insecure_mke_passes_the_flag_and_no_ca(run, fakes, tmp_path):
    params = dict(BASE, mke_ca=None, mke_insecure_tls=True)
    r = run(three(fakes), dest=str(tmp_path / "b.tar"), **params)
    assert r["changed"] is True and "--ucp-insecure-tls" in r["cmd"] and "UCP_CA" not in r["cmd"]
    assert r["_api"].created[0]["env"] == {"UCP_PASSWORD": PASSWORD}


def test_default_replica_skips_an_unhealthy_lowest_id(run, fakes, tmp_path):
    cluster = three(fakes)
    cluster.replicas[A].update(health="down", ping=503)
    for check in (True, False):
        r = run(cluster, check=check, dest=str(tmp_path / "b.tar"))
        assert r["changed"] is True and r["replica_id"] == B


def test_directory_dest_uses_the_documented_name(run, fakes, tmp_path):
    cluster = three(fakes)
    predicted = run(cluster, check=True, dest=str(tmp_path) + "/")
    assert predicted["path"] == str(tmp_path / "dtr-metadata-2.9.16-backup-YYYYmmdd-HH_MM_SS.tar")
    done = run(cluster, dest=str(tmp_path))
    name = os.path.basename(done["path"])
    assert os.path.dirname(done["path"]) == str(tmp_path)
    assert re.match(r"^dtr-metadata-2\.9\.16-backup-\d{8}-\d\d_\d\d_\d\d\.tar$", name), name
    assert os.listdir(str(tmp_path)) == [name]


def test_create_dir_makes_a_private_directory_only_for_real(run, fakes, tmp_path):
    cluster = three(fakes)
    dest = tmp_path / "msr" / "nightly"
    predicted = run(cluster, check=True, dest=str(dest) + "/", create_dir=True)
    assert predicted["changed"] is True and predicted["created_dir"] == str(dest)
    assert predicted["path"] == str(dest / "dtr-metadata-2.9.16-backup-YYYYmmdd-HH_MM_SS.tar")
    assert not (tmp_path / "msr").exists()
    done = run(cluster, dest=str(dest) + "/", create_dir=True)
    assert done["changed"] is True and done["created_dir"] == str(dest)
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o700
    assert os.listdir(str(dest)) == [os.path.basename(done["path"])]
    again = run(cluster, dest=str(dest) + "/", create_dir=True)
    assert again["changed"] is True and again["created_dir"] is None   # there now: nothing to create


def test_create_dir_refused_and_nothing_made_when_the_cluster_refuses(run, fakes, tmp_path):
    cluster = degraded(fakes, "quorum")
    dest = tmp_path / "new"
    for check in (True, False):
        r = run(cluster, check=check, dest=str(dest) + "/", create_dir=True)
        assert r["failed"] is True and r["msg"].startswith("refusing to back up: only 1 of 3")
    assert not dest.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = run(three(fakes), dest=str(blocker / "sub") + "/", create_dir=True)
    assert r["failed"] is True and r["msg"] == ("cannot create the directory %s: %s is not a directory"
                                                % (blocker / "sub", blocker))


def test_keep_removes_the_oldest_backups_and_nothing_else(run, fakes, tmp_path):
    cluster = three(fakes)
    old = []
    for day in range(1, 5):
        path = tmp_path / ("dtr-metadata-2.9.16-backup-2026110%d-02_00_00.tar" % day)
        path.write_bytes(b"old")
        os.utime(str(path), (1000000 * day, 1000000 * day))
        old.append(str(path))
    (tmp_path / "notes.txt").write_text("not a backup")
    (tmp_path / "dtr-metadata-2.9.16-backup-x.tar.gz").write_text("not the documented name")
    predicted = run(cluster, check=True, dest=str(tmp_path) + "/", keep=3)
    assert predicted["removed"] == [old[1], old[0]]
    assert all(os.path.exists(p) for p in old)
    done = run(cluster, dest=str(tmp_path) + "/", keep=3)
    assert done["changed"] is True and done["removed"] == predicted["removed"]
    left = sorted(os.listdir(str(tmp_path)))
    assert left == sorted([os.path.basename(done["path"]), os.path.basename(old[3]), os.path.basename(old[2]),
                           "notes.txt", "dtr-metadata-2.9.16-backup-x.tar.gz"])


def test_keep_removes_nothing_when_the_backup_fails(run, fakes, tmp_path):
    for day in (1, 2):
        (tmp_path / ("dtr-metadata-2.9.16-backup-2026110%d-02_00_00.tar" % day)).write_bytes(b"old")
    api = FakeApi(members_of(three(fakes)), behaviour="crash")
    r = run(three(fakes), api=api, dest=str(tmp_path) + "/", keep=1)
    assert r["failed"] is True and r["removed"] == [] and len(os.listdir(str(tmp_path))) == 2


@pytest.mark.parametrize("args, msg", [
    ({"keep": 0}, "keep must be 1 or more, got 0 (the new backup is one of them)"),
    ({"keep": 2, "dest": "/tmp/b.tar"}, "keep applies only when dest is a directory (ends with /), got the file "
                                        "/tmp/b.tar"),
])
def test_bad_keep(run, fakes, tmp_path, args, msg):
    r = run(three(fakes), **dict({"dest": str(tmp_path) + "/"}, **args))
    assert r["failed"] is True and r["msg"] == msg and r["_api"].calls == []


def test_force_false_keeps_an_existing_file_without_reading_the_cluster(run, fakes, tmp_path):
    cluster = three(fakes)
    dest = tmp_path / "b.tar"
    dest.write_bytes(b"last night's backup")
    for check in (True, False):
        r = run(cluster, check=check, dest=str(dest), force=False)
        assert r["changed"] is False and r["replica_id"] is None and r["_api"].calls == []
        assert r["sha256"] == hashlib.sha256(b"last night's backup").hexdigest() and r["size"] == 19
        assert r["msg"] == "dest exists and force is false: no backup taken"
    assert cluster.observations == 0 and dest.read_bytes() == b"last night's backup"
    # force (the default) replaces it, and the diff shows both digests
    r = run(cluster, dest=str(dest))
    assert r["changed"] is True and dest.read_bytes() == make_tar(A)
    assert r["diff"]["before"]["sha256"] == hashlib.sha256(b"last night's backup").hexdigest()
    assert r["diff"]["after"]["sha256"] == r["sha256"] != r["diff"]["before"]["sha256"]


# -- refusals: the same in check mode and for real, and nothing runs -----------------------------------------

def degraded(fakes, kind):
    cluster = three(fakes)
    if kind in ("quorum", "unhealthy"):
        cluster.replicas[B].update(health="down", ping=503)
    if kind == "quorum":
        cluster.replicas[C].update(health="down", ping=503)
    return cluster


@pytest.mark.parametrize("kind, args, msg", [
    ("quorum", {}, "refusing to back up: only 1 of 3 replicas are healthy and 2 are needed for quorum"),
    ("quorum", {"replica_id": A}, "refusing to back up: only 1 of 3 replicas are healthy"),
    ("unhealthy", {"replica_id": B}, "replica_id bbbbbbbbbbb2 is not healthy (health: down, /_ping: 503)"),
    ("ok", {"replica_id": "DDDDDDDDDDDD"}, "replica_id dddddddddddd is not a replica of this cluster"),
    ("ok", {"version": "2.9.15"}, "version 2.9.15 differs from the MSR version of replica aaaaaaaaaaa1, 2.9.16"),
    ("ok", {"dest": "/nonexistent-dir-h7/b.tar"}, "the directory of dest, /nonexistent-dir-h7, does not exist"),
    ("ok", {"dest": "/nonexistent-dir-h7/"}, "dest /nonexistent-dir-h7/ is meant as a directory, which does not"),
    ("ok", {"dest": "backups/b.tar"}, "dest must be an absolute path, got 'backups/b.tar'"),
])
def test_refusals_are_predicted_and_nothing_runs(run, fakes, tmp_path, kind, args, msg):
    cluster = degraded(fakes, kind)
    args = dict({"dest": str(tmp_path / "b.tar")}, **args)
    results = [run(cluster, check=check, **args) for check in (True, False)]
    for r in results:
        assert r["failed"] is True and r["changed"] is False
        assert r["msg"].startswith(msg), r["msg"]
        assert r["_api"].calls == [] and r["_runners"] == []
        assert "phases" not in r and "cmd" not in r
    assert results[0]["msg"] == results[1]["msg"]
    assert os.listdir(str(tmp_path)) == []


def test_refused_when_no_replica_answers_cluster_status(run, fakes, tmp_path):
    cluster = three(fakes)
    for check in (True, False):
        r = run(cluster, check=check, view=no_status_view(cluster), dest=str(tmp_path / "b.tar"))
        assert r["failed"] is True and "membership and the quorum of the cluster are unknown" in r["msg"]
        assert r["_api"].calls == []


@pytest.mark.parametrize("args, msg", [
    ({"docker_host": "tcp://10.0.0.1:2375"}, "docker_host must be unix:///path or ssh://user@host, got 'tcp://"),
    ({"mke_url": "http://mke.example.com"}, "mke_url must be an https:// URL"),
    ({"replica_id": "xyz"}, "replica_id must be 12 hexadecimal characters, got 'xyz'"),
    ({"version": "latest"}, "version must look like 2.9.16, got 'latest'"),
    ({"bootstrap_timeout": 0}, "bootstrap_timeout must be 1 or more"),
])
def test_bad_options(run, fakes, tmp_path, args, msg):
    r = run(three(fakes), dest=str(tmp_path / "b.tar"), **args)
    assert r["failed"] is True and r["msg"].startswith(msg), r["msg"]
    assert r["_api"].calls == []


# -- failures after the start --------------------------------------------------------------------------------

def test_bootstrapper_failure_reports_its_log_and_leaves_nothing(run, fakes, tmp_path):
    dest = tmp_path / "b.tar"
    dest.write_bytes(b"previous")
    api = FakeApi(members_of(three(fakes)), behaviour="crash")
    r = run(three(fakes), api=api, dest=str(dest))
    assert r["failed"] is True and r["changed"] is False
    assert r["msg"] == ("backup from replica aaaaaaaaaaa1 failed: Failed to read the DTR database: gorethink: "
                        "connection closed; %s was not written" % dest)
    assert r["sha256"] is None and "Beginning Docker Trusted Registry backup" in r["phases"]
    assert r["size"] == 8          # Ansible's file attributes of path: the previous backup, untouched
    assert dest.read_bytes() == b"previous" and tmp_files(str(tmp_path)) == []
    assert api.containers == {}


def test_cluster_and_bootstrapper_disagree_the_bootstrapper_refusal_is_reported(run, fakes, tmp_path):
    # The module saw quorum; by the time the bootstrapper reads, two replicas are gone.
    cluster = three(fakes)
    members = {A: {"healthy": True, "version": "2.9.16"}, B: {"healthy": False, "version": "2.9.16"},
               C: {"healthy": False, "version": "2.9.16"}}
    r = run(cluster, api=FakeApi(lambda: members), dest=str(tmp_path / "b.tar"))
    assert r["failed"] is True and "lost quorum" in r["msg"] and os.listdir(str(tmp_path)) == []


def test_unremoved_container_is_a_warning(run, fakes, tmp_path):
    api = FakeApi(members_of(three(fakes)), remove_fails=True)
    r = run(three(fakes), api=api, dest=str(tmp_path / "b.tar"))
    assert r["changed"] is True
    assert any(w.startswith("could not remove the bootstrapper container msr-replicas-backup-")
               and "docker rm -f" in w for w in warnings(r)), warnings(r)


def test_without_the_docker_sdk_only_check_mode_works(run, fakes, tmp_path):
    r = run(three(fakes), check=True, has_docker=False, dest=str(tmp_path / "b.tar"))
    assert r["changed"] is True
    r = run(three(fakes), has_docker=False, dest=str(tmp_path / "b.tar"))
    assert r["failed"] is True and "docker" in r["msg"] and r["_api"].calls == []


def test_password_never_in_output_argv_or_log(run, fakes, tmp_path):
    r = run(three(fakes), dest=str(tmp_path / "b.tar"), debug=True)
    text = json.dumps(public(r))
    assert PASSWORD not in text and r["changed"] is True and "--debug" in r["cmd"]
    c = r["_api"].created[0]
    assert not any(PASSWORD in a for a in c["argv"]) and c["env"]["UCP_PASSWORD"] == PASSWORD
