"""The files a node's init needs: the init script, sshd config, a minimal .bashrc.

netns.create_node writes them into <state>/nodes/<name>/ (init.sh) and into the node's
run dir (run/lab-seed/), which is the only host directory a node mounts read-write and
the host may write while the node runs.
"""

# Marker in PID 1's argv: teardown finds orphaned node inits by it even when the netns
# and the state dir are gone.
NODE_MARKER = 'msr-lab-node'

OVERLAID = ('etc', 'var', 'root', 'home', 'opt', 'usr')

# Where a node sees the host's Python environment (the venv running the lab).
NODE_PYTHON = '/opt/msr-lab/python'

# The node's /sbin/init and PID 1. It reaps every orphan re-parented to it (sshd sessions, daemonised
# haproxy and nginx); SIGTERM ends it, which makes the kernel kill the whole PID namespace. Being a
# real file called init (not the host's /sbin/init -> systemd symlink, seen through the /usr overlay)
# makes the node look like a sysvinit Debian host: /proc/1/comm is "init", so Ansible's service_mgr
# fact falls through to /etc/init.d and `ansible.builtin.service` drives the packaged init scripts.
INIT = r'''#!/usr/bin/python3
import os, signal, time
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
'''

# How init.sh starts sshd; lb.lbnode starts it the same way when an LB node comes back up.
SSHD = ('/usr/sbin/sshd', '-f', '/etc/ssh/sshd_config', '-E', '/run/sshd.log')

# Runs as PID 1 of fresh UTS+mount+PID namespaces inside the node's netns.
# Relative overlay paths: after /var (or whichever dir holds the state dir) is overlaid,
# absolute paths into the state dir would resolve inside the overlay; the cwd still
# points at the real node dir.
INIT_SH = r'''#!/bin/sh
set -eu
NODE_DIR=$1
NAME=$2
cd "$NODE_DIR"
mount --make-rprivate /
mount --bind "$NODE_DIR/run" /run
for d in __OVERLAID__; do
    mount -t overlay "node-$d" -o "lowerdir=/$d,upperdir=upper/$d,workdir=work/$d" "/$d"
done
# The controller's Python environment, read-only, at a path that does not depend on where the
# checkout lives (modules run on a node need its docker SDK). Bound before /tmp becomes the node's own.
if [ -n "${LAB_PYTHON:-}" ] && [ -d "$LAB_PYTHON" ]; then
    mkdir -p __NODE_PYTHON__
    mount --bind "$LAB_PYTHON" __NODE_PYTHON__
    mount -o remount,bind,ro __NODE_PYTHON__
fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
hostname "$NAME"
SEED=/run/lab-seed
cp "$SEED/hosts" /etc/hosts
echo "$NAME" > /etc/hostname
# only the overlay's view: the host keeps its own keys
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C "root@$NAME" -f /etc/ssh/ssh_host_ed25519_key
cp /etc/ssh/ssh_host_ed25519_key.pub /run/ssh_host_ed25519_key.pub
rm -rf /etc/ssh/sshd_config.d
cp "$SEED/sshd_config" /etc/ssh/sshd_config
mkdir -p /root/.ssh
chmod 700 /root/.ssh
cp "$SEED/authorized_keys" /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
cp "$SEED/bashrc" /root/.bashrc
# /sbin is usr/sbin: the copy lands in the node's /usr overlay, the host keeps its systemd link
rm -f /usr/sbin/init
cp "$SEED/init" /usr/sbin/init
chmod 755 /usr/sbin/init
mkdir -p /run/sshd
chmod 755 /run/sshd
__SSHD__
exec /sbin/init __MARKER__ "$NODE_DIR"
'''.replace('__OVERLAID__', ' '.join(OVERLAID)).replace('__MARKER__', NODE_MARKER)
INIT_SH = INIT_SH.replace('__NODE_PYTHON__', NODE_PYTHON).replace('__SSHD__', ' '.join(SSHD))

# The host's root .bashrc runs pyenv init on every ssh command (machine-notes).
BASHRC = '''# msr-lab node: kept minimal so non-interactive ssh commands stay fast
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
'''


def sshd_config(addr):
    # MaxStartups: Ansible forks and docker SDK pools open many sessions at once.
    return f'''# msr-lab node sshd
ListenAddress {addr}:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
StrictModes no
MaxSessions 20
MaxStartups 100:30:200
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
'''


def hosts_file(hosts):
    lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback']
    lines += [f'{addr}\t{name}' for name, addr in sorted(hosts.items())]
    return '\n'.join(lines) + '\n'
