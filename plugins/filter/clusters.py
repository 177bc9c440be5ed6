# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Several MSR clusters in one inventory; documented in msr_clusters_selected.yml, msr_cluster_hosts.yml and
msr_cluster_clashes.yml.

A cluster is an inventory group named in the ``msr_clusters`` variable: its variables (MKE URL, credentials,
CAs, version) are the cluster's, its hosts the cluster's nodes, which are also in the usual groups (msr,
mke_managers, msr_lb). A run works on the clusters ``msr_cluster`` names, one after the other.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

ALL = "all"


def _names(value, what):
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise AnsibleFilterError("%s must be a list of cluster names, got %r" % (what, value))
    names = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise AnsibleFilterError("%s must be a list of cluster names, got %r" % (what, list(value)))
        if item.strip() not in names:
            names.append(item.strip())
    return names


def msr_clusters_selected(selector, declared, groups):
    """The cluster names a run works on, in order; [] for an inventory of one cluster (no msr_clusters)."""
    declared = _names(declared, "msr_clusters")
    missing = [name for name in declared if name not in groups]
    if missing or ALL in declared:
        raise AnsibleFilterError("msr_clusters names %s, which %s no inventory group" % (
            ", ".join(missing or [ALL]), "is" if len(missing or [ALL]) == 1 else "are"))
    wanted = _names(selector, "msr_cluster")
    if not declared:
        if wanted:
            raise AnsibleFilterError("msr_cluster=%s, but the inventory declares no clusters: list their groups "
                                     "in msr_clusters" % ",".join(wanted))
        return []
    if not wanted:
        raise AnsibleFilterError("the inventory holds the clusters %s: name one with -e msr_cluster=NAME, or "
                                 "-e msr_cluster=all for each in turn" % ", ".join(declared))
    if ALL in wanted:
        return declared
    unknown = [name for name in wanted if name not in declared]
    if unknown:
        raise AnsibleFilterError("msr_cluster names %s, not among the inventory's clusters (msr_clusters): %s" % (
            ", ".join(unknown), ", ".join(declared)))
    return wanted


def msr_cluster_hosts(groups, group, cluster=None):
    """The hosts of ``group`` that belong to the cluster ``cluster`` (every host of it without a cluster)."""
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError("msr_cluster_hosts: expected the groups magic variable, got %r" % (groups,))
    hosts = list(groups.get(group) or [])
    if not cluster:
        return hosts
    if cluster not in groups:
        raise AnsibleFilterError("msr_cluster_hosts: the cluster %s is no inventory group" % cluster)
    members = set(groups[cluster])
    return [h for h in hosts if h in members]


def msr_cluster_clashes(settings):
    """Messages for the files two clusters of one run would share: ``settings`` maps each cluster to its
    {variable: path}; a shared backup directory would let one cluster's rotation delete the other's backups."""
    owners = {}
    for cluster, values in settings.items():
        for var, path in sorted((values or {}).items()):
            if path:
                owners.setdefault((var, str(path).rstrip("/") or "/"), []).append(cluster)
    return ["the clusters %s share %s %s: set it per cluster (in each cluster's group), or put {cluster} in it"
            % (", ".join(names), var, path) for (var, path), names in sorted(owners.items()) if len(names) > 1]


class FilterModule(object):
    def filters(self):
        return {"msr_clusters_selected": msr_clusters_selected, "msr_cluster_hosts": msr_cluster_hosts,
                "msr_cluster_clashes": msr_cluster_clashes}
