# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs the mirantis/dtr bootstrapper through the docker SDK. PRIVATE to this collection.

Secrets travel only in the container environment (UCP_PASSWORD, UCP_CA), never in argv, so they do not
show up in ``docker inspect`` Cmd, process lists on the engine host, or the returned audit command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os
import re
import traceback

from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

try:
    import docker
    from docker.errors import DockerException, ImageNotFound, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class ImageNotFound(DockerException):
        pass

    class NotFound(DockerException):
        pass

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# Only documented flags (msr2.md 1.2-1.4). value: takes an argument; bool: a switch.
# The third field is the first MSR version that has the flag (None: every supported version).
_UCP = {
    "--ucp-url": ("value", None),
    "--ucp-username": ("value", None),
    "--ucp-insecure-tls": ("bool", None),
    "--debug": ("bool", None),
}
FLAGS = {
    "install": dict(_UCP, **{
        "--ucp-node": ("value", None),
        "--replica-id": ("value", None),
        "--dtr-external-url": ("value", None),
        "--replica-http-port": ("value", None),
        "--replica-https-port": ("value", None),
        "--replica-rethinkdb-cache-mb": ("value", None),
        "--overlay-subnet": ("value", None),
        "--nfs-storage-url": ("value", None),
    }),
    "join": dict(_UCP, **{
        "--ucp-node": ("value", None),
        "--existing-replica-id": ("value", None),
        "--replica-id": ("value", None),
        "--unsafe-join": ("bool", None),
        "--skip-network-test": ("bool", None),
        "--replica-http-port": ("value", None),
        "--replica-https-port": ("value", None),
        "--replica-rethinkdb-cache-mb": ("value", None),
        "--nocolor": ("bool", (2, 9)),
    }),
    "remove": dict(_UCP, **{
        "--replica-ids": ("value", None),
        "--existing-replica-id": ("value", None),
        "--force": ("bool", (2, 9)),
        "--nocolor": ("bool", (2, 9)),
    }),
    "destroy": dict(_UCP, **{
        "--replica-id": ("value", None),
        "--nocolor": ("bool", (2, 9)),
    }),
}

