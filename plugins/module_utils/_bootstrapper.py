# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Runs the mirantis/dtr bootstrapper through the docker SDK. PRIVATE to this collection.

Secrets travel only in the container environment (UCP_PASSWORD, UCP_CA, the install TLS key), never in
argv, so they do not show up in ``docker inspect`` Cmd, process lists on the engine host, or the returned
audit command. How the engine is reached (and why never over plain TCP) is in _engine.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os
import re

from ansible_collections.msr.replicas.plugins.module_utils._bootlog import LogParser
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError
from ansible_collections.msr.replicas.plugins.module_utils._mke import BOOTSTRAPPER_NAME
from ansible_collections.msr.replicas.plugins.module_utils._engine import (
    CONNECTION_ERRORS,
    DEFAULT_DOCKER_HOST,
    connect,
)

try:
    from docker.errors import APIError, ImageNotFound, NotFound
except ImportError:  # _engine.HAS_DOCKER tells the modules
    class APIError(Exception):
        pass

    class NotFound(APIError):
        pass

    class ImageNotFound(NotFound):
        pass

# Only documented flags (msr2.md 1.1-1.4, 1.11). value: takes an argument; bool: a switch; env: a value
# that goes by environment only (PEM text and private keys: see ENV_NAMES).
# The second field is the first MSR version that has the flag (None: every supported version).
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
        "--dtr-storage-volume": ("value", None),
        "--dtr-ca": ("env", None),
        "--dtr-cert": ("env", None),
        "--dtr-key": ("env", None),
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
    # msr2.md 1.1: keeps --existing-replica-id as the only replica (quorum loss only); --force also deletes
    # the others' volumes, which this collection never asks for.
    "emergency-repair": dict(_UCP, **{
        "--existing-replica-id": ("value", None),
        "--overlay-subnet": ("value", None),
        "--nocolor": ("bool", (2, 9)),
    }),
    "backup": dict(_UCP, **{
        "--existing-replica-id": ("value", None),
        "--nocolor": ("bool", (2, 9)),
    }),
}

# Environment variables of the flags that go by environment: (up to 2.8, from 2.9); msr2.md 1.5 and
# the lab's bootstrapper (tests/lab/msr_lab/bootstrapper/flags.py).
ENV_NAMES = {
    "--dtr-ca": ("DTR_CA", "MSR_CA"),
    "--dtr-cert": ("DTR_CERT", "MSR_CERT"),
    "--dtr-key": ("DTR_KEY", "MSR_KEY"),
}

# On every bootstrapper container this collection runs (the command as value): cluster_info lists them.
LABEL = "com.msr.replicas.command"

REPLICA_ID_RE = re.compile(r"^[0-9a-f]{12}$")


