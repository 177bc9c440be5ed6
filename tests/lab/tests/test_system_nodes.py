"""System tests, part 1: a real lab (`msr-lab up --workers 5 --replicas 1`) seen from outside.

Root check, nodes (hostname, /etc, PID namespace, docker.sock), inventory + `ansible -m ping`, the engine through
the real docker CLI (ssh into the node, socket file, ssh:// transport) and the docker SDK (paramiko), MKE over HTTPS.
"""
from __future__ import annotations

import json
import os
import secrets
import ssl
import shutil
import subprocess
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from msr_lab.common.pki import certificate_hosts
from msr_lab.common.pkicheck import check_bundle
from system_lab import BIN, MSR_LAB, STATE, cli, lab_env, lab_fixture

pytestmark = pytest.mark.timeout(120)

lab = lab_fixture("--workers", "5", "--replicas", "1")


def _reachable_by_others(path: Path) -> bool:
    """Every directory above `path` lets other users through (not so for a checkout under /root or mktemp -d)."""
    return all(p.stat().st_mode & 0o001 for p in path.resolve().parents)


def test_root_required():
    """As a non-root user msr-lab prints one clear line and exits 1 (before touching anything).

    The user must be able to reach the program: a checkout under a directory others cannot enter is
    unreachable for them whatever msr-lab does, so the check runs a copy of the package from a directory
    they can read, and the installed command itself when the checkout allows it.
    """
    import msr_lab
    public = Path(tempfile.mkdtemp(prefix="msrlab-public-", dir="/tmp"))   # pytest's tmp_path is 0700
    try:
        shutil.copytree(Path(msr_lab.__file__).parent, public / "msr_lab",
                        ignore=shutil.ignore_patterns("__pycache__"))
        for p in [public, *public.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        commands = [["/usr/bin/python3", "-m", "msr_lab.cli"]]
        if _reachable_by_others(Path(MSR_LAB)):
            commands.append([MSR_LAB])
        _check_refused_as_nobody(commands, public)
    finally:
        shutil.rmtree(public, ignore_errors=True)


def _check_refused_as_nobody(commands, public):
    for command in commands:
        for args in (["status"], ["up", "--subnet", "10.79.0.0/24"], ["down"]):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command, *args],
                               capture_output=True, text=True, env=lab_env(PYTHONPATH=str(public)), timeout=30,
                               cwd="/")
            assert r.returncode == 1, r
            assert r.stdout == ""
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and "must run as root" in lines[0], r.stderr


def test_nodes_hostname_files_pid_namespace(lab):
    names = list(lab.nodes)
    assert len(lab.names("manager")) == 3 and len(lab.names("worker")) == 5 and lab.names("lb") == ["lb1"]
    probe = f"/etc/msrsys-probe-{secrets.token_hex(4)}"
    script = ("hostname; readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; "
              "test -S /var/run/docker.sock && echo sock || echo nosock; echo $$")

    def look(name):
        return lab.ssh(name, script)
    with ThreadPoolExecutor(len(names)) as pool:
        seen = dict(zip(names, pool.map(look, names)))
    host_pidns = os.readlink("/proc/self/ns/pid")
    pidns, mntns = set(), set()
    for name, r in seen.items():
        assert r.returncode == 0, (name, r.stderr)
        hostname, pid_ns, mnt_ns, sock, shell_pid = r.stdout.split()
        assert hostname == name
        assert pid_ns != host_pidns
        pidns.add(pid_ns)
        mntns.add(mnt_ns)
        # /var/run/docker.sock inside every MKE node (the LB node is not part of MKE)
        assert sock == ("nosock" if lab.nodes[name]["role"] == "lb" else "sock"), name
        assert int(shell_pid) < 1000          # a small PID: the node has its own PID numbering
    assert len(pidns) == len(names) and len(mntns) == len(names)

    # a file written in one node's /etc is absent on another node and on the host
    assert lab.ssh("worker3", f"echo hello > {probe} && cat {probe}").stdout == "hello\n"
    assert lab.ssh("worker4", f"test -e {probe}").returncode == 1
    assert lab.ssh("manager1", f"test -e {probe}").returncode == 1
    assert not Path(probe).exists()
    # PID 1 of a node is its own init, not the host's
    r = lab.ssh("worker3", "cat /proc/1/comm; ps -e -o pid= | wc -l")
    assert r.returncode == 0 and "systemd" not in r.stdout and int(r.stdout.split()[-1]) < 30, r.stdout


