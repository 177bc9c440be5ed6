# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The backup stream: frame splitting, the tar check, the 0600 temporary file and its atomic rename, and
run_backup against a fake engine whose attach is a real socket pair and whose bootstrapper refuses what
the real one refuses (msr2.md 1.11)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import struct
import tarfile
import threading

import docker
import pytest
from docker.errors import APIError

from ansible_collections.msr.replicas.plugins.module_utils import _backup
from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

PASSWORD = "Sup3r-secret-pw"
CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
A, B, C = "aaaaaaaaaaa1", "bbbbbbbbbbb2", "ccccccccccc3"
# make_tar(): backup.json (header + 1 block), repositories.json (header + 6 blocks), then the end marker
LAST_MEMBER_END = 512 * 3 + 3072
DOCUMENTED = {"--ucp-url", "--ucp-username", "--ucp-insecure-tls", "--ucp-ca", "--existing-replica-id", "--debug",
              "--nocolor", "--help-extended"}


def frame(kind, data):
    return struct.pack(">BxxxL", kind, len(data)) + data


def make_tar(replica=A, version="2.9.16", size=3000):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, raw in (("dtr-backup-v%s/backup.json" % version, ('{"replicaID": "%s"}' % replica).encode()),
                          ("dtr-backup-v%s/rethink/dtr2/repositories.json" % version, b"x" * size)):
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


class FakeApi:
    """The docker SDK low-level calls run_backup makes. ``members()`` -> {replica id: {"healthy", "version"}}
    is what the fake bootstrapper reads, like the real one reads RethinkDB. ``behaviour`` breaks the run."""

    def __init__(self, members, behaviour="ok", attach="socket", remove_fails=False):
        self.members = members
        self.behaviour = behaviour
        self.attach = attach
        self.remove_fails = remove_fails
        self.calls = []
        self.containers = {}
        self.created = []
        self.threads = []

    def create_host_config(self, **kwargs):
        return docker.types.HostConfig(version="1.45", **kwargs)

    def create_container(self, image, command=None, environment=None, name=None, tty=False, stdin_open=False,
                         labels=None, host_config=None):
        self.calls.append("create")
        if name in [c["name"] for c in self.containers.values()]:
            raise APIError("Conflict. The container name \"/%s\" is already in use" % name)
        cid = "%064x" % (len(self.created) + 1)
        c = {"id": cid, "name": name, "image": image, "argv": list(command), "env": dict(environment),
             "tty": tty, "stdin_open": stdin_open, "labels": labels, "host_config": host_config,
             "state": "created", "attached": False, "rc": None}
        self.containers[cid] = c
        self.created.append(c)
        return {"Id": cid, "Warnings": []}

    def attach_socket(self, cid, params=None):
        self.calls.append("attach")
        c = self.containers[cid]
        assert params == {"stdout": 1, "stderr": 1, "stream": 1}
        # output written before the attach would be lost, as on a real engine
        c["attached"] = c["state"] == "created"
        ours, theirs = socket.socketpair()
        c["sock"] = theirs
        if self.attach == "socketio":  # what the SDK hands out over a unix socket
            return socket.SocketIO(ours, "rb")
        return ours

    def start(self, cid):
        self.calls.append("start")
        c = self.containers[cid]
        c["state"] = "running"
        t = threading.Thread(target=self._run, args=(c,), daemon=True)
        self.threads.append(t)
        t.start()

    def wait(self, cid, timeout=None):
        self.calls.append("wait")
        for t in self.threads:
            t.join(10)
        return {"StatusCode": self.containers[cid]["rc"]}

    def remove_container(self, cid, force=False):
        self.calls.append("remove")
        if self.remove_fails:
            raise APIError("500 Server Error: device or resource busy")
        self.containers.pop(cid)

    # -- the bootstrapper ------------------------------------------------------------------------------

    def _run(self, c):
        sock = c["sock"]
        out = []

        def log(level, msg):
            out.append(frame(2, ('time="2025-03-01T02:00:00Z" level=%s msg="%s"\n' % (level, msg)).encode()))
        try:
            c["rc"] = self._backup(c, log, out)
        except Exception as exc:  # a broken fake must fail the test, not hang it
            c["rc"] = 99
            log("fatal", "fake bootstrapper crashed: %s" % exc)
        data = b"".join(out) if c["attached"] else b""
        if self.behaviour == "drop":
            data = data[:-5]
        for i in range(0, len(data), 777):  # odd sizes: frames split across reads
            try:
                sock.sendall(data[i:i + 777])
            except OSError:
                break
        sock.close()
        c["state"] = "exited"

    def _backup(self, c, log, out):
        argv, env = c["argv"], c["env"]
        log("info", "Beginning Docker Trusted Registry backup")
        if argv[0] != "backup":
            log("fatal", "unknown command %s" % argv[0])
            return 1
        flags = {}
        i = 1
        while i < len(argv):
            if argv[i] not in DOCUMENTED:
                log("fatal", "flag provided but not defined: %s" % argv[i])
                return 1
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                flags[argv[i]], i = argv[i + 1], i + 2
            else:
                flags[argv[i]], i = True, i + 1
        if env.get("UCP_PASSWORD") != PASSWORD:
            log("fatal", "Failed to login to UCP: invalid credentials")
            return 1
        if "--ucp-insecure-tls" not in flags and not env.get("UCP_CA"):
            log("fatal", "Failed to validate UCP cert: x509: certificate signed by unknown authority")
            return 1
        members = self.members()
        rid = flags.get("--existing-replica-id")
        if rid not in members:
            log("fatal", "The replica %s given with --existing-replica-id is not part of this DTR cluster" % rid)
            return 1
        healthy = [r for r, m in members.items() if m["healthy"]]
        if len(healthy) < len(members) // 2 + 1:
            log("fatal", "Failed to read the DTR database: the cluster has lost quorum")
            return 1
        if not members[rid]["healthy"]:
            log("fatal", "Replica %s is not healthy" % rid)
            return 1
        if members[rid]["version"] != c["image"].rsplit(":", 1)[1]:
            log("fatal", "This DTR cluster runs version %s" % members[rid]["version"])
            return 1
        tar = make_tar(rid, members[rid]["version"])
        log("info", "Establishing connection with Rethinkdb")
        if self.behaviour == "truncate":
            tar = tar[:2500]
        elif self.behaviour == "no-end-marker":
            tar = tar[:LAST_MEMBER_END]   # cut right after the last member
        elif self.behaviour == "silent":
            tar = b""
        for i in range(0, len(tar), 1000):
            out.append(frame(1, tar[i:i + 1000]))
        if self.behaviour == "crash":
            log("fatal", "Failed to read the DTR database: gorethink: connection closed")
            return 1
        if self.behaviour == "systemerr":
            out.append(frame(3, b"error from daemon: container killed"))
        log("warning", "a warning for the test")
        log("info", "Backup is complete")
        return 0