def parse_version(version):
    """(major, minor) of "2.9.16"; None when the tag is not a version (e.g. "latest")."""
    m = re.match(r"^v?(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_replica_ids(module, keys=("replica_id",)):
    """Normalise the 12-hex replica ID options ``keys`` in place; fail on the first that is not one."""
    p = module.params
    for key in keys:
        if p[key] is not None:
            p[key] = p[key].strip().lower()
            if not REPLICA_ID_RE.match(p[key]):
                module.fail_json(msg="%s must be 12 hexadecimal characters, got '%s'" % (key, p[key]))


def check_version(module):
    version = module.params["version"]
    if version is not None and not parse_version(version):
        module.fail_json(msg="version must look like 2.9.16, got '%s'" % version)


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
        if kind == "env":
            raise MsrError("%s goes to the bootstrapper by environment only, never on its command line" % flag)
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


def flag_environment(command, flags, version):
    """{env var: value} for the by-environment flags of ``command`` (e.g. install's --dtr-key).

    2.9+ reads MSR_*, older versions DTR_*; for a version that is not a number (e.g. "latest") both are
    set, since the bootstrapper ignores the name it does not know.
    """
    table = FLAGS.get(command)
    if table is None:
        raise MsrError("unsupported bootstrapper command %r" % command)
    have = parse_version(version)
    env = {}
    for flag, value in flags.items():
        if value is None or value == "":
            continue
        if table.get(flag, (None,))[0] != "env":
            raise MsrError("%s is not a flag of the bootstrapper's %s command that goes by environment"
                           % (flag, command))
        old, new = ENV_NAMES[flag]
        names = [old, new] if have is None else [new if have >= (2, 9) else old]
        for name in names:
            env[name] = value
    return env


def image_ref(image, version):
    return "%s:%s" % (image, version) if version else image


def redacted_cmd(image, version, argv, env, docker_host=DEFAULT_DOCKER_HOST, no_engine_log=False):
    """The equivalent docker CLI command for the audit log: env names only, never their values."""
    cmd = ["docker"]
    if docker_host and docker_host != DEFAULT_DOCKER_HOST:
        cmd += ["-H", docker_host]
    cmd += ["run", "--rm"]
    if no_engine_log:
        cmd += ["--log-driver", "none"]
    for name in sorted(env):
        cmd += ["-e", name]
    return cmd + [image_ref(image, version)] + list(argv)


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


# -- running ----------------------------------------------------------------------------------------

class BootstrapperError(MsrError):
    """A bootstrapper run that failed before it could report a result.

    ``started`` is False when the bootstrapper certainly did not run, True when it may have (it may
    have changed the cluster, and may still be running if the engine connection broke), so the caller
    knows whether to look for a partial join to clean up.
    """

    def __init__(self, msg, started, log=None):
        MsrError.__init__(self, msg)
        self.started = started
        self.log = list(log or [])


def describe_leftover(container):
    """'<name> (<command>, exit status <n>)' of an exited bootstrapper container."""
    status = (container.attrs.get("State") or {}).get("ExitCode")
    return "%s (%s, exit status %s)" % (container.name, container.labels.get(LABEL), status)


class Bootstrapper:
    """Runs one bootstrapper command at a time on the engine at ``docker_host``.

    ``tls`` (see tls_from_params) is required for a tcp:// engine. ``progress(command, kind, text)``, when
    given, hears each phase, warning, error and the replica ID as the bootstrapper logs them (see _progress).
    """

    def __init__(self, docker_host=DEFAULT_DOCKER_HOST, timeout=1800, client=None, tls=None, progress=None):
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self.progress = progress
        self.timeout = timeout
        self.tls = tls
        self._client = client
        # Containers that could not be removed, so the module can report them instead of hiding them.
        self.unremoved = []
        # Exited bootstrapper containers of earlier runs (killed before they removed them) this one removed.
        self.cleared = []

    def client(self):
        if self._client is None:
            try:
                self._client = connect(self.docker_host, self.timeout, self.tls)
            except MsrError as exc:
                raise BootstrapperError(str(exc), started=False)
        return self._client

    def ensure_image(self, image, version):
        client = self.client()
        ref = image_ref(image, version)
        try:
            client.images.get(ref)
            return False
        except ImageNotFound:
            pass
        except CONNECTION_ERRORS as exc:
            raise self._not_started("cannot inspect image %s on %s: %s" % (ref, self.docker_host, exc))
        if self.progress is not None:
            self.progress(None, "pull", "pulling %s" % ref)
        try:
            client.images.pull(image, tag=version or "latest")
        except CONNECTION_ERRORS as exc:
            raise self._not_started("cannot pull %s on %s: %s" % (ref, self.docker_host, exc))
        return True

    def run(self, image, version, argv, env, name=None):
        """Run to completion; always removes the container. Returns a RunResult; raises BootstrapperError.

        backup, whose stdout is a tar, runs through _backup.run_backup instead.
        """
        client = self.client()
        ref = image_ref(image, version)
        name = name or BOOTSTRAPPER_NAME % (argv[0], new_replica_id())
        on_event = None
        if self.progress is not None:
            def on_event(kind, text):
                self.progress(argv[0], kind, text)
        parser = LogParser(secrets=list(env.values()), on_event=on_event)
        cmd = redacted_cmd(image, version, argv, env, self.docker_host)
        self.ensure_image(image, version)
        self.clear_leftovers(client)
        container = None
        try:
            container = self._create(client, ref, argv, env, name)
            try:
                container.start()
            except APIError as exc:
                raise self._not_started("cannot start the bootstrapper %s on %s: %s" % (ref, self.docker_host, exc))
            except CONNECTION_ERRORS as exc:
                raise self._may_have_started("lost the Docker engine at %s while starting the bootstrapper %s (%s)"
                                             % (self.docker_host, name, exc), parser)
            if on_event is not None:
                on_event("start", "the bootstrapper %s started" % name)
            try:
                for chunk in container.logs(stream=True, follow=True):
                    parser.feed(chunk)
                parser.close()
                status = container.wait()
            except CONNECTION_ERRORS as exc:
                parser.close()
                raise self._may_have_started("lost the bootstrapper %s on %s while it ran (%s)"
                                             % (name, self.docker_host, exc), parser)
            rc = status.get("StatusCode") if isinstance(status, dict) else status
            return RunResult(rc, parser, cmd, name)
        finally:
            if container is not None:
                self._remove(container, name)

    def clear_leftovers(self, client):
        """Remove this collection's bootstrapper containers that have exited on this engine: a run killed with its
        controller never reached its own removal. Running ones are left alone (the planner waits for them)."""
        self.clear(self.leftovers(client))

    def clear(self, containers):
        """Remove these exited containers, recording each one removed in ``cleared``."""
        for c in containers:
            if self._remove(c, c.name):
                self.cleared.append(describe_leftover(c))

    def leftovers(self, client=None):
        """This collection's exited bootstrapper (and backup) containers on this engine."""
        client = client or self.client()
        try:
            return client.containers.list(all=True, filters={"label": LABEL, "status": "exited"})
        except CONNECTION_ERRORS as exc:
            raise self._not_started("cannot list containers on %s: %s" % (self.docker_host, exc))

    @staticmethod
    def _not_started(msg):
        return BootstrapperError(msg + "; the bootstrapper did not start", started=False)

    @staticmethod
    def _may_have_started(msg, parser):
        last = " | ".join(parser.lines[-5:])
        return BootstrapperError("%s; the bootstrapper may have started, changed the cluster and still be running"
                                 "%s" % (msg, "; last output: " + last if last else ""), started=True, log=parser.lines)

    def _create(self, client, ref, argv, env, name):
        try:
            return client.containers.create(ref, command=list(argv), environment=dict(env), name=name, detach=True,
                                            tty=False, stdin_open=False, labels={LABEL: argv[0]})
        except APIError as exc:
            raise self._not_started("cannot start the bootstrapper %s on %s: %s" % (ref, self.docker_host, exc))
        except CONNECTION_ERRORS as exc:
            # The engine may have created it before the link broke: remove it by name.
            self._remove_by_name(client, name)
            raise self._not_started("lost the Docker engine at %s while creating the bootstrapper container %s (%s)"
                                    % (self.docker_host, name, exc))

    def _remove(self, container, name):
        """True once the container is gone (removed now, or already)."""
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except CONNECTION_ERRORS as exc:
            self.unremoved.append("%s (%s)" % (name, exc))
            return False
        return True

    def _remove_by_name(self, client, name):
        try:
            client.containers.get(name).remove(force=True)
        except NotFound:
            pass
        except CONNECTION_ERRORS as exc:
            self.unremoved.append("%s (may exist; %s)" % (name, exc))
