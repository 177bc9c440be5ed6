"""`install` as the real one (msr2.md §1.4, §1.7, §2.5): local storage by default, NFS, a storage volume,
the external URL, refusals before anything is made, and the documented uninstall after which `install`
works again."""
from __future__ import annotations

import asyncio
import base64
import json
import ssl

import pytest
from install_env import ADDRS, background_loop, pki_env, tls_get
from logrus import fatal_lines, records

from msr_lab.common.httpbase import Request

HA_WARNING = "You are using DTR with the filesystem driver in an HA setup"
A1, A2, A3 = "0000000000a1", "0000000000a2", "0000000000a3"


@pytest.fixture(scope="module")
def loop():
    with background_loop() as lp:
        yield lp


@pytest.fixture
def penv(loop, tmp_path):
    with pki_env(loop, tmp_path) as env:
        yield env


def api(env, rid, method, path, body=None):
    """An authenticated call to a replica's API: (status, JSON)."""
    auth = {"authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
    raw = json.dumps(body).encode() if body is not None else b""
    resp = asyncio.run(env.lab.cluster.app_for(rid)(Request(method, path, auth, raw, "127.0.0.1:5555", True)))
    return resp.status, json.loads(resp.body)


def mounts(env, node, rid):
    c = env.lab.nodes[node].engine.find_container(f"dtr-registry-{rid}")
    return {m["Destination"]: (m["Type"], m.get("Name") or m["Source"]) for m in c.mounts}


def warnings(err):
    return [m for lvl, m in records(err) if lvl == "warning"]


# ---------------------------------------------------------------- storage

def test_fresh_install_uses_local_filesystem_whatever_up_storage_says(penv):
    assert penv.lab.config["storage"] == "s3"       # `up --storage s3`: only for clusters `up` seeds
    code, _, err = penv.install()
    assert code == 0, err
    cluster = penv.lab.cluster
    assert cluster.storage == {"filesystem": {"rootdirectory": "/storage"}} and cluster.status()["storage"] == "filesystem"
    assert api(penv, A1, "GET", "/api/v0/admin/settings/registry/simple") == (200, {"storage": cluster.storage})
    assert f"dtr-registry-{A1}" in penv.lab.nodes["worker1"].engine.volumes
    assert mounts(penv, "worker1", A1)["/storage"] == ("volume", f"dtr-registry-{A1}")
    code, _, err = penv.join("worker2", A2)
    assert code == 0, err
    assert any(HA_WARNING in w for w in warnings(err))
    assert mounts(penv, "worker2", A2)["/storage"] == ("volume", f"dtr-registry-{A2}")


def test_nfs_on_every_replica_and_later_joins(penv):
    url = "nfs://10.1.2.3/exports/msr"
    code, _, err = penv.install("--nfs-storage-url", url)
    assert code == 0, err
    code, _, err = penv.join("worker2", A2)            # no flag: the join follows the cluster's NFS
    assert code == 0, err
    assert not any(HA_WARNING in w for w in warnings(err))
    for node, rid in (("worker1", A1), ("worker2", A2)):
        vols = set(penv.lab.nodes[node].engine.volumes)
        assert f"dtr-nfs-registry-{rid}" in vols and f"dtr-registry-{rid}" not in vols
        assert mounts(penv, node, rid)["/storage"] == ("volume", f"dtr-nfs-registry-{rid}")
        status, settings = api(penv, rid, "GET", "/api/v0/meta/settings")
        assert status == 200 and settings["nfsHost"] == url
    assert penv.lab.cluster.status()["storage"] == "nfs"


@pytest.mark.parametrize("volume,kind", [("msr-images", "volume"), ("/srv/msr-images", "bind")])
def test_storage_volume_on_every_replica_and_later_joins(penv, volume, kind):
    code, _, err = penv.install("--dtr-storage-volume", volume)
    assert code == 0, err
    code, _, err = penv.join("worker2", A2)
    assert code == 0, err
    for node, rid in (("worker1", A1), ("worker2", A2)):
        assert mounts(penv, node, rid)["/storage"] == (kind, volume)
        vols = set(penv.lab.nodes[node].engine.volumes)
        assert f"dtr-registry-{rid}" not in vols and f"dtr-nfs-registry-{rid}" not in vols
        assert (volume in vols) is (kind == "volume")
    code, _, err = penv.run(["remove", "--replica-ids", A2, "--existing-replica-id", A1] + penv.ucp())
    assert code == 0, err
    assert (volume in penv.lab.nodes["worker2"].engine.volumes) is (kind == "volume")   # the user's volume stays


# ---------------------------------------------------------------- external URL

def test_external_url_is_dtr_host_and_named_in_certificates(penv):
    code, _, err = penv.install("--dtr-external-url", "https://msr.example.com:4443/")
    assert code == 0, err
    assert penv.lab.cluster.external_url == "https://msr.example.com:4443"
    status, settings = api(penv, A1, "GET", "/api/v0/meta/settings")
    assert status == 200 and settings["dtrHost"] == "msr.example.com:4443"
    addr, port = penv.serve(A1)
    assert tls_get(addr, port, penv.lab.cluster.tls.ca_pem, hostname="msr.example.com")[0] == 200


def test_without_external_url_dtr_host_is_the_replica_address(penv):
    code, _, err = penv.install(env={"UCP_PASSWORD": "pw"})
    assert code == 0, err
    assert api(penv, A1, "GET", "/api/v0/meta/settings")[1]["dtrHost"] == ADDRS["worker1"]
    addr, port = penv.serve(A1)
    with pytest.raises(ssl.SSLCertVerificationError):     # the LB is not named: it is no external URL here
        tls_get(addr, port, penv.lab.cluster.tls.ca_pem, hostname=ADDRS["lb1"])


def test_external_url_from_env_var(penv):
    code, _, err = penv.install(env={"UCP_PASSWORD": "pw", "MSR_EXTERNAL_URL": "https://127.0.0.5"})
    assert code == 0, err
    assert api(penv, A1, "GET", "/api/v0/meta/settings")[1]["dtrHost"] == "127.0.0.5"


@pytest.mark.parametrize("flags,text", [
    (["--dtr-external-url", "http://msr.example.com"], "the format is https://host[:port]"),
    (["--dtr-external-url", "msr.example.com"], "the format is https://host[:port]"),
    (["--dtr-external-url", "https://msr.example.com/registry"], "the format is https://host[:port]"),
    (["--dtr-external-url", "https://msr.example.com:99999"], "the format is https://host[:port]"),
    (["--dtr-external-url", "https://:443"], "the format is https://host[:port]"),
    (["--nfs-storage-url", "10.1.2.3:/exports"], "the format is nfs://<ip|hostname>/<mountpoint>"),
    (["--nfs-storage-url", "nfs://10.1.2.3"], "the format is nfs://<ip|hostname>/<mountpoint>"),
    (["--dtr-storage-volume", "images/msr"], "includes invalid characters for a local volume name"),
    (["--nfs-storage-url", "nfs://10.1.2.3/x", "--dtr-storage-volume", "v1"], "cannot be used together"),
])
def test_bad_install_values_are_refused_and_nothing_installed(penv, flags, text):
    code, _, err = penv.install(*flags)
    lines = fatal_lines(err)
    assert code == 1 and len(lines) == 1 and text in lines[0], err
    assert not penv.lab.cluster.installed
    assert not any(n.startswith("dtr-") for n in penv.objects())


# ---------------------------------------------------------------- uninstall and install again

def test_uninstall_as_documented_then_install_again(penv):
    """remove each replica, destroy the last (msr2.md §1.7): the cluster is gone and install works."""
    code, _, err = penv.install("--dtr-external-url", "https://127.0.0.5")
    assert code == 0, err
    for node, rid in (("worker2", A2), ("worker3", A3)):
        code, _, err = penv.join(node, rid)
        assert code == 0, err
    old_ca = penv.lab.cluster.tls.ca_pem
    assert api(penv, A1, "POST", "/api/v0/meta/settings", {"createRepositoryOnPush": True})[0] == 200
    for rid in (A3, A2):
        code, _, err = penv.run(["remove", "--replica-ids", rid, "--existing-replica-id", A1] + penv.ucp())
        assert code == 0, err
    code, _, err = penv.run(["destroy", "--replica-id", A1] + penv.ucp())
    assert code == 0, err
    assert not any("without notifying the rest of the cluster" in w for w in warnings(err))
    cluster = penv.lab.cluster
    assert cluster.replicas == {} and not cluster.installed and cluster.tls is None and cluster.external_url == ""
    assert not any(n.startswith("dtr-") and n != "dtr-ol" and n != "dtr-br" for n in penv.objects())
    # a new install: a new cluster with its own CA and fresh settings, on the storage it asks for
    code, _, err = penv.install("--nfs-storage-url", "nfs://10.1.2.3/msr", node="worker2", rid=A1)
    assert code == 0, err
    assert cluster.tls.ca_pem != old_ca and cluster.status()["storage"] == "nfs"
    status, settings = api(penv, A1, "GET", "/api/v0/meta/settings")
    assert settings["createRepositoryOnPush"] is False and settings["dtrHost"] == ADDRS["worker2"]
    addr, port = penv.serve(A1)
    assert tls_get(addr, port, cluster.tls.ca_pem)[0] == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(addr, port, old_ca)                          # the old cluster's CA is gone with it


def test_destroy_dissolves_only_when_no_replica_keeps_its_data(penv):
    assert penv.install()[0] == 0
    for node, rid in (("worker2", A2), ("worker3", A3)):
        assert penv.join(node, rid)[0] == 0
    penv.lab.cluster.stop_replica(A3)                        # stopped: its volumes still hold the data
    for rid in (A1, A2):
        code, _, err = penv.run(["destroy", "--replica-id", rid] + penv.ucp())
        assert code == 0, err
        assert any("without notifying the rest of the cluster" in w for w in warnings(err))
    assert {r: x.state for r, x in penv.lab.cluster.replicas.items()} == {A1: "ghost", A2: "ghost", A3: "stopped"}
    code, _, err = penv.install(node="worker4", rid="0000000000b1")
    assert code == 1 and "already installed" in fatal_lines(err)[0]
    code, _, err = penv.run(["destroy", "--replica-id", A3] + penv.ucp())
    assert code == 0, err
    assert not penv.lab.cluster.installed
    code, _, err = penv.install(node="worker4", rid="0000000000b1")
    assert code == 0, err
    assert list(penv.lab.cluster.replicas) == ["0000000000b1"]


def test_killed_install_then_destroy_lets_install_work_again(penv):
    penv.lab.faults.kill_at_phase = "rethink"
    code, _, _ = penv.install()
    assert code == 137 and penv.lab.cluster.replicas[A1].state == "joining"
    code, _, err = penv.run(["destroy", "--replica-id", A1] + penv.ucp())
    assert code == 0, err
    code, _, err = penv.install()
    assert code == 0, err
    assert penv.lab.cluster.replicas[A1].state == "running"