class FakeBootstrapper:
    """Stands in for _bootstrapper.Bootstrapper: the same docker_host/timeout/unremoved/client/ensure_image."""

    def __init__(self, api, docker_host=boot.DEFAULT_DOCKER_HOST, timeout=1800):
        self.api = api
        self.docker_host = docker_host
        self.timeout = timeout
        self.unremoved = []
        self.images = []

    def client(self):
        return type("Client", (), {"api": self.api})()

    def ensure_image(self, image, version):
        self.images.append((image, version))
        return False


def three_healthy():
    return {A: {"healthy": True, "version": "2.9.16"}, B: {"healthy": True, "version": "2.9.16"},
            C: {"healthy": True, "version": "2.9.16"}}


def argv_for(rid=A, **extra):
    flags = {"--existing-replica-id": rid, "--ucp-url": "https://mke.example.com", "--ucp-username": "admin",
             "--nocolor": True}
    flags.update(extra)
    return boot.build_argv("backup", flags, "2.9.16")


ENV = {"UCP_PASSWORD": PASSWORD, "UCP_CA": CA}


def run(api, path, argv=None, env=None):
    runner = FakeBootstrapper(api)
    outcome = _backup.run_backup(runner, "mirantis/dtr", "2.9.16", argv or argv_for(), env or ENV, str(path),
                                 "msr-replicas-backup-0123456789ab")
    return runner, outcome


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


# -- frames ----------------------------------------------------------------------------------------------

def test_frames_reassembled_from_any_split():
    stream = frame(1, b"tar-part-1") + frame(2, b"INFO[0000] x\n") + frame(1, b"") + frame(1, b"tar-part-2")
    for size in (1, 3, 7, 8, 9, len(stream)):
        reader = _backup.FrameReader()
        got = []
        for i in range(0, len(stream), size):
            got += reader.feed(stream[i:i + size])
        reader.close()
        assert got == [(1, b"tar-part-1"), (2, b"INFO[0000] x\n"), (1, b""), (1, b"tar-part-2")], size


def test_frames_cut_or_garbled_are_errors():
    reader = _backup.FrameReader()
    assert reader.feed(frame(1, b"abcdef")[:-2]) == []
    with pytest.raises(MsrError, match="ended inside a frame"):
        reader.close()
    with pytest.raises(MsrError, match="not a multiplexed Docker stream"):
        _backup.FrameReader().feed(b"\x1f\x8b\x08\x00\x00\x00\x00\x00")    # raw (tty) or gzip bytes
    with pytest.raises(MsrError, match="not a multiplexed Docker stream"):
        _backup.FrameReader().feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")


