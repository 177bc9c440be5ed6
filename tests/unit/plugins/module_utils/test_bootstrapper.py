# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import socket

import paramiko
import pytest
import requests
import urllib3
from docker.errors import APIError, ImageNotFound, NotFound

from ansible_collections.msr.replicas.plugins.module_utils import _bootlog
from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError

PASSWORD = "pa55-w0rd!"
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

JOIN_LOG = [
    'time="2024-05-01T10:00:00Z" level=info msg="Beginning Docker Trusted Registry replica join"',
    'INFO[0000] Validating UCP cert',
    'INFO[0001] Connecting to UCP',
    '\x1b[36mINFO\x1b[0m[0002] UCP cert validation successful',
    'INFO[0003] Checking if the node is okay to install on',
    'WARN[0040] Warning! You are using DTR with the filesystem driver in an HA setup.',
    'INFO[0041] Join is complete',
    'INFO[0041] Replica ID is set to: 0a1b2c3d4e5f',
    'INFO[0041] There are currently 2 replicas in your DTR cluster',
]


def join_flags(**extra):
    flags = {"--ucp-node": "worker-4", "--existing-replica-id": "f2277ad178f7", "--replica-id": "0a1b2c3d4e5f",
             "--ucp-url": "https://mke.example.com", "--ucp-username": "admin", "--nocolor": True}
    flags.update(extra)
    return flags


def test_join_argv():
    extra = {"--skip-network-test": True, "--unsafe-join": False, "--replica-https-port": 4443}
    argv = boot.build_argv("join", join_flags(**extra), "2.9.16")
    assert argv == ["join", "--ucp-node", "worker-4", "--existing-replica-id", "f2277ad178f7",
                    "--replica-id", "0a1b2c3d4e5f", "--ucp-url", "https://mke.example.com",
                    "--ucp-username", "admin", "--nocolor", "--skip-network-test", "--replica-https-port", "4443"]


def test_password_flag_cannot_exist():
    with pytest.raises(MsrError, match="--ucp-password is not a documented flag"):
        boot.build_argv("join", {"--ucp-password": PASSWORD}, "2.9.16")
    for command, table in boot.FLAGS.items():
        assert "--ucp-password" not in table, command
        assert "--ucp-ca" not in table, command  # the CA goes through UCP_CA


def test_undocumented_flag_rejected():
    with pytest.raises(MsrError, match="--max-wait is not a documented flag of the bootstrapper's join command"):
        boot.build_argv("join", {"--max-wait": "10m"}, "2.9.16")
    with pytest.raises(MsrError, match="unsupported bootstrapper command"):
        boot.build_argv("upgrade", {}, "2.9.16")


@pytest.mark.parametrize("command,flag", [("join", "--nocolor"), ("remove", "--force"), ("remove", "--nocolor")])
def test_version_gated_flags(command, flag):
    assert boot.build_argv(command, {flag: True}, "2.9.0") == [command, flag]
    with pytest.raises(MsrError, match=r"%s needs MSR 2.9 or later \(version 2.7.8\)" % flag):
        boot.build_argv(command, {flag: True}, "2.7.8")
    assert boot.supports(command, flag, "2.10.1") and not boot.supports(command, flag, "2.8.3")


def test_remove_and_destroy_argv():
    assert boot.build_argv("remove", {"--replica-ids": "f58cf364e3df", "--existing-replica-id": "f2277ad178f7",
                                      "--force": True}, "2.9.16") == [
        "remove", "--replica-ids", "f58cf364e3df", "--existing-replica-id", "f2277ad178f7", "--force"]
    assert boot.build_argv("destroy", {"--replica-id": "0a1b2c3d4e5f", "--ucp-insecure-tls": True}, "2.9.16") == [
        "destroy", "--replica-id", "0a1b2c3d4e5f", "--ucp-insecure-tls"]


def test_install_argv():
    argv = boot.build_argv("install", {"--ucp-node": "worker-1", "--replica-id": "000000000001",
                                       "--dtr-external-url": "https://msr.example.com"}, "2.9.16")
    assert argv == ["install", "--ucp-node", "worker-1", "--replica-id", "000000000001",
                    "--dtr-external-url", "https://msr.example.com"]


def test_install_storage_and_url_flags():
    argv = boot.build_argv("install", {"--ucp-node": "worker-1", "--nfs-storage-url": "nfs://10.0.0.9/msr",
                                       "--dtr-storage-volume": "msr-images"}, "2.9.16")
    assert argv == ["install", "--ucp-node", "worker-1", "--nfs-storage-url", "nfs://10.0.0.9/msr",
                    "--dtr-storage-volume", "msr-images"]


