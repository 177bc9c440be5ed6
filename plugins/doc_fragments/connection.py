# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # MKE access, MSR replica TLS and API timeouts, shared by every module of the collection.
    DOCUMENTATION = r"""
options:
  mke_url:
    description:
      - URL of MKE (a manager or the MKE load balancer), for example V(https://mke.example.com).
      - Must be an C(https://) URL; C(http://) is refused, because the admin password would cross the
        network in clear.
      - Also passed to the bootstrapper as C(--ucp-url).
    type: str
    required: true
  mke_username:
    description:
      - MKE admin user. Also used for HTTP basic authentication against the MSR API.
    type: str
    default: admin
  mke_password:
    description:
      - Password of O(mke_username). It is sent to the bootstrapper only through the container
        environment (C(UCP_PASSWORD)), never on a command line.
    type: str
    required: true
  mke_ca:
    description:
      - The MKE CA certificate(s) as PEM text (MKE serves it at C(<mke_url>/ca)).
      - MKE's certificate is verified against this CA only.
      - One of O(mke_ca) or O(mke_insecure_tls=true) is required.
    type: str
  mke_insecure_tls:
    description:
      - Do not verify the MKE certificate. The module warns when this is true. Prefer O(mke_ca).
      - This applies to MKE only; MSR replicas are trusted through O(msr_ca) or O(msr_insecure_tls).
    type: bool
    default: false
  msr_url:
    description:
      - An MSR address (for example the MSR load balancer) to read C(cluster_status) and the storage
        settings from before trying each replica's own address.
      - Replica addresses are otherwise the MKE node address (C(Status.Addr)) and the replica's HTTPS port.
      - Must be an C(https://) URL, because admin calls carry the MKE admin password and never go over plain
        HTTP.
    type: str
  msr_ca:
    description:
      - PEM text of MSR's own CA, which signed the MSR replica certificates. MSR generates it at install
        (or uses the CA given to C(install --dtr-ca)); every replica serves it at C(https://<replica>/ca).
      - The MKE CA does not verify MSR replicas, and the MKE trust settings are never used for them. One
        of O(msr_ca) or O(msr_insecure_tls=true) is required.
    type: str
  msr_insecure_tls:
    description:
      - Do not verify MSR replica certificates. The module warns when this is true. Prefer O(msr_ca).
      - It is not implied by O(mke_insecure_tls).
    type: bool
    default: false
  api_timeout:
    description:
      - Seconds to wait for each MKE or MSR API request. While the module waits for the cluster (for
        example O(ignore:wait_timeout) of a module that has it), each request is also cut to the time left.
    type: int
    default: 30
  api_retries:
    description:
      - Tries per API request for timeouts, connection errors and HTTP 5xx answers, with exponential
        backoff (1 s, 2 s, 4 s ...). Authentication and other 4xx errors are never retried.
    type: int
    default: 3
"""
