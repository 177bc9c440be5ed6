"""`backup` and `restore` of the emulated bootstrapper (msr2.md 1.11), run as containers of the emulated engine
against a real MkeApp over TLS (the Env and fixtures of test_bootstrapper.py)."""
# ruff: noqa: F811  (the `env` fixture, imported from test_bootstrapper, is every test's argument)
from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from logrus import fatal_lines, messages
from test_bootstrapper import IMAGE, Env, env, loop, pki  # noqa: F401

from msr_lab.mke import config

pytestmark = pytest.mark.timeout(60)

ROOT = "dtr-backup-v2.9.16"


def run_raw(env: Env, args, stdin: bytes | None = None, node="manager1", image=IMAGE, password="pw"):
    """(exit code, stdout bytes, stderr text) of `docker run [-i] --rm <image> <args>` on `node`."""
    eng = env.lab.nodes[node].engine
    eng.pull(image)
    c = eng.create_container(None, {"Image": image, "Cmd": args, "OpenStdin": stdin is not None,
                                    "StdinOnce": stdin is not None, "Env": [f"UCP_PASSWORD={password}"],
                                    "HostConfig": {"LogConfig": {"Type": "none"}}})
    eng.start_container(c)
    if stdin is not None:
        eng.write_stdin(c, stdin)
        eng.close_stdin(c)
    code = eng.wait_container(c, timeout=30)
    assert code is not None, "the bootstrapper did not finish"
    out = b"".join(d for s, d, _ in c.output if s == 1)
    err = b"".join(d for s, d, _ in c.output if s == 2).decode()
    eng.remove_container(c, force=True)
    return code, out, err


def fill(env: Env, rid: str) -> dict:
    """Repositories, a setting and a storage change written through replica `rid`; returns the copy."""
    cluster = env.lab.cluster

    def write(data):
        for name in ("web", "db"):
            data["repositories"][f"admin/{name}"] = {"id": f"id-{name}", "namespace": "admin", "name": name,
                                                     "namespaceType": "user", "visibility": "private"}
        data["settings"]["createRepositoryOnPush"] = True
        data["storage"] = {"s3": {"bucket": "from-backup", "region": "eu-west-1"}}
    cluster.write_metadata(rid, write)
    return cluster.read_metadata(rid)


def backup(env: Env, existing: str, *extra):
    return run_raw(env, ["backup", *env.ucp(), f"--existing-replica-id={existing}", *extra])


def open_tar(raw: bytes) -> dict[str, object]:
    """name -> parsed JSON (.json), text (PEM files) or None (directories)."""
    def read(m):
        text = tar.extractfile(m).read().decode()
        return json.loads(text) if m.name.endswith(".json") else text
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return {m.name: (read(m) if m.isfile() else None) for m in tar.getmembers()}


def until(predicate, timeout=5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.02)


def destroy_all(env: Env) -> None:
    for rid in list(env.lab.cluster.replicas):
        code, _, err = run_raw(env, ["destroy", *env.ucp(), f"--replica-id={rid}"])
        assert code == 0, err


# ---------------------------------------------------------------- backup

def test_backup_writes_the_metadata_tar_on_stdout_and_logs_on_stderr(env):
    rids = env.seed(3)
    written = fill(env, rids[1])
    code, out, err = backup(env, rids[2])
    assert code == 0, err
    files = open_tar(out)
    assert set(files) == {ROOT, f"{ROOT}/rethink", f"{ROOT}/rethink/dtr2", f"{ROOT}/backup.json",
                          f"{ROOT}/rethink/dtr2/repositories.json", f"{ROOT}/rethink/dtr2/properties.json",
                          f"{ROOT}/rethink/dtr2/storage.json", f"{ROOT}/cluster.json", f"{ROOT}/ca",
                          f"{ROOT}/ca/ca.pem", f"{ROOT}/ca/ca.key"}
    # certificates and keys are in the backup (msr2.md §1.11): MSR's own CA, which restore keeps
    assert files[f"{ROOT}/ca/ca.pem"] == env.lab.cluster.tls.ca_pem
    assert "PRIVATE KEY" in files[f"{ROOT}/ca/ca.key"]
    info = files[f"{ROOT}/backup.json"]
    assert info["version"] == "2.9.16" and info["replicaID"] == rids[2] and info["replicaIDs"] == sorted(rids)
    assert info["counts"] == {"repositories": 2} and info["image"] == IMAGE
    repos = files[f"{ROOT}/rethink/dtr2/repositories.json"]
    assert [r["name"] for r in repos] == ["db", "web"]
    assert repos == [written["repositories"]["admin/db"], written["repositories"]["admin/web"]]
    assert files[f"{ROOT}/rethink/dtr2/properties.json"] == written["settings"]
    assert files[f"{ROOT}/rethink/dtr2/storage.json"] == {"storage": written["storage"]}
    msgs = messages(err)                 # every stderr line is a log line; stdout holds no log line
    assert msgs[0] == "Beginning Docker Trusted Registry backup" and msgs[-1] == "Backup is complete"
    assert b'level=info' not in out
    names = {c.name for n in env.lab.nodes.values() if n.engine for c in n.engine.containers.values()}
    assert "dtr-backup" not in names     # the reader is gone once the backup is written


