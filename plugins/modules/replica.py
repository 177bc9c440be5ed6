#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: replica
short_description: Join, install, remove or destroy one MSR 2.x replica on an MKE node
version_added: 0.1.0
description:
  - Makes sure an MKE node runs an MSR (ex DTR) replica (O(state=present)) or does not (O(state=absent)).
  - Reads the cluster through the MKE and MSR APIs first and acts only on a difference, by running the
    C(mirantis/dtr) bootstrapper (C(join), C(install) or C(remove)) with the docker SDK on the engine at
    O(docker_host). The bootstrapper acts through MKE, so it can run on any MKE node.
  - The MKE password and CA reach the bootstrapper only through its environment (C(UCP_PASSWORD),
    C(UCP_CA)); the returned O(ignore:cmd) never contains them.
  - Every decision is taken by the collection's safety gates (the same ones its planner and playbooks
    use), so check mode predicts each refusal of a real run.
  - Joins only on a ready, active MKE B(worker), only while the whole cluster is all-OK (every replica
    healthy, membership known, no critical MSR issue; unless O(unsafe_join=true)), always from a healthy
    replica, and waits for the new replica's C(/_ping) and an all-OK cluster. A failed join is cleaned up
    (C(remove), then C(destroy) of the new replica ID), or the module reports exactly what is left and how
    to clear it.
  - A partial join (containers on the node, not a cluster member) is cleared with C(destroy) of its ID
    (never C(remove), which the bootstrapper rejects for it), then, for O(state=present), the join runs.
  - Removing needs a known membership (some replica answers C(cluster_status)), a healthy replica that
    stays, every other replica healthy (the bootstrapper's own pre-check; O(force) skips it) and a
    healthy majority afterwards (never skipped). It then waits for the replica to leave and for an all-OK
    cluster. See the emergency-repair runbook when quorum is already lost.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.docker
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
attributes:
  check_mode:
    support: full
    details:
      - Check mode reads the cluster and predicts C(changed), the diff, the bootstrapper commands and the
        refusals exactly as a real run would, without running anything. A replica ID the real run would
        generate shows as C(<new replica id>), so check mode prints the same on every run.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  node:
    description:
      - MKE node name (its hostname, as in C(docker node ls)), passed as C(--ucp-node).
      - Required except for O(state=absent) with O(replica_id) (for a ghost replica, or one whose node is gone).
    type: str
  state:
    description:
      - V(present) joins a replica to O(node) when it has none (or installs the first replica with O(install=true)).
      - V(absent) removes the replica on O(node), or the replica O(replica_id) (or the replicas O(replica_ids));
        a partial join is destroyed instead.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - MSR version, the bootstrapper image tag (for example V(2.9.16)).
      - Defaults to the version of the existing replicas (label C(com.docker.dtr.version)). Required for O(install=true).
    type: str
  image:
    description:
      - Bootstrapper image repository.
    type: str
    default: mirantis/dtr
  existing_replica_id:
    description:
      - Replica whose database the bootstrapper uses (C(--existing-replica-id)). It must be healthy and is never
        the replica being removed.
      - Default is the healthy replica with the lowest ID that is not the target.
    type: str
  replica_id:
    description:
      - 12 hexadecimal characters. With O(state=present), the ID for the new replica (default random; the module
        always passes one so that a failed join can be cleaned up). With O(state=absent), the replica to remove.
    type: str
  replica_ids:
    description:
      - With O(state=absent), several replicas to remove with one C(remove --replica-ids a,b). The bootstrapper
        removes a replica only while every other one is healthy, so two unhealthy replicas can only go together.
      - Mutually exclusive with O(replica_id).
    type: list
    elements: str
  install:
    description:
      - Allow C(install) of the first replica when the cluster has none. Without it, O(state=present) fails on
        an empty cluster.
    type: bool
    default: false
  external_url:
    description:
      - C(--dtr-external-url) for C(install) (the MSR load balancer URL, C(https://host[:port])).
    type: str
  nfs_storage_url:
    description:
      - C(--nfs-storage-url) for C(install), C(nfs://<host>/<path>) - MSR keeps images on that NFS export, shared
        by every replica (replicas that join later use it too). Ignored for C(join).
    type: str
  dtr_ca:
    description:
      - For C(install), PEM text of the organisation's CA that signed O(dtr_cert) (C(--dtr-ca)); MSR then serves
        it instead of generating a CA of its own. Pass the same text as O(msr_ca) afterwards.
      - Given with O(dtr_cert) and O(dtr_key); all three reach the bootstrapper by environment, never in argv.
    type: str
  dtr_cert:
    description:
      - For C(install), PEM text of the replicas' certificate (C(--dtr-cert)); it should name the load balancer's
        and the nodes' names.
    type: str
  dtr_key:
    description:
      - For C(install), PEM text of the private key of O(dtr_cert) (C(--dtr-key)). Secret - never logged, never in
        argv or output.
    type: str
  unsafe_join:
    description:
      - Join even though some replica is unhealthy (C(--unsafe-join)). This risks split brain and data loss;
        the module warns.
    type: bool
    default: false
  skip_network_test:
    description:
      - Skip the overlay network test of C(join) (C(--skip-network-test)).
    type: bool
    default: false
  replica_http_port:
    description:
      - C(--replica-http-port) of the new replica.
    type: int
  replica_https_port:
    description:
      - C(--replica-https-port) of the new replica; also the port used to reach it for health checks.
    type: int
  force:
    description:
      - Pass C(--force) to C(remove) (skip the bootstrapper's pre-checks; MSR 2.9 or later), and allow removing a
        replica while another one is unhealthy (the module warns). The quorum guard is never skipped, and a
        removal still needs a known membership.
    type: bool
    default: false
  debug:
    description:
      - Pass C(--debug) to the bootstrapper.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait after a join or install for the replica's C(/_ping) 200 and an all-OK cluster, after a
        remove for the replica to leave the cluster and the rest to be all-OK, and after a destroy for its
        containers to go. Every API request of the wait is bounded by the time left; on a timeout the message
        says what was last seen (or the last error).
    type: int
    default: 600
  bootstrap_timeout:
    description:
      - Seconds the bootstrapper may stay silent before the module gives up on it (Docker API read timeout).
    type: int
    default: 1800
  progress_file:
    description:
      - File to which the module appends one JSON line (C(node), C(command), C(kind), C(text)) for each phase,
        warning, error and fatal error the bootstrapper logs and for the replica ID once it is known, as they
        happen. The collection's action plugin of this module sets it and shows the lines; there is no need to
        set it yourself.
      - The lines are the bootstrapper's own log messages with the secrets masked, never its environment.
      - Nothing is written in check mode (nothing runs).
    type: path
notes:
  - The bootstrapper runs as a container named C(msr-replicas-<command>-<replica id>), which is always removed.
  - >-
    Progress. When the module runs on the controller (a local connection, as the collection's roles and
    playbooks always run it, with C(delegate_to=localhost) or C(hosts=localhost)), its action plugin shows each
    bootstrapper phase, warning and error, and the new replica ID, at default verbosity while the bootstrapper
    runs, as C(<node>: <command>: <message>) lines (cleanup runs of a failed join too). With any other
    connection, with C(become), or with C(async), nothing can stream; the phases are shown once the module
    returns. The full log is returned in RV(log) either way.
seealso:
  - module: msr.replicas.cluster_info
"""

EXAMPLES = r"""
---
- name: Join a replica on worker-4 (the bootstrapper runs on this host's engine)
  msr.replicas.replica:
    node: worker-4
    version: 2.9.16
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"

- name: Remove the replica of worker-2, running the bootstrapper on a manager over SSH
  msr.replicas.replica:
    node: worker-2
    state: absent
    docker_host: ssh://root@manager-1
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  delegate_to: localhost

- name: Remove a ghost replica whose node is gone
  msr.replicas.replica:
    replica_id: b9954c115ff1
    state: absent
    mke_url: https://mke.example.com
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"

- name: Install the first replica, with the MKE options set once for the group
  module_defaults:
    group/msr.replicas.msr:
      mke_url: https://mke.example.com
      mke_password: "{{ vault_mke_password }}"
      mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  block:
    - name: Install
      msr.replicas.replica:
        node: worker-1
        version: 2.9.16
        install: true
        external_url: https://msr.example.com
      register: first
    - name: Show the new replica ID
      ansible.builtin.debug:
        var: first.replica_id
"""

RETURN = r"""
replica_id:
  description: ID of the replica on O(node) (new, existing or removed); null when there is none.
  returned: always
  type: str
  sample: f2277ad178f7
node:
  description: MKE node of the replica.
  returned: always
  type: str
  sample: worker-4
action:
  description: What was done (or would be done in check mode).
  returned: always
  type: str
  sample: join
  choices: [none, join, install, remove, destroy]
existing_replica_id:
  description: Replica whose database the bootstrapper used.
  returned: when a bootstrapper command ran or would run
  type: str
  sample: f3712d9c419a
replica_ids:
  description: The replicas removed or destroyed.
  returned: when O(state=absent) changes something
  type: list
  elements: str
destroyed:
  description: Partial joins on O(node) destroyed before the join.
  returned: when a partial join was found on O(node)
  type: list
  elements: str
state:
  description: The replica's state (C(healthy), C(unhealthy), C(unreachable), C(ghost), C(partial)); null when absent.
  returned: always
  type: str
health:
  description: C(replica_health) of the replica after the run (C(OK) or the error), null when absent.
  returned: always
  type: str
  sample: OK
healthy:
  description: Whether the replica is healthy (container running, C(/_ping) 200, health C(OK)).
  returned: always
  type: bool
phases:
  description: The bootstrapper's INFO log messages, in order.
  returned: when a bootstrapper command ran
  type: list
  elements: str
  sample: ["Beginning Docker Trusted Registry replica join", "Join is complete"]
bootstrapper_warnings:
  description: The bootstrapper's WARN log messages.
  returned: when a bootstrapper command ran
  type: list
  elements: str
log:
  description: Every output line of the bootstrapper.
  returned: when a bootstrapper command ran
  type: list
  elements: str
runs:
  description: Each bootstrapper run of the change, in order (C(command), C(cmd), C(rc), C(phases)); C(phases) and C(log) above are the last run's.
  returned: when a bootstrapper command ran
  type: list
  elements: dict
cmds:
  description: Every bootstrapper command of the change, in order (for example C(destroy) of a partial join, then C(join)).
  returned: when a bootstrapper command ran or would run
  type: list
  elements: list
cmd:
  description: The equivalent docker CLI command of the main change, for the audit log. Secrets are passed as bare C(-e NAME).
  returned: when a bootstrapper command ran or would run
  type: list
  elements: str
  sample: [docker, run, --rm, -e, UCP_CA, -e, UCP_PASSWORD, "mirantis/dtr:2.9.16", join, --ucp-node, worker-4]
cleanup:
  description:
    - After a failed join, the cleanup commands that ran and what is left of the new replica (C(left), with the
      C(commands) that clear it).
    - C(also_left) lists other leftovers of the failed run, such as the bootstrapper's C(dtr-phase2) container on
      the target node.
  returned: on a failed join
  type: dict
also_left:
  description: After a join that succeeded, what its bootstrapper left behind (the C(dtr-phase2) container on the target
    node, which a later join there clashes with); a warning names the command that clears it.
  returned: when a successful join left something
  type: list
  elements: str
  sample: [container dtr-phase2 on node worker-4]
diff:
  description:
    - Membership of O(node) before and after (C(node), C(replica_id), C(state)).
    - For a join without O(replica_id), C(after.replica_id) is null in check mode (the ID is generated at
      run time) and the new ID after a real run. C(before.state) is C(partial) when a partial join is replaced.
  returned: always
  type: dict
  sample: {before: {node: worker-4, replica_id: null, state: absent}, after: {node: worker-4, replica_id: null, state: present}}
"""

from functools import partial

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils._cluster import clients_from_params, observe
from ansible_collections.msr.replicas.plugins.module_utils._common import connection_argument_spec
from ansible_collections.msr.replicas.plugins.module_utils._engine import docker_argument_spec
from ansible_collections.msr.replicas.plugins.module_utils._progress import ProgressWriter
from ansible_collections.msr.replicas.plugins.module_utils._replica import (
    ReplicaManager,
    phase2_on_node,
    validate,
)


def argument_spec():
    spec = connection_argument_spec()
    spec.update(
        node=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        version=dict(type="str"),
        image=dict(type="str", default="mirantis/dtr"),
        existing_replica_id=dict(type="str"),
        replica_id=dict(type="str"),
        replica_ids=dict(type="list", elements="str"),
        install=dict(type="bool", default=False),
        external_url=dict(type="str"),
        nfs_storage_url=dict(type="str"),
        dtr_ca=dict(type="str"),
        dtr_cert=dict(type="str"),
        dtr_key=dict(type="str", no_log=True),
        unsafe_join=dict(type="bool", default=False),
        skip_network_test=dict(type="bool", default=False),
        replica_http_port=dict(type="int"),
        replica_https_port=dict(type="int"),
        force=dict(type="bool", default=False),
        debug=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
        bootstrap_timeout=dict(type="int", default=1800),
        progress_file=dict(type="path"),
    )
    spec.update(docker_argument_spec())
    return spec


RULES = dict(
    required_if=[("state", "present", ["node"]), ("state", "absent", ["node", "replica_id", "replica_ids"], True)],
    mutually_exclusive=[("replica_id", "replica_ids")],
)


def run(module):
    """Apply and exit; ``module`` is an AnsibleModule, or the action plugin's in-process stand-in."""
    validate(module)
    p = module.params
    mke, msr_factory = clients_from_params(p)

    def observe_fn():
        return observe(mke, msr_factory, msr_url=p["msr_url"], default_https_port=p["replica_https_port"] or 443)

    progress = None
    if p["progress_file"] and not module.check_mode:
        progress = ProgressWriter(p["progress_file"], p["node"] or ",".join(p["replica_ids"] or []) or p["replica_id"])
    manager = ReplicaManager(module, observe_fn, None, partial(phase2_on_node, mke) if mke is not None else None,
                             set_deadline=getattr(msr_factory, "set_deadline", None), progress=progress)
    module.exit_json(**manager.apply())


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **RULES))


if __name__ == "__main__":
    main()
