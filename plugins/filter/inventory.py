# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""MKE node names of inventory hosts; documented in msr_node_names.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def node_name(host, hostvars):
    """msr_node_name of the host, else its short hostname (the part before the first dot)."""
    hv = hostvars.get(host) if hasattr(hostvars, "get") else None
    name = (hv or {}).get("msr_node_name") if hv is not None else None
    return name if name else host.split(".")[0]


def msr_node_names(hosts, hostvars):
    if isinstance(hosts, (str, bytes)) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError("msr_node_names: expected a list of inventory hosts, got %r" % (hosts,))
    names = [node_name(h, hostvars) for h in hosts]
    dupes = sorted(set(n for n in names if names.count(n) > 1))
    if dupes:
        raise AnsibleFilterError("msr_node_names: several hosts map to the MKE node %s; give each its own "
                                 "msr_node_name" % ", ".join(dupes))
    return names


class FilterModule(object):
    def filters(self):
        return {"msr_node_names": msr_node_names}
