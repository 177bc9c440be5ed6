#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: emergency_repair
short_description: Recover an MSR 2.x cluster that lost quorum by keeping one replica
version_added: 0.1.0
description:
  - Runs the C(mirantis/dtr) bootstrapper's C(emergency-repair --existing-replica-id <id>) with the docker SDK
    on the engine at O(docker_host). MSR then keeps that replica as the only one; the containers of every other
    replica are stopped and removed (their volumes are kept). Join new replicas afterwards
    (M(msr.replicas.replica), or the C(msr.replicas.scale_up) playbook).
  - This loses every write the kept replica had not replicated. It is only for a cluster whose majority is lost
    (MSR 2.x disaster recovery, "repair a cluster"); with a healthy majority remove the unhealthy replicas and
    join new ones instead.
  - The gates are the collection's planner's (one source of truth, so check mode predicts every refusal) - it
    refuses unless quorum is lost, unless both O(emergency_repair) and O(emergency_repair_confirmed) are true,
    and when membership is unknown (no replica answers C(cluster_status)).
  - Under quorum loss no replica is healthy (every C(/_ping) fails), so the kept replica is O(replica_id) or the
    best survivor - a member whose containers run on a ready MKE node (the bootstrapper needs its RethinkDB),
    preferring one on a node of O(desired), then one whose web server still answers C(/_ping), then the newest
    health report, then the lowest ID. With no survivor it refuses and points at a restore from a backup.
  - When the cluster has quorum it does nothing and reports no change, so a second run after a repair is a
    no-op.
  - The MKE password and CA reach the bootstrapper only by environment; RV(cmd) names them only.
author:
  - msr.replicas maintainers (@msr-replicas)
requirements:
  - docker (the Docker SDK for Python), except in check mode
  - paramiko, when O(docker_host) is an C(ssh://) URL
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.docker
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the cluster and predicts the kept replica, the removed ones, the command and every refusal.
  diff_mode:
    support: full
    details:
      - The diff shows the member replica IDs before and after.
  idempotent:
    support: full
    details:
      - After a repair the cluster has one healthy replica and quorum, so another run changes nothing.
options:
  emergency_repair:
    description:
      - Must be V(true), together with O(emergency_repair_confirmed), for the repair to run.
    type: bool
    default: false
  emergency_repair_confirmed:
    description:
      - The separate confirmation that the writes not on the kept replica may be lost.
    type: bool
    default: false
  replica_id:
    description:
      - The replica to keep (12 hexadecimal characters). It must be a member whose containers run on a ready node.
      - Default is the best survivor (see the description).
    type: str
  desired:
    description:
      - MKE node names that should run a replica (the inventory's C(msr) group); a survivor on one of them is
        preferred.
    type: list
    elements: str
    default: []
  version:
    description:
      - MSR version, the bootstrapper image tag. Defaults to the kept replica's version; another one is refused.
    type: str
  image:
    description:
      - Bootstrapper image repository.
    type: str
    default: mirantis/dtr
  debug:
    description:
      - Pass C(--debug) to the bootstrapper.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait, after the bootstrapper ends, for the kept replica to be healthy and the only member.
    type: int
    default: 600
  bootstrap_timeout:
    description:
      - Seconds the bootstrapper may stay silent before the module gives up on it (Docker API read timeout).
    type: int
    default: 1800
notes:
  - Take the newest backup (M(msr.replicas.backup)) you can before; without quorum a backup is impossible, so the
    last one taken while the cluster was healthy is what a failed repair falls back on.
seealso:
  - module: msr.replicas.cluster_info
  - module: msr.replicas.replica
"""

EXAMPLES = r"""
---
- name: Keep the best surviving replica of a cluster that lost quorum
  msr.replicas.emergency_repair:
    emergency_repair: true
    emergency_repair_confirmed: true
    desired: [worker-1, worker-2, worker-3]
    docker_host: ssh://root@manager-1
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
  register: msr_repair

- name: Keep a chosen replica
  msr.replicas.emergency_repair:
    emergency_repair: true
    emergency_repair_confirmed: true
    replica_id: f2277ad178f7
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
    msr_ca: "{{ lookup('ansible.builtin.file', 'msr-ca.pem') }}"
"""

RETURN = r"""
action:
  description: V(emergency_repair) when the repair ran (or would run), V(none) when the cluster has quorum.
  returned: always
  type: str
  sample: emergency_repair
replica_id:
  description: The replica kept (or that would be kept); null when nothing is repaired.
  returned: always
  type: str
  sample: f2277ad178f7
node:
  description: MKE node of the kept replica.
  returned: always
  type: str
  sample: worker-1
removed:
  description: The other members, which leave the cluster.
  returned: always
  type: list
  elements: str
  sample: [0123456789ab, 89abcdef0123]
survivors:
  description: The replicas that could be kept, best first (empty when quorum is not lost or nothing survives).
  returned: always
  type: list
  elements: str
quorum:
  description: The quorum numbers (C(size), C(healthy), C(majority), C(failures_tolerated), C(has_quorum)), after a repair the new ones.
  returned: always
  type: dict
  sample: {size: 1, healthy: 1, majority: 1, failures_tolerated: 0, has_quorum: true}
msg:
  description: What was done, or why nothing was.
  returned: always
  type: str
cmd:
  description: The equivalent docker CLI command, for the audit log; secrets as bare C(-e NAME).
  returned: when a repair ran or would run
  type: list
  elements: str
  sample: [docker, run, --rm, -e, UCP_CA, -e, UCP_PASSWORD, "mirantis/dtr:2.9.16", emergency-repair,
           --existing-replica-id, f2277ad178f7, --nocolor, --ucp-url, "https://mke.example.com", --ucp-username, admin]
phases:
  description: The bootstrapper's INFO log messages, in order.
  returned: when the bootstrapper ran
  type: list
  elements: str
health:
  description: The kept replica's health after the repair.
  returned: after a repair
  type: str
  sample: OK
diff:
  description: The member replica IDs before and after (C(replicas)).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils._cluster import clients_from_params, observe
from ansible_collections.msr.replicas.plugins.module_utils._common import check_connection_params, connection_argument_spec
from ansible_collections.msr.replicas.plugins.module_utils._engine import docker_argument_spec, validate_docker_params
from ansible_collections.msr.replicas.plugins.module_utils._repair import RepairManager


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        emergency_repair=dict(type="bool", default=False),
        emergency_repair_confirmed=dict(type="bool", default=False),
        replica_id=dict(type="str"),
        desired=dict(type="list", elements="str", default=[]),
        version=dict(type="str"),
        image=dict(type="str", default="mirantis/dtr"),
        debug=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        bootstrap_timeout=dict(type="int", default=1800),
    )
    spec.update(docker_argument_spec())
    return spec


def validate(module):
    check_connection_params(module)
    boot.check_replica_ids(module)
    boot.check_version(module)
    validate_docker_params(module)


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


def run(module):
    validate(module)
    p = module.params
    mke, msr_factory = clients_from_params(p)

    def observe_fn():
        return observe(mke, msr_factory, msr_url=p["msr_url"])

    manager = RepairManager(module, observe_fn, None, set_deadline=getattr(msr_factory, "set_deadline", None))
    module.exit_json(**manager.apply())


if __name__ == "__main__":
    main()