def test_inventory_groups_and_vars(lab, tmp_path):
    out = tmp_path / "inventory.yml"
    cli("inventory", "-o", str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    inv = yaml.safe_load(out.read_text())["all"]
    groups = inv["children"]
    assert set(groups) == {"mke_managers", "mke_workers", "msr", "msr_lb"}
    assert list(groups["mke_managers"]["hosts"]) == ["manager1", "manager2", "manager3"]
    assert list(groups["mke_workers"]["hosts"]) == [f"worker{i}" for i in range(1, 6)]
    assert list(groups["msr"]["hosts"]) == ["worker1"]
    assert list(groups["msr_lb"]["hosts"]) == ["lb1"]
    # --msr: the desired set the playbooks read; a name that is no worker of the lab is refused
    cli("inventory", "-o", str(out), "--msr", "worker2,worker4")
    desired = yaml.safe_load(out.read_text())["all"]["children"]["msr"]["hosts"]
    assert desired == {"worker2": {"ansible_host": lab.addr("worker2")}, "worker4": {"ansible_host": lab.addr("worker4")}}
    r = cli("inventory", "--msr", "worker1,manager1", check=False)
    assert r.returncode == 2 and "not a worker of this lab: manager1" in r.stderr, r
    assert groups["msr_lb"]["hosts"]["lb1"]["msr_lb_provider"] == "haproxy"
    for group in groups.values():
        for host, hv in group["hosts"].items():
            assert hv["ansible_host"] == lab.addr(host)
    v = inv["vars"]
    assert v["msr_mke_url"] == "https://10.79.0.11" == lab.config["mke_url"]
    assert v["msr_mke_username"] == "admin"
    assert v["msr_mke_password"] == lab.password
    assert v["msr_mke_ca"] == Path(lab.ca).read_text()
    # MSR's own CA (of the cluster `up` seeded, with the LB as its external URL), never MKE's
    assert v["msr_ca"] == lab.msr_ca() and v["msr_ca"] != v["msr_mke_ca"]
    assert v["msr_external_url"] == f"https://{lab.addr('lb1')}"
    # the organisation's CA, certificate and key for an install from automation
    hosts = lab.names("worker") + lab.names("lb")
    assert certificate_hosts(v["msr_dtr_cert"]) == (set(hosts), {lab.addr(h) for h in hosts})
    check_bundle(v["msr_dtr_ca"], v["msr_dtr_cert"], v["msr_dtr_key"])
    # the inventory's credentials and CA really work against MKE
    status, body, _ = lab.mke("/auth/login", method="POST",
                              body={"username": v["msr_mke_username"], "password": v["msr_mke_password"]})
    assert status == 200 and body["auth_token"]


def test_ansible_ping_every_node(lab, tmp_path):
    inv = tmp_path / "inventory.yml"
    cli("inventory", "-o", str(inv))
    cfg = tmp_path / "ansible.cfg"            # no project or user ansible.cfg
    cfg.write_text("[defaults]\n")
    env = {"PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           # the inventory pins the lab's known_hosts with StrictHostKeyChecking=yes: keep checking on
           "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_PIPELINING": "True", "ANSIBLE_FORKS": "10",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_CONFIG": str(cfg)}
    r = subprocess.run([str(BIN / "ansible"), "-i", str(inv), "all", "-m", "ping", "-o"], capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = {line.split()[0] for line in r.stdout.splitlines() if "SUCCESS" in line and '"pong"' in line}
    assert ok == set(lab.nodes), r.stdout


def test_docker_cli_inside_node_over_ssh(lab):
    r = lab.ssh("manager1", "docker ps")
    assert r.returncode == 0 and r.stdout.startswith("CONTAINER ID"), r.stderr
    rid = lab.replica_on("worker1")
    r = lab.ssh("worker1", "docker ps --format '{{.Names}}'")
    assert r.returncode == 0 and f"dtr-rethinkdb-{rid}" in r.stdout.split(), r.stdout + r.stderr


def test_docker_cli_from_host_via_socket_file(lab):
    rid = lab.replica_on("worker1")
    r = lab.docker("worker1", "ps", "--format", "{{.Names}} {{.Status}}")
    assert r.returncode == 0, r.stderr
    names = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert names[f"dtr-nginx-{rid}"].startswith("Up")
    assert lab.docker("worker1", "volume", "ls", "-q").stdout.split().count(f"dtr-registry-{rid}") == 1
    # each node has its own engine: worker2 has no replica containers
    assert lab.docker("worker2", "ps", "-aq").stdout == ""


def test_docker_cli_ssh_transport(lab):
    rid = lab.replica_on("worker1")
    env = lab.docker_env(PATH=f"{STATE / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    r = subprocess.run(["docker", "-H", f"ssh://root@{lab.addr('worker1')}", "ps", "--format", "{{.Names}}"],
                       capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert f"dtr-api-{rid}" in r.stdout.split()


SDK_SCRIPT = textwrap.dedent("""\
    import json, sys, docker
    try:
        c = docker.DockerClient(base_url=sys.argv[1], use_ssh_client=False, timeout=20)
        print(json.dumps({"names": [x.name for x in c.containers.list()], "api": c.version()["ApiVersion"],
                          "name": c.info()["Name"]}))
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
""")


def _sdk(lab, home, node):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    r = subprocess.run([str(BIN / "python"), "-c", SDK_SCRIPT, f"ssh://root@{lab.addr(node)}"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_docker_sdk_over_ssh_paramiko(lab, tmp_path):
    home = tmp_path / "home"
    cli("ssh-config", "--home", str(home))
    assert (home / ".ssh" / "known_hosts").read_text().count("\n") == len(lab.nodes)
    rid = lab.replica_on("worker1")
    out = _sdk(lab, home, "worker1")
    assert "error" not in out, out
    assert f"dtr-rethinkdb-{rid}" in out["names"] and out["name"] == "worker1"
    # with an empty known_hosts the node's host key is unknown: paramiko (RejectPolicy) refuses it
    (home / ".ssh" / "known_hosts").write_text("")
    out = _sdk(lab, home, "worker1")
    assert "error" in out and "not found in known_hosts" in out["error"], out


def test_mke_over_https(lab):
    for m in lab.names("manager"):
        status, body, _ = lab.request(f"https://{lab.addr(m)}/_ping")
        assert (status, body) == (200, "OK")
    # real TLS: without the lab CA the certificate is not trusted
    with pytest.raises(Exception) as exc:
        lab.request(f"{lab.config['mke_url']}/_ping", tls=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value)
    status, body, _ = lab.mke("/ca")
    assert status == 200 and body == Path(lab.ca).read_text()
    # the MKE CA verifies MKE only: a replica's certificate comes from MSR's own CA
    with pytest.raises(Exception) as exc:
        lab.request(f"https://{lab.addr('worker1')}/_ping", tls=lab.tls)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value)
    status, body, _ = lab.mke("/auth/login", method="POST", body={"username": "admin", "password": "wrong"})
    assert status == 401
    assert lab.mke("/nodes")[0] == 401
    token = lab.mke_token()
    status, nodes, _ = lab.mke("/nodes", token=token)
    assert status == 200
    roles = sorted((n["Description"]["Hostname"], n["Spec"]["Role"], n["Status"]["State"]) for n in nodes)
    assert roles == sorted([(m, "manager", "ready") for m in lab.names("manager")]
                           + [(w, "worker", "ready") for w in lab.names("worker")])
    status, containers, _ = lab.mke("/containers/json?all=1", token=token)
    assert status == 200
    rid = lab.replica_on("worker1")
    names = {n for c in containers for n in c["Names"]}
    assert f"/worker1/dtr-nginx-{rid}" in names and all(n.startswith("/worker1/") for n in names), names
