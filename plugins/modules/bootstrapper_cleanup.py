#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: bootstrapper_cleanup
short_description: Remove the exited bootstrapper containers that killed runs left on a Docker engine
version_added: 0.1.0
description:
  - A run of this collection removes each bootstrapper (and backup) container it starts. A run killed with its
    controller cannot, and the container, which outlives its client as on any Docker engine, stays once it has
    exited. This module removes those exited containers (label C(com.msr.replicas.command)) from the engine at
    O(docker_host).
  - Running ones are never touched (a join or remove still going on); they are listed in RV(running).
  - Containers without the label (MSR's own, anybody else's) are never touched.
  - The C(msr.replicas.replica) role runs it at the start of every entry point when
    M(msr.replicas.cluster_info) lists such a container, so the next run clears what a killed one left even
    when it has nothing else to do.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.docker
  - msr.replicas.attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists the containers that would be removed and reports C(changed) as a real run would.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  timeout:
    description:
      - Seconds to wait for the Docker engine's answers.
    type: int
    default: 60
requirements:
  - docker (the Docker SDK for Python) >= 7.0
"""

EXAMPLES = r"""
---
- name: Remove what killed runs left on the bootstrap host's engine
  msr.replicas.bootstrapper_cleanup:
    docker_host: ssh://ubuntu@mke-manager-1
"""

RETURN = r"""
---
removed:
  description: The containers removed (would be removed, in check mode), each with its command and exit status.
  returned: success
  type: list
  elements: str
  sample: ["msr-replicas-remove-3a9e8f0c1b2d (remove, exit status 0)"]
running:
  description: This collection's bootstrapper containers still running on the engine, left alone.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.msr.replicas.plugins.module_utils import _bootstrapper as boot
from ansible_collections.msr.replicas.plugins.module_utils import _engine as engine
from ansible_collections.msr.replicas.plugins.module_utils._common import MsrError


def cleanup(module, runner):
    """The module's result: exited leftovers removed (or listed in check mode), running ones reported."""
    try:
        ours = runner.client().containers.list(all=True, filters={"label": boot.LABEL})
    except engine.CONNECTION_ERRORS as exc:
        raise MsrError("cannot list containers on %s: %s" % (runner.docker_host, exc))
    found = [c for c in ours if c.status == "exited"]
    if module.check_mode:
        removed = [boot.describe_leftover(c) for c in found]
    else:
        runner.clear(found)
        removed = runner.cleared
    for text in runner.unremoved:
        module.warn("could not remove the bootstrapper container %s" % text)
    result = dict(changed=bool(removed), removed=removed,
                  running=sorted(c.name for c in ours if c.status == "running"))
    if module._diff:
        result["diff"] = {"before": {"exited": sorted(c.name for c in found)},
                          "after": {"exited": sorted(t.split(" ", 1)[0] for t in runner.unremoved)}}
    return result


def main():
    spec = engine.docker_argument_spec()
    spec.update(timeout=dict(type="int", default=60))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    engine.validate_docker_params(module)
    if not engine.HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=engine.DOCKER_IMPORT_ERROR)
    runner = boot.Bootstrapper(module.params["docker_host"], timeout=module.params["timeout"],
                               tls=engine.tls_from_params(module.params))
    try:
        module.exit_json(**cleanup(module, runner))
    except MsrError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
