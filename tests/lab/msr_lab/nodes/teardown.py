"""Teardown of a lab (or of whatever a crashed `up` left): processes, mounts, netns, veths,
bridge, state dir. Found by name prefix and by the node-init marker, not only by the state
dir, which may be partly deleted.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from msr_lab.nodes import initfiles

DEFAULT_PREFIX = 'msrlab'
DEFAULT_BRIDGE = 'msrlab0'

# Popen objects of node inits this process started, {pid: (Popen, node dir)}, so teardown can
# reap them (no zombies in long-running callers and tests).
_children = {}


def _run(*argv, check=True):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f'{" ".join(argv)}: exit {r.returncode}: {r.stderr.strip()}')
    return r


def _lab_netns(prefix):
    out = _run('ip', '-j', 'netns', 'list', check=False).stdout.strip()
    names = [n['name'] for n in json.loads(out)] if out else []
    return [n for n in names if n.startswith(prefix + '-')]


def _cmdline(pid):
    try:
        return Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
    except OSError:
        return []


def _alive(pid):
    try:
        state = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ('Z', 'X')


def _lab_pids(state_dir, namespaces):
    pids = set()
    for ns in namespaces:
        out = _run('ip', 'netns', 'pids', ns, check=False).stdout
        pids.update(int(x) for x in out.split() if x.isdigit())
    # node inits whose netns is already gone (crashed up, deleted netns)
    nodes_prefix = str(Path(state_dir).resolve() / 'nodes').encode() + b'/'
    for entry in os.scandir('/proc'):
        if entry.name.isdigit():
            argv = _cmdline(entry.name)
            if initfiles.NODE_MARKER.encode() in argv and any(a.startswith(nodes_prefix) for a in argv):
                pids.add(int(entry.name))
    pids.discard(os.getpid())
    return pids


def _mounts_under(path):
    root = str(Path(path).resolve()).rstrip('/') + '/'
    found = []
    for line in Path('/proc/self/mounts').read_text().splitlines():
        target = line.split()[1].encode().decode('unicode_escape')
        if (target + '/').startswith(root):
            found.append(target)
    return sorted(found, key=lambda t: t.count('/'), reverse=True)


def _reap_children(state_dir, deadline):
    nodes = Path(state_dir).resolve() / 'nodes'
    for pid, (p, nd) in list(_children.items()):
        if nd.parent != nodes:
            continue   # another lab's node (tests run one beside the other)
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
            del _children[pid]
        except subprocess.TimeoutExpired:
            pass


def teardown(state_dir, prefix=DEFAULT_PREFIX, bridge=DEFAULT_BRIDGE, timeout=10):
    """Remove every trace of a lab: processes, netns, veths, bridge, mounts, state dir.
    Works after a half-done `up` and with a partly deleted state dir."""
    state_dir = Path(state_dir)
    deadline = time.monotonic() + timeout
    namespaces = _lab_netns(prefix)
    pids = _lab_pids(state_dir, namespaces)
    # SIGKILL of a node's PID 1 takes its whole PID namespace with it; the rest are strays
    # and the `unshare` parents (which ignore SIGTERM).
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap_children(state_dir, deadline)
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = [p for p in pids if _alive(p)]
    for target in _mounts_under(state_dir):
        _run('umount', '-l', target, check=False)
    for ns in namespaces:
        _run('ip', 'netns', 'del', ns, check=False)
    _delete_links(prefix, bridge)
    problems = []
    if left:
        problems.append(f'processes still alive: {left}')
    if _mounts_under(state_dir):
        # never rmtree through a mount: it would delete the mounted files
        problems.append(f'mounts left under {state_dir}: {_mounts_under(state_dir)}')
    elif state_dir.exists():
        shutil.rmtree(state_dir)
    if problems:
        raise RuntimeError('teardown incomplete: ' + '; '.join(problems))


def leftovers(prefix=DEFAULT_PREFIX, bridge=DEFAULT_BRIDGE):
    """What a lab with this prefix/bridge left on the host (netns, links): empty if nothing."""
    found = [f'netns {n}' for n in _lab_netns(prefix)]
    found += [f'link {name}' for name in _lab_links(prefix, bridge)]
    if not _run('ip', 'link', 'show', 'dev', bridge, check=False).returncode:
        found.append(f'bridge {bridge}')
    return found


def _lab_links(prefix, bridge):
    out = _run('ip', '-j', '-d', 'link', 'show', check=False).stdout.strip()
    for link in json.loads(out) if out else []:
        name = link.get('ifname', '')
        if name != bridge and (name.startswith(prefix + '-') or link.get('master') == bridge
                               or link.get('ifalias', '').startswith(prefix + '-')):
            yield name


def _delete_links(prefix, bridge):
    # Deleting the netns normally takes the veth pair with it, but a socket still open in
    # the netns (lab daemon) keeps both alive: delete the host ends explicitly.
    for name in list(_lab_links(prefix, bridge)):
        _run('ip', 'link', 'del', name, check=False)
    if not _run('ip', 'link', 'show', 'dev', bridge, check=False).returncode:
        _run('ip', 'link', 'del', bridge, check=False)
