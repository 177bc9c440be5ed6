# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The msr_preflight filter over the private _preflight checks; documented in msr_preflight.yml."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.module_utils import _preflight


def msr_preflight(cluster_info, hosts=None, settings=None, requirements=None):
    """Every failure and warning of the MSR prerequisites, from what cluster_info and requirements_info read."""
    if cluster_info is not None and not isinstance(cluster_info, Mapping):
        raise AnsibleFilterError("msr_preflight: the input must be a msr.replicas.cluster_info result (a dict)")
    if hosts is None:
        hosts = []
    if isinstance(hosts, (str, bytes, Mapping)) or not isinstance(hosts, Sequence):
        raise AnsibleFilterError("msr_preflight: hosts must be a list of {host, node, groups}")
    listed = []
    for h in hosts:
        # a bare inventory hostname is a host with the default node name and no other group
        h = {"host": h} if isinstance(h, str) else h
        if not isinstance(h, Mapping) or not h.get("host"):
            raise AnsibleFilterError("msr_preflight: every host needs a 'host' (its inventory hostname)")
        listed.append(dict(h))
    if settings is not None and not isinstance(settings, Mapping):
        raise AnsibleFilterError("msr_preflight: settings must be a dict")
    try:
        return _preflight.evaluate(dict(cluster_info) if cluster_info is not None else None, listed,
                                   dict(settings or {}), dict(requirements) if requirements is not None else None)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("msr_preflight: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"msr_preflight": msr_preflight}
