"""Helpers of the system tests (test_system_*.py): one real lab brought up through the real `msr-lab` CLI.

The lab is named ``msrsys`` on 10.79.0.0/24 so it runs beside the default lab and other test labs.
A file lock serialises concurrent runs of these tests (they would tear down each other's lab).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from logrus import fatal_lines

NAME = os.environ.get("MSR_SYS_LAB_NAME", "msrsys")            # another name and subnet: beside a running one
SUBNET = os.environ.get("MSR_SYS_LAB_SUBNET", "10.79.0.0/24")
STATE = Path(f"/var/lib/msr-lab-{NAME}")
BIN = Path(sys.executable).parent
MSR_LAB = str(BIN / "msr-lab")
IMAGE = "mirantis/dtr:2.9.16"
JOIN_SECONDS = 0.5           # the lab's join duration (keeps the suite short)
# Small timings keep the suite short: report period, start period, MKE heartbeat delay (seconds)
HEALTH_PERIOD, STARTING_SECONDS, HEARTBEAT_SECONDS = 0.3, 0.4, 1.0
TIMING_ARGS = ("--health-period", str(HEALTH_PERIOD), "--starting-seconds", str(STARTING_SECONDS),
               "--heartbeat-seconds", str(HEARTBEAT_SECONDS))
STALE = "Replica reported health too long ago: "
LOCK = f"/run/{NAME}-tests.lock"


def lab_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MSR_LAB_DIR", "DOCKER_HOST", "DOCKER_CONTEXT")}
    env.update(MSR_LAB_NAME=NAME, **extra)
    return env


def cli(*args, check=True, timeout=60, env=None) -> subprocess.CompletedProcess:
    r = subprocess.run([MSR_LAB, *args], capture_output=True, text=True, timeout=timeout,
                       env=env or lab_env(), stdin=subprocess.DEVNULL)
    if check and r.returncode:
        raise AssertionError(f"msr-lab {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


@contextmanager
def exclusive(lock=LOCK):
    """Serialize test runs that build labs under the same name: they would tear down each other's nodes."""
    with open(lock, "w") as f:
        deadline = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run holds {lock}")
                time.sleep(0.5)
        yield


