"""The emulated MSR bootstrapper, run as a container of the real emulated engine against a real MkeApp over TLS."""
from __future__ import annotations

import asyncio
import re
import socket
import threading
import time

import pytest
from logrus import KV, fatal_lines, messages, records

from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper import program as bootstrapper
from msr_lab.common.httpserver import close_server, serve_app
from msr_lab.common.model import Lab, Node
from msr_lab.mke import config
from msr_lab.common.pki import LabPKI
from msr_lab.engine.state import EngineState
from msr_lab.mke.app import MkeApp
from msr_lab.msr.cluster import Cluster

IMAGE = "mirantis/dtr:2.9.16"
KBASE = ("This DTR has replicas that are not working correctly. Make sure existing DTR replicas are healthy "
         "before joining new ones. To ignore this warning, use --unsafe-join. Error: Unhealthy replicas: ")


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    t = threading.Thread(target=lp.run_forever, daemon=True)
    t.start()
    yield lp
    lp.call_soon_threadsafe(lp.stop)
    t.join(5)
    lp.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = LabPKI(tmp_path_factory.mktemp("pki"))
    p.ensure(["localhost"], ["127.0.0.1"])
    return p


class Env:
    """A lab (manager1, lb1, worker1-4), MKE on 127.0.0.1 over TLS, and a way to run the bootstrapper."""

    def __init__(self, lab, url, ca):
        self.lab, self.url, self.ca = lab, url, ca

    def seed(self, n, version="2.9.16"):
        rids = [f"{i + 1:012x}" for i in range(n)]
        for i, rid in enumerate(rids):
            if i == 0:
                self.lab.cluster.seed_install(f"worker{i + 1}", version, rid)
            else:
                self.lab.cluster.add_member(rid, f"worker{i + 1}", version)
                self.lab.cluster.create_replica_objects(rid, f"worker{i + 1}", version)
                self.lab.cluster.mark_running(rid)
        return rids

    def ucp(self, ca=True):
        return ["--ucp-url", self.url, "--ucp-username", "admin"] + (["--ucp-ca", self.ca] if ca else [])

    def run(self, args, env=None, tty=False, stdin=None, node="manager1", image=IMAGE, timeout=30):
        eng = self.lab.nodes[node].engine
        eng.pull(image)
        env = {"UCP_PASSWORD": "pw"} if env is None else env
        c = eng.create_container(None, {"Image": image, "Cmd": args, "Tty": tty, "OpenStdin": stdin is not None,
                                        "Env": [f"{k}={v}" for k, v in env.items()]})
        eng.start_container(c)
        if stdin is not None:
            eng.write_stdin(c, stdin)
            eng.close_stdin(c)
        code = eng.wait_container(c, timeout=timeout)
        assert code is not None, "the bootstrapper did not finish"
        out = b"".join(d for s, d, _ in c.output if s == 1).decode()
        err = b"".join(d for s, d, _ in c.output if s == 2).decode()
        eng.remove_container(c, force=True)
        return code, out, err

    def names(self, node):
        eng = self.lab.nodes[node].engine
        return {c.name for c in eng.list_containers(True)}, set(eng.volumes)


@pytest.fixture
def env(loop, pki):
    lab = Lab({"storage": "filesystem", "mke_username": "admin", "mke_password": "pw",
               "msr_image": "mirantis/dtr", "msr_version": "2.9.16", "ca_pem": pki.ca_pem})
    for name, role in [("manager1", "manager"), ("lb1", "lb")] + [(f"worker{i}", "worker") for i in range(1, 5)]:
        node = lab.nodes[name] = Node(name=name, role=role, addr="127.0.0.1")
        if node.in_mke:
            node.engine = EngineState(lab, node)
    lab.cluster = Cluster(lab)
    lab.faults.join_seconds = 0.2
    bootstrapper.register()      # other tests' fixtures swap the program registry and restore it
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = asyncio.run_coroutine_threadsafe(serve_app(MkeApp(lab), sock, pki.server_context()), loop).result(5)
    yield Env(lab, f"https://127.0.0.1:{port}", pki.ca_pem)
    asyncio.run_coroutine_threadsafe(close_server(server), loop).result(5)


def infos(err):
    return messages(err)


def assert_in_order(lines, wanted):
    pos = 0
    for w in wanted:
        found = [i for i in range(pos, len(lines)) if w in lines[i]]
        assert found, f"{w!r} missing after line {pos}:\n" + "\n".join(lines)
        pos = found[0] + 1


