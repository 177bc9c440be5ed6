"""The emulated Docker Engine API against the docker SDK for Python 7.2.0 (engine-api.md §11–§15)."""
from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from conftest import SERVICE_IMAGE, TEST_IMAGE
from docker.errors import APIError, ContainerError, ImageNotFound, NotFound

pytestmark = pytest.mark.timeout(60)


def test_ping_version_info(client):
    assert client.ping() is True
    assert client.api.api_version == "1.50"
    assert client.version()["ApiVersion"] == "1.50"
    info = client.info()
    assert info["Name"] == "node1" and info["Swarm"]["LocalNodeState"] == "active"


def test_images_pull_and_get(client):
    with pytest.raises(ImageNotFound):
        client.images.get(TEST_IMAGE)
    img = client.images.pull("mirantis/dtr", tag="2.9.16")
    assert img.tags == [TEST_IMAGE]
    assert client.images.get("docker.io/mirantis/dtr:2.9.16").id == img.id
    assert client.images.get(img.id.split(":")[1][:12]).id == img.id
    with pytest.raises(ImageNotFound):
        client.images.pull("nosuch/image", tag="1.0")
    with pytest.raises(ImageNotFound):  # in-band error: the SDK notices through the follow-up inspect
        client.images.pull("mirantis/dtr", tag="9.9.9")


def test_run_foreground_returns_stdout_or_raises(client, lab_engine):
    out = client.containers.run(TEST_IMAGE, ["hi", "there", "--env", "X"], environment={"X": "1"}, remove=True)
    assert out == b"hi there\n"
    with pytest.raises(ContainerError) as err:
        client.containers.run(TEST_IMAGE, ["bad", "--env", "Y", "--exit", "3"], remove=True)
    assert err.value.exit_status == 3
    assert err.value.stderr == b"Y=unset\n"
    assert lab_engine.state.containers == {}


def test_run_detached_logs_wait_remove(client, lab_engine):
    c = client.containers.run(TEST_IMAGE, ["go", "--lines", "2", "--sleep", "0.3", "--env", "UCP_PASSWORD"],
                              environment={"UCP_PASSWORD": "x"}, detach=True, name="dtr-join-test")
    assert c.name == "dtr-join-test" and c.status == "created"  # the SDK reads it before start
    chunks = b"".join(c.logs(stream=True, follow=True))
    assert chunks == b"go\nline 0\nline 1\nUCP_PASSWORD=set\n"
    assert c.wait() == {"StatusCode": 0}
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 0
    assert c.logs(stdout=False, stderr=True) == b"UCP_PASSWORD=set\n"
    c.remove(force=True)
    with pytest.raises(NotFound):
        client.containers.get("dtr-join-test")


def test_list_get_labels_kill_stop(client, lab_engine):
    st = lab_engine.state
    for rid in ("0123456789ab", "ba9876543210"):
        st.run_service(f"dtr-rethinkdb-{rid}", SERVICE_IMAGE, {"com.docker.dtr.replica": rid})
        st.run_service(f"dtr-nginx-{rid}", SERVICE_IMAGE, {"com.docker.dtr.replica": rid})
    found = client.containers.list(all=True, filters={"name": "dtr-rethinkdb-", "label": "com.docker.dtr.replica"})
    assert sorted(c.name for c in found) == ["dtr-rethinkdb-0123456789ab", "dtr-rethinkdb-ba9876543210"]
    found = client.containers.list(filters={"label": ["com.docker.dtr.replica=0123456789ab", "nosuch"]})
    assert found == []
    c = client.containers.get("dtr-rethinkdb-0123456789ab")
    assert c.labels == {"com.docker.dtr.replica": "0123456789ab"}
    assert (c.status, c.health) == ("running", "healthy")
    c.kill()
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    n = client.containers.get("dtr-nginx-0123456789ab")
    n.stop(timeout=1)
    n.reload()
    assert n.status == "exited" and n.attrs["State"]["ExitCode"] == 0
    with pytest.raises(APIError) as err:
        n.kill()
    assert err.value.status_code == 409
    running = client.containers.list(filters={"health": "healthy"})
    assert sorted(c.name for c in running) == ["dtr-nginx-ba9876543210", "dtr-rethinkdb-ba9876543210"]
    with pytest.raises(NotFound):
        client.containers.get("nosuch")


