#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cluster_info
short_description: Read the MSR 2.x replica cluster through the MKE and MSR APIs
version_added: 0.1.0
description:
  - Lists the MKE nodes, the MSR replicas (from the C(dtr-rethinkdb-<id>) containers seen through MKE and
    the C(replica_health) of C(/api/v0/meta/cluster_status)), the image storage driver, the quorum numbers
    and the current issues, in one call.
  - Uses only HTTPS APIs (MKE, then each replica's C(/_ping) and one replica's C(cluster_status)). It never
    opens an SSH connection to the nodes.
  - Reports TLS and connection failures of single replicas as issues, not as a failure of the module (only
    an MKE failure fails it, since without MKE nothing can be read).
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.connection
  - msr.replicas.attributes
  - msr.replicas.attributes.actiongroup_msr
  - msr.replicas.attributes.info_module
options:
  workloads:
    description:
      - Also read every container MKE sees (C(/containers/json?all=1), one more request, as large as the
        cluster) and return each node's RV(nodes[].workloads). Off by default to keep the normal read cheap.
      - A workload is a container that is neither MSR's nor MKE's own. MSR's own are named C(dtr-*) or run
        the bootstrapper image (C(<registry>/dtr:<version>)). MKE's own are named C(ucp-*), or are Kubernetes
        containers (C(k8s_<container>_<pod>_<namespace>_...), labels C(io.kubernetes.pod.*)) of a pod in the
        C(kube-system) namespace or of a pod named C(ucp-*), such as calico-node and node feature discovery.
    type: bool
    default: false
  wait_bootstrappers:
    description:
      - Seconds to wait, before reading the cluster, while a bootstrapper container this collection started
        (label C(com.msr.replicas.command)) still runs, e.g. the join of a run whose controller was killed (the
        container goes on until its command ends). V(0) does not wait. The read that follows reports what is
        still running in RV(bootstrappers) (and an issue), whatever the wait.
      - Within the same seconds, a join or install such a container ended (exit status 0) is then waited for until
        its replica reports healthy, and a remove until its replica has left C(cluster_status), as the run that
        started it would have waited. So the plan does not take a replica that just joined, not yet healthy, for a
        failed one.
    type: int
    default: 0
notes:
  - A replica is C(healthy) when its container runs on a ready MKE node, its C(/_ping) answers 200 and
    C(replica_health) reports C(OK) for it. The top-level RV(healthy) is the collection's one health predicate,
    the one its modules and playbooks wait for and gate on.
"""

EXAMPLES = r"""
---
- name: Read the cluster
  msr.replicas.cluster_info:
    mke_url: https://mke.example.com
    mke_username: admin
    mke_password: "{{ vault_mke_password }}"
    mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  register: msr

- name: Stop when quorum is lost
  ansible.builtin.assert:
    that: msr.quorum.has_quorum
    fail_msg: "{{ msr.issues | map(attribute='message') | join('; ') }}"

- name: Set the MKE options once for every module of the collection
  module_defaults:
    group/msr.replicas.msr:
      mke_url: https://mke.example.com
      mke_password: "{{ vault_mke_password }}"
      mke_ca: "{{ lookup('ansible.builtin.file', 'mke-ca.pem') }}"
  block:
    - name: Unhealthy replicas
      msr.replicas.cluster_info:
      register: msr
    - name: Show them
      ansible.builtin.debug:
        msg: "{{ msr.replicas | rejectattr('healthy') | map(attribute='id') | list }}"
"""

RETURN = r"""
healthy:
  description:
    - The cluster is all-OK - membership known, every replica healthy, no critical MSR issue. The same predicate
      the replica module waits for before and after every change.
  returned: success
  type: bool
problems:
  description: Why RV(healthy) is false, one text per problem (empty when healthy).
  returned: success
  type: list
  elements: str
status_available:
  description: Some replica answered C(cluster_status); without it membership and quorum are unknown.
  returned: success
  type: bool
version:
  description: The MSR version of the replicas, null when they differ or none is seen.
  returned: success
  type: str
  sample: 2.9.16
bootstrappers:
  description:
    - The bootstrapper containers this collection started that are still on a node (running, or left exited by
      a run that was killed before it could remove them), as MKE lists them.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Container name, type: str, returned: always}
    node: {description: MKE node it is on, type: str, returned: always}
    command: {description: "The bootstrapper command (C(join), C(remove), ...)", type: str, returned: always}
    state: {description: "Container state (C(running), C(exited), ...)", type: str, returned: always}
    running: {description: Whether it still runs, type: bool, returned: always}
    status: {description: "MKE's status text, e.g. C(Up 5 seconds)", type: str, returned: always}
  sample:
    - {name: msr-replicas-join-0123456789ab, node: manager-1, command: join, state: running, running: true,
       status: Up 5 seconds}