class SysLab:
    """A running lab, driven from outside: CLI, ssh, docker CLI, HTTPS."""

    def __init__(self):
        self.desc = json.loads((STATE / "lab.json").read_text())
        self.config = self.desc["config"]
        self.nodes = self.desc["nodes"]
        self.password = self.config["mke_password"]
        self.ca = str(STATE / "pki" / "ca.pem")           # MKE's CA: it verifies MKE, never a replica
        self.ssh_config = str(STATE / "ssh" / "config")
        self.tls = ssl.create_default_context(cafile=self.ca)
        self._msr_ca: str | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{NAME}-client-"))

    # ---- nodes -----------------------------------------------------------------------------------
    def addr(self, node: str) -> str:
        return self.nodes[node]["addr"]

    def names(self, role: str) -> list[str]:
        return [n for n, i in self.nodes.items() if i["role"] == role]

    def ssh(self, node: str, command: str, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", "-F", self.ssh_config, "-o", "BatchMode=yes", node, command],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def sock(self, node: str) -> str:
        return str(STATE / "nodes" / node / "run" / "docker.sock")

    def docker_env(self, **extra) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.tmp),
               "DOCKER_CONFIG": str(self.tmp / ".docker")}
        env.update(extra)
        return env

    def docker(self, node: str, *args, env=None, timeout=60) -> subprocess.CompletedProcess:
        """The real docker CLI against a node's engine through its socket file on the host."""
        e = self.docker_env(DOCKER_HOST=f"unix://{self.sock(node)}", **(env or {}))
        return subprocess.run(["docker", *args], capture_output=True, text=True, env=e, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    # ---- bootstrapper ----------------------------------------------------------------------------
    def bootstrap(self, command: str, *flags, password=None, ca=True, timeout=60, image=IMAGE):
        """`docker run --rm -e UCP_PASSWORD mirantis/dtr:2.9.16 <command> ...` on manager1.
        password=False: UCP_PASSWORD not set at all. Returns (CompletedProcess, seconds)."""
        base = [f"--ucp-url={self.config['mke_url']}", "--ucp-username=admin"]
        if ca:
            base.append(f"--ucp-ca={Path(self.ca).read_text()}")
        env = {} if password is False else {"UCP_PASSWORD": self.password if password is None else password}
        t = time.monotonic()
        r = self.docker("manager1", "run", "--rm", "-e", "UCP_PASSWORD", image, command, *base, *flags,
                        env=env, timeout=timeout)
        return r, time.monotonic() - t

    def join(self, node: str, existing: str | None = None, *flags, **kw):
        existing = existing or self.healthy_replica()
        return self.bootstrap("join", f"--ucp-node={node}", f"--existing-replica-id={existing}", *flags, **kw)

    def remove(self, rid: str, existing: str | None = None):
        existing = existing or self.healthy_replica(exclude=rid)
        return self.bootstrap("remove", f"--replica-ids={rid}", f"--existing-replica-id={existing}")

    # ---- state -----------------------------------------------------------------------------------
    def status(self) -> dict:
        return json.loads(cli("status", "--json").stdout)

    def replicas(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.status()["cluster"]["replicas"]}

    def membership(self) -> dict[str, tuple]:
        """What a refused command must leave as it was: each replica's node, state, version and ports."""
        return {rid: (r["node"], r["state"], r["version"], r["http_port"], r["https_port"])
                for rid, r in self.replicas().items()}

    def replica_on(self, node: str) -> str | None:
        return next((rid for rid, r in self.replicas().items() if r["node"] == node), None)

    def cluster_status(self, node: str = "worker1") -> dict:
        status, body, _ = self.msr(node, "/api/v0/meta/cluster_status", auth="admin")
        assert status == 200, body
        return body

    def wait_reported(self, predicate, node="worker1", timeout=10.0, what="reported health"):
        """Poll cluster_status (through `node`) until predicate(replica_health) holds; returns replica_health."""
        def check():
            health = self.cluster_status(node)["replica_health"]
            return health if predicate(health) else None
        return wait_for(check, timeout, 0.1, what)[0]

    def wait_settled(self, timeout=10.0):
        """Every replica live OK and reported OK (after a start, a join or a heal)."""
        wait_for(lambda: all(r["health"] == "OK" and r["reported"] == "OK" for r in self.replicas().values()),
                 timeout, 0.1, "every replica live and reported OK")

    def healthy_replica(self, exclude: str | None = None) -> str:
        ok = sorted((r["node"], rid) for rid, r in self.replicas().items() if r["health"] == "OK" and rid != exclude)
        assert ok, f"no healthy replica: {self.replicas()}"
        return ok[0][1]

    def free_worker(self) -> str:
        used = {r["node"] for r in self.replicas().values()}
        free = [w for w in self.names("worker") if w not in used]
        assert free, "no worker without a replica left"
        return free[-1]

    def fault(self, kind: str, *args) -> dict:
        return json.loads(cli("fault", kind, *map(str, args)).stdout)

    # ---- HTTP ------------------------------------------------------------------------------------
    def msr_ca(self, refresh=False) -> str:
        """The CA of the current MSR cluster (what the replicas' certificates chain to), from the lab."""
        if refresh or self._msr_ca is None:
            self._msr_ca = self.status()["cluster"]["msr_ca"] or ""
        return self._msr_ca

    def msr_tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.msr_ca()) if self.msr_ca() else ssl.create_default_context()

    def tls_for(self, url: str) -> ssl.SSLContext:
        """MKE's CA for the managers, the MSR cluster's CA for every other node (replicas, the LB)."""
        host = urllib.parse.urlsplit(url).hostname
        managers = {self.addr(m) for m in self.names("manager")} | set(self.names("manager"))
        return self.tls if host in managers else self.msr_tls()

    def request(self, url: str, method="GET", body=None, auth=None, token=None, timeout=5, tls=None,
                content_type=None):
        """(status, parsed JSON or text, headers). auth: 'admin' for basic auth with the MKE password, or a
        (user, secret) pair for basic auth with another secret (a token).
        tls: the context to verify with; by default the CA of whatever the URL names (tls_for).
        body: JSON-encoded unless it is bytes, which go as they are (with content_type)."""
        headers = {"Host": "msr.lab"} if "/_ping" in url else {}
        if auth == "admin":
            auth = ("admin", self.password)
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if isinstance(body, bytes):
            data = body
            headers["Content-Type"] = content_type or "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        ctx = (self.tls_for(url) if url.startswith("https") else None) if tls is None else tls
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx if url.startswith("https") else None) as r:
                status, raw, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), e.headers
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text), hdrs
        except ValueError:
            return status, text, hdrs

    def mke(self, path: str, **kw):
        return self.request(f"{self.config['mke_url']}{path}", **kw)

    def mke_token(self) -> str:
        status, body, _ = self.mke("/auth/login", method="POST", body={"username": "admin", "password": self.password})
        assert status == 200, body
        return body["auth_token"]

    def msr(self, node: str, path: str, https=True, **kw):
        scheme = "https" if https else "http"
        return self.request(f"{scheme}://{self.addr(node)}{path}", **kw)

    def ping_ok(self, node: str, timeout=2) -> bool:
        try:
            return self.msr(node, "/_ping", timeout=timeout)[0] == 200
        except OSError:
            return False

    def lb_pool(self) -> list[dict]:
        return self.status()["lb"]["lb1"]


def replica_id_from(output: str) -> str:
    m = re.search(r"Replica ID is set to: ([0-9a-f]{12})", output)
    assert m, output
    return m.group(1)


def fata(r: subprocess.CompletedProcess) -> str:
    """The fatal message of a refused bootstrapper run (asserting exit code 1 and exactly one fatal line)."""
    lines = fatal_lines(r.stderr)
    assert r.returncode == 1 and len(lines) == 1, f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    return lines[0]


def wait_for(predicate, timeout=10.0, interval=0.2, what="condition"):
    """Poll until predicate() is truthy; returns (value, seconds waited)."""
    t = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - t
        if time.monotonic() - t > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def lab_fixture(*up_args):
    """A module-scoped fixture: `msr-lab up` (after removing what a crashed run left) and always `down`."""
    @pytest.fixture(scope="module")
    def lab():
        if os.geteuid() != 0:
            pytest.skip("needs root (namespaces)")
        with exclusive():
            cli("down", check=False)
            sys_lab = None
            try:
                cli("up", "--subnet", SUBNET, "--join-seconds", str(JOIN_SECONDS), *TIMING_ARGS, *up_args)
                sys_lab = SysLab()
                yield sys_lab
            finally:
                if sys_lab is not None:
                    shutil.rmtree(sys_lab.tmp, ignore_errors=True)
                r = cli("down", check=False)
                assert r.returncode == 0, r.stderr
    return lab
