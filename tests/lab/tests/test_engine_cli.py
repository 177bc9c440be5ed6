"""The emulated Docker Engine API against the real docker CLI 28.2.2 (engine-api.md §1–§10, §17)."""
from __future__ import annotations

import subprocess
import time

import pytest

from conftest import SERVICE_IMAGE, TEST_IMAGE

pytestmark = pytest.mark.timeout(60)


def wait_for(check, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return False


def replica_services(state, rid="0123456789ab"):
    for svc in ("rethinkdb", "nginx", "api"):
        state.run_service(f"dtr-{svc}-{rid}", SERVICE_IMAGE,
                          {"com.docker.dtr.replica": rid, "com.docker.dtr.version": "2.9.16"},
                          env=[f"DTR_REPLICA_ID={rid}"], volumes={f"dtr-ca-{rid}": "/ca"})


def test_version_and_info(docker_cli):
    r = docker_cli("version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1.50 28.2.2"
    r = docker_cli("info", "--format", "{{.Name}} {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "node1 active true"


def test_run_rm_pulls_propagates_exit_and_separates_streams(docker_cli, lab_engine):
    r = docker_cli("run", "--rm", "-e", "UCP_PASSWORD", "-e", "FOO=bar", "-e", "UNSET", TEST_IMAGE,
                   "hello", "world", "--env", "UCP_PASSWORD", "--env", "FOO", "--env", "UNSET", "--exit", "3",
                   env={"UCP_PASSWORD": "s3cret"})
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hello world\n"
    assert f"Unable to find image '{TEST_IMAGE}' locally" in r.stderr
    assert "Status: Downloaded newer image for mirantis/dtr:2.9.16" in r.stderr
    assert "UCP_PASSWORD=set\nFOO=set\nUNSET=unset\n" in r.stderr
    assert lab_engine.state.containers == {}
    # second run: the image is there, no pull; exit 0
    r = docker_cli("run", "--rm", TEST_IMAGE, "again")
    assert (r.returncode, r.stdout) == (0, "again\n")
    assert "Unable to find image" not in r.stderr
    assert docker_cli("ps", "-aq").stdout == ""


def test_run_rm_interactive_stdin(docker_cli, lab_engine):
    r = docker_cli("run", "--rm", "-i", TEST_IMAGE, "start", "--stdin", "--exit", "4", input="hello\nworld\n")
    assert r.returncode == 4, r.stderr
    assert r.stdout == "start\nin: hello\nin: world\n"
    assert lab_engine.state.containers == {}


def test_unknown_image_and_unknown_tag(docker_cli):
    r = docker_cli("run", "--rm", "nosuch/image:1.0")
    assert r.returncode == 125
    assert ("pull access denied for nosuch/image, repository does not exist or may require 'docker login': "
            "denied: requested access to the resource is denied") in r.stderr
    r = docker_cli("run", "--rm", "mirantis/dtr:9.9.9")
    assert r.returncode == 125
    assert "manifest for mirantis/dtr:9.9.9 not found" in r.stderr
    r = docker_cli("pull", "mirantis/dtr:2.9.15")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("docker.io/mirantis/dtr:2.9.15")


def test_published_ports_in_ps_and_inspect(docker_cli, lab_engine):
    lab_engine.state.run_service("dtr-nginx-0123456789ab", SERVICE_IMAGE, {}, ports={80: 8081, 443: 4443})
    r = docker_cli("ps", "--format", "{{.Names}} {{.Ports}}")
    assert r.stdout.strip() == "dtr-nginx-0123456789ab 0.0.0.0:8081->80/tcp, 0.0.0.0:4443->443/tcp", r.stdout
    r = docker_cli("port", "dtr-nginx-0123456789ab", "443")
    assert r.stdout.strip() == "0.0.0.0:4443", (r.stdout, r.stderr)


def test_ps_filters_format_and_inspect(docker_cli, lab_engine):
    replica_services(lab_engine.state, "0123456789ab")
    replica_services(lab_engine.state, "ba9876543210")
    lab_engine.state.stop_container(lab_engine.state.find_container("dtr-api-ba9876543210"))

    def names(*args):
        r = docker_cli("ps", *args, "--format", "{{.Names}}")
        assert r.returncode == 0, r.stderr
        return sorted(r.stdout.split())

    assert names("-a", "--filter", "name=dtr-rethinkdb-") == ["dtr-rethinkdb-0123456789ab",
                                                              "dtr-rethinkdb-ba9876543210"]
    assert names("-f", "name=^/dtr-api") == ["dtr-api-0123456789ab"]
    assert names("-f", "name=^dtr-api") == []  # the regexp sees the leading '/'
    assert names("-a", "-f", "name=dtr-api") == ["dtr-api-0123456789ab", "dtr-api-ba9876543210"]
    assert names("-a", "-f", "status=exited") == ["dtr-api-ba9876543210"]
    assert names("-f", "label=com.docker.dtr.replica=0123456789ab", "-f", "label=com.docker.dtr.version") \
        == ["dtr-api-0123456789ab", "dtr-nginx-0123456789ab", "dtr-rethinkdb-0123456789ab"]
    assert names("-f", "health=healthy", "-f", "name=dtr-nginx") == ["dtr-nginx-0123456789ab",
                                                                     "dtr-nginx-ba9876543210"]
    r = docker_cli("ps", "-q", "-f", "health=healthy", "-f", "name=dtr-nginx-0123")
    assert r.stdout.strip() == lab_engine.state.find_container("dtr-nginx-0123456789ab").id[:12]
    r = docker_cli("ps", "-a")
    assert "Up " in r.stdout and "(healthy)" in r.stdout and "Exited (0)" in r.stdout

    r = docker_cli("inspect", "-f", '{{ index .Config.Labels "com.docker.dtr.replica"}}',
                   "dtr-rethinkdb-0123456789ab")
    assert (r.returncode, r.stdout) == (0, "0123456789ab\n")
    r = docker_cli("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.Health.Status}} "
                   "{{.HostConfig.LogConfig.Type}} {{(index .Mounts 0).Name}}", "dtr-nginx-0123456789ab")
    assert r.stdout.strip() == "/dtr-nginx-0123456789ab running healthy json-file dtr-ca-0123456789ab"
    r = docker_cli("inspect", "nosuch")
    assert r.returncode == 1
    assert "No such object: nosuch" in r.stderr


def test_logs_follow_tail_and_timestamps(docker_cli, lab_engine):
    r = docker_cli("run", "-d", "--name", "talker", TEST_IMAGE, "begin", "--lines", "3", "--sleep", "0.6",
                   "--lines", "2")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert len(cid) == 64 and lab_engine.state.find_container("talker").id == cid
    t0 = time.monotonic()
    r = docker_cli("logs", "-f", "talker")  # ends when the container exits
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 0.3
    assert r.stdout == "begin\nline 0\nline 1\nline 2\nline 0\nline 1\n"
    r = docker_cli("logs", "--tail", "2", "-t", "talker")
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1].endswith("Z line 1") and lines[0][:2] == "20"
    assert docker_cli("ps", "-a", "--format", "{{.Status}}", "-f", "name=talker").stdout.startswith("Exited (0)")
    r = docker_cli("logs", "nosuch")
    assert r.returncode == 1 and "No such container: nosuch" in r.stderr


def test_rm_force_and_conflicts(docker_cli, lab_engine):
    r = docker_cli("run", "-d", "--name", "svc", SERVICE_IMAGE)  # no program: runs until stopped
    assert r.returncode == 0, r.stderr
    r = docker_cli("run", "-d", "--name", "svc", SERVICE_IMAGE)
    assert r.returncode == 125 and 'The container name "/svc" is already in use' in r.stderr
    r = docker_cli("rm", "svc")
    assert r.returncode == 1 and "container is running: stop the container before removing" in r.stderr
    r = docker_cli("rm", "-f", "svc")
    assert (r.returncode, r.stdout) == (0, "svc\n")
    assert lab_engine.state.find_container("svc") is None
    r = docker_cli("rm", "-f", "svc")
    assert r.returncode == 0 and "No such container: svc" in r.stderr


def test_rm_force_ends_a_foreground_run_with_137(docker_cli, lab_engine):
    proc = subprocess.Popen(["docker", "run", "--rm", "--name", "victim", TEST_IMAGE, "x", "--sleep", "30"],
                            env=docker_cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (c := lab_engine.state.find_container("victim")) is not None and c.running, 15)
        assert docker_cli("rm", "-f", "victim").returncode == 0
        assert proc.wait(10) == 137
    finally:
        proc.kill()
        proc.wait()


def test_volumes_and_networks(docker_cli, lab_engine):
    st = lab_engine.state
    replica_services(st, "0123456789ab")
    st.create_volume("dtr-registry-0123456789ab")
    st.create_network("dtr-ol", driver="overlay", attachable=True)
    r = docker_cli("volume", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert sorted(r.stdout.splitlines()) == ["dtr-ca-0123456789ab local", "dtr-registry-0123456789ab local"]
    r = docker_cli("volume", "rm", "dtr-ca-0123456789ab")
    assert r.returncode == 1 and "remove dtr-ca-0123456789ab: volume is in use - [" in r.stderr
    assert (docker_cli("volume", "rm", "dtr-registry-0123456789ab").stdout) == "dtr-registry-0123456789ab\n"
    r = docker_cli("volume", "rm", "dtr-registry-0123456789ab")
    assert r.returncode == 1 and "get dtr-registry-0123456789ab: no such volume" in r.stderr
    assert docker_cli("volume", "rm", "-f", "dtr-registry-0123456789ab").returncode == 0
    r = docker_cli("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert sorted(r.stdout.splitlines()) == ["bridge bridge local", "dtr-ol overlay swarm", "host host local",
                                             "none null local"]
    r = docker_cli("network", "inspect", "-f", "{{.Name}} {{.Attachable}}", "dtr-ol")
    assert r.stdout.strip() == "dtr-ol true"
    r = docker_cli("run", "--rm", "--net", "nosuchnet", TEST_IMAGE, "x")
    assert r.returncode == 125 and "network nosuchnet not found" in r.stderr
    assert [c.name for c in st.containers.values() if c.image == TEST_IMAGE] == []  # AutoRemove on failed start