current_issues:
  description: MSR's own C(current_issues) (C(critical), C(description)) as the answering replica reports them.
  returned: success
  type: list
  elements: dict
mke:
  description: MKE's scheduling settings from C(/api/ucp/config-toml) (C([scheduling_configuration])).
  returned: success
  type: dict
  contains:
    admin_scheduling:
      description: C(enable_admin_ucp_scheduling) (MSR install, join and backup need it true); null when unknown.
      type: bool
      returned: always
    user_scheduling:
      description: C(enable_user_ucp_scheduling); null when unknown.
      type: bool
      returned: always
    error:
      description: Why the settings could not be read.
      type: str
      returned: always
nodes:
  description: MKE nodes.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Node hostname (the value for C(--ucp-node)), type: str, returned: always}
    id: {description: Swarm node ID, type: str, returned: always}
    role: {description: C(manager) or C(worker), type: str, returned: always}
    state: {description: "C(ready), C(down), ...", type: str, returned: always}
    availability: {description: "C(active), C(pause) or C(drain)", type: str, returned: always}
    address: {description: Node address (C(Status.Addr)), type: str, returned: always}
    labels: {description: Node labels, type: dict, returned: always}
    message: {description: MKE health text, type: str, returned: always}
    leader: {description: Whether the node is the swarm leader, type: bool, returned: always}
    reachability: {description: Manager reachability, type: str, returned: always}
    replica_id: {description: "The replica on the node, null when none", type: str, returned: always}
    cpus:
      description: CPUs of the node (C(Description.Resources.NanoCPUs) / 10^9), null when MKE does not say.
      type: float
      returned: always
    memory_bytes:
      description: Memory of the node in bytes (C(Description.Resources.MemoryBytes)), null when MKE does not say.
      type: int
      returned: always
    workloads:
      description:
        - The node's containers that are neither MSR's nor MKE's own (see O(workloads)), any state. MKE lists
          no container of a node it cannot reach, so a down node shows none.
      type: list
      elements: dict
      returned: when O(workloads=true)
      contains:
        name: {description: Container name, type: str, returned: always}
        image: {description: Container image, type: str, returned: always}
        state: {description: "Container state (C(running), C(exited), ...)", type: str, returned: always}
        namespace: {description: "Kubernetes namespace of its pod, null for a plain container", type: str, returned: always}
  sample:
    - {name: worker-1, id: stn47x52941yu9b8752fadmqv, role: worker, state: ready, availability: active,
       address: 172.31.16.116, labels: {}, message: Healthy MKE worker, leader: false, reachability: null,
       cpus: 4.0, memory_bytes: 16651931648}
replicas:
  description: MSR replicas, from MKE containers and C(cluster_status); ghosts have no container.
  returned: success
  type: list
  elements: dict
  contains:
    id: {description: 12-hex replica ID, type: str, returned: always}
    state:
      description:
        - C(healthy); C(unhealthy); C(unreachable) (its MKE node is down or cannot be reached - it may come back with
          its containers); C(ghost) (a member without containers while MKE reaches every node - certainly dead,
          C(remove) it); C(partial) (containers but not a member - C(destroy) it).
      type: str
      returned: always
      choices: [healthy, unhealthy, unreachable, ghost, partial]
    detail: {description: "Why the state is not healthy, null when healthy", type: str, returned: always}
    address: {description: Address of the replica's MKE node, type: str, returned: always}
    http_port: {description: "Published HTTP port (dtr-nginx), null when unknown", type: int, returned: always}
    https_port: {description: "Published HTTPS port (dtr-nginx), null when unknown", type: int, returned: always}
    image: {description: Image of the C(dtr-rethinkdb) container, type: str, returned: always}
    timestamp:
      description: When the replica last reported its health (C(replica_timestamp)).
      type: str
      returned: always
    node: {description: "MKE node of the replica, null for a ghost", type: str, returned: always}
    version: {description: MSR version (label C(com.docker.dtr.version)), type: str, returned: always}
    health: {description: "C(OK), the replica_health message, C(not in cluster_status) or C(unknown)", type: str, returned: always}
    healthy: {description: "Container running, C(/_ping) 200 and health C(OK)", type: bool, returned: always}
    ping: {description: "HTTP status of the replica's C(/_ping), null when unreachable", type: int, returned: always}
    ping_error: {description: Why C(/_ping) failed, type: str, returned: always}
    ghost: {description: In C(cluster_status) but without containers, type: bool, returned: always}
    in_cluster_status:
      description: Listed in C(replica_health); null when no replica answered.
      type: bool
      returned: always
    url: {description: Address used to reach the replica, type: str, returned: always}
    container_state: {description: State of the C(dtr-rethinkdb) container, type: str, returned: always}
    node_exists: {description: Whether MKE lists the node, type: bool, returned: always}
    node_state: {description: MKE state of the node, type: str, returned: always}
  sample:
    - {id: f2277ad178f7, node: worker-1, version: 2.9.16, health: OK, healthy: true, ping: 200, ping_error: "",
       ghost: false, in_cluster_status: true, url: "https://172.31.16.117", container_state: running,
       node_exists: true, node_state: ready}
storage:
  description: Image storage.
  returned: success
  type: dict
  contains:
    driver: {description: "The storage driver (C(filesystem), C(s3), C(azure), ...), null when unknown", type: str, returned: always}
    drivers: {description: Driver keys found, type: list, elements: str, returned: always}
    nfs:
      description:
        - Whether the replicas keep images on MSR's NFS volume (C(dtr-nfs-registry-<id>), from install's
          C(--nfs-storage-url)); MSR reports NFS storage as the V(filesystem) driver, so only the volumes tell
          them apart. Null when no C(dtr-registry-<id>) container is seen.
      type: bool
      returned: always
  sample: {driver: s3, drivers: [s3]}