@pytest.mark.parametrize("flag", ["--dtr-ca", "--dtr-cert", "--dtr-key"])
def test_install_tls_flags_never_on_argv(flag):
    with pytest.raises(MsrError, match="%s goes to the bootstrapper by environment only" % flag):
        boot.build_argv("install", {flag: "-----BEGIN X-----"}, "2.9.16")


KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n"
TLS = {"--dtr-ca": CA, "--dtr-cert": CA, "--dtr-key": KEY}


@pytest.mark.parametrize("version,names", [
    ("2.9.16", ["MSR_CA", "MSR_CERT", "MSR_KEY"]),
    ("2.10.2", ["MSR_CA", "MSR_CERT", "MSR_KEY"]),
    ("2.8.5", ["DTR_CA", "DTR_CERT", "DTR_KEY"]),
    ("2.7.8", ["DTR_CA", "DTR_CERT", "DTR_KEY"]),
    ("latest", ["DTR_CA", "DTR_CERT", "DTR_KEY", "MSR_CA", "MSR_CERT", "MSR_KEY"]),
])
def test_install_tls_by_environment(version, names):
    env = boot.flag_environment("install", TLS, version)
    assert sorted(env) == names
    assert all(env[n] == (KEY if n.endswith("_KEY") else CA) for n in names)


def test_flag_environment_refuses_argv_flags_and_other_commands():
    with pytest.raises(MsrError, match="--ucp-node is not a flag of the bootstrapper's install command that goes by env"):
        boot.flag_environment("install", {"--ucp-node": "w1"}, "2.9.16")
    with pytest.raises(MsrError, match="--dtr-key is not a flag of the bootstrapper's join command that goes by env"):
        boot.flag_environment("join", {"--dtr-key": KEY}, "2.9.16")
    assert boot.flag_environment("install", {"--dtr-ca": None, "--dtr-key": ""}, "2.9.16") == {}


def test_install_tls_redacted_cmd_names_only():
    env = boot.environment(PASSWORD, CA)
    env.update(boot.flag_environment("install", TLS, "2.9.16"))
    argv = boot.build_argv("install", {"--ucp-node": "worker-1", "--dtr-external-url": "https://msr.example.com"},
                           "2.9.16")
    cmd = boot.redacted_cmd("mirantis/dtr", "2.9.16", argv, env)
    assert cmd[:3] == ["docker", "run", "--rm"]
    assert cmd[3:13] == ["-e", "MSR_CA", "-e", "MSR_CERT", "-e", "MSR_KEY", "-e", "UCP_CA", "-e", "UCP_PASSWORD"]
    blob = json.dumps(cmd)
    assert "PRIVATE KEY" not in blob and "MIGHAgEAMBMG" not in blob and PASSWORD not in blob


def test_emergency_repair_flags():
    argv = boot.build_argv("emergency-repair", {"--existing-replica-id": "f2277ad178f7", "--ucp-url": "https://mke",
                                                "--ucp-username": "admin", "--nocolor": True}, "2.9.16")
    assert argv == ["emergency-repair", "--existing-replica-id", "f2277ad178f7", "--ucp-url", "https://mke",
                    "--ucp-username", "admin", "--nocolor"]
    # --force deletes the other replicas' volumes: not in the table, so never on a command line
    for flag in ("--force", "--replica-ids", "--ucp-password"):
        with pytest.raises(MsrError, match="not a documented flag of the bootstrapper's emergency-repair command"):
            boot.build_argv("emergency-repair", {flag: "x"}, "2.9.16")


def test_backup_flags():
    argv = boot.build_argv("backup", {"--existing-replica-id": "f2277ad178f7", "--ucp-url": "https://mke",
                                      "--ucp-username": "admin", "--ucp-insecure-tls": True, "--debug": True,
                                      "--nocolor": True}, "2.9.16")
    assert argv == ["backup", "--existing-replica-id", "f2277ad178f7", "--ucp-url", "https://mke",
                    "--ucp-username", "admin", "--ucp-insecure-tls", "--debug", "--nocolor"]
    with pytest.raises(MsrError, match=r"--nocolor needs MSR 2.9 or later \(version 2.8.5\)"):
        boot.build_argv("backup", {"--nocolor": True}, "2.8.5")
    with pytest.raises(MsrError, match="--replica-ids is not a documented flag of the bootstrapper's backup command"):
        boot.build_argv("backup", {"--replica-ids": "f2277ad178f7"}, "2.9.16")


