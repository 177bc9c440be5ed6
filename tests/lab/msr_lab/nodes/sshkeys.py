"""SSH client material for reaching lab nodes: key pair, known_hosts, ssh config.

Node host keys change on every `up` (each node generates a fresh one), so known_hosts is
rewritten from the nodes' public keys after they start.
"""
import os
import shutil
import subprocess
from pathlib import Path


def _ssh_dir(state_dir):
    return Path(state_dir) / 'ssh'


def ensure_client_key(state_dir):
    """Create state/ssh/id_ed25519 if missing; return the public key line."""
    d = _ssh_dir(state_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = d / 'id_ed25519'
    if not key.exists():
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'msr-lab', '-f', str(key)],
                       check=True, stdin=subprocess.DEVNULL)
    return (d / 'id_ed25519.pub').read_text().strip()


def node_host_key(state_dir, name):
    """The node's sshd host key ('ssh-ed25519 AAAA... root@name'), copied by its init to /run."""
    return (Path(state_dir) / 'nodes' / name / 'run' / 'ssh_host_ed25519_key.pub').read_text().strip()


def _known_hosts(state_dir, nodes):
    lines = []
    for name, addr in sorted(nodes.items()):
        keytype, key = node_host_key(state_dir, name).split()[:2]
        lines.append(f'{name},{addr} {keytype} {key}')
    return '\n'.join(lines) + '\n'


def _config(nodes, identity, known_hosts):
    blocks = []
    for name, addr in sorted(nodes.items()):
        blocks.append(f'''Host {name} {addr}
    HostName {addr}
    User root
    IdentityFile {identity}
    UserKnownHostsFile {known_hosts}
    StrictHostKeyChecking yes
    IdentitiesOnly yes
''')
    return '\n'.join(blocks)


def write_ssh_client_files(state_dir, nodes):
    """state/ssh/known_hosts and state/ssh/config for nodes {name: addr}; use `ssh -F state/ssh/config`."""
    d = _ssh_dir(state_dir).resolve()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    known = d / 'known_hosts'
    known.write_text(_known_hosts(state_dir, nodes))
    (d / 'config').write_text(_config(nodes, d / 'id_ed25519', known))


def install_ssh_home(state_dir, home, nodes=None):
    """A HOME for the docker SDK's paramiko transport, which reads only ~/.ssh/config
    (IdentityFile) and ~/.ssh/known_hosts (RejectPolicy). nodes defaults to those already in
    state/ssh/known_hosts."""
    src = _ssh_dir(state_dir).resolve()
    dst = Path(home) / '.ssh'
    dst.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(src / 'id_ed25519', dst / 'id_ed25519')
    os.chmod(dst / 'id_ed25519', 0o600)
    shutil.copyfile(src / 'id_ed25519.pub', dst / 'id_ed25519.pub')
    if nodes is None:
        known = (src / 'known_hosts').read_text()
        nodes = {}
        for line in known.splitlines():
            name, addr = line.split()[0].split(',')
            nodes[name] = addr
    else:
        known = _known_hosts(state_dir, nodes)
    (dst / 'known_hosts').write_text(known)
    (dst / 'config').write_text(_config(nodes, dst / 'id_ed25519', dst / 'known_hosts'))