# ---------------------------------------------------------------- parsing, help, output

def test_help_lists_commands_and_versioned_flags(env):
    code, out, err = env.run(["--help"])
    assert code == 0 and "join" in out and "emergency-repair" in out and err == ""
    code, out, _ = env.run(["join", "--help"])
    assert code == 0
    assert "--unsafe-join" in out and "$MSR_UNSAFE_JOIN" in out and "$MSR_REPLICA_ID" in out and "--nocolor" in out
    code, out, _ = env.run(["help", "remove"])
    assert code == 0 and "--force" in out and "$DTR_FORCE_REMOVE_REPLICA" in out and "$MSR_REMOVE_REPLICA_IDS" in out
    code, out, _ = env.run(["remove", "--help"], image="mirantis/dtr:2.8.5")
    assert code == 0 and "--force" not in out and "--nocolor" not in out and "$DTR_REMOVE_REPLICA_IDS" in out
    code, out, _ = env.run(["join", "--help"], image="docker/dtr:2.7.8")
    assert "$DTR_REPLICA_ID" in out and "$DTR_UNSAFE_JOIN" in out and "$UCP_PASSWORD" in out


def test_unknown_flag_and_command_fail(env):
    code, out, err = env.run(["join", "--bogus", "x"])
    assert code == 1 and re.fullmatch(r'time="[0-9T:Z-]+" level=fatal msg="flag provided but not defined: -bogus"\n',
                                      err)
    code, _, err = env.run(["frobnicate"])
    assert code == 1 and "frobnicate" in fatal_lines(err)[0]
    code, _, err = env.run(["remove", "--force"], image="mirantis/dtr:2.8.5")   # 2.9-only flag
    assert code == 1 and "-force" in err


def test_parse_forms_and_precedence():
    cmd = F.COMMANDS["join"]
    opts = F.parse(cmd, ["--ucp-node=w1", "--unsafe-join=false", "--skip-network-test", "--ucp-url", "u"],
                   {"MSR_UNSAFE_JOIN": "true", "UCP_URL": "from-env", "MSR_REPLICA_ID": "abc"}, True)
    assert opts.get("ucp-node") == "w1" and opts.get("unsafe-join") is False
    assert opts.get("skip-network-test") is True and opts.get("ucp-url") == "u"
    assert opts.get("existing-replica-id") == "abc" and opts.get("replica-http-port") == "80"
    old = F.parse(cmd, [], {"DTR_REPLICA_ID": "old", "MSR_REPLICA_ID": "new"}, False)
    assert old.get("existing-replica-id") == "old"
    with pytest.raises(F.UsageError, match="invalid boolean"):
        F.parse(cmd, ["--unsafe-join=maybe"], {}, True)
    with pytest.raises(F.UsageError, match="needs an argument"):
        F.parse(cmd, ["--ucp-url"], {}, True)


def test_missing_value_without_tty_fails_promptly(env):
    t0 = time.monotonic()
    code, out, err = env.run(["join", "--ucp-username", "admin"], env={})
    assert code == 1 and time.monotonic() - t0 < 5
    assert "--ucp-url" in fatal_lines(err)[0] and "$UCP_URL" in err and out == ""


def test_colour_only_on_tty_and_not_with_nocolor(env):
    _, _, err = env.run(["join"], env={}, tty=True)
    assert "\x1b[36mINFO\x1b[0m[0000] Beginning" in err and "\x1b[31mFATA\x1b[0m" in err
    assert "--ucp-url" in err and "$UCP_URL" in err          # -t without -i: EOF at the prompt, no wait
    _, _, err = env.run(["join", "--nocolor"], env={}, tty=True)   # logrus without colours: key=value lines
    assert "\x1b[" not in err and fatal_lines(err) and all(KV.match(line) for line in err.splitlines())
    _, _, err = env.run(["join"], env={"NOCOLOR": "true"}, tty=True)
    assert "\x1b[" not in err
    _, _, err = env.run(["join"], env={}, tty=True, image="docker/dtr:2.7.8")
    assert "\x1b[31mFATA\x1b[0m" in err