def test_flag_table_agrees_with_the_lab_bootstrapper():
    # The lab's bootstrapper follows msr2.md; ansible-test units has no lab installed, plain pytest has.
    lab = pytest.importorskip("msr_lab.bootstrapper.flags")
    for command, table in boot.FLAGS.items():
        known = dict((f.name, f) for f in lab.COMMANDS[command].flags)
        for flag, (kind, since) in table.items():
            f = known[flag[2:]]
            assert f.boolean == (kind == "bool"), flag
            assert f.msr_only == (since == (2, 9)), flag


@pytest.mark.parametrize("version,msr", [("2.9.16", True), ("2.8.5", False), ("latest", True), ("latest", False)])
def test_lab_bootstrapper_reads_the_tls_environment(version, msr):
    lab = pytest.importorskip("msr_lab.bootstrapper.flags")
    env = dict(boot.environment(PASSWORD), **boot.flag_environment("install", TLS, version))
    opts = lab.parse(lab.COMMANDS["install"], [], env, msr)
    assert (opts.get("dtr-ca"), opts.get("dtr-cert"), opts.get("dtr-key")) == (CA, CA, KEY)
    assert opts.get("ucp-password") == PASSWORD


def test_secrets_only_in_env_and_redacted_cmd():
    env = boot.environment(PASSWORD, CA)
    assert env == {"UCP_PASSWORD": PASSWORD, "UCP_CA": CA}
    argv = boot.build_argv("join", join_flags(), "2.9.16")
    cmd = boot.redacted_cmd("mirantis/dtr", "2.9.16", argv, env)
    assert cmd[:7] == ["docker", "run", "--rm", "-e", "UCP_CA", "-e", "UCP_PASSWORD"]
    assert cmd[7:9] == ["mirantis/dtr:2.9.16", "join"]
    blob = json.dumps([argv, cmd])
    assert PASSWORD not in blob and "BEGIN CERTIFICATE" not in blob
    assert boot.environment(PASSWORD) == {"UCP_PASSWORD": PASSWORD}


def test_redacted_cmd_names_remote_engine():
    cmd = boot.redacted_cmd("mirantis/dtr", "2.9.16", ["remove"], {"UCP_PASSWORD": "x"}, "ssh://root@m1")
    assert cmd[:3] == ["docker", "-H", "ssh://root@m1"]


@pytest.mark.parametrize("line,expected", [
    ("INFO[0003] Connecting to UCP", ("info", "Connecting to UCP")),
    ("WARN[0040] Warning! filesystem driver", ("warning", "Warning! filesystem driver")),
    ("FATA[0012] This DTR has replicas that are not working correctly.", ("fatal", "This DTR has replicas that are not working correctly.")),
    ("ERRO[0001] something", ("error", "something")),
    ('time="2024-05-01T10:00:00Z" level=fatal msg="Failed to execute phase2: \\"boom\\""', ("fatal", 'Failed to execute phase2: "boom"')),
    ("level=info msg=Joining", ("info", "Joining")),
    ("\x1b[31mFATA\x1b[0m[0005] red", ("fatal", "red")),
    ("plain text", None),
    ("", None),
])
def test_parse_line(line, expected):
    assert _bootlog.parse_line(line) == expected


def test_log_parser_phases_warnings_and_replica_id():
    p = boot.LogParser()
    data = ("\n".join(JOIN_LOG) + "\n").encode()
    # Chunks split anywhere, as the engine's log frames do.
    for i in range(0, len(data), 7):
        p.feed(data[i:i + 7])
    p.close()
    assert p.phases[0] == "Beginning Docker Trusted Registry replica join"
    assert "UCP cert validation successful" in p.phases
    assert p.phases[-1] == "There are currently 2 replicas in your DTR cluster"
    assert p.warnings == ["Warning! You are using DTR with the filesystem driver in an HA setup."]
    assert p.replica_id == "0a1b2c3d4e5f"
    assert p.fatal == [] and p.failure_message() is None
    assert all("\x1b" not in line for line in p.lines)


