#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup
short_description: Back up the metadata of an MSR 2.x cluster into a local file
version_added: 0.1.0
description:
  - Runs the C(mirantis/dtr) bootstrapper's C(backup --existing-replica-id <id>) with the docker SDK on the
    engine at O(docker_host) and streams the tar it writes on its standard output into O(dest), on the
    machine where the module runs (the controller with C(delegate_to=localhost)).
  - The backup holds MSR's configuration, repository metadata, access control, Notary data, scan results,
    certificates and keys. It does B(not) hold image content (back up the storage backend separately), nor
    users, organizations and teams (they are in the MKE backup).
  - Reads the cluster through the MKE and MSR APIs first and refuses without a healthy majority (the
    bootstrapper cannot read the database then; see the emergency-repair runbook), and refuses a
    O(replica_id) that is unknown, not a member or unhealthy.
  - The bootstrapper container runs with C(--log-driver none), as documented, so the tar never lands in
    the engine's container log; the module attaches to it before starting it, the way C(docker run) does,
    and splits its output, standard output into the file and the log (standard error) into RV(phases) and
    RV(bootstrapper_warnings).
  - The tar is written to a temporary file (mode 0600) in the directory of the destination, flushed to disk
    and renamed over the destination only when the bootstrapper exited 0 and the tar is complete (every
    member readable and the end-of-archive marker present). On any failure the partial file is removed and
    an existing destination is left untouched. The file is always mode 0600, owned by the user running the
    module, as it contains MSR's private keys.
  - The MKE password and CA reach the bootstrapper only through its environment (C(UCP_PASSWORD), C(UCP_CA)),
    never its command line; the returned RV(cmd) names them only.
  - The bootstrapper container, named C(msr-replicas-backup-<random>), is always removed.
author:
  - msr.replicas maintainers (@msr-replicas)