def test_log_format_follows_the_tty(env):
    """logrus: key=value lines without a TTY (how automation runs it), INFO[0003] only on a coloured TTY."""
    rid, = env.seed(1)
    code, _, err = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid] + env.ucp())
    assert code == 0, err
    lines = err.splitlines()
    assert lines and all(KV.match(line) for line in lines), err
    assert 'level=info msg="Beginning Docker Trusted Registry replica join"' in lines[0]
    assert 'level=warning msg="You currently have an even number of replicas' in err
    assert any(m.startswith("Replica ID is set to: ") for m in messages(err))
    # quotes inside a message are escaped as Go's %q does
    code, _, err = env.run(["frobnicate"])
    assert 'msg="Unknown command \\"frobnicate\\". Run with --help' in err
    code, _, err = env.run(["join", "--ucp-node", "worker3", "--existing-replica-id", rid] + env.ucp(), tty=True)
    assert code == 0, err
    assert err.startswith("\x1b[36mINFO\x1b[0m[0000] Beginning Docker Trusted Registry replica join\n")
    assert "time=" not in err


def test_tty_prompts_for_missing_password(env):
    rid, = env.seed(1)
    code, out, err = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid] + env.ucp(),
                             env={}, tty=True, stdin=b"pw\n")
    assert code == 0, err
    assert "ucp-password" in out
    code, out, err = env.run(["join", "--ucp-node", "worker3"] + env.ucp(), tty=True, stdin=b"\n")
    assert code == 0, err
    assert f"Choose a replica to join to [{rid}]" in out and len(env.lab.cluster.replicas) == 3


def test_images_lists_the_version(env):
    code, out, _ = env.run(["images"], image="registry.mirantis.com/msr/dtr:2.9.16")
    refs = out.split()
    assert code == 0 and "registry.mirantis.com/msr/dtr-api:2.9.16" in refs
    assert "registry.mirantis.com/msr/dtr-rethink:2.9.16" in refs and all(r.endswith(":2.9.16") for r in refs)


# ---------------------------------------------------------------- MKE access

def test_bad_credentials(env):
    env.seed(1)
    code, _, err = env.run(["join", "--ucp-node", "worker2"] + env.ucp(), env={"UCP_PASSWORD": "wrong"})
    assert code == 1 and "Invalid UCP credentials" in err.splitlines()[-1]


def test_untrusted_ca_then_insecure_tls(env):
    rid, = env.seed(1)
    code, _, err = env.run(["remove", "--replica-ids", "0000000000aa", "--existing-replica-id", rid]
                           + env.ucp(ca=False))
    assert code == 1 and fatal_lines(err)[-1].endswith("x509: certificate signed by unknown authority")
    code, _, err = env.run(["remove", "--replica-ids", "0000000000aa", "--existing-replica-id", rid,
                            "--ucp-insecure-tls"] + env.ucp(ca=False))
    assert code == 1 and "UCP cert validation successful" in err
    assert "Replica 0000000000aa not found" in err.splitlines()[-1]


def test_mke_server_error(env):
    env.lab.faults.mke_status, env.lab.faults.mke_error_count = 503, 1
    code, _, err = env.run(["destroy", "--replica-id", "0000000000aa"] + env.ucp())
    assert code == 1 and "unexpected status 503" in err.splitlines()[-1]