def test_log_parser_fatal_message_and_secret_masking():
    p = boot.LogParser(secrets=[PASSWORD])
    p.feed("FATA[0012] This DTR has replicas that are not working correctly. Make sure existing DTR replicas "
           "are healthy before joining new ones. To ignore this warning, use --unsafe-join. Error: Unhealthy "
           "replicas: b9954c115ff1\nFATA[0013] Failed to execute phase2 with " + PASSWORD)
    p.close()
    assert p.failure_message().startswith("This DTR has replicas that are not working correctly.")
    assert "Failed to execute phase2 with ********" in p.failure_message()
    assert PASSWORD not in json.dumps(p.lines)


def test_log_parser_masks_each_line_of_a_pem_secret():
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg0123456789abcdef\n-----END PRIVATE KEY-----\n"
    p = boot.LogParser(secrets=[key])
    p.feed("DEBU[0001] read --dtr-key: " + key.replace("\n", "\nDEBU[0001] ") + "\n")
    p.close()
    blob = "\n".join(p.lines)
    assert "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49" not in blob and "AwEHBG0wawIBAQQg0123456789abcdef" not in blob
    assert blob.count("********") == 2


class FakeContainer:
    """A created bootstrapper container; each step can raise what the SDK raises when the link breaks."""

    id = "c0ffee"

    def __init__(self, chunks=(), status=0, logs_error=None, start_error=None, wait_error=None, remove_error=None):
        self.chunks = list(chunks)
        self.status = status
        self.logs_error = logs_error
        self.start_error = start_error
        self.wait_error = wait_error
        self.remove_error = remove_error
        self.started = False
        self.removed = False

    def start(self):
        if self.start_error:
            raise self.start_error
        self.started = True

    def logs(self, stream, follow):
        assert stream and follow and self.started
        yield from self.chunks
        if self.logs_error:
            raise self.logs_error

    def wait(self):
        if self.wait_error:
            raise self.wait_error
        return {"StatusCode": self.status}

    def remove(self, force):
        assert force
        if self.remove_error:
            raise self.remove_error
        self.removed = True


class FakeClient:
    """The docker SDK calls Bootstrapper makes; errors are the SDK's, requests', urllib3's and paramiko's own."""

    def __init__(self, container, have_image=True, create_error=None, get_error=None, pull_error=None):
        self.container = container
        self.have_image = have_image
        self.pulled = []
        self.create_kwargs = None
        self.looked_up = []
        self.leftovers = []       # exited bootstrapper containers of earlier runs on the engine
        self.listed = []
        outer = self

        class Images:
            def get(self, ref):
                if get_error:
                    raise get_error
                if not outer.have_image:
                    raise ImageNotFound("No such image: " + ref)

            def pull(self, repo, tag):
                if pull_error:
                    raise pull_error
                outer.pulled.append((repo, tag))

        class Containers:
            def create(self, image, **kwargs):
                outer.create_kwargs = dict(kwargs, image=image)
                if create_error:
                    raise create_error
                return outer.container

            def list(self, all=False, filters=None):
                outer.listed.append((all, filters))
                return list(outer.leftovers)

            def get(self, name):
                outer.looked_up.append(name)
                if outer.container is None:
                    raise NotFound("No such container: " + name)
                return outer.container

        self.images = Images()
        self.containers = Containers()


def run(client, argv=("join",), env=None, **kw):
    b = boot.Bootstrapper(client=client)
    return b, b.run("mirantis/dtr", "2.9.16", list(argv), env or {"UCP_PASSWORD": "x"}, **kw)


class Leftover:
    def __init__(self, name, command, code):
        self.name = name
        self.labels = {boot.LABEL: command}
        self.attrs = {"State": {"Status": "exited", "ExitCode": code}}
        self.removed = False

    def remove(self, force=False):
        self.removed = True


def test_run_first_removes_exited_bootstrappers_a_killed_run_left():
    container = FakeContainer([("\n".join(JOIN_LOG) + "\n").encode()])
    client = FakeClient(container)
    old = Leftover("msr-replicas-join-00000000000a", "join", 0)
    client.leftovers = [old]
    b, r = run(client, boot.build_argv("join", join_flags(), "2.9.16"))
    assert r.ok and old.removed and container.removed
    # only exited ones of this collection (by label): a running one may be another run's, still at work
    assert client.listed == [(True, {"label": boot.LABEL, "status": "exited"})]
    assert b.cleared == ["msr-replicas-join-00000000000a (join, exit status 0)"]


