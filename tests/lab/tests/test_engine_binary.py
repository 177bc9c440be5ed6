"""Binary streams and `--log-driver none` through the emulated engine, as `backup`/`restore` use them: the real
docker CLI and the docker SDK pass arbitrary bytes through the hijacked attach, and `docker logs` refuses for
the `none` driver the way the daemon does (moby's ErrReadLogsNotSupported, HTTP 501)."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest
from conftest import TEST_IMAGE
from docker.errors import APIError
from docker.types import LogConfig
from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter

pytestmark = pytest.mark.timeout(60)

# Every byte value, the line endings a line-based copy would mangle, NULs, then random bytes.
PAYLOAD = bytes(range(256)) + b"a\r\nb\rc\n\n\r\r\x00\x00" + os.urandom(300_000) + b"no newline at the end\r"
NOT_READABLE = "configured logging driver does not support reading"


def docker_bytes(cli, *args, data: bytes | None = None, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], input=data, capture_output=True, env=cli.env, timeout=timeout)


def test_cli_passes_arbitrary_bytes_both_ways_with_log_driver_none(docker_cli, lab_engine):
    r = docker_bytes(docker_cli, "run", "-i", "--rm", "--log-driver", "none", TEST_IMAGE, "--cat", data=PAYLOAD)
    assert r.returncode == 0, r.stderr
    assert r.stdout == PAYLOAD
    assert lab_engine.state.containers == {}
    r = docker_bytes(docker_cli, "run", "-i", "--rm", TEST_IMAGE, "--cat", data=PAYLOAD)  # json-file: the same
    assert (r.returncode, r.stdout) == (0, PAYLOAD)


def test_cli_logs_refuses_for_the_none_driver(docker_cli, lab_engine):
    r = docker_cli("run", "-d", "--name", "quiet", "--log-driver", "none", TEST_IMAGE, "hello", "--sleep", "30")
    assert r.returncode == 0, r.stderr
    r = docker_cli("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "quiet")
    assert r.stdout.strip() == "none"
    r = docker_cli("logs", "quiet")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == f"Error response from daemon: {NOT_READABLE}"
    docker_cli("run", "-d", "--name", "chatty", TEST_IMAGE, "hello", "--sleep", "30")
    r = docker_cli("logs", "chatty")
    assert (r.returncode, r.stdout) == (0, "hello\n")


def test_cli_unknown_log_driver_is_refused_at_create(docker_cli, lab_engine):
    r = docker_cli("run", "--rm", "--log-driver", "bogus", TEST_IMAGE, "hello")
    assert r.returncode == 125
    assert "logger: no log driver named 'bogus' is registered" in r.stderr
    assert lab_engine.state.containers == {}


def test_sdk_attach_socket_passes_bytes_with_log_driver_none(client, lab_engine):
    client.images.pull("mirantis/dtr", tag="2.9.16")
    api = client.api
    cid = api.create_container(TEST_IMAGE, ["--cat"], stdin_open=True,
                               host_config=api.create_host_config(log_config=LogConfig(type="none")))["Id"]
    sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    try:
        api.start(cid)
        raw = sock._sock
        raw.sendall(PAYLOAD)
        raw.shutdown(socket.SHUT_WR)
        out, err = consume_socket_output((demux_adaptor(*f) for f in frames_iter(sock, tty=False)), demux=True)
    finally:
        sock.close()
    assert api.wait(cid)["StatusCode"] == 0
    assert out == PAYLOAD and err is None
    with pytest.raises(APIError) as e:
        api.logs(cid)
    assert e.value.status_code == 501 and e.value.explanation == NOT_READABLE
    api.remove_container(cid)


def test_sdk_run_returns_binary_stdout_or_none_for_the_none_driver(client, lab_engine):
    lab_engine.state.pull(TEST_IMAGE)
    out = client.containers.run(TEST_IMAGE, ["x", "--lines", "3"], remove=True)
    assert out == b"x\nline 0\nline 1\nline 2\n"
    # what the SDK does with a driver it cannot read: no output at all (engine-api.md §14)
    assert client.containers.run(TEST_IMAGE, ["x"], remove=True, log_config=LogConfig(type="none")) is None