# -- the tar check ---------------------------------------------------------------------------------------

def write(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def test_check_tar_accepts_a_complete_archive(tmp_path):
    _backup.check_tar(write(tmp_path / "ok.tar", make_tar()))


@pytest.mark.parametrize("data, match", [
    (b"", "not a complete tar archive"),
    (b"\0" * 10240, "a tar archive without any member"),
    (b"this is a log line, not a tar\n" * 40, "not a complete tar archive"),
    (make_tar()[:2500], "not a complete tar archive"),        # cut inside a member's data
    (make_tar()[:1500], "no end-of-archive marker"),          # cut inside a header (tarfile stops there)
    (make_tar()[:LAST_MEMBER_END], "no end-of-archive marker"),  # cut right after the last member
    (make_tar()[:LAST_MEMBER_END] + b"INFO[0001] a log line on stdout\n" + b"\0" * 1024, "no end-of-archive"),
])
def test_check_tar_refuses_incomplete_output(tmp_path, data, match):
    with pytest.raises(MsrError, match=match):
        _backup.check_tar(write(tmp_path / "bad.tar", data))


# -- the file --------------------------------------------------------------------------------------------

def test_backup_file_is_0600_beside_dest_and_renamed_on_commit(tmp_path):
    dest = tmp_path / "b.tar"
    write(dest, b"old backup")
    old_umask = os.umask(0)
    try:
        f = _backup.BackupFile(str(dest))
        f.open()
    finally:
        os.umask(old_umask)
    assert os.path.dirname(f.tmp) == str(tmp_path)
    assert stat.S_IMODE(os.stat(f.tmp).st_mode) == 0o600
    data = make_tar()
    f.write(data[:100])
    f.write(data[100:])
    assert dest.read_bytes() == b"old backup"       # nothing replaced before commit
    f.commit()
    f.abort()                                       # after commit: a no-op
    assert dest.read_bytes() == data
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert f.size == len(data) and f.sha256 == hashlib.sha256(data).hexdigest()
    assert leftovers(tmp_path) == []


def test_backup_file_commit_of_a_bad_tar_keeps_dest(tmp_path):
    dest = tmp_path / "b.tar"
    write(dest, b"old backup")
    f = _backup.BackupFile(str(dest))
    f.open()
    f.write(make_tar()[:1500])
    with pytest.raises(MsrError):
        f.commit()
    f.abort()
    assert dest.read_bytes() == b"old backup"
    assert leftovers(tmp_path) == []


# -- run_backup ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("attach", ["socket", "socketio"])
def test_run_backup_streams_stdout_into_the_file(tmp_path, attach):
    api = FakeApi(three_healthy, attach=attach)
    dest = tmp_path / "b.tar"
    runner, outcome = run(api, dest)
    assert outcome.error is None and outcome.rc == 0
    data = dest.read_bytes()
    assert data == make_tar(A)
    assert outcome.size == len(data) and outcome.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert leftovers(tmp_path) == []
    # the log came from stderr only, the tar from stdout only
    assert outcome.parser.phases == ["Beginning Docker Trusted Registry backup",
                                     "Establishing connection with Rethinkdb", "Backup is complete"]
    assert outcome.parser.warnings == ["a warning for the test"]
    # attached before start (output is never lost), waited, removed
    assert api.calls == ["create", "attach", "start", "wait", "remove"]
    c = api.created[0]
    assert c["attached"] and api.containers == {}
    assert c["name"] == "msr-replicas-backup-0123456789ab" and c["labels"] == {_backup.LABEL: "backup"}
    assert c["host_config"]["LogConfig"]["Type"] == "none"
    assert c["tty"] is False and c["stdin_open"] is False
    assert c["env"] == ENV and not any(PASSWORD in a or CA in a for a in c["argv"])
    assert runner.images == [("mirantis/dtr", "2.9.16")] and runner.unremoved == []
    assert outcome.cmd[:6] == ["docker", "run", "--rm", "--log-driver", "none", "-e"]
    assert PASSWORD not in " ".join(outcome.cmd)


@pytest.mark.parametrize("behaviour, argv, env, error", [
    ("crash", None, None, "Failed to read the DTR database: gorethink: connection closed"),
    ("truncate", None, None, "the bootstrapper exited 0 but the output is not a complete tar archive"),
    ("no-end-marker", None, None, "the bootstrapper exited 0 but the output tar archive has no end-of-archive"),
    ("silent", None, None, "the bootstrapper exited 0 but wrote nothing on stdout"),
    ("systemerr", None, None, "the engine reported an error in the stream: error from daemon"),
    ("ok", argv_for(B), None, None),
    ("ok", argv_for("dddddddddddd"), None, "is not part of this DTR cluster"),
    ("ok", None, {"UCP_PASSWORD": "wrong", "UCP_CA": CA}, "invalid credentials"),
    ("ok", None, {"UCP_PASSWORD": PASSWORD}, "certificate signed by unknown authority"),
])
def test_run_backup_failure_leaves_dest_and_no_partial_file(tmp_path, behaviour, argv, env, error):
    api = FakeApi(three_healthy, behaviour=behaviour)
    dest = tmp_path / "b.tar"
    write(dest, b"previous backup")
    _runner, outcome = run(api, dest, argv=argv, env=env)
    if error is None:
        assert outcome.error is None and dest.read_bytes() == make_tar(B)
        return
    assert error in outcome.error
    assert dest.read_bytes() == b"previous backup"
    assert leftovers(tmp_path) == []
    assert api.containers == {}
    assert outcome.size is None and outcome.sha256 is None


def test_run_backup_refused_by_the_bootstrapper_without_quorum(tmp_path):
    members = {A: {"healthy": True, "version": "2.9.16"}, B: {"healthy": False, "version": "2.9.16"},
               C: {"healthy": False, "version": "2.9.16"}}
    api = FakeApi(lambda: members)
    _runner, outcome = run(api, tmp_path / "b.tar")
    assert "lost quorum" in outcome.error and outcome.rc == 1
    assert os.listdir(tmp_path) == []


def test_run_backup_stream_cut_mid_frame_is_an_error_and_cleans_up(tmp_path):
    api = FakeApi(three_healthy, behaviour="drop")
    with pytest.raises(MsrError, match="ended inside a frame"):
        run(api, tmp_path / "b.tar")
    assert os.listdir(tmp_path) == [] and api.containers == {}


def test_run_backup_lost_engine_is_an_error_and_cleans_up(tmp_path):
    class Dropping(FakeApi):
        def start(self, cid):
            self.calls.append("start")
            self.containers[cid]["sock"].close()   # the engine hangs up at once

        def wait(self, cid, timeout=None):
            raise docker.errors.DockerException("Error while fetching server API version: connection reset")
    api = Dropping(three_healthy)
    with pytest.raises(MsrError, match="lost the bootstrapper msr-replicas-backup-0123456789ab on "
                                       "unix:///var/run/docker.sock while it ran"):
        run(api, tmp_path / "b.tar")
    assert os.listdir(tmp_path) == [] and api.containers == {}


def test_run_backup_reports_a_container_it_could_not_remove(tmp_path):
    api = FakeApi(three_healthy, remove_fails=True)
    runner, outcome = run(api, tmp_path / "b.tar")
    assert outcome.error is None
    assert runner.unremoved == ["msr-replicas-backup-0123456789ab (500 Server Error: device or resource busy)"]


def test_run_backup_unwritable_directory_runs_nothing(tmp_path):
    api = FakeApi(three_healthy)
    with pytest.raises(MsrError, match="cannot create a temporary file beside"):
        run(api, tmp_path / "missing" / "b.tar")
    assert api.calls == []


def test_run_backup_silent_beyond_the_timeout_is_an_error_and_cleans_up(tmp_path):
    class Silent(FakeApi):
        def attach_socket(self, cid, params=None):
            sock = super().attach_socket(cid, params)
            sock.settimeout(0.2)       # the SDK sets the client's timeout on its socket the same way
            return sock

        def start(self, cid):
            self.calls.append("start")  # runs, says nothing, never exits
    api = Silent(three_healthy)
    with pytest.raises(MsrError, match="the bootstrapper msr-replicas-backup-0123456789ab on "
                                       "unix:///var/run/docker.sock said nothing for 1800 s"):
        run(api, tmp_path / "b.tar")
    assert os.listdir(tmp_path) == [] and api.calls[-1] == "remove" and api.containers == {}


def test_run_backup_engine_unreachable_before_the_start(tmp_path):
    class Refusing(FakeApi):
        def create_container(self, *args, **kwargs):
            raise docker.errors.APIError("500 Server Error: Internal Server Error (\"engine is shutting down\")")
    api = Refusing(three_healthy)
    with pytest.raises(MsrError, match="lost the bootstrapper msr-replicas-backup-0123456789ab on "
                                       "unix:///var/run/docker.sock before it started .*engine is shutting down"):
        run(api, tmp_path / "b.tar")
    assert os.listdir(tmp_path) == []
