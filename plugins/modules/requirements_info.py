#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: requirements_info
short_description: Tell whether the Python modules the MSR bootstrapper modules need are importable
version_added: 0.1.0
description:
  - Reports whether the Python that runs this module can import the docker SDK for Python, which
    M(msr.replicas.replica) and M(msr.replicas.backup) use to run the C(mirantis/dtr) bootstrapper, and
    paramiko, which the docker SDK's SSH transport needs when O(docker_host) is an C(ssh://) URL, with their
    versions.
  - Run it where those modules run, with the same interpreter - by default the controller
    (C(delegate_to=localhost)). The C(msr.replicas.preflight) role runs it there.
  - Never fails because a module is missing; it reports it.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.attributes
  - msr.replicas.attributes.info_module
options:
  docker_host:
    description:
      - The O(msr.replicas.replica#module:docker_host) the bootstrapper modules will use. Only its scheme
        matters here - C(ssh://) needs paramiko. Nothing is contacted.
    type: str
    default: unix:///var/run/docker.sock
"""

EXAMPLES = r"""
---
- name: Can the controller run the bootstrapper over SSH?
  msr.replicas.requirements_info:
    docker_host: ssh://root@manager-1
  delegate_to: localhost
  register: req

- name: Stop when the docker SDK is missing
  ansible.builtin.assert:
    that: req.docker.importable
    fail_msg: "{{ req.python }}: {{ req.docker.error }}"
"""

RETURN = r"""
python:
  description: The interpreter that ran the module.
  returned: always
  type: str
  sample: /usr/bin/python3
python_version:
  description: Its version.
  returned: always
  type: str
  sample: 3.11.2
docker_host:
  description: O(docker_host) as given.
  returned: always
  type: str
docker:
  description: The docker SDK for Python.
  returned: always
  type: dict
  contains:
    importable: {description: Whether C(import docker) works, type: bool, returned: always}
    version: {description: "Its version, null when not importable", type: str, returned: always}
    error: {description: "Why it is not importable (the import error), null when it is", type: str, returned: always}
  sample: {importable: true, version: 7.2.0, error: null}
paramiko:
  description: paramiko, the docker SDK's SSH transport.
  returned: always
  type: dict
  contains:
    importable: {description: Whether C(import paramiko) works, type: bool, returned: always}
    version: {description: "Its version, null when not importable", type: str, returned: always}
    error: {description: "Why it is not importable, null when it is", type: str, returned: always}
    needed: {description: "Whether O(docker_host) needs it (an C(ssh://) URL)", type: bool, returned: always}
  sample: {importable: false, version: null, error: "ModuleNotFoundError: No module named 'paramiko'", needed: true}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils._requirements import probe


def argument_spec():
    return dict(docker_host=dict(type="str", default="unix:///var/run/docker.sock"))


def run(module):
    module.exit_json(changed=False, **probe(module.params["docker_host"]))


def main():
    run(AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True))


if __name__ == "__main__":
    main()