def test_connection_refused(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    code, _, err = env.run(["destroy", "--replica-id", "0000000000aa", "--ucp-url", f"127.0.0.1:{port}",
                            "--ucp-username", "admin", "--ucp-insecure-tls"])
    assert code == 1 and "connection refused" in err.splitlines()[-1]


# ---------------------------------------------------------------- install / join

def test_install_then_refused_when_installed(env):
    code, _, err = env.run(["install", "--ucp-node", "worker1", "--replica-id", "00000000abcd"] + env.ucp())
    assert code == 0, err
    assert_in_order(infos(err), ["Beginning Docker Trusted Registry installation", "Validating UCP cert",
                                 "UCP cert validation successful", "Verifying [80 443] ports on worker1",
                                 "Waiting for phase2 container", "Installation is complete",
                                 "Replica ID is set to: 00000000abcd",
                                 "You can use flag '--existing-replica-id 00000000abcd'"])
    assert env.lab.cluster.replicas["00000000abcd"].state == "running"
    assert "dtr-nginx-00000000abcd" in env.names("worker1")[0] and "dtr-phase2" not in env.names("worker1")[0]
    code, _, err = env.run(["install", "--ucp-node", "worker2"] + env.ucp())
    assert code == 1 and "already installed" in err.splitlines()[-1]


def test_join_success(env):
    rid, = env.seed(1)
    code, _, err = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid, "--replica-id",
                            "0000000000bb"] + env.ucp())
    assert code == 0, err
    assert_in_order(infos(err), [
        "Beginning Docker Trusted Registry replica join", "Validating UCP cert", "Connecting to UCP",
        "UCP cert validation successful", "Checking if the node is okay to install on",
        "Starting overlay network test", "Overlay networking test passed.", "Creating network: worker2/dtr-br",
        "Waiting for phase2 container to be known to the Docker daemon", "Starting UCP connectivity test",
        "Setting up replica volumes...", "Getting container configuration and starting containers...",
        "Creating dtr-rethinkdb-0000000000bb", "Establishing connection with Rethinkdb",
        "Waiting for DTR to start...", "Successfully registered dtr with UCP", "Updating replication settings...",
        "(Re)configuring Database - replicaCount=2", "Configured Table", "filesystem driver in an HA setup",
        "Join is complete", "Replica ID is set to: 0000000000bb",
        "There are currently 2 replicas in your Docker Trusted Registry cluster", "even number of replicas",
        "It is recommended that you have 3, 5 or 7 replicas"])
    containers, volumes = env.names("worker2")
    assert {f"dtr-{s}-0000000000bb" for s in ("rethinkdb", "nginx", "api", "registry")} <= containers
    assert {"dtr-rethink-0000000000bb", "dtr-ca-0000000000bb"} <= volumes and "dtr-phase2" not in containers
    assert env.lab.cluster.replicas["0000000000bb"].state == "running"
    assert env.lab.cluster.health() == {rid: "OK", "0000000000bb": "OK"}


def test_join_from_env_vars_only(env):
    rid, = env.seed(1)
    code, _, err = env.run(["join"], env={"UCP_URL": env.url, "UCP_USERNAME": "admin", "UCP_PASSWORD": "pw",
                                          "UCP_CA": env.ca, "MSR_REPLICA_ID": rid, "UCP_NODE": "worker3",
                                          "MSR_SKIP_NETWORK_TEST": "1"})
    assert code == 0, err
    assert "Starting overlay network test" not in err
    assert [r.node for r in env.lab.cluster.replicas.values()] == ["worker1", "worker3"]
    # 2.8 spells the existing replica DTR_REPLICA_ID
    code, _, err = env.run(["join", "--ucp-node", "worker4"] + env.ucp(), image="mirantis/dtr:2.8.5",
                           env={"UCP_PASSWORD": "pw", "DTR_REPLICA_ID": rid})
    assert code == 1 and "runs version 2.9.16" in err.splitlines()[-1]


def test_join_without_existing_replica_and_no_tty_fails(env):
    env.seed(1)
    code, _, err = env.run(["join", "--ucp-node", "worker2"] + env.ucp())
    assert code == 1 and "--existing-replica-id" in err and "$MSR_REPLICA_ID" in err


def test_join_random_node_without_ucp_node(env):
    rid, = env.seed(1)
    code, _, err = env.run(["join", "--existing-replica-id", rid] + env.ucp())
    assert code == 0, err
    nodes = sorted(r.node for r in env.lab.cluster.replicas.values())
    assert nodes[0] == "worker1" and nodes[1] in ("worker2", "worker3", "worker4")


def test_join_refusals_for_target_node_and_ids(env):
    rid, _ = env.seed(2)
    base = ["join", "--existing-replica-id", rid] + env.ucp()
    cases = [(["--ucp-node", "worker2"], "already runs DTR replica"),
             (["--ucp-node", "nosuch"], "not part of the UCP cluster"),
             (["--ucp-node", "worker3", "--replica-id", "XYZ"], "12-character hexadecimal"),
             (["--ucp-node", "worker3", "--replica-id", rid], "already exists")]
    for extra, text in cases:
        code, _, err = env.run(base + extra)
        assert code == 1 and records(err)[-1][0] == "fatal" and text in records(err)[-1][1], err
    env.lab.nodes["worker3"].state = "down"
    code, _, err = env.run(base + ["--ucp-node", "worker3"])
    assert code == 1 and "not ready" in err.splitlines()[-1]
    code, _, err = env.run(["join", "--existing-replica-id", "00000000dead", "--ucp-node", "worker4"] + env.ucp())
    assert code == 1 and "not part of this DTR cluster" in err.splitlines()[-1]
    assert len(env.lab.cluster.replicas) == 2


