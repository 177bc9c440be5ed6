"""The emulated MSR bootstrapper: what running mirantis/dtr:<ver> (docker/dtr, registry.mirantis.com/msr/dtr) does.

`program(ctx)` is the container's program, run by the emulated engine in a worker thread. The image tag is
the MSR version; 2.9+ uses the MSR_* env var names and has --nocolor and remove --force (msr2.md 1.5).
"""
from __future__ import annotations

import time

from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper import logfmt
from msr_lab.bootstrapper.backup import backup, restore
from msr_lab.bootstrapper.join import install, join
from msr_lab.bootstrapper.remove import destroy, emergency_repair, remove
from msr_lab.bootstrapper.run import Fatal, Run, Stopped
from msr_lab.engine.process import Killed, register_program

REPOSITORIES = ("mirantis/dtr", "docker/dtr", "registry.mirantis.com/msr/dtr")
IMAGE_SERVICES = ("api", "content-cache", "garant", "jobrunner", "nginx", "notary-server", "notary-signer",
                  "postgres", "registry", "rethink", "scanningstore")
DEFAULT_VERSION = "2.9.16"     # the MSR version a non-numeric tag (latest) stands for, unless the lab says [I]


def images(run: Run) -> int:
    repo = run.image.rsplit(":", 1)[0] if ":" in run.image.rsplit("/", 1)[-1] else run.image
    refs = [f"{repo}:{run.version}"] + [f"{repo}-{svc}:{run.version}" for svc in IMAGE_SERVICES]
    run.ctx.write(1, ("\n".join(refs) + "\n").encode())
    return 0


HANDLERS = {"install": install, "join": join, "remove": remove, "destroy": destroy,
            "emergency-repair": emergency_repair, "images": images, "backup": backup, "restore": restore}


def _fata(ctx, t0: float, msg: str, colour: bool) -> int:
    ctx.write(2, logfmt.line("fatal", msg, time.monotonic() - t0, colour).encode())
    return 1


def program(ctx) -> int:
    t0 = time.monotonic()
    image = ctx.container.image
    _repo, tag, ver = F.parse_version(image)
    msr = ver >= (2, 9)
    if not tag[:1].isdigit():
        tag = str((ctx.lab.config or {}).get("msr_version") or DEFAULT_VERSION)
    argv = [str(a) for a in (ctx.argv or [])]
    env = {k: v for k, v in (ctx.env or {}).items() if v is not None}
    # Only for errors before the flags are parsed; Run decides from the parsed --nocolor/$NOCOLOR.
    colour = bool(ctx.tty) and not env.get("NOCOLOR") and not any(a.lstrip("-").split("=")[0] == "nocolor" for a in argv)

    if argv[:1] == ["phase2"]:
        # The dtr-phase2 container a join/install starts on the target node: it lives until removed [I].
        ctx.killed.wait()
        return 137
    if not argv or argv[0] in ("help", "-h", "--help", "-help"):
        topic = F.COMMANDS.get(argv[1]) if len(argv) > 1 and argv[0] == "help" else None
        if len(argv) > 1 and argv[0] == "help" and topic is None:
            return _fata(ctx, t0, f"No help topic for '{argv[1]}'", colour)
        ctx.write(1, (F.command_help(topic, image, msr) if topic else F.main_help(image)).encode())
        return 0
    cmd = F.COMMANDS.get(argv[0])
    if cmd is None:
        return _fata(ctx, t0, f"Unknown command \"{argv[0]}\". Run with --help for the list of commands", colour)
    if F.wants_help(argv[1:]):
        ctx.write(1, F.command_help(cmd, image, msr).encode())
        return 0
    try:
        opts = F.parse(cmd, argv[1:], env, msr)
    except F.UsageError as e:
        return _fata(ctx, t0, str(e), colour)
    if opts.get("help-extended", False):
        ctx.write(1, F.command_help(cmd, image, msr).encode())
        return 0
    if not cmd.emulated:
        return _fata(ctx, t0, f"The command '{cmd.name}' is not emulated by msr-lab", colour)

    run = Run(ctx, cmd, opts, image, tag, msr)
    run.t0 = t0
    try:
        return HANDLERS[cmd.name](run)
    except Fatal as e:
        run.log("fatal", str(e))
        return 1
    except (Stopped, Killed):   # killed by the engine: exit code 137 is already set
        return 137
    except Exception as e:      # a cluster/engine refusal must still end as FATA + exit 1
        run.log("fatal", f"{type(e).__name__}: {getattr(e, 'message', e)}")
        return 1


def register() -> None:
    """Make the engine run `program` for every bootstrapper image repository."""
    for repo in REPOSITORIES:
        register_program(repo, program)


register()