REPLICA_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_LINE = re.compile(r"^(INFO|WARN|WARNING|ERRO|ERROR|FATA|FATAL|DEBU|DEBUG|PANI|PANIC|TRAC|TRACE)\[[^\]]*\]\s?(.*)$")
_KV_LEVEL = re.compile(r'(?:^|\s)level=("?)(\w+)\1')
_KV_MSG = re.compile(r'(?:^|\s)msg=(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_REPLICA_SET = re.compile(r"Replica ID is set to:\s*([0-9a-fA-F]{12})")
_LEVELS = {"INFO": "info", "WARN": "warning", "WARNING": "warning", "ERRO": "error", "ERROR": "error",
           "FATA": "fatal", "FATAL": "fatal", "DEBU": "debug", "DEBUG": "debug", "PANI": "panic",
           "PANIC": "panic", "TRAC": "trace", "TRACE": "trace"}


def parse_version(version):
    """(major, minor) of "2.9.16"; None when the tag is not a version (e.g. "latest")."""
    m = re.match(r"^v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def new_replica_id():
    return binascii.hexlify(os.urandom(6)).decode("ascii")


def build_argv(command, flags, version):
    """The bootstrapper argv for ``command``; ``flags`` maps flag -> value (True for switches).

    Unknown flags and flags the version does not have are errors, so nothing undocumented (and no
    --ucp-password) can ever reach the command line.
    """
    table = FLAGS.get(command)
    if table is None:
        raise MsrError("unsupported bootstrapper command %r" % command)
    have = parse_version(version)
    argv = [command]
    for flag, value in flags.items():
        if value is None or value is False:
            continue
        if flag not in table:
            raise MsrError("%s is not a documented flag of the bootstrapper's %s command" % (flag, command))
        kind, since = table[flag]
        if since and have is not None and have < since:
            raise MsrError("%s needs MSR %d.%d or later (version %s)" % (flag, since[0], since[1], version))
        if kind == "bool":
            argv.append(flag)
        else:
            argv.extend([flag, str(value)])
    return argv


def supports(command, flag, version):
    """True when ``version`` has ``flag`` (unknown versions are assumed to be current)."""
    kind_since = FLAGS.get(command, {}).get(flag)
    if not kind_since:
        return False
    have = parse_version(version)
    return not kind_since[1] or have is None or have >= kind_since[1]


def environment(password, ca_pem=None):
    env = {"UCP_PASSWORD": password}
    if ca_pem:
        env["UCP_CA"] = ca_pem
    return env


def image_ref(image, version):
    return "%s:%s" % (image, version) if version else image


def redacted_cmd(image, version, argv, env, docker_host=DEFAULT_DOCKER_HOST):
    """The equivalent docker CLI command for the audit log: env names only, never their values."""
    cmd = ["docker"]
    if docker_host and docker_host != DEFAULT_DOCKER_HOST:
        cmd += ["-H", docker_host]
    cmd += ["run", "--rm"]
    for name in sorted(env):
        cmd += ["-e", name]
    return cmd + [image_ref(image, version)] + list(argv)


def parse_line(line):
    """(level, message) of one logrus line (text or key=value form); None for anything else."""
    line = _ANSI.sub("", line).strip()
    if not line:
        return None
    m = _TEXT_LINE.match(line)
    if m:
        return _LEVELS[m.group(1)], m.group(2).strip()
    lvl = _KV_LEVEL.search(line)
    if lvl:
        msg = _KV_MSG.search(line)
        text = ""
        if msg:
            text = msg.group(1) if msg.group(1) is not None else msg.group(2)
            text = text.replace('\\"', '"').replace("\\\\", "\\")
        return _LEVELS.get(lvl.group(2).upper(), lvl.group(2).lower()), text
    return None


class LogParser:
    """Collects phases (INFO messages), warnings, fatal errors and the assigned replica ID."""

    def __init__(self, secrets=()):
        self.lines = []
        self.phases = []
        self.warnings = []
        self.errors = []
        self.fatal = []
        self.replica_id = None
        self._buf = ""
        self._secrets = [s for s in secrets if s]

    def feed(self, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self._buf += data.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self._line(line)

    def close(self):
        if self._buf:
            self._line(self._buf)
            self._buf = ""

    def _line(self, line):
        for secret in self._secrets:
            line = line.replace(secret, "********")
        line = line.rstrip()
        if not line.strip():
            return
        self.lines.append(_ANSI.sub("", line))
        parsed = parse_line(line)
        text = parsed[1] if parsed else line.strip()
        m = _REPLICA_SET.search(text)
        if m:
            self.replica_id = m.group(1).lower()
        if not parsed:
            return
        level, msg = parsed
        if level == "info":
            self.phases.append(msg)
        elif level == "warning":
            self.warnings.append(msg)
        elif level == "error":
            self.errors.append(msg)
        elif level in ("fatal", "panic"):
            self.fatal.append(msg)

    def failure_message(self):
        if self.fatal:
            return "; ".join(_unique(self.fatal))
        if self.errors:
            return "; ".join(_unique(self.errors))
        return None


def _unique(items):
    seen = []
    for i in items:
        if i not in seen:
            seen.append(i)
    return seen


class RunResult:
    def __init__(self, rc, parser, cmd, name):
        self.rc = rc
        self.parser = parser
        self.cmd = cmd
        self.name = name

    @property
    def ok(self):
        return self.rc == 0 and not self.parser.fatal

    def failure(self):
        detail = self.parser.failure_message()
        if detail:
            return detail
        if self.rc != 0:
            return "the bootstrapper exited with status %s" % self.rc
        return None


def _ssh_target(docker_host):
    rest = docker_host[len("ssh://"):]
    user, hostport = rest.rpartition("@")[::2]
    host, port = hostport.partition(":")[::2]
    return user or None, host, port or "22"


def explain_connect_error(docker_host, exc):
    """A message that tells the user what to do, for errors raised while connecting to the engine."""
    text = str(exc)
    if docker_host.startswith("ssh://"):
        user, host, port = _ssh_target(docker_host)
        key = host if port == "22" else "[%s]:%s" % (host, port)
        if "not found in known_hosts" in text:
            return ("the SSH host key of %s is not trusted: it is not in ~/.ssh/known_hosts of the user running "
                    "the module (unknown host keys are rejected). Verify the key and add it, for example with "
                    "'ssh-keyscan -p %s %s >> ~/.ssh/known_hosts' after checking its fingerprint, or by connecting "
                    "once with ssh. (%s)" % (key, port, host, text))
        if "Authentication failed" in text or "No authentication methods" in text:
            return ("SSH authentication to %s@%s failed: %s. The docker SDK (paramiko) uses the IdentityFile of "
                    "~/.ssh/config, the ssh-agent and ~/.ssh/id_rsa, id_ecdsa or id_ed25519 (no passphrases)."
                    % (user or "<default user>", host, text))
        return "cannot reach the Docker engine over SSH at %s: %s" % (docker_host, text)
    return "cannot reach the Docker engine at %s: %s" % (docker_host, text)


class Bootstrapper:
    """Runs one bootstrapper command at a time on the engine at ``docker_host``."""

    def __init__(self, docker_host=DEFAULT_DOCKER_HOST, timeout=1800, client=None):
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        self._client = client
        # Containers that could not be removed, so the module can report them instead of hiding them.
        self.unremoved = []

    def client(self):
        if self._client is None:
            if not HAS_DOCKER:
                raise MsrError("the docker SDK for Python is required")
            try:
                # use_ssh_client=False: paramiko with ~/.ssh/config, known_hosts and RejectPolicy.
                self._client = docker.DockerClient(base_url=self.docker_host, use_ssh_client=False,
                                                   timeout=self.timeout, version="auto")
            except Exception as exc:  # paramiko and DockerException both end here; the message decides
                raise MsrError(explain_connect_error(self.docker_host, exc))
        return self._client

    def ensure_image(self, image, version):
        client = self.client()
        ref = image_ref(image, version)
        try:
            client.images.get(ref)
            return False
        except ImageNotFound:
            pass
        except DockerException as exc:
            raise MsrError("cannot inspect image %s on %s: %s" % (ref, self.docker_host, exc))
        try:
            client.images.pull(image, tag=version or "latest")
        except DockerException as exc:
            raise MsrError("cannot pull %s on %s: %s" % (ref, self.docker_host, exc))
        return True

    def run(self, image, version, argv, env, name=None, on_line=None):
        """Run to completion; always removes the container. Returns a RunResult."""
        client = self.client()
        ref = image_ref(image, version)
        name = name or "msr-replicas-%s-%s" % (argv[0], new_replica_id())
        parser = LogParser(secrets=list(env.values()))
        cmd = redacted_cmd(image, version, argv, env, self.docker_host)
        self.ensure_image(image, version)
        container = None
        try:
            try:
                container = client.containers.run(
                    ref, command=list(argv), environment=dict(env), name=name, detach=True, tty=False,
                    stdin_open=False, labels={"com.msr.replicas.command": argv[0]})
            except DockerException as exc:
                raise MsrError("cannot start the bootstrapper %s on %s: %s" % (ref, self.docker_host, exc))
            try:
                for chunk in container.logs(stream=True, follow=True):
                    parser.feed(chunk)
                parser.close()
                status = container.wait()
            except Exception as exc:
                parser.close()
                raise MsrError("lost the bootstrapper %s on %s while it ran (%s); last output: %s"
                               % (name, self.docker_host, exc, " | ".join(parser.lines[-5:])))
            rc = status.get("StatusCode") if isinstance(status, dict) else status
            return RunResult(rc, parser, cmd, name)
        finally:
            if container is not None:
                try:
                    container.remove(force=True)
                except NotFound:
                    pass
                except DockerException as exc:
                    self.unremoved.append("%s (%s)" % (name, exc))