def test_unhealthy_cluster_refused_then_unsafe_join(env):
    r1, r2, r3 = env.seed(3)
    env.lab.cluster.stop_replica(r3)
    code, _, err = env.run(["join", "--ucp-node", "worker4", "--existing-replica-id", r1] + env.ucp())
    # phase2's own FATA (the kbase text), then the bootstrapper's (msr2.md §1.10)
    first, last = fatal_lines(err)
    assert code == 1 and KBASE in first and r3 in first and "state: disconnected" in first
    assert last == ("Failed to execute phase2: Problem running container 'dtr-phase2' from image "
                    "'mirantis/dtr:2.9.16': non-zero return code 1")
    assert messages(err).index("Waiting for phase2 container to be known to the Docker daemon") < \
        messages(err).index(first)
    assert len(env.lab.cluster.replicas) == 3 and "dtr-phase2" not in env.names("worker4")[0]
    code, _, err = env.run(["join", "--ucp-node", "worker4", "--existing-replica-id", r1, "--unsafe-join"]
                           + env.ucp())
    assert code == 0, err
    assert any("--unsafe-join" in m for lvl, m in records(err) if lvl == "warning") and len(env.lab.cluster.replicas) == 4


NO_NODES = 'Error response from daemon: {"message":"could not find any nodes on which the container could be created"}'


def test_mke_scheduling_decides_where_the_bootstrapper_may_run_containers(env):
    """Not the bootstrapper but MKE's scheduler refuses managers, drained nodes and, without admin
    scheduling, every MSR container (msr2.md §1.10, §3.3)."""
    rid, = env.seed(1)
    base = ["join", "--existing-replica-id", rid] + env.ucp()
    config.set_admin_scheduling(env.lab, False)
    for target in ("worker2", "manager1"):
        code, _, err = env.run(base + ["--ucp-node", target])
        assert code == 1 and fatal_lines(err) == [NO_NODES], err
        containers, volumes = env.names(target)
        assert not [n for n in containers | volumes if n.startswith("dtr-")], (containers, volumes)
    assert list(env.lab.cluster.replicas) == [rid]
    config.set_admin_scheduling(env.lab, True)
    env.lab.nodes["worker3"].availability = "drain"
    code, _, err = env.run(base + ["--ucp-node", "worker3"])
    assert code == 1 and fatal_lines(err) == [NO_NODES], err
    # allowed: the product does not refuse a replica on a manager (the preflight role does)
    code, _, err = env.run(base + ["--ucp-node", "manager1"])
    assert code == 0, err
    assert env.lab.cluster.replica_on("manager1") is not None


def test_install_needs_admin_scheduling(env):
    config.set_admin_scheduling(env.lab, False)
    code, _, err = env.run(["install", "--ucp-node", "worker1"] + env.ucp())
    assert code == 1 and fatal_lines(err) == [NO_NODES], err
    assert not env.lab.cluster.replicas and not [n for n in env.names("worker1")[0] if n.startswith("dtr-")]
    config.set_admin_scheduling(env.lab, True)
    code, _, err = env.run(["install", "--ucp-node", "worker1"] + env.ucp())
    assert code == 0, err


def test_kill_at_phase_leaves_a_joining_member(env):
    rid, = env.seed(1)
    env.lab.faults.kill_at_phase = "rethink"
    code, _, err = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid, "--replica-id",
                            "0000000000cc"] + env.ucp())
    assert code == 137
    assert env.lab.faults.kill_at_phase is None
    assert env.lab.cluster.replicas["0000000000cc"].state == "joining"
    assert "dtr-rethinkdb-0000000000cc" in env.names("worker2")[0]
    assert "Join is complete" not in err and "Establishing connection with Rethinkdb" not in err
    # the half-made replica is unhealthy, so the next join is refused until it is removed
    code, _, err = env.run(["join", "--ucp-node", "worker3", "--existing-replica-id", rid] + env.ucp())
    assert code == 1 and KBASE in err and "0000000000cc" in err
    code, _, err = env.run(["remove", "--replica-ids", "0000000000cc", "--existing-replica-id", rid] + env.ucp())
    assert code == 0, err
    assert list(env.lab.cluster.replicas) == [rid] and not any("0000000000cc" in n for n in env.names("worker2")[0])


