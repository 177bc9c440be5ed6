#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: preflight_check
short_description: Check every prerequisite of a highly available MSR 2.x cluster at once
version_added: 0.1.0
description:
  - Decides, from what other modules read, whether the MKE cluster, the inventory and the controller meet
    the prerequisites of an HA MSR cluster, and reports B(all) failures at once. It reads nothing itself
    and changes nothing.
  - Fails when any check fails; the message lists every failure, each starting with the host (or C(MKE),
    C(group msr), ...) it is about and saying how to fix it. Warnings are Ansible warnings, and listed in
    RV(cautions).
  - The checks (RV(checked) names them) - MKE has at least 3 managers, an odd number, all ready and
    reachable; group msr has at least 3 hosts (or O(settings.allow_small_cluster), a warning), an odd number
    (or O(settings.allow_even), a warning), a warning above O(settings.max_replicas); each msr host is an MKE
    worker that is ready and active, runs no container but MSR's and MKE's own, and is in no other
    workload group of the inventory; image storage is shared when more than one replica is or will be
    running; the replicas run one MSR version, the one in C(msr_version); MKE lets admins schedule on
    managers and MSR nodes (C(enable_admin_ucp_scheduling)); an MKE CA or insecure TLS, and an MSR CA or
    insecure TLS, are chosen; the docker SDK (and paramiko for an C(ssh://) docker host) is importable
    where the replica module runs; each msr node has the CPUs and memory of the MSR system requirements
    (a warning).
  - The C(msr.replicas.preflight) role gathers the inputs and runs it; the same decisions are available
    as the P(msr.replicas.msr_preflight#filter) filter.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.attributes
  - msr.replicas.attributes.info_module
options:
  cluster_info:
    description:
      - The result of M(msr.replicas.cluster_info) with O(msr.replicas.cluster_info#module:workloads=true).
      - Omit it (or give null) when the cluster could not be read because no TLS trust was chosen; a failed
        result (with C(msg) and without C(nodes)) is reported as such.
    type: dict
  hosts:
    description: The hosts of inventory group C(msr).
    type: list
    elements: dict
    default: []
    suboptions:
      host: {description: Inventory hostname, type: str, required: true}
      node: {description: "MKE node name (C(msr_node_name)); default the short hostname", type: str}
      groups: {description: The host's inventory groups (C(group_names)), type: list, elements: str, default: []}
  requirements:
    description: The result of M(msr.replicas.requirements_info) where the replica module runs; omit to skip that check.
    type: dict
  settings:
    description: The inventory's choices.
    type: dict
    default: {}
    suboptions:
      mke_url: {description: "C(msr_mke_url), for messages", type: str}
      mke_ca: {description: Whether C(msr_mke_ca) is given, type: bool, default: false}
      mke_insecure_tls: {description: C(msr_mke_insecure_tls), type: bool, default: false}
      msr_ca: {description: Whether C(msr_ca) is given, type: bool, default: false}
      msr_insecure_tls: {description: C(msr_insecure_tls), type: bool, default: false}
      msr_dtr_ca: {description: "Whether C(msr_dtr_ca) is given (MSR's CA before an install)", type: bool, default: false}
      msr_version: {description: C(msr_version), type: str}
      storage_driver:
        description: The driver of C(msr_storage) (V(nfs) for NFS), for a cluster not installed yet.
        type: str
      shared_filesystem:
        description: The V(filesystem) driver's storage volume is one shared mount on every node.
        type: bool
        default: false
      allow_even: {description: C(msr_allow_even), type: bool, default: false}
      allow_small_cluster: {description: "C(msr_allow_small_cluster): fewer than 3 msr hosts, with a warning", type: bool, default: false}
      max_replicas: {description: Warn above this many msr hosts, type: int, default: 7}
      min_cpus: {description: CPUs an msr node should have (a warning below), type: float, default: 2}
      min_memory_gb: {description: "Memory an msr node should have, in GB (10^9 bytes; a warning below)", type: float, default: 16}
      neutral_groups:
        description: Inventory groups (shell patterns) that run no workload, besides C(all), C(ungrouped), C(msr) and C(mke_workers).
        type: list
        elements: str
        default: []
      allowed_containers:
        description: Container names (shell patterns) also allowed on an msr node, besides MSR's and MKE's own.
        type: list
        elements: str
        default: []
      module_host: {description: "Where the replica module runs (for messages)", type: str, default: localhost}
      docker_host: {description: "The replica module's docker_host (for messages)", type: str}
"""

EXAMPLES = r"""
---
- name: Read the cluster, with every node's workloads
  msr.replicas.cluster_info:
    workloads: true
  register: info

- name: Check
  msr.replicas.preflight_check:
    cluster_info: "{{ info }}"
    hosts:
      - {host: worker-1.example.com, groups: [msr, mke_workers]}
      - {host: worker-2.example.com, groups: [msr, mke_workers]}
      - {host: worker-3.example.com, groups: [msr, mke_workers]}
    settings:
      mke_ca: true
      msr_ca: true
      msr_version: 2.9.16
"""

RETURN = r"""
ok:
  description: No check failed.
  returned: always
  type: bool
failures:
  description: Every failure.
  returned: always
  type: list
  elements: dict
  contains:
    check: {description: "The check (see RV(checked))", type: str, returned: always}
    subject: {description: "What it is about: an inventory host, an MKE node, C(MKE), C(group msr), ...", type: str, returned: always}
    message: {description: "The subject, the problem and the fix", type: str, returned: always}
  sample:
    - {check: msr_even, subject: group msr, message: "group msr: 4 hosts, an even number: ..."}
cautions:
  description: Every warning (each also an Ansible warning), with the same keys as RV(failures).
  returned: always
  type: list
  elements: dict
failed_checks:
  description: The checks that failed, sorted.
  returned: always
  type: list
  elements: str
checked:
  description: The checks that ran.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils._preflight import evaluate

SETTINGS = dict(
    mke_url=dict(type="str"),
    mke_ca=dict(type="bool", default=False),
    mke_insecure_tls=dict(type="bool", default=False),
    msr_ca=dict(type="bool", default=False),
    msr_insecure_tls=dict(type="bool", default=False),
    msr_dtr_ca=dict(type="bool", default=False),
    msr_version=dict(type="str"),
    storage_driver=dict(type="str"),
    shared_filesystem=dict(type="bool", default=False),
    allow_even=dict(type="bool", default=False),
    allow_small_cluster=dict(type="bool", default=False),
    max_replicas=dict(type="int", default=7),
    min_cpus=dict(type="float", default=2),
    min_memory_gb=dict(type="float", default=16),
    neutral_groups=dict(type="list", elements="str", default=[]),
    allowed_containers=dict(type="list", elements="str", default=[]),
    module_host=dict(type="str", default="localhost"),
    docker_host=dict(type="str"),
)


def summary(failures):
    return "preflight: %d problem(s) to fix before changing MSR:\n%s" % (
        len(failures), "\n".join("- " + f["message"] for f in failures))


def argument_spec():
    return dict(
        cluster_info=dict(type="dict"),
        hosts=dict(type="list", elements="dict", default=[], options=dict(
            host=dict(type="str", required=True), node=dict(type="str"),
            groups=dict(type="list", elements="str", default=[]))),
        requirements=dict(type="dict"),
        settings=dict(type="dict", default={}, options=SETTINGS),
    )


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


def run(module):
    p = module.params
    report = evaluate(p["cluster_info"], p["hosts"], p["settings"], p["requirements"])
    for w in report["cautions"]:
        module.warn(w["message"])
    if report["failures"]:
        module.fail_json(msg=summary(report["failures"]), changed=False, **report)
    module.exit_json(changed=False, **report)


if __name__ == "__main__":
    main()
