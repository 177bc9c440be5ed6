#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: report_file
short_description: Write a report file on the controller, without running a module
version_added: 0.1.0
description:
  - Writes O(content) to O(dest) on the Ansible controller, readable by its owner only (mode C(0600)),
    atomically (a temporary file in the same directory, then a rename).
  - Runs in the controller's own process (an action plugin), unlike M(ansible.builtin.copy) with C(content),
    which runs two modules; the C(msr.replicas.reconcile) playbook writes its JSON report with it.
  - A report is output, not managed state - the task never reports a change and writes in check mode too.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.attributes
options:
  dest:
    description:
      - Absolute path of the file on the controller. Its directory must exist.
    type: path
    required: true
  content:
    description:
      - A string is written as it is (a newline is added when it lacks one); anything else as indented JSON
        with sorted keys.
    type: raw
    required: true
attributes:
  check_mode:
    support: full
    details:
      - Writes the file in check mode too, because a report is output.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Never reports a change.
notes:
  - Always runs on the controller, whatever host the task targets.
"""

EXAMPLES = r"""
---
- name: Keep the drift report
  msr.replicas.report_file:
    dest: /var/lib/msr/reconcile.json
    content: "{{ report | to_nice_json }}"
"""

RETURN = r"""
---
dest:
  description: The file written.
  returned: success
  type: str
  sample: /var/lib/msr/reconcile.json
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(dest=dict(type="path", required=True),
                                              content=dict(type="raw", required=True)),
                           supports_check_mode=True)
    module.fail_json(msg="report_file runs on the controller as an action plugin; it cannot run as a module "
                         "on a host (was it called with a different action name?)")


if __name__ == "__main__":
    main()