def test_kill_before_containers_creates_nothing(env):
    rid, = env.seed(1)
    env.lab.faults.kill_at_phase = "containers"
    code, _, _ = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid] + env.ucp())
    assert code == 137 and list(env.lab.cluster.replicas) == [rid]


# ---------------------------------------------------------------- remove / destroy / emergency-repair

def test_remove_shrinks_membership_and_deletes_objects(env):
    r1, r2, r3 = env.seed(3)
    code, _, err = env.run(["remove", "--replica-ids", r3, "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    assert_in_order(infos(err), ["Validating UCP cert", f"Removing replica {r3}",
                                 "(Re)configuring Database - replicaCount=2", f"Successfully removed replica(s) {r3}",
                                 "There are currently 2 replicas"])
    assert sorted(env.lab.cluster.replicas) == [r1, r2]
    containers, volumes = env.names("worker3")
    assert not any(r3 in n for n in containers | volumes)


def test_remove_refusals(env):
    r1, r2, r3 = env.seed(3)
    base = ["remove", "--existing-replica-id", r1] + env.ucp()
    code, _, err = env.run(base + ["--replica-ids", f"{r1},{r2}"])
    assert code == 1 and "also listed for removal" in err.splitlines()[-1]
    code, _, err = env.run(base + ["--replica-ids", "00000000ffff"])
    assert code == 1 and "not found" in err.splitlines()[-1]
    code, _, err = env.run(["remove", "--replica-ids", r3] + env.ucp())
    assert code == 1 and "$MSR_REPLICA_ID" in err
    env.lab.cluster.stop_replica(r2)
    code, _, err = env.run(base + ["--replica-ids", r3])
    assert code == 1 and "must be healthy" in err.splitlines()[-1] and "--force" in err.splitlines()[-1]
    assert len(env.lab.cluster.replicas) == 3
    code, _, err = env.run(base + ["--replica-ids", r3, "--force"])
    assert code == 0 and "Ignoring pre-checks" in err
    assert sorted(env.lab.cluster.replicas) == [r1, r2]