def test_the_backup_reader_runs_on_the_existing_replicas_node(env):
    rids = env.seed(3)
    env.lab.faults.kill_at_phase = "complete"
    code, out, _ = backup(env, rids[1])
    assert code == 137
    where = [n.name for n in env.lab.nodes.values() if n.engine and n.engine.find_container("dtr-backup")]
    assert where == ["worker2"]          # a killed run leaves it, like dtr-phase2
    code, _, err = backup(env, rids[1])  # and the next run replaces it
    assert code == 0, err
    assert not env.lab.nodes["worker2"].engine.find_container("dtr-backup")


def test_backup_from_a_replica_that_missed_writes_holds_them_once_it_is_back(env):
    rids = env.seed(3)
    env.lab.cluster.stop_replica(rids[2])
    fill(env, rids[0])
    env.lab.cluster.start_replica(rids[2])
    until(lambda: env.lab.cluster.replica_ok(rids[2]))                # past its start period
    code, out, err = backup(env, rids[2])
    assert code == 0, err
    assert len(open_tar(out)[f"{ROOT}/rethink/dtr2/repositories.json"]) == 2


@pytest.mark.parametrize("case", ["missing", "unknown", "stopped", "partitioned", "joining", "quorum", "version"])
def test_backup_refusals(env, case):
    rids = env.seed(3)
    cluster = env.lab.cluster
    args = ["backup", *env.ucp(), f"--existing-replica-id={rids[0]}"]
    image = IMAGE
    if case == "version":
        image = "mirantis/dtr:2.9.15"
        want = "This DTR cluster runs version 2.9.16; back it up with the bootstrapper of the same version, not 2.9.15"
    elif case == "missing":
        args = args[:-1]
        want = "Missing required value for --existing-replica-id"
    elif case == "unknown":
        args[-1] = "--existing-replica-id=00000000dead"
        want = "The replica 00000000dead given with --existing-replica-id is not part of this DTR cluster"
    elif case == "stopped":
        cluster.stop_replica(rids[0])
        want = (f"The replica {rids[0]} given with --existing-replica-id is not healthy: Rethink replica is "
                "currently in state: disconnected")
    elif case == "partitioned":
        env.lab.nodes["worker1"].partitioned = True
        want = f"The replica {rids[0]} given with --existing-replica-id is not healthy"
    elif case == "joining":
        cluster.add_member("0000000000aa", "worker4", "2.9.16")
        cluster.create_replica_objects("0000000000aa", "worker4", "2.9.16")
        # past its container's start period (until then RethinkDB calls it disconnected): a member that
        # runs but is still joining
        deadline = time.monotonic() + 5
        while not cluster.replica_started("0000000000aa"):
            assert time.monotonic() < deadline, "the joining replica's container did not start"
            time.sleep(0.01)
        args[-1] = "--existing-replica-id=0000000000aa"
        want = "The replica 0000000000aa given with --existing-replica-id is not healthy: Replica is not ready"
    elif case == "quorum":
        cluster.stop_replica(rids[1])
        cluster.stop_replica(rids[2])
        want = ('Failed to read the DTR database: gorethink: Cannot perform read: primary replica for shard '
                '["", +inf) not available in: r.DB("dtr2").Table("repositories") (the cluster has lost quorum')
    code, out, err = run_raw(env, args, image=image)
    assert code == 1 and out == b""
    lines = fatal_lines(err)
    assert len(lines) == 1 and lines[0].startswith(want), lines


def test_backup_and_restore_help(env):
    code, out, _ = run_raw(env, ["backup", "--help"])
    text = out.decode()
    assert code == 0 and "--existing-replica-id value" in text and "$MSR_REPLICA_ID" in text
    assert "--ucp-node" not in text and "--nocolor" in text
    code, out, _ = run_raw(env, ["restore", "--help"])
    text = out.decode()
    for flag in ("--ucp-node", "--replica-id value", "$MSR_INSTALL_REPLICA_ID", "--replica-http-port",
                 "--replica-https-port", "--ucp-ca", "--ucp-insecure-tls"):
        assert flag in text, flag
    assert "--existing-replica-id" not in text
    code, out, err = run_raw(env, ["backup", "--bogus"])
    assert code == 1 and fatal_lines(err) == ["flag provided but not defined: -bogus"]


# ---------------------------------------------------------------- restore

