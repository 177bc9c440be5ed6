# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the backup module does: the bootstrapper's ``backup`` streamed into a local file. PRIVATE to this collection.

The bootstrapper writes the tar on its stdout and its log on stderr (msr2.md 1.11). The documented run uses
``--log-driver none`` so the tar never lands in the engine's container log; the output is then only
readable by attaching, so the container is created, attached (before start, like ``docker run``), started,
and the multiplexed stream is split here: stdout frames into the file, stderr frames into the log parser.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import hashlib
import os
import socket
import stat
import struct
import tarfile
import tempfile
import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError, check_connection_params
from ansible_collections.msr.replicas.plugins.module_utils._mke import BOOTSTRAPPER_NAME
from ansible_collections.msr.replicas.plugins.module_utils._topology import Cluster, backup_gate

try:
    from docker.types import LogConfig
except ImportError:  # reported by the module through _engine.HAS_DOCKER
    LogConfig = None

# The documented file name (msr2.md 1.11), used when dest is a directory. The time is UTC.
FILE_PATTERN = "dtr-metadata-%s-backup-%s.tar"
FILE_GLOB = "dtr-metadata-*-backup-*.tar"
TIME_FORMAT = "%Y%m%d-%H_%M_%S"
# Check mode cannot know the time the real run will start; a fixed placeholder keeps its output stable.
TIME_PLACEHOLDER = "YYYYmmdd-HH_MM_SS"
CHUNK = 64 * 1024
LABEL = "com.msr.replicas.command"


def choose_replica(view, wanted=None):
    """(replica of the view, None) for the replica to back up from, or (None, why not): _topology decides."""
    member, why = backup_gate(Cluster.from_observed(view), wanted)
    if why:
        return None, why
    return [r for r in view["replicas"] if r["id"] == member["replica_id"]][0], None


def destination(dest, create_dir=False):
    """(kind, why, missing) for an absolute ``dest``: kind "dir" or "file", or None with why it cannot be
    written; ``missing`` the directory that create_dir would make (None when it exists)."""
    if not os.path.isabs(dest):
        return None, "dest must be an absolute path, got '%s'" % dest, None
    if os.path.isdir(dest):
        return "dir", _writable(dest), None
    kind, directory = ("dir", dest.rstrip("/") or "/") if dest.endswith("/") else ("file", os.path.dirname(dest))
    if not os.path.isdir(directory):
        if not create_dir:
            if kind == "dir":
                return None, "dest %s is meant as a directory, which does not exist" % dest, None
            return None, "the directory of dest, %s, does not exist" % directory, None
        return kind, _creatable(directory), directory
    if os.path.lexists(dest) and not os.path.isfile(dest):
        return None, "dest %s exists and is not a regular file" % dest, None
    return kind, _writable(directory), None


def _writable(directory):
    if not os.access(directory, os.W_OK | os.X_OK):
        return "the directory %s is not writable by this user" % directory
    return None


def _creatable(directory):
    """Why create_dir could not make ``directory``, or None: its nearest existing ancestor decides."""
    ancestor = directory
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        return "cannot create the directory %s: %s is not a directory" % (directory, ancestor)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return "cannot create the directory %s: %s is not writable by this user" % (directory, ancestor)
    return None


def backups_in(directory):
    """The backup files in ``directory`` (the documented name), newest first (mtime, then name)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(directory, name)
        if fnmatch.fnmatchcase(name, FILE_GLOB) and os.path.isfile(path) and not os.path.islink(path):
            found.append((os.path.getmtime(path), name, path))
    return [path for _mtime, _name, path in sorted(found, reverse=True)]


def beyond_keep(directory, keep, new_path):
    """The backups a rotation to the newest ``keep`` removes; ``new_path`` is the backup this run makes
    (in check mode it does not exist yet, and still counts as the newest)."""
    existing = [path for path in backups_in(directory) if path != new_path]
    return existing[keep - 1:]


def file_name(version, when):
    """The documented name; ``when`` is a time.struct_time, or None for check mode's placeholder."""
    return FILE_PATTERN % (version, time.strftime(TIME_FORMAT, when) if when else TIME_PLACEHOLDER)


def file_digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            sha.update(block)
    return os.path.getsize(path), sha.hexdigest()