def test_remove_unhealthy_replica_and_deprecated_flag(env):
    r1, r2, r3 = env.seed(3)
    env.lab.cluster.stop_replica(r3)
    code, _, err = env.run(["remove", "--replica-id", r3, "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    assert "deprecated" in err and sorted(env.lab.cluster.replicas) == [r1, r2]


def test_remove_on_unreachable_node_warns_about_leftovers(env):
    r1, r2, r3 = env.seed(3)
    env.lab.nodes["worker3"].partitioned = True
    code, _, err = env.run(["remove", "--replica-ids", r3, "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    warned = [m for lvl, m in records(err) if lvl == "warning" and "unreachable" in m]
    assert warned and f"destroy --replica-id {r3}" in warned[0]
    assert f"dtr-rethinkdb-{r3}" in env.names("worker3")[0]


def test_destroy_leaves_a_ghost(env):
    r1, r2, r3 = env.seed(3)
    code, _, err = env.run(["destroy", "--replica-id", r2] + env.ucp())
    assert code == 0, err
    assert "without notifying the rest of the cluster" in err
    containers, volumes = env.names("worker2")
    assert not any(r2 in n for n in containers | volumes)
    assert env.lab.cluster.replicas[r2].state == "ghost"
    assert env.lab.cluster.health()[r2] != "OK"
    code, _, err = env.run(["join", "--ucp-node", "worker4", "--existing-replica-id", r1] + env.ucp())
    assert code == 1 and KBASE + r2 in err
    # the documented fix: remove the ghost, then join again
    code, _, err = env.run(["remove", "--replica-ids", r2, "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    code, _, err = env.run(["join", "--ucp-node", "worker4", "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    assert sorted(r.node for r in env.lab.cluster.replicas.values()) == ["worker1", "worker3", "worker4"]
    assert "even number" not in err


def test_destroy_acts_only_through_mke(env):
    """destroy reaches a node's engine only through MKE: a partitioned node refuses, everything stays."""
    r1, r2, r3 = env.seed(3)
    before = env.names("worker2")
    env.lab.nodes["worker2"].partitioned = True
    code, _, err = env.run(["destroy", "--replica-id", r2] + env.ucp())
    assert code == 1, err
    assert fatal_lines(err) == [f"Failed to destroy replica {r2} on node worker2: Error response from daemon: the "
                                "Docker engine of node worker2 (127.0.0.1:12376) is unreachable: dial tcp "
                                "127.0.0.1:12376: i/o timeout"]
    assert env.names("worker2") == before and env.lab.cluster.replicas[r2].state != "ghost"
    env.lab.nodes["worker2"].partitioned = False
    code, _, err = env.run(["destroy", "--replica-id", r2] + env.ucp())
    assert code == 0, err
    assert not [n for n in env.names("worker2")[0] | env.names("worker2")[1] if r2 in n]
    assert env.lab.cluster.replicas[r2].state == "ghost"


def test_destroy_of_leftovers_finds_them_through_mke(env):
    env.seed(1)
    engine = env.lab.nodes["worker3"].engine
    engine.create_volume("dtr-ca-0000000000ee")
    engine.create_volume("dtr-rethink-0000000000ee")
    env.lab.nodes["worker3"].partitioned = True     # MKE cannot see them: nothing to destroy, and it says so
    code, _, err = env.run(["destroy", "--replica-id", "0000000000ee"] + env.ucp())
    assert code == 1 and "No containers or volumes of replica 0000000000ee were found" in fatal_lines(err)[0]
    assert {"dtr-ca-0000000000ee", "dtr-rethink-0000000000ee"} <= set(engine.volumes)
    env.lab.nodes["worker3"].partitioned = False
    code, _, err = env.run(["destroy", "--replica-id", "0000000000ee"] + env.ucp())
    assert code == 0, err
    assert not [v for v in engine.volumes if "0000000000ee" in v]


def test_join_cannot_reach_an_unreachable_target(env):
    rid, = env.seed(1)
    env.lab.nodes["worker2"].partitioned = True
    code, _, err = env.run(["join", "--ucp-node", "worker2", "--existing-replica-id", rid, "--skip-network-test"]
                           + env.ucp())
    assert code == 1 and "not ready" in fatal_lines(err)[0]     # MERGE-NOTE: heartbeat delay -> "unreachable"
    assert list(env.lab.cluster.replicas) == [rid] and env.names("worker2") == (set(), set())


def test_destroy_needs_replica_id(env):
    code, _, err = env.run(["destroy"] + env.ucp())
    assert code == 1 and "--replica-id" in err and "$MSR_DESTROY_REPLICA_ID" in err


def test_emergency_repair_keeps_one_replica(env):
    r1, r2, r3 = env.seed(3)
    env.lab.cluster.stop_replica(r2)
    env.lab.cluster.stop_replica(r3)
    assert not env.lab.cluster.has_quorum()
    code, _, err = env.run(["emergency-repair", "--existing-replica-id", r1] + env.ucp())
    assert code == 0, err
    assert list(env.lab.cluster.replicas) == [r1] and env.lab.cluster.replica_ok(r1)
    assert not any(r2 in n for n in env.names("worker2")[0])


# ---------------------------------------------------------------- through the real docker CLI

def test_docker_cli_run_join_and_failure(env, loop, tmp_path):
    import os
    import shutil
    import subprocess

    from msr_lab.engine.server import serve_engine

    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    rid, = env.seed(1)
    sock = str(tmp_path / "docker.sock")
    server = asyncio.run_coroutine_threadsafe(serve_engine(env.lab.nodes["manager1"].engine, sock), loop).result(5)
    try:
        cli_env = {"PATH": os.environ["PATH"], "DOCKER_HOST": f"unix://{sock}", "HOME": str(tmp_path),
                   "UCP_PASSWORD": "pw"}
        base = ["docker", "run", "--rm", "-e", "UCP_PASSWORD", IMAGE]
        p = subprocess.run(base + ["join", "--ucp-node", "worker2", "--existing-replica-id", rid] + env.ucp(),
                           env=cli_env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "Join is complete" in p.stderr and "pw" not in " ".join(base)
        p = subprocess.run(base + ["join", "--ucp-node", "worker2", "--existing-replica-id", rid] + env.ucp(),
                           env=cli_env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "already runs DTR replica" in fatal_lines(p.stderr)[0]
        assert env.lab.nodes["manager1"].engine.list_containers(True) == []      # --rm removed both runs
    finally:
        asyncio.run_coroutine_threadsafe(close_server(server), loop).result(5)