def test_restore_after_every_replica_was_destroyed_brings_the_metadata_back(env):
    rids = env.seed(3)
    written = fill(env, rids[0])
    old_ca, old_host = env.lab.cluster.tls.ca_pem, env.lab.cluster.external_url
    code, tar, err = backup(env, rids[0])
    assert code == 0, err
    destroy_all(env)
    cluster = env.lab.cluster
    assert all(cluster.copy_of(r) is None for r in rids) and cluster.tls is None     # dissolved
    code, out, err = run_raw(env, ["restore", *env.ucp(), "--ucp-node=worker4", "--replica-id=00000000beef",
                                   "--replica-https-port=4443"], stdin=tar)
    assert code == 0, err
    assert out == b""
    msgs = messages(err)
    assert msgs[0] == "Beginning Docker Trusted Registry restore" and "Restore is complete" in msgs
    assert "Replica ID is set to: 00000000beef" in msgs
    assert list(cluster.replicas) == ["00000000beef"]            # the destroyed ones are forgotten
    rep = cluster.replicas["00000000beef"]
    assert (rep.node, rep.state, rep.https_port) == ("worker4", "running", 4443)
    assert cluster.replica_ok("00000000beef") and cluster.ping("00000000beef") == (True, "")
    restored = cluster.read_metadata("00000000beef")
    assert restored["repositories"] == written["repositories"]
    assert restored["settings"] == written["settings"] and restored["storage"] == written["storage"]
    assert cluster.storage_driver() == "s3"
    # the restored cluster keeps its CA (and dtrHost): clients that trust it need nothing new
    assert cluster.tls.ca_pem == old_ca and cluster.external_url == old_host
    assert not env.lab.nodes["worker4"].engine.find_container("dtr-phase2")
    # a replica joined afterwards receives the restored metadata
    code, _, err = run_raw(env, ["join", *env.ucp(), "--ucp-node=worker1", "--existing-replica-id=00000000beef",
                                 "--replica-id=00000000cafe"])
    assert code == 0, err
    assert cluster.read_metadata("00000000cafe")["repositories"] == written["repositories"]


def test_restore_on_an_mke_cluster_where_msr_never_ran(env):
    env.seed(1)
    fill(env, "000000000001")
    _, tar, _ = backup(env, "000000000001")
    env.lab.cluster.remove_member("000000000001")               # an MKE cluster without MSR, as after uninstall
    env.lab.cluster.delete_replica_objects("000000000001", "worker1")
    code, _, err = run_raw(env, ["restore", *env.ucp()], stdin=tar)
    assert code == 0, err
    (rid,) = env.lab.cluster.replicas
    assert sorted(env.lab.cluster.read_metadata(rid)["repositories"]) == ["admin/db", "admin/web"]


@pytest.mark.parametrize("case", ["installed", "version", "no-stdin", "empty", "garbage", "not-a-backup"])
def test_restore_refusals_change_nothing(env, case):
    rids = env.seed(1)
    fill(env, rids[0])
    _, tar, _ = backup(env, rids[0])
    if case != "installed":
        destroy_all(env)
    stdin, image = tar, IMAGE
    if case == "installed":
        want = "Docker Trusted Registry is already installed in this UCP cluster (replicas: 000000000001)"
    elif case == "version":
        image = "mirantis/dtr:2.9.15"
        want = ("The backup was made with DTR 2.9.16; restore it with the bootstrapper of the same version "
                "(mirantis/dtr:2.9.16), not 2.9.15")
    elif case == "no-stdin":
        stdin = None
        want = "restore reads the backup from stdin"
    elif case == "empty":
        stdin = b""
        want = "Failed to read the backup: stdin is empty"
    elif case == "garbage":
        stdin = b"\x00\x01 not a tar " * 100
        want = "Failed to read the backup: stdin is not a tar archive"
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("something/else.txt")
            info.size = 2
            t.addfile(info, io.BytesIO(b"hi"))
        stdin = buf.getvalue()
        want = "Failed to read the backup: the archive is not a DTR backup"
    before = {rid: r.state for rid, r in env.lab.cluster.replicas.items()}
    code, out, err = run_raw(env, ["restore", *env.ucp()], stdin=stdin, image=image)
    lines = fatal_lines(err)
    assert code == 1 and out == b"" and len(lines) == 1 and lines[0].startswith(want), lines
    assert {rid: r.state for rid, r in env.lab.cluster.replicas.items()} == before
    assert not any(n.engine.find_container("dtr-phase2") for n in env.lab.nodes.values() if n.engine)


def test_backup_needs_admin_scheduling_and_a_reachable_node(env):
    """Its reader is an admin's container on a node running MSR: MKE's scheduler decides (msr2.md §1.10)."""
    rids = env.seed(3)
    config.set_admin_scheduling(env.lab, False)
    code, out, err = backup(env, rids[1])
    assert code == 1 and out == b""
    assert fatal_lines(err) == ['Error response from daemon: {"message":"could not find any nodes on which the '
                                'container could be created"}']
    config.set_admin_scheduling(env.lab, True)
    env.lab.config["heartbeat_seconds"] = 60          # MKE still lists the node as ready
    env.lab.nodes["worker2"].engine_down = True       # MKE cannot reach the engine; RethinkDB still answers
    code, out, err = backup(env, rids[1])
    assert code == 1 and out == b""
    assert fatal_lines(err) == ["Error response from daemon: the Docker engine of node worker2 (127.0.0.1:12376) is "
                                "unreachable: dial tcp 127.0.0.1:12376: i/o timeout"]
    env.lab.nodes["worker2"].engine_down = False
    code, out, err = backup(env, rids[1])
    assert code == 0 and out, err