requirements:
  - docker (the Docker SDK for Python), except in check mode
  - paramiko, when O(docker_host) is an C(ssh://) URL
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the cluster and predicts C(changed), the replica, the path, the bootstrapper command
        and every refusal exactly as a real run would, without contacting the Docker engine.
      - When O(dest) is a directory the time in the file name is not known yet; check mode reports the
        placeholder C(YYYYmmdd-HH_MM_SS) in its place.
  diff_mode:
    support: full
    details:
      - The diff shows the destination's state and sha256 before and after.
  idempotent:
    support: partial
    details:
      - A backup is a new artifact every time, so the module reports C(changed) on every run.
      - With O(force=false) and an existing O(dest) file it takes no backup and reports no change.
      - With O(keep), a second run leaves the same number of backups (the oldest one goes).
options:
  dest:
    description:
      - Absolute path of the backup file on the machine where the module runs. An existing file is replaced
        (unless O(force=false)); the directory must exist.
      - When O(dest) is an existing directory, or ends with C(/), the file is created in it under the
        documented name C(dtr-metadata-<version>-backup-<YYYYmmdd-HH_MM_SS>.tar) (the time in UTC), a new
        file on every run. O(keep) removes the old ones.
    type: path
    required: true
  create_dir:
    description:
      - Create the directory that holds the backup (O(dest) when it ends with C(/), else its parent) with
        its missing parents, mode V(0700) (the backups hold MSR's private keys), when it does not exist.
      - It is created only once the cluster has passed every check, just before the bootstrapper runs; check
        mode creates nothing and reports it in RV(created_dir).
    type: bool
    default: false
  keep:
    description:
      - After a successful backup into a directory O(dest), remove the oldest files of the documented name
        in it (by modification time) so that the newest O(keep) remain, the new backup included. Other
        files are never touched.
      - Nothing is removed when the backup fails. Check mode lists what it would remove in RV(removed).
      - Default is to remove nothing. Only with a directory O(dest); at least V(1).
    type: int
  replica_id:
    description:
      - The replica to back up from (C(--existing-replica-id)); it must be a healthy member of the cluster.
      - Default is the healthy member with the lowest ID, so that repeated runs use the same replica while it
        is healthy, as the MSR documentation advises for a smoother restore.
    type: str
  force:
    description:
      - V(true) takes a backup even when the O(dest) file exists and replaces it (atomically, once the new
        backup is complete).
      - V(false) takes no backup when the O(dest) file exists and reports its size and sha256 with no
        change. It does not apply when O(dest) is a directory (every run makes a new file name).
    type: bool
    default: true
  version:
    description:
      - MSR version, the bootstrapper image tag (for example V(2.9.16)). Defaults to the version of the chosen
        replica; a different version is refused, since a backup must be made (and restored) with the
        bootstrapper of the cluster's version.
    type: str
  image:
    description:
      - Bootstrapper image repository.
    type: str
    default: mirantis/dtr
  docker_host:
    description:
      - Engine that runs the bootstrapper, V(unix:///var/run/docker.sock) or V(ssh://user@host). The
        bootstrapper acts through MKE, so any MKE node's engine does; the tar is streamed back from it.
      - Over SSH the docker SDK uses paramiko with C(~/.ssh/config) and C(~/.ssh/known_hosts); unknown host
        keys are rejected (see O(msr.replicas.replica#module:docker_host)).
      - C(tcp://) is refused, since the MKE password would cross the network in clear.
    type: str
    default: unix:///var/run/docker.sock
  debug:
    description:
      - Pass C(--debug) to the bootstrapper.
    type: bool
    default: false
  bootstrap_timeout:
    description:
      - Seconds the bootstrapper may stay silent before the module gives up on it (Docker API read timeout).
    type: int
    default: 1800
notes:
  - The bootstrapper runs its database reader (C(dtr-backup)) on the chosen replica's node through MKE's
    scheduler, so MKE must let admins run containers on nodes running MSR (C(enable_admin_ucp_scheduling)).
  - Back up from the same replica every time (the default does). Restore needs the same MSR version.
seealso:
  - module: msr.replicas.cluster_info
  - module: msr.replicas.replica
"""

EXAMPLES = r"""
---
- name: Back up MSR into a file on the controller, running the bootstrapper on a manager over SSH
  msr.replicas.backup:
    dest: /srv/backups/msr/dtr-metadata.tar
    docker_host: ssh://root@manager-1
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
  delegate_to: localhost
  register: msr_backup

- name: One new file per run, under the documented name, in a directory
  msr.replicas.backup:
    dest: /srv/backups/msr/
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"

- name: Nightly, into a directory made on the first run, keeping the newest seven
  msr.replicas.backup:
    dest: /srv/backups/msr/
    create_dir: true
    keep: 7
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"

- name: Only if there is no backup of today yet
  msr.replicas.backup:
    dest: "/srv/backups/msr/msr-{{ now(utc=true, fmt='%Y%m%d') }}.tar"
    force: false
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
"""

RETURN = r"""
path:
  description:
    - The backup file. With a directory O(dest), the file created in it (in check mode with the time
      placeholder C(YYYYmmdd-HH_MM_SS)).
    - On a failed run, the file that was not written.
  returned: always
  type: str
  sample: /srv/backups/msr/dtr-metadata-2.9.16-backup-20250301-02_00_00.tar
size:
  description:
    - Size in bytes of the file at RV(path) when the module ends, null when there is none.
    - After a backup, the new file. In check mode, or after a failure, the file that is there unchanged (the
      previous backup, if any). Ansible adds the size, with RV(mode), C(owner), C(group), C(uid), C(gid) and
      C(state), to any result whose C(path) exists.
  returned: always
  type: int
  sample: 20480
sha256:
  description: SHA-256 of the new backup file, hexadecimal; null in check mode and on failure.
  returned: always
  type: str
  sample: 6f1ed002ab5595859014ebf0951522d9a1ba8b2a5e0e6a2b0c6b5b1e3c4d5e6f
mode:
  description: Permissions of the file at RV(path) (always V(0600) for a backup the module wrote).
  returned: when RV(path) exists
  type: str
  sample: "0600"
replica_id:
  description: The replica the backup was (or would be) made from; null when O(force=false) kept an existing file.
  returned: always
  type: str
  sample: f2277ad178f7
version:
  description: MSR version of the bootstrapper that made (or would make) the backup.
  returned: always
  type: str
  sample: 2.9.16
cmd:
  description:
    - The equivalent docker CLI command, for the audit log; its standard output is the tar. Secrets are
      passed as bare C(-e NAME).
  returned: when a backup ran or would run
  type: list
  elements: str
  sample: [docker, run, --rm, --log-driver, none, -e, UCP_CA, -e, UCP_PASSWORD, "mirantis/dtr:2.9.16", backup,
           --existing-replica-id, f2277ad178f7, --ucp-url, "https://mke.example.com", --ucp-username, admin,
           --nocolor]
phases:
  description: The bootstrapper's INFO log messages, in order.
  returned: when the bootstrapper ran
  type: list
  elements: str
  sample: ["Beginning Docker Trusted Registry backup", "Backup is complete"]
bootstrapper_warnings:
  description: The bootstrapper's WARN log messages.
  returned: when the bootstrapper ran
  type: list
  elements: str
log:
  description: Every line the bootstrapper wrote on its standard error (never the tar).
  returned: when the bootstrapper ran
  type: list
  elements: str
created_dir:
  description: The directory O(create_dir) created (in check mode, would create); null when it existed.
  returned: always
  type: str
  sample: /srv/backups/msr
removed:
  description: The older backups O(keep) removed (in check mode, would remove), oldest last.
  returned: always
  type: list
  elements: str
  sample: [/srv/backups/msr/dtr-metadata-2.9.16-backup-20250201-02_00_00.tar]
msg:
  description: Why nothing was done, when O(force=false) kept an existing file.
  returned: when O(force=false) kept an existing file
  type: str
diff:
  description: The destination before and after (C(path), C(state) V(absent) or V(file), C(sha256)).
  returned: in diff mode
  type: dict
  sample: {before: {path: /srv/backups/msr.tar, state: absent, sha256: null},
           after: {path: /srv/backups/msr.tar, state: file, sha256: 6f1ed002ab5595859014ebf0951522d9a1ba8b2a}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._backup import BackupManager, validate
from ansible_collections.msr.replicas.plugins.module_utils._cluster import clients_from_params, observe
from ansible_collections.msr.replicas.plugins.module_utils._common import connection_argument_spec


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        dest=dict(type="path", required=True),
        replica_id=dict(type="str"),
        force=dict(type="bool", default=True),
        version=dict(type="str"),
        image=dict(type="str", default="mirantis/dtr"),
        docker_host=dict(type="str", default=boot.DEFAULT_DOCKER_HOST),
        debug=dict(type="bool", default=False),
        bootstrap_timeout=dict(type="int", default=1800),
        create_dir=dict(type="bool", default=False),
        keep=dict(type="int"),
    )
    return spec


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


def run(module):
    validate(module)
    p = module.params
    mke, msr_factory = clients_from_params(p)

    def observe_fn():
        return observe(mke, msr_factory, msr_url=p["msr_url"])

    def runner_factory():
        return boot.Bootstrapper(p["docker_host"], timeout=p["bootstrap_timeout"])

    BackupManager(module, observe_fn, runner_factory).apply()


if __name__ == "__main__":
    main()
