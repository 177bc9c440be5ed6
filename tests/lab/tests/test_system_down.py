"""System tests, part 4: `msr-lab down` leaves nothing behind, also after the daemon was killed and lab.json lost."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from system_lab import NAME, STATE, SUBNET, cli, exclusive, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def lab_processes() -> dict[int, str]:
    """Every process of the lab: those in its network namespaces (node inits, sshd, haproxy, nginx, ssh
    sessions) and those whose command line names the state dir (daemon, unshare parents); pid -> start time."""
    out = {}
    names = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]")
    for ns in [n["name"] for n in names if n["name"].startswith(f"{NAME}-")]:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        out.update({int(p): _start_time(int(p)) for p in pids})
    out.update({pid: _start_time(pid) for pid in mentions_state_dir()})
    return {p: t for p, t in out.items() if t is not None}


def mentions_state_dir() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if str(STATE).encode() in argv:
                found.append(int(entry.name))
    return found


def leftovers(before: dict[int, str]) -> list[str]:
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    found += [f"netns {line}" for line in netns if line.startswith(f"{NAME}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    found += [f"link {line.split(':')[1].strip()}" for line in links
              if line.split(":")[1].strip().startswith(NAME) or f" alias {NAME}-" in line]
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    found += [f"mount {m.split()[1]}" for m in mounts if m.split()[1].startswith(str(STATE))]
    # zombies do not count: they hold nothing, and this host's PID 1 reaps orphans only now and then
    found += [f"process {pid} (still running)" for pid, t in before.items() if _alive(pid) and _start_time(pid) == t]
    found += [f"process {pid} mentions {STATE}" for pid in mentions_state_dir() if _alive(pid)]
    if STATE.exists():
        found.append(f"state dir {STATE}")
    return found


def up():
    cli("up", "--subnet", SUBNET, "--workers", "5", "--replicas", "1")
    procs = lab_processes()
    # daemon + 9 node inits + 9 sshd + haproxy (one LB node, one process), at least
    assert len(procs) >= 1 + 9 + 9 + 1, procs
    assert len([p for p in procs if b"msr_lab.cli\0daemon" in Path(f"/proc/{p}/cmdline").read_bytes()]) == 1
    return procs


def crash():
    """kill -9 the daemon and lose lab.json, as after a crash."""
    pid = int((STATE / "daemon.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), 5, what="daemon killed")
    (STATE / "lab.json").unlink()


@pytest.fixture
def clean():
    with exclusive():
        cli("down", check=False)
        try:
            yield
        finally:
            cli("down", check=False)


def test_down_leaves_nothing(clean):
    before = up()
    r = cli("down")
    assert r.stdout.startswith("msr-lab is down in")
    assert leftovers(before) == []
    # a second down has nothing to do
    assert cli("down").stdout.strip() == "msr-lab: no lab is up; nothing to remove"


def test_down_after_daemon_killed_and_lab_json_lost(clean):
    before = up()
    crash()
    assert cli("status", check=False).returncode == 1
    cli("down")
    assert leftovers(before) == []


def test_up_after_crash_cleans_first(clean):
    before = up()
    crash()
    r = cli("up", "--subnet", SUBNET, "--workers", "5", "--replicas", "1")
    assert "removing what an earlier lab left behind" in r.stderr
    after = lab_processes()
    survivors = {p for p, t in before.items() if after.get(p) == t and _alive(p)}
    assert not survivors, f"processes of the crashed lab survived: {survivors}"
    assert cli("status").returncode == 0
    cli("down")
    assert leftovers({**before, **after}) == []
