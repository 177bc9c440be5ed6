#!/usr/bin/python
# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lb_pool
short_description: Keep the MSR pool of an HAProxy or NGINX load balancer
version_added: 0.1.0
description:
  - Keeps the servers of the MSR backends of a TCP load balancer in front of the replicas (HTTP on 80,
    HTTPS on 443, passed through) equal to what O(members) and O(state) say. Runs B(on the LB host)
    (C(delegate_to) it).
  - The pool lives in the config file, so a reload, restart or reboot keeps it. Only the server lines
    of the named backends (O(backends)) change; every other byte of the file stays, and the line of a
    kept member stays as it is, except that it loses HAProxy's C(disabled) keyword or NGINX's C(down)
    parameter (a member takes traffic) and that an HAProxy server whose address or port changed gets a
    new line from O(server_options). New servers go after the backend's last server line.
  - The new file is written to a temporary file in the same directory, validated (C(haproxy -c -f),
    C(nginx -t -c)) and only then renamed over the old one, keeping its mode and owner. A file that
    does not validate fails the task and the old file stays byte for byte.
  - Then the LB reloads gracefully through the host's service manager (O(reload_command)).
  - B(HAProxy.) A server leaves only after a drain through the runtime API (O(socket)) -
    C(set server <backend>/<server> state drain) in every managed backend, then a wait, bounded by
    O(drain_timeout), until it has no current session; a server DOWN by its health check counts as
    drained. On timeout the task fails, nothing is removed and the server gets its admin state back.
    After the reload the module waits until the runtime API shows the file's pool (O(reload_timeout))
    and until each added server passed a health check and is UP (O(up_timeout)).
  - B(HAProxy.) A member whose runtime admin state is DRAIN or MAINT (forced through the API) is set
    back to READY, and a runtime pool that differs from the file (a reload that was lost, a server
    added or deleted through the API) triggers a reload; both are changes.
  - B(NGINX.) Servers are known by address and port (NGINX's have no names). NGINX cannot report
    sessions; its reload is the drain. New connections go only to the new pool at once, but the old
    workers keep the connections they carry (to any server) until those end; when members left, the
    module waits, bounded by O(drain_timeout), until those workers have exited, so that the caller
    removes a replica only once no connection is passed to it any more. On timeout the task fails (the
    new pool stays in place). The pool is the
    upstream blocks of O(config) - nginx.conf itself, or a file of upstream blocks that
    O(nginx_main_config) includes; such a file is written, validated with C(nginx -t -c
    <nginx_main_config>) and put back as it was when that fails. An upstream left without member
    gets the placeholder C(server 127.0.0.1:1 down;), because NGINX refuses an empty one.
  - C(changed) compares administrative state only (file membership; HAProxy's runtime membership and
    READY, DRAIN or MAINT), never session counts or health.
author:
  - msr.replicas maintainers (@msr-replicas)
extends_documentation_fragment:
  - msr.replicas.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode predicts changed, the pool, added, removed, the reload and the diff exactly, and the
        refusal of an invalid file (it validates the new text as a temporary file beside the config and
        removes it at once; an NGINX include file is not validated in check mode). It writes no config,
        drains nothing and reloads nothing; RV(drained) then shows the current sessions with state
        V(pending) (or V(DOWN)).
  diff_mode:
    support: full
    details:
      - The config file before and after; for HAProxy also the runtime pool (server, address, admin
        state) before and after, over the admin socket.
  idempotent:
    support: full
options:
  provider:
    description: The load balancer on this host.
    type: str
    required: true
    choices: [haproxy, nginx]
  state:
    description:
      - V(present) - the listed members are in the pool; other servers stay.
      - V(absent) - the listed members are drained and out of the pool (matched by name for HAProxy,
        by address and port for NGINX).
      - V(exact) - the pool is the listed members and nothing else (C(server-template) lines of
        HAProxy stay).
    type: str
    choices: [present, absent, exact]
    default: present
  members:
    description: The replicas, one per MSR node.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The HAProxy server name, the MKE node name of the replica.
        type: str
        required: true
      address:
        description: The node's address (IP or host name) the LB connects to.
        type: str
        required: true
      http_port:
        description: The replica's HTTP port (C(--replica-http-port)), used by the V(http) backends.
        type: int
        default: 80
      https_port:
        description: The replica's HTTPS port (C(--replica-https-port)), used by the V(https) backends.
        type: int
        default: 443
  config:
    description:
      - The config file that holds the pool.
      - Default C(/etc/haproxy/haproxy.cfg) for HAProxy, C(/etc/nginx/nginx.conf) for NGINX.
    type: path
  backends:
    description:
      - The backends (HAProxy C(backend) or C(listen) sections) or stream upstreams (NGINX) of the pool,
        each with the kind of port its servers use, V(http) or V(https). Each must exist.
      - "Default C({msr_http: http, msr_https: https}) for HAProxy, C({msr_80: http, msr_443: https})
        for NGINX."
    type: dict
  server_options:
    description:
      - What follows the address on a new server line; C({http_port}) and C({https_port}) are the
        member's ports.
      - Default C(check port {http_port} inter 2s fall 3 rise 2) for HAProxy (with the backends'
        C(option httpchk GET /_ping)), C(max_fails=2 fail_timeout=30s) for NGINX.
    type: str
  socket:
    description: HAProxy's admin socket (C(stats socket ... level admin)).
    type: path
    default: /run/haproxy/admin.sock
  drain_timeout:
    description:
      - Seconds to wait for a leaving HAProxy server to have no session, or, for NGINX, after a reload that
        took members out, for the old worker processes to finish their connections and exit.
    type: int
    default: 120
  up_timeout:
    description: Seconds to wait after an HAProxy reload for the added servers to be UP; V(0) does not wait.
    type: int
    default: 30
  reload_timeout:
    description:
      - Seconds to wait after the reload command for HAProxy's runtime API to show the file's pool, or
        for NGINX to run a new worker.
    type: int
    default: 30
  reload_command:
    description:
      - The command (argv) that reloads the LB gracefully.
      - Default C(systemctl reload <provider>) when systemd runs the host, else C(service <provider> reload).
    type: list
    elements: str
  nginx_main_config:
    description: NGINX's main config, validated with C(nginx -t -c) when O(config) is another file.
    type: path
    default: /etc/nginx/nginx.conf
notes:
  - The module needs root (or the LB's user) on the LB host, the C(haproxy) or C(nginx) binary there,
    and for HAProxy an admin socket at C(level admin).
  - Add a replica to the pool only once it is healthy, and drain it out before removing it; the role
    C(msr.replicas.lb_pool) does so.
seealso:
  - name: HAProxy management guide, runtime API
    description: C(show servers state), C(set server ... state).
    link: https://docs.haproxy.org/2.6/management.html
  - name: NGINX stream upstream module
    description: The C(upstream) block and the parameters of C(server).
    link: https://nginx.org/en/docs/stream/ngx_stream_upstream_module.html
"""

EXAMPLES = r"""
---
- name: Put worker4's new replica into the HAProxy pool
  msr.replicas.lb_pool:
    provider: haproxy
    members:
      - name: worker4
        address: 10.0.0.24
  delegate_to: lb1

- name: Drain worker2 (at most 5 minutes) and take it out of the pool before removing its replica
  msr.replicas.lb_pool:
    provider: haproxy
    state: absent
    members:
      - name: worker2
        address: 10.0.0.22
    drain_timeout: 300
  delegate_to: lb1

- name: The NGINX pool is exactly the healthy replicas, in an upstream file included by nginx.conf
  msr.replicas.lb_pool:
    provider: nginx
    state: exact
    config: /etc/nginx/msr-upstreams.conf
    members: "{{ msr_healthy_members }}"
  delegate_to: lb3
"""

RETURN = r"""
pool:
  description: The members in the pool after the run (predicted in check mode).
  returned: success
  type: list
  elements: dict
  sample: [{name: worker1, address: 10.0.0.21, http_port: 80, https_port: 443}]
added:
  description: Names of the members added.
  returned: success
  type: list
  elements: str
  sample: [worker4]
removed:
  description: Names of the servers removed (NGINX - a server of no member is named by its address).
  returned: success
  type: list
  elements: str
  sample: [worker2]
updated:
  description: Names of kept members whose line changed (address, port, C(disabled) or C(down)).
  returned: success
  type: list
  elements: str
  sample: []
drained:
  description:
    - HAProxy servers that left the runtime pool - their sessions when the wait ended, the seconds
      waited and V(drained) (no session left) or V(DOWN) (down by its health check). Check mode shows
      the sessions now and V(pending) or V(DOWN).
    - NGINX members that left the pool - the number of old worker processes waited for (C(workers)), the
      seconds waited and V(drained); check mode shows the workers now and V(pending).
  returned: success
  type: dict
  sample: {worker2: {sessions: 0, waited: 1.5, state: drained}}
up:
  description:
    - HAProxy servers added by the reload, once each is UP in every backend - the seconds from the reload
      (HAProxy's first check of a new server comes up to one C(inter) after it; C(rise) checks make it
      UP) and V(UP). Empty in check mode, for NGINX, and with O(up_timeout=0).
  returned: success
  type: dict
  sample: {worker4: {waited: 3.4, state: UP}}
reloaded:
  description: Whether the LB was (check mode - would be) reloaded.
  returned: success
  type: bool
set_ready:
  description: HAProxy members set back to READY from a forced DRAIN or MAINT.
  returned: success
  type: list
  elements: str
  sample: []
runtime:
  description: HAProxy - admin and operational state of each server of the managed backends after the run.
  returned: success
  type: list
  elements: dict
  sample: [{backend: msr_http, name: worker1, address: 10.0.0.21, port: 80, admin: READY, operational: UP}]
runtime_differences:
  description: HAProxy - how the runtime pool differed from the file before the run (then it reloads).
  returned: success
  type: list
  elements: str
  sample: ["msr_http/worker4 is in the file, not in the runtime"]
config:
  description: The config file of the pool.
  returned: success
  type: str
  sample: /etc/haproxy/haproxy.cfg
diff:
  description: The config file, then (HAProxy) the runtime pool, each before and after.
  returned: success
  type: list
  elements: dict
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.msr.replicas.plugins.module_utils import _lbinfo
from ansible_collections.msr.replicas.plugins.module_utils._haproxy import HaproxyError
from ansible_collections.msr.replicas.plugins.module_utils._lbconf import LbConfError, members
from ansible_collections.msr.replicas.plugins.module_utils._lbpool import LbError, PoolRun

# The default config file and backends are lb_pool_info's too (_lbinfo.DEFAULTS).
SERVER_OPTIONS = {"haproxy": "check port {http_port} inter 2s fall 3 rise 2", "nginx": "max_fails=2 fail_timeout=30s"}


def argument_spec():
    return dict(
        provider=dict(type="str", required=True, choices=["haproxy", "nginx"]),
        state=dict(type="str", default="present", choices=["present", "absent", "exact"]),
        members=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            address=dict(type="str", required=True),
            http_port=dict(type="int", default=80),
            https_port=dict(type="int", default=443),
        )),
        config=dict(type="path"),
        backends=dict(type="dict"),
        server_options=dict(type="str"),
        socket=dict(type="path", default="/run/haproxy/admin.sock"),
        drain_timeout=dict(type="int", default=120),
        up_timeout=dict(type="int", default=30),
        reload_timeout=dict(type="int", default=30),
        reload_command=dict(type="list", elements="str"),
        nginx_main_config=dict(type="path", default="/etc/nginx/nginx.conf"),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    p = module.params
    for key in ("drain_timeout", "up_timeout", "reload_timeout"):
        if p[key] < 0:
            module.fail_json(msg="%s must be 0 or more seconds, not %d" % (key, p[key]))
    run = None
    try:
        provider, path, backends = _lbinfo.settings(p)
        run = PoolRun(module, provider, path, backends, members(p["members"]),
                      SERVER_OPTIONS[provider] if p["server_options"] is None else p["server_options"])
        result = run.haproxy() if p["provider"] == "haproxy" else run.nginx()
    except LbError as exc:
        module.fail_json(msg=str(exc), changed=bool(run and run.changed))
    except (LbConfError, HaproxyError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (socket.gethostname(), exc), changed=bool(run and run.changed))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