quorum:
  description: RethinkDB quorum numbers for the current membership.
  returned: success
  type: dict
  contains:
    size: {description: Members (replica_health keys), type: int, returned: always}
    healthy: {description: Healthy members, type: int, returned: always}
    majority: {description: Members needed for quorum, type: int, returned: always}
    failures_tolerated: {description: Members that may fail without losing quorum, type: int, returned: always}
    has_quorum:
      description: Whether the healthy members are a majority; null when membership is unknown (no cluster_status).
      type: bool
      returned: always
  sample: {size: 3, healthy: 3, majority: 2, failures_tolerated: 1, has_quorum: true}
issues:
  description:
    - Current issues reported by MSR plus derived ones (ghosts, unreachable replicas, partial joins, even count,
      filesystem storage with several replicas, quorum loss).
  returned: success
  type: list
  elements: dict
  contains:
    kind: {description: Machine-readable kind, type: str, returned: always}
    severity: {description: C(critical) or C(warning), type: str, returned: always}
    message: {description: Explanation, type: str, returned: always}
    replica_id: {description: "Replica concerned, if any", type: str, returned: always}
  sample:
    - {kind: even_count, severity: warning, message: "2 replicas: an even count tolerates no more failures than 1; use 3, 5 or 7", replica_id: null}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils._cluster import (
    clients_from_params,
    observe,
    public_view,
    unsettled,
)
from ansible_collections.msr.replicas.plugins.module_utils._common import (
    MsrError,
    check_connection_params,
    connection_argument_spec,
    poll_pause,
)


def wait_bootstrappers(mke, seconds, interval=2):
    """Until no bootstrapper of this collection runs, at most ``seconds``: (the last listing read, None when
    ``seconds`` is 0, which the observation then uses instead of asking again; the names of those seen
    running)."""
    deadline = time.time() + max(seconds or 0, 0)
    found, seen = None, set()
    while time.time() < deadline:
        found = mke.bootstrappers()
        seen.update(b["name"] for b in found if b["running"])
        if not any(b["running"] for b in found):
            break
        time.sleep(min(interval, max(deadline - time.time(), 0)))
        found = None
    return found, seen


def read(params, mke, msr_factory, pause=0.5, longest=5):
    """The cluster once the bootstrappers that ran are done (wait_bootstrappers), and their replicas have
    settled (unsettled), both within params["wait_bootstrappers"] seconds."""
    deadline = time.time() + max(params["wait_bootstrappers"] or 0, 0)
    found, seen = wait_bootstrappers(mke, params["wait_bootstrappers"])
    reads = 0
    while True:
        view = observe(mke, msr_factory, msr_url=params["msr_url"], mke_config=True,
                       workloads=params["workloads"], bootstrappers=found)
        finished = [b for b in view["bootstrappers"] if b["name"] in seen]
        left = deadline - time.time()
        if not seen or left <= 0 or not unsettled(view, finished):
            return view
        reads += 1
        time.sleep(min(poll_pause(reads, pause, longest), left))
        found = None


def argument_spec():
    spec = connection_argument_spec()
    spec["workloads"] = dict(type="bool", default=False)
    spec["wait_bootstrappers"] = dict(type="int", default=0)
    return spec


def run(module):
    """Read the cluster and exit; ``module`` is an AnsibleModule, or the action plugin's in-process stand-in."""
    check_connection_params(module)
    try:
        mke, msr_factory = clients_from_params(module.params)
        view = read(module.params, mke, msr_factory)
    except MsrError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **public_view(view))


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


if __name__ == "__main__":
    main()
