#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lb_pool_info
short_description: Read the MSR pool of an HAProxy or NGINX load balancer
version_added: 0.1.0
description:
  - Reads the servers of the MSR backends of an LB host as M(msr.replicas.lb_pool) reports them, changing
    nothing - the members in the config file and, for HAProxy, each server's admin and operational state from
    the runtime API (C(show servers state) on O(socket)). Runs B(on the LB host) (C(delegate_to) it).
  - An action plugin runs it as one remote command of the LB host's Python (no module payload) and parses
    the answer on the controller; when the host has no C(python3) on its C(PATH) and no
    C(ansible_python_interpreter) is set, it runs as a module.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.attributes
  - msr.replicas.attributes.info_module
options:
  provider:
    description:
      - The LB software.
    type: str
    required: true
    choices: [haproxy, nginx]
  config:
    description:
      - The config file that holds the pool. Defaults to C(/etc/haproxy/haproxy.cfg) or C(/etc/nginx/nginx.conf).
    type: path
  backends:
    description:
      - The managed backends (HAProxy) or upstreams (NGINX), each V(http) or V(https), as for M(msr.replicas.lb_pool).
      - 'Defaults to C({msr_http: http, msr_https: https}) or C({msr_80: http, msr_443: https}).'
    type: dict
  socket:
    description:
      - HAProxy - the runtime API's admin socket.
    type: path
    default: /run/haproxy/admin.sock
notes:
  - The config file and the socket usually need root on the LB host (C(become)).
seealso:
  - module: msr.replicas.lb_pool
"""

EXAMPLES = r"""
---
- name: Read the pool of lb1
  msr.replicas.lb_pool_info:
    provider: haproxy
  delegate_to: lb1
  register: seen
"""

RETURN = r"""
---
provider:
  description: The LB software.
  returned: success
  type: str
  sample: haproxy
config:
  description: The config file read.
  returned: success
  type: str
  sample: /etc/haproxy/haproxy.cfg
pool:
  description: The members in the config file's managed backends.
  returned: success
  type: list
  elements: dict
  sample: [{name: worker1, address: 10.0.0.21, http_port: 80, https_port: 443}]
runtime:
  description: HAProxy - admin and operational state of each server of the managed backends; C(null) for NGINX.
  returned: success
  type: list
  elements: dict
  sample: [{backend: msr_http, name: worker1, address: 10.0.0.21, port: 80, admin: READY, operational: UP}]
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils import _haproxy, _lbinfo
from ansible_collections.msr.replicas.plugins.module_utils._lbconf import LbConfError


def argument_spec():
    return dict(provider=dict(type="str", required=True, choices=["haproxy", "nginx"]), config=dict(type="path"),
                backends=dict(type="dict"), socket=dict(type="path", default="/run/haproxy/admin.sock"))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        provider, path, backends = _lbinfo.settings(module.params)
        text = _lbinfo.read_config(path)
        state = _haproxy.command(module.params["socket"], _lbinfo.STATE_COMMAND) if provider == "haproxy" else None
        view = _lbinfo.pool_view(provider, path, backends, text, state)
    except (LbConfError, _haproxy.HaproxyError) as exc:
        module.fail_json(msg="%s: %s" % (socket.gethostname(), exc))
    module.exit_json(changed=False, **view)


if __name__ == "__main__":
    main()
