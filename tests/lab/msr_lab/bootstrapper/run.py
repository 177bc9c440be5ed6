"""One bootstrapper run: logrus-style logging, prompts, phases (kill fault), the MKE connection.

Shared by the command implementations in join.py and remove.py.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper import logfmt
from msr_lab.bootstrapper.mke_client import MkeClient, MkeError
from msr_lab.engine.process import Killed

PRODUCT = "Docker Trusted Registry"          # the documented log lines keep the DTR-era wording [I]
SERVICES = ("rethinkdb", "registry", "garant", "api", "notary-server", "nginx", "jobrunner",
            "notary-signer", "scanningstore")  # creation order seen in join logs (msr2.md 1.6 step 8)


class Fatal(Exception):
    """Ends the run with a FATA line and exit code 1."""


class Stopped(Exception):
    """The run was killed (exit code 137 is already set by the engine)."""


class Run:
    def __init__(self, ctx, cmd: F.Command, opts: F.Options, image: str, tag: str, msr: bool):
        self.ctx = ctx
        self.lab = ctx.lab
        self.cmd = cmd
        self.opts = opts
        self.image = image
        self.version = tag
        # where the service images come from: mirantis/dtr -> mirantis/dtr-api, registry.../msr/dtr -> ...
        self.image_owner = F.parse_version(image)[0].rsplit("/", 1)[0] if "/" in image else "mirantis"
        self.msr = msr
        self.t0 = time.monotonic()
        self.colour = bool(ctx.tty) and not opts.get("nocolor", False)
        self.mke: MkeClient | None = None

    # ---- output -------------------------------------------------------------------------------
    def log(self, level: str, msg: str) -> None:
        self.ctx.write(2, logfmt.line(level, msg, time.monotonic() - self.t0, self.colour).encode())

    def info(self, msg: str) -> None:
        self.log("info", msg)

    def warn(self, msg: str) -> None:
        self.log("warning", msg)

    def debug(self, msg: str) -> None:
        if self.opts.get("debug", False):
            self.log("debug", msg)

    def fatal(self, msg: str):
        raise Fatal(msg)

    # ---- control ------------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        """Enter a phase; the kill fault fires here, once, for the first run that reaches it."""
        self.ctx.check_killed()
        self.debug(f"phase {name}")
        faults = self.lab.faults
        with self.lab.lock:          # compare-and-clear, so only one run consumes the fault
            hit = faults.kill_at_phase == name
            if hit:
                faults.kill_at_phase = None
        if hit:
            self.ctx.engine.kill_container(self.ctx.container)
            self.ctx.check_killed()
            raise Stopped(name)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + max(0.0, seconds)
        while True:
            self.ctx.check_killed()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    # ---- values -------------------------------------------------------------------------------
    def prompt(self, text: str, flag: F.Flag) -> str | None:
        """A line typed on the TTY, or None when there is no TTY (the tool must never wait then)."""
        if not self.ctx.tty:
            return None
        self.ctx.write(1, text.encode())
        line = self.ctx.read_stdin_line()      # None at once when stdin is not attached (-t without -i)
        self.ctx.check_killed()
        if line is None:
            self.fatal(f"EOF while reading a value for --{flag.name} from the terminal: pass the flag or set "
                       f"the ${flag.env(self.msr)} environment variable")
        return line.decode("utf-8", "replace").strip()

    def need(self, flag: F.Flag) -> str:
        value = self.opts.get(flag.name)
        if value:
            return value
        typed = self.prompt(f"{flag.name} ({flag.usage}): ", flag)
        if typed:
            return typed
        self.fatal(f"Missing required value for --{flag.name}: pass the flag or set the "
                   f"${flag.env(self.msr)} environment variable"
                   + ("" if typed is not None else " (no TTY to prompt on)"))

    def port(self, flag: F.Flag) -> int:
        raw = str(self.opts.get(flag.name, flag.default))
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            self.fatal(f"invalid value \"{raw}\" for --{flag.name}: must be a port number (1-65535)")
        return int(raw)

    # ---- MKE ----------------------------------------------------------------------------------
    def begin(self, what: str) -> None:
        self.phase("validate")
        self.info(f"Beginning {PRODUCT} {what}")

    def connect(self) -> MkeClient:
        self.phase("connect")
        url = self.need(F.UCP_URL)
        user = self.need(F.UCP_USERNAME)
        password = self.need(F.UCP_PASSWORD)
        self.info("Validating UCP cert")
        try:
            client = MkeClient(url, self.opts.get("ucp-ca"), bool(self.opts.get("ucp-insecure-tls", False)))
            self.debug(f"UCP URL: {client.base}, verify TLS: {not self.opts.get('ucp-insecure-tls', False)}")
            client.handshake()
            self.info("Connecting to UCP")
            client.login(user, password)
        except MkeError as e:
            self.fatal(str(e))
        self.info("UCP cert validation successful")
        self.mke = client
        return client

    @contextmanager
    def helper_container(self, node: str, name: str, labels: dict):
        """A container of the bootstrapper's image (its hidden idle `phase2` command) on `node`, run through
        MKE's scheduler for the rest of the command, like dtr-phase2: removed when the command ends or
        fails, left behind when the run is killed (as for real); a stale one is replaced."""
        try:
            self.mke.remove_container(f"{node}/{name}")
            container = self.mke.run_container(node, name, self.image, ["phase2"], labels)
        except MkeError as e:
            self.fatal(str(e))
        try:
            yield container
        except (Killed, Stopped):
            raise
        except BaseException:
            self._remove_helper(node, name, container)
            raise
        self._remove_helper(node, name, container)

    def _remove_helper(self, node: str, name: str, container: str) -> None:
        try:
            self.mke.remove_container(container)
        except MkeError as e:
            self.debug(f"could not remove {name} on {node}: {e}")

    def mke_nodes(self) -> dict[str, dict]:
        try:
            return self.mke.nodes()
        except MkeError as e:
            self.fatal(f"Failed to list the UCP nodes: {e}")

    def mke_replicas(self) -> dict[str, dict]:
        try:
            return self.mke.replica_containers()
        except MkeError as e:
            self.fatal(f"Failed to search containers in UCP for DTR replicas: {e}")

    # ---- cluster views (snapshots; mutations go through cluster methods) ------------------------
    @property
    def cluster(self):
        return self.lab.cluster

    def members(self) -> dict:
        return dict(self.cluster.replicas)

    def unhealthy(self) -> dict[str, str]:
        return {rid: why for rid, why in self.cluster.health().items() if why != "OK"}

    def wait_for_dtr(self, rid: str) -> None:
        """`Waiting for DTR to start...`: until the new replica's containers are past their start period.

        The real wait can last forever (msr2.md §1.10); the lab gives up after a while, with a FATA [I]."""
        self.info("Waiting for DTR to start...")
        limit = max(60.0, 10 * self.lab.timing("starting_seconds"))
        end = time.monotonic() + limit
        while not self.cluster.replica_started(rid):
            if time.monotonic() > end:
                self.fatal(f"Timed out after {limit:.0f}s waiting for DTR replica {rid} to start")
            self.sleep(0.05)

    def require_member(self, rid: str, members: dict) -> None:
        """The --existing-replica-id must name a member of the cluster."""
        if rid not in members:
            self.fatal(f"The replica {rid} given with --existing-replica-id is not part of this DTR cluster "
                       f"(replicas: {', '.join(sorted(members)) or 'none'})")

    def require_healthy(self, rid: str) -> None:
        """... and a healthy one: the command works through its database (msr2.md §1.2, §1.3)."""
        if not self.cluster.replica_ok(rid):
            self.fatal(f"The replica {rid} given with --existing-replica-id is not healthy: "
                       f"{self.cluster.health().get(rid, 'unknown')}. Choose a healthy replica")

    def replication_lines(self, count: int, seconds: float) -> None:
        """The RethinkDB reconfiguration log of join/remove, spread over `seconds`."""
        self.info("Updating replication settings...")
        self.info(f"(Re)configuring Database - replicaCount={count}")
        step = seconds / len(TABLES)
        for i, table in enumerate(TABLES, 1):
            self.sleep(step)
            self.info(f'({i:02d}/{len(TABLES):02d}) Configured Table "{table}"')

    def count_lines(self, count: int) -> None:
        self.info(f"There are currently {count} replicas in your {PRODUCT} cluster")
        if count % 2 == 0:
            self.warn("You currently have an even number of replicas which can impact cluster availability")
            self.warn("It is recommended that you have 3, 5 or 7 replicas in your cluster")


# RethinkDB tables reconfigured on a replica-count change [I]: the dtr2/jobrunner/notary/enzi databases.
TABLES = ("dtr2.blobs", "dtr2.blob_repository", "dtr2.client_tokens", "dtr2.events", "dtr2.manifests",
          "dtr2.properties", "dtr2.repositories", "dtr2.repository_team_access", "dtr2.tags",
          "dtr2.webhooks", "jobrunner.jobs", "jobrunner.crons", "notaryserver.tuf_files",
          "notarysigner.private_keys", "enzi.accounts", "enzi.teams", "enzi.org_membership")