def test_run_success_pulls_streams_and_removes():
    container = FakeContainer([("\n".join(JOIN_LOG) + "\n").encode()])
    client = FakeClient(container, have_image=False)
    argv = boot.build_argv("join", join_flags(), "2.9.16")
    env = boot.environment(PASSWORD, CA)
    _b, r = run(client, argv, env, name="msr-replicas-join-0a1b2c3d4e5f")
    assert r.ok and r.rc == 0 and r.parser.replica_id == "0a1b2c3d4e5f"
    assert client.pulled == [("mirantis/dtr", "2.9.16")]
    kw = client.create_kwargs
    assert kw["image"] == "mirantis/dtr:2.9.16" and kw["detach"] is True and kw["tty"] is False
    assert kw["command"] == argv and kw["environment"] == env and kw["name"] == "msr-replicas-join-0a1b2c3d4e5f"
    assert "log_config" not in kw
    assert PASSWORD not in json.dumps(kw["command"]) and PASSWORD not in json.dumps(r.cmd)
    assert container.started and container.removed


def test_run_fatal_exit_code():
    container = FakeContainer([b"INFO[0000] Beginning\nFATA[0003] Unhealthy replicas: b9954c115ff1\n"], status=1)
    _b, r = run(FakeClient(container))
    assert not r.ok and r.rc == 1 and r.failure() == "Unhealthy replicas: b9954c115ff1"
    assert container.removed


def test_run_nonzero_without_fatal():
    _b, r = run(FakeClient(FakeContainer([b"INFO[0000] x\n"], status=3)))
    assert r.failure() == "the bootstrapper exited with status 3"


def test_fatal_with_zero_exit_is_failure():
    _b, r = run(FakeClient(FakeContainer([b"level=fatal msg=\"nope\"\n"])))
    assert not r.ok and r.failure() == "nope"


# -- connection errors: each step, with the exception types the SDK really raises ------------------

SSH_DROP = paramiko.SSHException("SSH session not active")
RESET = ConnectionResetError(104, "Connection reset by peer")


@pytest.mark.parametrize("error", [requests.exceptions.ConnectionError("Connection aborted."), SSH_DROP,
                                   OSError("Error reading SSH protocol banner"), EOFError()])
def test_connect_errors_are_msr_errors(monkeypatch, error):
    def fake_client(**kwargs):
        raise error
    monkeypatch.setattr(engine.docker, "DockerClient", fake_client)
    with pytest.raises(boot.BootstrapperError) as exc:
        boot.Bootstrapper("ssh://root@m1").client()
    assert str(exc.value).startswith("cannot reach the Docker engine over SSH at ssh://root@m1")
    assert exc.value.started is False


@pytest.mark.parametrize("kw,expected", [
    (dict(get_error=requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")),
     "cannot inspect image mirantis/dtr:2.9.16 on unix:///var/run/docker.sock: Read timed out. (read timeout=60); "
     "the bootstrapper did not start"),
    (dict(have_image=False, pull_error=APIError("500 Server Error: pull access denied")),
     "cannot pull mirantis/dtr:2.9.16 on unix:///var/run/docker.sock: 500 Server Error: pull access denied; "
     "the bootstrapper did not start"),
    (dict(have_image=False, pull_error=SSH_DROP),
     "cannot pull mirantis/dtr:2.9.16 on unix:///var/run/docker.sock: SSH session not active; the bootstrapper "
     "did not start"),
])
def test_image_errors(kw, expected):
    container = FakeContainer()
    with pytest.raises(boot.BootstrapperError) as exc:
        run(FakeClient(container, **kw))
    assert str(exc.value) == expected and exc.value.started is False
    assert not container.started


def test_create_refused_by_the_engine():
    client = FakeClient(None, create_error=APIError("could not find any nodes on which the container could be created"))
    with pytest.raises(boot.BootstrapperError) as exc:
        run(client)
    assert str(exc.value) == ("cannot start the bootstrapper mirantis/dtr:2.9.16 on unix:///var/run/docker.sock: could "
                              "not find any nodes on which the container could be created; the bootstrapper did not start")
    assert exc.value.started is False and client.looked_up == []


def test_link_lost_during_create_removes_by_name():
    container = FakeContainer()
    client = FakeClient(container, create_error=requests.exceptions.ConnectionError(RESET))
    b = boot.Bootstrapper(client=client)
    with pytest.raises(boot.BootstrapperError) as exc:
        b.run("mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"}, name="msr-replicas-join-1")
    assert exc.value.started is False
    assert "while creating the bootstrapper container msr-replicas-join-1" in str(exc.value)
    assert client.looked_up == ["msr-replicas-join-1"] and container.removed and b.unremoved == []


