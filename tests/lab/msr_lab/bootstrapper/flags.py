"""Flag tables, argument parsing and help text of the emulated MSR bootstrapper (msr2.md 1.1-1.5).

Flag names are the same in every version; what changes is the env var of each flag (DTR_* up to 2.8,
MSR_* from 2.9) and a few 2.9-only flags (--nocolor, remove --force).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class UsageError(Exception):
    """A bad command line; the bootstrapper turns it into a FATA line and exit 1."""


@dataclass(frozen=True)
class Flag:
    name: str
    env_dtr: str              # env var up to 2.8
    env_msr: str              # env var from 2.9 (the msr2.md renames; unconfirmed ones chosen MSR_*)
    boolean: bool
    usage: str
    default: str = ""
    msr_only: bool = False    # the flag exists from 2.9 only

    def env(self, msr: bool) -> str:
        return self.env_msr if msr else self.env_dtr


def _f(name, dtr, msr, usage, boolean=False, default="", msr_only=False):
    return Flag(name, dtr, msr or dtr, boolean, usage, default, msr_only)


DEBUG = _f("debug", "DEBUG", "", "Enable debug mode for additional logs", True)
HELP_EXT = _f("help-extended", "DTR_EXTENDED_HELP", "MSR_EXTENDED_HELP",
              "Display extended help text for a given command", True)
NOCOLOR = _f("nocolor", "NOCOLOR", "", "Disable output coloring in logs", True, msr_only=True)
UCP_CA = _f("ucp-ca", "UCP_CA", "", "Use a PEM-encoded TLS CA certificate for UCP")
UCP_INSECURE = _f("ucp-insecure-tls", "UCP_INSECURE_TLS", "",
                  "Disable TLS verification for UCP. The installation uses TLS but always trusts the TLS "
                  "certificate used by UCP, which can lead to MITM (man-in-the-middle) attacks. For production "
                  "deployments, use --ucp-ca \"$(cat ca.pem)\" instead", True)
UCP_PASSWORD = _f("ucp-password", "UCP_PASSWORD", "", "The UCP administrator password")
UCP_URL = _f("ucp-url", "UCP_URL", "", "The UCP URL including domain and port")
UCP_USERNAME = _f("ucp-username", "UCP_USERNAME", "", "The UCP administrator username")
UCP_NODE = _f("ucp-node", "UCP_NODE", "",
              "The hostname of the UCP node to deploy DTR. Random by default. You can find the hostnames of "
              "the nodes in the cluster in the UCP web interface, or by running 'docker node ls' on a UCP manager node")
EXISTING = _f("existing-replica-id", "DTR_REPLICA_ID", "MSR_REPLICA_ID",
              "The ID of an existing DTR replica. To add, remove or modify DTR, you must connect to an existing "
              "healthy replica's database")
HTTP_PORT = _f("replica-http-port", "REPLICA_HTTP_PORT", "",
               "The public HTTP port for the DTR replica. Default is 80. This allows your DTR replica to be "
               "reachable from your network. This port can also be used for unencrypted health checks", default="80")
HTTPS_PORT = _f("replica-https-port", "REPLICA_HTTPS_PORT", "",
                "The public HTTPS port for the DTR replica. Default is 443. This allows your DTR replica to be "
                "reachable from your network. Each replica can use a different port", default="443")
INSTALL_ID = _f("replica-id", "DTR_INSTALL_REPLICA_ID", "MSR_INSTALL_REPLICA_ID",
                "Assign a 12-character hexadecimal ID to the DTR replica. Random by default")
CACHE_MB = _f("replica-rethinkdb-cache-mb", "RETHINKDB_CACHE_MB", "",
              "The maximum amount of space in MB for RethinkDB in-memory cache used by the given replica. "
              "Default is auto. Auto is (available_memory - 1024) / 2", default="auto")
SKIP_NET = _f("skip-network-test", "DTR_SKIP_NETWORK_TEST", "MSR_SKIP_NETWORK_TEST",
              "Don't test if overlay networks are working correctly between UCP nodes. For high-availability, "
              "DTR creates an overlay network between UCP nodes and tests that it is working when joining "
              "replicas. Don't use this option for production deployments", True)
UNSAFE_JOIN = _f("unsafe-join", "DTR_UNSAFE_JOIN", "MSR_UNSAFE_JOIN",
                 "Join a new replica even if the cluster is unhealthy. Joining replicas to an unhealthy DTR "
                 "cluster leads to split-brain scenarios, and data loss. Don't use this option for production "
                 "deployments", True)
EXTERNAL_URL = _f("dtr-external-url", "DTR_EXTERNAL_URL", "MSR_EXTERNAL_URL",
                  "URL of the host or load balancer clients use to reach DTR (https://host[:port])")
NFS_URL = _f("nfs-storage-url", "NFS_STORAGE_URL", "", "Use NFS to store Docker images (nfs://<ip|host>/<mountpoint>)")
STORAGE_VOL = _f("dtr-storage-volume", "DTR_STORAGE_VOLUME", "MSR_STORAGE_VOLUME",
                 "Customize the volume to store Docker images")
DTR_CA = _f("dtr-ca", "DTR_CA", "MSR_CA",
            "Use a PEM-encoded TLS CA certificate for DTR. By default DTR generates a self-signed TLS "
            "certificate during deployment. You can use your own root CA public certificate with "
            "--dtr-ca \"$(cat ca.pem)\"")
DTR_CERT = _f("dtr-cert", "DTR_CERT", "MSR_CERT",
              "Use a PEM-encoded TLS certificate for DTR. By default DTR generates a self-signed TLS certificate "
              "during deployment. You can use your own public key certificate with --dtr-cert \"$(cat cert.pem)\". "
              "If the certificate has been signed by an intermediate certificate authority, append its public "
              "key certificate at the end of the file to establish a chain of trust")
DTR_KEY = _f("dtr-key", "DTR_KEY", "MSR_KEY",
             "Use a PEM-encoded TLS private key for DTR. By default DTR generates a self-signed TLS certificate "
             "during deployment. You can use your own TLS private key with --dtr-key \"$(cat key.pem)\"")
OVERLAY = _f("overlay-subnet", "DTR_OVERLAY_SUBNET", "MSR_OVERLAY_SUBNET",
             "The subnet used by the dtr-ol overlay network. Example: 10.0.0.0/24", default="10.1.0.0/24")
REMOVE_ID = _f("replica-id", "DTR_REMOVE_REPLICA_ID", "MSR_REMOVE_REPLICA_ID", "DEPRECATED Alias for --replica-ids")
REMOVE_IDS = _f("replica-ids", "DTR_REMOVE_REPLICA_IDS", "MSR_REMOVE_REPLICA_IDS",
                "A comma separated list of IDs of replicas to remove from the cluster")
REMOVE_FORCE = _f("force", "DTR_FORCE_REMOVE_REPLICA", "", "Ignore pre-checks when removing a replica", True,
                  msr_only=True)
DESTROY_ID = _f("replica-id", "DTR_DESTROY_REPLICA_ID", "MSR_DESTROY_REPLICA_ID",
                "The ID of the replica to destroy")
REPAIR_FORCE = _f("force", "DTR_FORCE_EMERGENCY_REPAIR", "MSR_FORCE_EMERGENCY_REPAIR",
                  "Also delete the volumes of the replicas being removed", True)

_COMMON = [DEBUG, HELP_EXT, NOCOLOR]
_UCP = [UCP_CA, UCP_INSECURE, UCP_PASSWORD, UCP_URL, UCP_USERNAME]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    flags: tuple[Flag, ...]
    emulated: bool = True


COMMANDS = {c.name: c for c in [
    Command("install", "Install Docker Trusted Registry",
            tuple(_COMMON + _UCP + [UCP_NODE, INSTALL_ID, HTTP_PORT, HTTPS_PORT, CACHE_MB, SKIP_NET,
                                    EXTERNAL_URL, NFS_URL, STORAGE_VOL, OVERLAY, DTR_CA, DTR_CERT, DTR_KEY])),
    Command("join", "Add a new replica to an existing DTR cluster",
            tuple(_COMMON + _UCP + [UCP_NODE, EXISTING, INSTALL_ID, HTTP_PORT, HTTPS_PORT, CACHE_MB, SKIP_NET,
                                    UNSAFE_JOIN])),
    Command("remove", "Remove a DTR replica from a cluster",
            tuple(_COMMON + _UCP + [EXISTING, REMOVE_ID, REMOVE_IDS, REMOVE_FORCE])),
    Command("destroy", "Destroy a DTR replica's data", tuple(_COMMON + _UCP + [DESTROY_ID])),
    Command("emergency-repair", "Recover DTR from loss of quorum",
            tuple(_COMMON + _UCP + [EXISTING, REPAIR_FORCE, OVERLAY])),
    Command("images", "List all the images necessary to install DTR", tuple(_COMMON)),
    # Real commands the lab does not emulate: listed in help, refused when run.
    Command("reconfigure", "Change DTR configurations", tuple(_COMMON + _UCP), emulated=False),
    Command("restore", "Install and restore DTR from an existing backup", tuple(_COMMON + _UCP), emulated=False),
    Command("backup", "Create a backup of DTR", tuple(_COMMON + _UCP), emulated=False),
    Command("upgrade", "Upgrade DTR 2.x cluster to this version", tuple(_COMMON + _UCP), emulated=False),
]}


def parse_version(image: str) -> tuple[str, str, tuple[int, int]]:
    """(repository, tag, (major, minor)) of an image reference; 'latest' and odd tags count as 2.9."""
    last = image.rsplit("/", 1)[-1]
    repo, tag = (image.rsplit(":", 1) if ":" in last else (image, "latest"))
    m = re.match(r"^(\d+)\.(\d+)", tag)
    return repo, tag, ((int(m.group(1)), int(m.group(2))) if m else (2, 9))


def flags_for(cmd: Command, msr: bool) -> list[Flag]:
    return [f for f in cmd.flags if msr or not f.msr_only]


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _bool(text: str, where: str) -> bool:
    # Go's strconv.ParseBool, which urfave/cli uses for flags and env vars.
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f'invalid boolean value "{text}" for {where}: parse error')


class Options:
    """Parsed values: flags win over env vars, env vars over defaults."""

    def __init__(self, values: dict, sources: dict):
        self.values = values
        self.sources = sources            # name -> 'flag' | 'env' | 'default'

    def get(self, name: str, default=None):
        v = self.values.get(name)
        return default if v in (None, "") else v

    def given(self, name: str) -> bool:
        return self.sources.get(name) in ("flag", "env")


def parse(cmd: Command, args: list[str], env: dict, msr: bool) -> Options:
    flags = {f.name: f for f in flags_for(cmd, msr)}
    values: dict = {}
    sources: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise UsageError(f"unexpected argument \"{arg}\": '{cmd.name}' takes no arguments")
        name, eq, inline = arg.lstrip("-").partition("=")
        flag = flags.get(name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.boolean:
            values[name] = _bool(inline, f"flag -{name}") if eq else True
        elif eq:
            values[name] = inline
        elif i < len(args):
            values[name] = args[i]
            i += 1
        else:
            raise UsageError(f"flag needs an argument: -{name}")
        sources[name] = "flag"
    for flag in flags.values():
        if flag.name in values:
            continue
        raw = env.get(flag.env(msr))
        if raw not in (None, ""):
            values[flag.name] = _bool(raw, f"${flag.env(msr)}") if flag.boolean else raw
            sources[flag.name] = "env"
        else:
            values[flag.name] = False if flag.boolean else flag.default
            sources[flag.name] = "default"
    return Options(values, sources)


def wants_help(args: list[str]) -> bool:
    return any(a in ("-h", "--help", "-help") for a in args)


def main_help(image: str) -> str:
    lines = ["NAME:", "   dtr - Docker Trusted Registry bootstrapper (emulated by msr-lab)", "",
             "USAGE:", f"   docker run -it --rm {image} command [command options]", "", "COMMANDS:"]
    for c in COMMANDS.values():
        lines.append(f"   {c.name:<18}{c.summary}")
    lines.append(f"   {'help':<18}Shows a list of commands or help for one command")
    lines += ["", "Run 'docker run --rm " + image + " <command> --help' for the flags of a command.", ""]
    return "\n".join(lines)


def command_help(cmd: Command, image: str, msr: bool) -> str:
    lines = ["NAME:", f"   dtr {cmd.name} - {cmd.summary}", "", "USAGE:",
             f"   docker run -it --rm {image} {cmd.name} [command options]", "", "OPTIONS:"]
    for f in flags_for(cmd, msr):
        left = f"--{f.name}" if f.boolean else f"--{f.name} value"
        default = f' (default: "{f.default}")' if f.default else ""
        lines.append(f"   {left:<38}{f.usage}{default} [${f.env(msr)}]")
    lines.append("")
    return "\n".join(lines)
