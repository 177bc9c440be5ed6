# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    # The Docker engine that runs the bootstrapper, for every module that runs it (replica, backup).
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine that runs the bootstrapper container. The bootstrapper acts through MKE, so the
        engine of any MKE node will do.
      - V(unix:///var/run/docker.sock) (the default) when the task runs on that node itself.
      - V(ssh://user@host) from the controller. The docker SDK uses paramiko with C(~/.ssh/config) and
        C(~/.ssh/known_hosts); unknown host keys are rejected. Trust a host once with
        C(ssh-keyscan host >> ~/.ssh/known_hosts) after checking its fingerprint; for msr-lab,
        C(msr-lab ssh-config --home DIR) writes DIR/.ssh/config, known_hosts and the key, and the
        controller then runs with C(HOME=DIR).
      - V(tcp://host:port) for an engine that listens on TCP with TLS (C(dockerd --tlsverify), usually port
        2376). TLS is always used, because the bootstrapper's environment carries the MKE password; plain
        TCP is refused. Give the engine's CA in O(docker_tls_ca_cert), or set O(docker_tls_verify=false).
    type: str
    default: unix:///var/run/docker.sock
  docker_tls_ca_cert:
    description:
      - Path of the PEM file of the CA that signed the engine's certificate (the engine's C(--tlscacert)).
      - The engine's certificate is verified against this CA only; C(REQUESTS_CA_BUNDLE) and the system CAs
        play no part.
      - Required for a V(tcp://) O(docker_host) unless O(docker_tls_verify=false). Ignored, with a warning,
        for other O(docker_host) kinds.
    type: path
  docker_tls_client_cert:
    description:
      - Path of the PEM client certificate to present to the engine, for an engine that checks its clients
        (C(dockerd --tlsverify)). Give O(docker_tls_client_key) with it.
    type: path
  docker_tls_client_key:
    description:
      - Path of the PEM private key of O(docker_tls_client_cert). Keep it readable by the user running the
        module only.
    type: path
  docker_tls_verify:
    description:
      - Verify the engine's certificate against O(docker_tls_ca_cert) and its name against the host of
        O(docker_host) (or O(docker_tls_hostname)).
      - V(false) still uses TLS but accepts any certificate, so the MKE password can be intercepted; the
        module warns. It cannot be combined with O(docker_tls_ca_cert).
    type: bool
    default: true
  docker_tls_hostname:
    description:
      - The name the engine's certificate must carry, when it differs from the host in O(docker_host) (for
        example when O(docker_host) is an IP address and the certificate names the host).
      - Defaults to the host of O(docker_host).
    type: str
requirements:
  - docker (the Docker SDK for Python)
  - paramiko, when O(docker_host) is an C(ssh://) URL
"""
