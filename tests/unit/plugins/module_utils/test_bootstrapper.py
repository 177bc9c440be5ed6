# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest
from docker.errors import APIError, ImageNotFound

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
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
    assert boot.parse_line(line) == expected


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


class FakeContainer:
    def __init__(self, chunks, status=0, logs_error=None):
        self.chunks = chunks
        self.status = status
        self.logs_error = logs_error
        self.removed = False

    def logs(self, stream, follow):
        assert stream and follow
        yield from self.chunks
        if self.logs_error:
            raise self.logs_error

    def wait(self):
        return {"StatusCode": self.status}

    def remove(self, force):
        assert force
        self.removed = True


class FakeClient:
    def __init__(self, container, have_image=True, run_error=None):
        self.container = container
        self.have_image = have_image
        self.run_error = run_error
        self.pulled = []
        self.run_kwargs = None
        outer = self

        class Images:
            def get(self, ref):
                if not outer.have_image:
                    raise ImageNotFound("No such image: " + ref)

            def pull(self, repo, tag):
                outer.pulled.append((repo, tag))

        class Containers:
            def run(self, image, **kwargs):
                if outer.run_error:
                    raise outer.run_error
                outer.run_kwargs = dict(kwargs, image=image)
                return outer.container

        self.images = Images()
        self.containers = Containers()


def test_run_success_pulls_streams_and_removes():
    container = FakeContainer([("\n".join(JOIN_LOG) + "\n").encode()])
    client = FakeClient(container, have_image=False)
    b = boot.Bootstrapper(client=client)
    argv = boot.build_argv("join", join_flags(), "2.9.16")
    env = boot.environment(PASSWORD, CA)
    r = b.run("mirantis/dtr", "2.9.16", argv, env, name="msr-replicas-join-0a1b2c3d4e5f")
    assert r.ok and r.rc == 0 and r.parser.replica_id == "0a1b2c3d4e5f"
    assert client.pulled == [("mirantis/dtr", "2.9.16")]
    kw = client.run_kwargs
    assert kw["image"] == "mirantis/dtr:2.9.16" and kw["detach"] is True and kw["tty"] is False
    assert kw["command"] == argv and kw["environment"] == env and kw["name"] == "msr-replicas-join-0a1b2c3d4e5f"
    assert PASSWORD not in json.dumps(kw["command"]) and PASSWORD not in json.dumps(r.cmd)
    assert container.removed


def test_run_fatal_exit_code():
    container = FakeContainer([b"INFO[0000] Beginning\nFATA[0003] Unhealthy replicas: b9954c115ff1\n"], status=1)
    r = boot.Bootstrapper(client=FakeClient(container)).run("mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"})
    assert not r.ok and r.rc == 1 and r.failure() == "Unhealthy replicas: b9954c115ff1"
    assert container.removed


def test_run_nonzero_without_fatal():
    r = boot.Bootstrapper(client=FakeClient(FakeContainer([b"INFO[0000] x\n"], status=3))).run(
        "mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"})
    assert r.failure() == "the bootstrapper exited with status 3"


def test_fatal_with_zero_exit_is_failure():
    r = boot.Bootstrapper(client=FakeClient(FakeContainer([b"level=fatal msg=\"nope\"\n"]))).run(
        "mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"})
    assert not r.ok and r.failure() == "nope"


def test_container_removed_when_stream_breaks():
    container = FakeContainer([b"INFO[0000] Beginning\n"], logs_error=IOError("read timed out"))
    with pytest.raises(MsrError, match=r"lost the bootstrapper .*\(read timed out\).*Beginning"):
        boot.Bootstrapper(client=FakeClient(container)).run("mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"})
    assert container.removed


def test_start_error_is_clear():
    client = FakeClient(None, run_error=APIError("could not find any nodes on which the container could be created"))
    with pytest.raises(MsrError, match="cannot start the bootstrapper mirantis/dtr:2.9.16 on unix:///var/run/docker.sock"):
        boot.Bootstrapper(client=client).run("mirantis/dtr", "2.9.16", ["join"], {"UCP_PASSWORD": "x"})


def test_unknown_host_key_message():
    import paramiko
    msg = boot.explain_connect_error("ssh://root@10.0.0.5", paramiko.SSHException("Server '10.0.0.5' not found in known_hosts"))
    assert "SSH host key of 10.0.0.5 is not trusted" in msg
    assert "ssh-keyscan -p 22 10.0.0.5 >> ~/.ssh/known_hosts" in msg
    msg = boot.explain_connect_error("ssh://root@10.0.0.5:2200", paramiko.SSHException("Server '[10.0.0.5]:2200' not found in known_hosts"))
    assert "[10.0.0.5]:2200" in msg and "ssh-keyscan -p 2200 10.0.0.5" in msg


def test_auth_failure_message():
    msg = boot.explain_connect_error("ssh://deploy@m1", Exception("Authentication failed."))
    assert msg.startswith("SSH authentication to deploy@m1 failed") and "IdentityFile" in msg


def test_ssh_client_uses_paramiko_with_reject_policy(monkeypatch):
    seen = {}

    def fake_client(**kwargs):
        seen.update(kwargs)
        raise Exception("Server '[127.0.0.1]:1' not found in known_hosts")
    monkeypatch.setattr(boot.docker, "DockerClient", fake_client)
    with pytest.raises(MsrError, match="not trusted"):
        boot.Bootstrapper("ssh://root@127.0.0.1:1").client()
    assert seen["use_ssh_client"] is False and seen["base_url"] == "ssh://root@127.0.0.1:1"


def test_replica_ids():
    rid = boot.new_replica_id()
    assert boot.REPLICA_ID_RE.match(rid) and rid != boot.new_replica_id()
    assert boot.parse_version("2.9.16") == (2, 9) and boot.parse_version("latest") is None