def test_wire_details(lab_engine):
    """Unprefixed and odd version prefixes, HEAD /_ping headers, unknown routes, error Content-Type."""
    def request(raw: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX)
        s.connect(lab_engine.path)
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return data

    head = request(b"HEAD /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Api-Version: 1.50\r\n" in head
    assert head.endswith(b"\r\n\r\n")  # no body on HEAD
    for path in (b"/version", b"/v1.41/version", b"/v1.24/version"):
        resp = request(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert json.loads(resp.split(b"\r\n\r\n", 1)[1])["ApiVersion"] == "1.50"
    resp = request(b"GET /v1.50/nosuch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 404 ") and b"\r\nContent-Type: application/json\r\n" in resp
    assert resp.endswith(b'{"message": "page not found"}')
    resp = request(b"GET /v1.50/plugins/x/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 404 ")
    # keep-alive: two requests on one connection, answered in order
    resp = request(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\nGET /v1.50/_ping HTTP/1.1\r\nHost: x\r\n"
                   b"Connection: close\r\n\r\n")
    assert resp.count(b"HTTP/1.1 200 OK") == 2 and resp.endswith(b"OK")


def test_wait_completes_on_forced_removal(client, lab_engine):
    c = client.containers.run(SERVICE_IMAGE, detach=True, name="forever")
    assert c.status == "created"
    c.reload()
    assert c.status == "running"
    result = {}
    t = threading.Thread(target=lambda: result.update(client.api.wait(c.id, condition="removed")))
    t.start()
    try:
        lab_engine.state.wait_container(lab_engine.state.find_container("forever"), "not-running", timeout=0.2)
        c.remove(force=True)
    finally:
        t.join(10)
    assert result == {"StatusCode": 137}


def test_concurrent_clients(lab_engine):
    """Many connections at once (the SDK opens one per distinct URL): parallel runs stay separate."""
    lab_engine.state.pull(TEST_IMAGE)

    def one(i):
        c = docker.DockerClient(base_url=lab_engine.url, version="auto", timeout=20)
        try:
            return c.containers.run(TEST_IMAGE, [f"run{i}", "--lines", "20", "--sleep", "0.1"], remove=True)
        finally:
            c.close()
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(one, range(16)))
    for i, out in enumerate(outs):
        assert out == (f"run{i}\n" + "".join(f"line {n}\n" for n in range(20))).encode()
    assert lab_engine.state.containers == {}


def test_serve_app_keep_alive(lab_engine):
    """httpserver.serve_app for the plain apps (MKE, MSR): keep-alive, bodies, errors as 500."""
    from msr_lab.common.httpbase import json_response
    from msr_lab.common.httpserver import close_server, serve_app

    async def app(req):
        if req.path == "/boom":
            raise RuntimeError("boom")
        return json_response(200, {"method": req.method, "path": req.path, "body": req.body.decode(),
                                   "q": req.arg("q")})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = asyncio.run_coroutine_threadsafe(serve_app(app, sock), lab_engine.loop).result(5)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/x?q=1", body=b"hello")
        first = conn.getresponse()
        assert json.loads(first.read()) == {"method": "POST", "path": "/x", "body": "hello", "q": "1"}
        conn.request("GET", "/boom")  # same connection
        second = conn.getresponse()
        assert second.status == 500 and "boom" in json.loads(second.read())["message"]
        conn.close()
    finally:
        asyncio.run_coroutine_threadsafe(close_server(server), lab_engine.loop).result(5)