class FrameReader:
    """Splits Docker's multiplexed attach stream (8-byte header: type, 0, 0, 0, big-endian length)."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data):
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            kind, size = struct.unpack(">BxxxL", bytes(self._buf[:8]))
            if kind > 3 or any(self._buf[1:4]):
                raise MsrError("the attach stream is not a multiplexed Docker stream (header %s)"
                               % bytes(self._buf[:8]).hex())
            if len(self._buf) < 8 + size:
                break
            frames.append((kind, bytes(self._buf[8:8 + size])))
            del self._buf[:8 + size]
        return frames

    def close(self):
        if self._buf:
            raise MsrError("the attach stream ended inside a frame (%d bytes left over)" % len(self._buf))


def check_tar(path):
    """Raise MsrError unless ``path`` is a complete, uncompressed tar: every member readable to its end
    and the end-of-archive marker (two zero blocks) present, so a stream cut at a member boundary fails too."""
    count = 0
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                count += 1
                if member.isreg():
                    content = tar.extractfile(member)
                    while content.read(CHUNK):
                        pass
            end = tar.offset
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MsrError("the output is not a complete tar archive (%s)" % exc)
    if not count:
        raise MsrError("the output is a tar archive without any member")
    with open(path, "rb") as fh:
        fh.seek(end)
        tail = fh.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < 2 * tarfile.BLOCKSIZE or tail.strip(b"\0"):
        raise MsrError("the output tar archive has no end-of-archive marker (it was cut short)")


class BackupFile:
    """A mode-0600 temporary file beside ``path``, renamed over it only by commit(); abort() removes it."""

    def __init__(self, path):
        self.path = path
        self.tmp = None
        self.fd = None
        self.size = 0
        self._sha = hashlib.sha256()

    @property
    def sha256(self):
        return self._sha.hexdigest()

    def open(self):
        directory, base = os.path.split(self.path)
        # mkstemp: O_EXCL and mode 0600 from the start, so no other user can ever open the partial tar.
        self.fd, self.tmp = tempfile.mkstemp(prefix=".%s." % base, suffix=".part", dir=directory)
        os.fchmod(self.fd, stat.S_IRUSR | stat.S_IWUSR)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self._sha.update(data)
        self.size += len(data)

    def commit(self):
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        check_tar(self.tmp)
        os.replace(self.tmp, self.path)
        self.tmp = None
        # The rename is durable only once the directory entry is on disk too.
        dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


def _recv(sock, size):
    # The SDK's hijacked socket: a socket or paramiko channel (recv), or a SocketIO over a unix socket (read).
    if hasattr(sock, "recv"):
        return sock.recv(size)
    return sock.read(size)


def _close(sock):
    for thing in (sock, getattr(sock, "_response", None)):
        try:
            if thing is not None:
                thing.close()
        except Exception:
            pass


class Outcome:
    def __init__(self, parser, cmd, name):
        self.parser = parser
        self.cmd = cmd
        self.name = name
        self.rc = None
        self.size = None
        self.sha256 = None
        self.error = None


def _pump(sock, out, parser, outcome):
    frames = FrameReader()
    while True:
        data = _recv(sock, CHUNK)
        if not data:
            break
        for kind, payload in frames.feed(data):
            if kind in (0, 1):
                try:
                    out.write(payload)
                except OSError as exc:  # a full disk, not the engine: say which
                    raise MsrError("cannot write the backup to %s: %s" % (out.tmp, exc))
            elif kind == 2:
                parser.feed(payload)
            else:
                outcome.error = "the engine reported an error in the stream: %s" % payload.decode("utf-8", "replace")
    frames.close()


def run_backup(runner, image, version, argv, env, path, name):
    """Run the bootstrapper with ``argv`` on ``runner`` (a _bootstrapper.Bootstrapper) and write its stdout
    to ``path``, replacing it only when the run exited 0 with a complete tar. Always removes the container
    and any partial file. Returns an Outcome; ``error`` is set when nothing was written."""
    ref = boot.image_ref(image, version)
    parser = boot.LogParser(secrets=list(env.values()))
    cmd = boot.redacted_cmd(image, version, argv, env, runner.docker_host, no_engine_log=True)
    outcome = Outcome(parser, cmd, name)
    out = BackupFile(path)
    try:
        out.open()
    except OSError as exc:
        raise MsrError("cannot create a temporary file beside %s: %s" % (path, exc))
    api = cid = None
    stage = "before it started"
    try:
        try:
            api = runner.client().api
            runner.ensure_image(image, version)
            host_config = api.create_host_config(log_config=LogConfig(type=LogConfig.types.NONE))
            cid = api.create_container(ref, command=list(argv), environment=dict(env), name=name, tty=False,
                                       stdin_open=False, labels={LABEL: "backup"}, host_config=host_config)["Id"]
            sock = api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1})
            try:
                api.start(cid)
                stage = "while it ran"
                _pump(sock, out, parser, outcome)
            finally:
                _close(sock)
            parser.close()
            status = api.wait(cid, timeout=runner.timeout)
            outcome.rc = status.get("StatusCode") if isinstance(status, dict) else status
        except MsrError:
            raise
        except socket.timeout:
            parser.close()
            raise MsrError("the bootstrapper %s on %s said nothing for %s s (bootstrap_timeout); last output: %s"
                           % (name, runner.docker_host, runner.timeout, " | ".join(parser.lines[-5:])))
        except Exception as exc:  # DockerException, dropped unix socket or SSH link: all end the run
            parser.close()
            raise MsrError("lost the bootstrapper %s on %s %s (%s: %s); last output: %s"
                           % (name, runner.docker_host, stage, type(exc).__name__, exc,
                              " | ".join(parser.lines[-5:]) or "none"))
        outcome.error = outcome.error or _failure(outcome, out)
        if outcome.error is None:
            try:
                out.commit()
            except MsrError as exc:
                outcome.error = "the bootstrapper exited 0 but %s" % exc
            except OSError as exc:
                outcome.error = "cannot write the backup to %s: %s" % (path, exc)
            else:
                outcome.size, outcome.sha256 = out.size, out.sha256
        return outcome
    finally:
        out.abort()
        if cid is not None:
            _remove(runner, api, cid, name)


def _failure(outcome, out):
    detail = outcome.parser.failure_message()
    if detail:
        return detail
    if outcome.rc != 0:
        return "the bootstrapper exited with status %s" % outcome.rc
    if not out.size:
        return "the bootstrapper exited 0 but wrote nothing on stdout"
    return None


def _remove(runner, api, cid, name):
    try:
        api.remove_container(cid, force=True)
    except Exception as exc:
        if "No such container" not in str(exc) and getattr(exc, "status_code", None) != 404:
            runner.unremoved.append("%s (%s)" % (name, exc))


class BackupManager:
    """Decides (the same way in check mode) and runs one backup. ``observe_fn`` returns the _cluster view;
    ``runner_factory`` returns a _bootstrapper.Bootstrapper for the engine at docker_host."""

    def __init__(self, module, observe_fn, runner_factory, clock=time.gmtime):
        self.module = module
        self.p = module.params
        self.observe = observe_fn
        self.runner_factory = runner_factory
        self.clock = clock
        self.result = {"changed": False, "path": None, "size": None, "sha256": None, "replica_id": None,
                       "version": None, "created_dir": None, "removed": []}

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    def apply(self):
        p = self.p
        kind, why, missing = destination(p["dest"], p["create_dir"])
        if why:
            self.fail(why)
        if p["keep"] is not None and kind != "dir":
            self.fail("keep applies only when dest is a directory (ends with /), got the file %s" % p["dest"])
        if kind == "file" and os.path.exists(p["dest"]) and not p["force"]:
            # Nothing is read from the cluster: there is nothing to do, whatever its state.
            size, sha = file_digest(p["dest"])
            self.result.update(path=p["dest"], size=size, sha256=sha)
            state = {"path": p["dest"], "state": "file", "sha256": sha}
            self._diff(state, state)
            self.module.exit_json(msg="dest exists and force is false: no backup taken", **self.result)
        try:
            view = self.observe()
        except MsrError as exc:
            self.fail(str(exc))
        replica, why = choose_replica(view, p["replica_id"])
        if why:
            self.fail(why)
        version = self._version(replica)
        self.result.update(replica_id=replica["id"], version=version)
        argv = self._argv(replica["id"], version)
        env = boot.environment(p["mke_password"], None if p["mke_insecure_tls"] else p["mke_ca"])
        path = p["dest"]
        if kind == "dir":
            path = os.path.join(path, file_name(version, None if self.module.check_mode else self.clock()))
        before = {"path": path, "state": "absent", "sha256": None}
        if os.path.isfile(path):
            before.update(state="file", sha256=file_digest(path)[1])
        cmd = boot.redacted_cmd(p["image"], version, argv, env, p["docker_host"], no_engine_log=True)
        self.result.update(changed=True, path=path, cmd=cmd, created_dir=missing, removed=[])
        if self.module.check_mode:
            if p["keep"] is not None:
                self.result["removed"] = beyond_keep(os.path.dirname(path), p["keep"], path)
            self._diff(before, {"path": path, "state": "file", "sha256": None})
            self.module.exit_json(**self.result)
        if not engine.HAS_DOCKER:
            self.module.fail_json(msg=missing_required_lib("docker"), exception=engine.DOCKER_IMPORT_ERROR)
        if missing:
            try:
                # 0700 from the start: the backups hold MSR's private keys
                os.makedirs(missing, 0o700)
                os.chmod(missing, 0o700)
            except OSError as exc:
                self.result.update(changed=False, created_dir=None)
                self.fail("cannot create the directory %s: %s" % (missing, exc))
        runner = self.runner_factory()
        try:
            outcome = run_backup(runner, p["image"], version, argv, env, path,
                                 BOOTSTRAPPER_NAME % ("backup", boot.new_replica_id()))
        except MsrError as exc:
            self._unremoved(runner)
            self.result["changed"] = bool(missing)   # the directory it made stays
            self.fail(str(exc))
        self._unremoved(runner)
        self.result.update(phases=outcome.parser.phases, bootstrapper_warnings=outcome.parser.warnings,
                           log=outcome.parser.lines, cmd=outcome.cmd)
        if outcome.error:
            self.result["changed"] = bool(missing)   # the directory it made stays
            self.fail("backup from replica %s failed: %s; %s was not written"
                      % (replica["id"], outcome.error, path))
        self.result.update(size=outcome.size, sha256=outcome.sha256)
        self._diff(before, {"path": path, "state": "file", "sha256": outcome.sha256})
        if p["keep"] is not None:
            self._rotate(os.path.dirname(path), path)
        self.module.exit_json(**self.result)

    def _rotate(self, directory, path):
        for old in beyond_keep(directory, self.p["keep"], path):
            try:
                os.remove(old)
            except OSError as exc:
                self.fail("backup %s is complete, but the older backup %s could not be removed: %s"
                          % (path, old, exc))
            self.result["removed"].append(old)

    def _diff(self, before, after):
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}

    def _unremoved(self, runner):
        for leftover in getattr(runner, "unremoved", []):
            self.module.warn("could not remove the bootstrapper container %s; remove it with docker rm -f"
                             % leftover)

    def _version(self, replica):
        have, want = replica.get("version"), self.p["version"]
        if want and have and want != have:
            self.fail("version %s differs from the MSR version of replica %s, %s: back up with the bootstrapper "
                      "of the cluster's version (restore needs the same version)" % (want, replica["id"], have))
        if not (want or have):
            self.fail("cannot tell the MSR version of replica %s; set version" % replica["id"])
        return want or have

    def _argv(self, replica_id, version):
        p = self.p
        flags = {"--existing-replica-id": replica_id, "--ucp-url": p["mke_url"].rstrip("/"),
                 "--ucp-username": p["mke_username"], "--ucp-insecure-tls": bool(p["mke_insecure_tls"]),
                 "--debug": p["debug"], "--nocolor": boot.supports("backup", "--nocolor", version)}
        try:
            return boot.build_argv("backup", flags, version)
        except MsrError as exc:
            self.fail(str(exc))


def validate(module):
    """Checks of the options alone; the module fails on the first that does not hold."""
    check_connection_params(module)
    p = module.params
    if not p["mke_url"].lower().startswith("https://"):
        module.fail_json(msg="mke_url must be an https:// URL: the bootstrapper sends the MKE password to it, "
                             "got '%s'" % p["mke_url"])
    boot.check_replica_ids(module)
    boot.check_version(module)
    if p["docker_host"].split("://", 1)[0] not in ("unix", "ssh"):
        module.fail_json(msg="docker_host must be unix:///path or ssh://user@host, got '%s' (the MKE password "
                             "travels to the engine in the container environment)" % p["docker_host"])
    if p["bootstrap_timeout"] < 1:
        module.fail_json(msg="bootstrap_timeout must be 1 or more")
    if p["keep"] is not None and p["keep"] < 1:
        module.fail_json(msg="keep must be 1 or more, got %d (the new backup is one of them)" % p["keep"])
