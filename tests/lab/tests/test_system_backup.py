"""System tests, backup and metadata: repositories written through one replica and listed on every one, a
quorum loss repaired to a survivor that keeps only what it had, `backup` through the real docker CLI with
`--log-driver none` and through the docker SDK, every replica destroyed, `restore` from the file.

The tests share one lab (three replicas) and run in file order, as an operator's disaster would.
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest
from docker.types import LogConfig
from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter
from logrus import fatal_lines, messages
from system_lab import IMAGE, lab_fixture, replica_id_from, wait_for

pytestmark = pytest.mark.timeout(180)

lab = lab_fixture("--workers", "5", "--replicas", "3")
FIRST = ["admin/alpha", "admin/beta", "docker-datacenter/shared"]
MISSED = "admin/missed-by-worker3"
REPOS = "dtr-backup-v2.9.16/rethink/dtr2/repositories.json"


def ucp_flags(lab) -> list[str]:
    return [f"--ucp-url={lab.config['mke_url']}", "--ucp-username=admin", f"--ucp-ca={Path(lab.ca).read_text()}"]


def dtr(lab, command, *flags, stdin: Path | None = None, stdout: Path | None = None, log_none=False):
    """`docker run [-i] --rm [--log-driver none] -e UCP_PASSWORD mirantis/dtr:2.9.16 <command>` on manager1,
    with the real docker CLI; stdin and stdout can be files (bytes). Returns (exit code, stderr text)."""
    args = ["docker", "run", "--rm"] + (["-i"] if stdin else []) + (["--log-driver", "none"] if log_none else [])
    args += ["-e", "UCP_PASSWORD", IMAGE, command, *ucp_flags(lab), *flags]
    env = lab.docker_env(DOCKER_HOST=f"unix://{lab.sock('manager1')}", UCP_PASSWORD=lab.password)
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(stdout, "wb") if stdout else subprocess.PIPE
    try:
        r = subprocess.run(args, stdin=fin, stdout=fout, stderr=subprocess.PIPE, env=env, timeout=90)
    finally:
        for f in (fin, fout):
            if hasattr(f, "close"):
                f.close()
    return r.returncode, r.stderr.decode()


def create(lab, node, full_name):
    namespace, name = full_name.split("/")
    return lab.msr(node, f"/api/v0/repositories/{namespace}", method="POST", auth="admin",
                   body={"name": name, "visibility": "private", "shortDescription": f"{name} for the system test"})


def listed(lab, node) -> list[str]:
    status, body, _ = lab.msr(node, "/api/v0/repositories", auth="admin")
    assert status == 200, body
    status, cat, _ = lab.msr(node, "/v2/_catalog", auth="admin")
    assert status == 200, cat
    names = [f"{r['namespace']}/{r['name']}" for r in body["repositories"]]
    assert cat["repositories"] == names
    return names


def tar_repos(raw: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return [f"{r['namespace']}/{r['name']}" for r in json.loads(tar.extractfile(REPOS).read())]


def fata_text(err: str) -> str:
    lines = fatal_lines(err)
    assert len(lines) == 1, err
    return lines[0]


def wait_replica(lab, node) -> str:
    wait_for(lambda: lab.ping_ok(node), 15, what=f"{node} /_ping")
    return lab.replica_on(node)


@pytest.fixture(scope="module")
def sdk(lab):
    client = docker.DockerClient(base_url=f"unix://{lab.sock('manager1')}", version="auto", timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def files(lab):
    return {"cli": lab.tmp / "backup-cli.tar"}


def test_repositories_written_through_one_replica_are_listed_on_every_replica(lab):
    for name in FIRST:
        status, doc, _ = create(lab, "worker1", name)
        assert status == 201 and f"{doc['namespace']}/{doc['name']}" == name, doc
    status, body, _ = create(lab, "worker2", "admin/alpha")
    assert status == 400 and body["errors"][0]["code"] == "REPOSITORY_EXISTS"
    for node in ("worker1", "worker2", "worker3"):
        assert listed(lab, node) == FIRST, node


def test_quorum_loss_refuses_backup_and_emergency_repair_keeps_only_what_the_survivor_had(lab):
    reps = {r["node"]: rid for rid, r in lab.replicas().items()}
    lab.fault("partition", "worker3")
    try:
        assert create(lab, "worker1", MISSED)[0] == 201         # 2 of 3: the write lands on worker1 and worker2
        assert listed(lab, "worker2") == sorted(FIRST + [MISSED])
        lab.fault("stop-replica", "worker1")
        lab.fault("stop-replica", "worker2")
    finally:
        lab.fault("heal", "worker3")
    status, body, _ = lab.msr("worker3", "/api/v0/repositories", auth="admin")
    assert status == 500 and body["errors"][0]["message"].startswith("gorethink: Cannot perform read")
    code, err = dtr(lab, "backup", f"--existing-replica-id={reps['worker3']}", log_none=True)
    assert code == 1 and "the cluster has lost quorum" in fata_text(err)
    r, _ = lab.bootstrap("emergency-repair", f"--existing-replica-id={reps['worker3']}")
    assert r.returncode == 0, r.stderr
    assert list(lab.replicas()) == [reps["worker3"]]
    wait_replica(lab, "worker3")
    assert listed(lab, "worker3") == FIRST                     # the write it missed is gone for good


def test_backup_through_the_real_cli_with_log_driver_none(lab, files):
    rid = lab.replica_on("worker3")
    code, err = dtr(lab, "backup", f"--existing-replica-id={rid}", stdout=files["cli"], log_none=True)
    assert code == 0, err
    raw = files["cli"].read_bytes()
    assert tar_repos(raw) == FIRST
    assert b"level=" not in raw and messages(err)[-1] == "Backup is complete"


def test_backup_through_the_sdk(lab, sdk, files):
    rid = lab.replica_on("worker3")
    cmd = ["backup", *ucp_flags(lab), f"--existing-replica-id={rid}"]
    # containers.run with the default json-file driver: stdout only, as bytes
    out = sdk.containers.run(IMAGE, cmd, environment={"UCP_PASSWORD": lab.password}, remove=True)
    assert tar_repos(out) == FIRST
    # the attach socket with --log-driver none, as the documented command runs it
    api = sdk.api
    cid = api.create_container(IMAGE, cmd, environment={"UCP_PASSWORD": lab.password},
                               host_config=api.create_host_config(log_config=LogConfig(type="none")))["Id"]
    sock = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
    try:
        api.start(cid)
        out, err = consume_socket_output((demux_adaptor(*f) for f in frames_iter(sock, tty=False)), demux=True)
    finally:
        sock.close()
    assert api.wait(cid)["StatusCode"] == 0
    api.remove_container(cid)
    assert tar_repos(out) == FIRST and messages(err.decode())[-1] == "Backup is complete"


def test_destroy_every_replica_then_restore_through_the_cli(lab, files):
    existing = lab.replica_on("worker3")
    r, _ = lab.join("worker4", existing)
    assert r.returncode == 0, r.stderr
    wait_replica(lab, "worker4")
    assert listed(lab, "worker4") == FIRST                     # the joined replica received everything
    for rid in list(lab.replicas()):
        r, _ = lab.bootstrap("destroy", f"--replica-id={rid}")
        assert r.returncode == 0, r.stderr
    wait_for(lambda: not lab.ping_ok("worker3") and not lab.ping_ok("worker4"), 10, what="replicas gone")
    code, err = dtr(lab, "restore", "--ucp-node=worker5", stdin=files["cli"])
    assert code == 0, err
    rid = replica_id_from(err)
    assert wait_replica(lab, "worker5") == rid and list(lab.replicas()) == [rid]
    assert listed(lab, "worker5") == FIRST
    code, err = dtr(lab, "restore", "--ucp-node=worker1", stdin=files["cli"])
    assert code == 1 and fata_text(err).startswith("Docker Trusted Registry is already installed")


def test_restore_through_the_sdk_attach_socket(lab, sdk, files):
    r, _ = lab.bootstrap("destroy", f"--replica-id={lab.replica_on('worker5')}")
    assert r.returncode == 0, r.stderr
    api = sdk.api
    cid = api.create_container(IMAGE, ["restore", *ucp_flags(lab), "--ucp-node=worker1"], stdin_open=True,
                               environment={"UCP_PASSWORD": lab.password})["Id"]
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    try:
        api.start(cid)
        sock._sock.sendall(files["cli"].read_bytes())
        sock._sock.shutdown(socket.SHUT_WR)
        out, err = consume_socket_output((demux_adaptor(*f) for f in frames_iter(sock, tty=False)), demux=True)
    finally:
        sock.close()
    assert api.wait(cid)["StatusCode"] == 0, err
    api.remove_container(cid)
    assert out is None
    rid = replica_id_from(err.decode())
    assert wait_replica(lab, "worker1") == rid
    assert listed(lab, "worker1") == FIRST
    # and the restored cluster takes writes again, through its only replica
    assert create(lab, "worker1", "admin/after-restore")[0] == 201