def test_start_refused():
    container = FakeContainer(start_error=APIError("driver failed programming external connectivity"))
    with pytest.raises(boot.BootstrapperError) as exc:
        run(FakeClient(container))
    assert exc.value.started is False and str(exc.value).endswith("; the bootstrapper did not start")
    assert container.removed


def test_link_lost_during_start():
    container = FakeContainer(start_error=EOFError())
    with pytest.raises(boot.BootstrapperError) as exc:
        run(FakeClient(container))
    assert exc.value.started is True
    assert "may have started, changed the cluster and still be running" in str(exc.value)
    assert container.removed


@pytest.mark.parametrize("error", [
    urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(0 bytes read)"),
    requests.exceptions.ChunkedEncodingError("Connection broken"), SSH_DROP, RESET, socket.timeout("timed out"),
])
def test_link_lost_while_streaming(error):
    container = FakeContainer([b"INFO[0000] Beginning\n"], logs_error=error)
    with pytest.raises(boot.BootstrapperError) as exc:
        run(FakeClient(container), name="msr-replicas-join-2")
    msg = str(exc.value)
    assert msg.startswith("lost the bootstrapper msr-replicas-join-2 on unix:///var/run/docker.sock while it ran (")
    assert msg.endswith("; the bootstrapper may have started, changed the cluster and still be running; "
                        "last output: INFO[0000] Beginning")
    assert exc.value.started is True and exc.value.log == ["INFO[0000] Beginning"]
    assert container.removed


def test_link_lost_while_waiting():
    container = FakeContainer([b"INFO[0000] Beginning\n"], wait_error=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(boot.BootstrapperError) as exc:
        run(FakeClient(container))
    assert exc.value.started is True and "(read timed out)" in str(exc.value)
    assert container.removed


@pytest.mark.parametrize("error", [requests.exceptions.ConnectionError(RESET), SSH_DROP, EOFError(), RESET])
def test_remove_failure_is_reported_not_raised(error):
    container = FakeContainer([b"INFO[0000] Join is complete\n"], remove_error=error)
    b, r = run(FakeClient(container), name="msr-replicas-join-3")
    assert r.ok
    assert len(b.unremoved) == 1 and b.unremoved[0].startswith("msr-replicas-join-3 (")


def test_remove_failure_keeps_the_run_error():
    container = FakeContainer(logs_error=SSH_DROP, remove_error=SSH_DROP)
    client = FakeClient(container)
    b = boot.Bootstrapper(client=client)
    with pytest.raises(boot.BootstrapperError, match="lost the bootstrapper"):
        b.run("mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"}, name="n")
    assert b.unremoved == ["n (SSH session not active)"]


def test_unknown_host_key_message():
    import paramiko
    msg = engine.explain_connect_error("ssh://root@10.0.0.5", paramiko.SSHException("Server '10.0.0.5' not found in known_hosts"))
    assert "SSH host key of 10.0.0.5 is not trusted" in msg
    assert "ssh-keyscan -p 22 10.0.0.5 >> ~/.ssh/known_hosts" in msg
    msg = engine.explain_connect_error("ssh://root@10.0.0.5:2200", paramiko.SSHException("Server '[10.0.0.5]:2200' not found in known_hosts"))
    assert "[10.0.0.5]:2200" in msg and "ssh-keyscan -p 2200 10.0.0.5" in msg


def test_auth_failure_message():
    msg = engine.explain_connect_error("ssh://deploy@m1", Exception("Authentication failed."))
    assert msg.startswith("SSH authentication to deploy@m1 failed") and "IdentityFile" in msg


def test_ssh_client_uses_paramiko_with_reject_policy(monkeypatch):
    seen = {}

    def fake_client(**kwargs):
        seen.update(kwargs)
        # paramiko's RejectPolicy raises exactly this
        raise paramiko.SSHException("Server '[127.0.0.1]:1' not found in known_hosts")
    monkeypatch.setattr(engine.docker, "DockerClient", fake_client)
    with pytest.raises(MsrError, match="not trusted"):
        boot.Bootstrapper("ssh://root@127.0.0.1:1").client()
    assert seen["use_ssh_client"] is False and seen["base_url"] == "ssh://root@127.0.0.1:1"


def test_replica_ids():
    rid = boot.new_replica_id()
    assert boot.REPLICA_ID_RE.match(rid) and rid != boot.new_replica_id()
    assert boot.parse_version("2.9.16") == (2, 9) and boot.parse_version("latest") is None
