# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Several clusters in one inventory: which a run selects, which hosts are a cluster's, what they may not share."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.msr.replicas.plugins.filter.clusters import (
    msr_cluster_clashes, msr_cluster_hosts, msr_clusters_selected)

GROUPS = {"all": ["p1", "p2", "p3", "b1", "lbp", "lbb"], "prod": ["p1", "p2", "p3", "lbp"], "build": ["b1", "lbb"],
          "msr": ["p1", "b1", "p2"], "mke_managers": ["p3", "b1"], "msr_lb": ["lbb", "lbp"]}


def test_one_cluster_inventories_select_nothing():
    assert msr_clusters_selected("", [], GROUPS) == []
    assert msr_clusters_selected(None, None, GROUPS) == []


@pytest.mark.parametrize("selector, expected", [
    ("prod", ["prod"]), ("build,prod", ["build", "prod"]), (" prod , build ,prod", ["prod", "build"]),
    (["build"], ["build"]), ("all", ["prod", "build"]), ("prod,all", ["prod", "build"])])
def test_the_selector_names_clusters_in_its_order(selector, expected):
    assert msr_clusters_selected(selector, ["prod", "build"], GROUPS) == expected


@pytest.mark.parametrize("selector, declared, message", [
    ("", ["prod", "build"], "the inventory holds the clusters prod, build: name one with -e msr_cluster=NAME, or "
                            "-e msr_cluster=all for each in turn"),
    ("prod", [], "msr_cluster=prod, but the inventory declares no clusters: list their groups in msr_clusters"),
    ("qa,prod", ["prod", "build"], "msr_cluster names qa, not among the inventory's clusters (msr_clusters): prod, build"),
    ("prod", ["prod", "qa"], "msr_clusters names qa, which is no inventory group"),
    ("prod", ["prod", "all"], "msr_clusters names all, which is no inventory group"),
    ("prod", "prod,,build", "msr_clusters must be a list of cluster names"),
    ("prod", {"prod": 1}, "msr_clusters must be a list of cluster names, got {'prod': 1}"),
    (["prod", 3], ["prod"], "msr_cluster must be a list of cluster names, got ['prod', 3]"),
])
def test_bad_selections_are_refused_with_the_variable_named(selector, declared, message):
    with pytest.raises(AnsibleFilterError) as err:
        msr_clusters_selected(selector, declared, GROUPS)
    assert str(err.value).startswith(message)


def test_a_clusters_hosts_keep_the_groups_order():
    assert msr_cluster_hosts(GROUPS, "msr", "prod") == ["p1", "p2"]
    assert msr_cluster_hosts(GROUPS, "msr", "build") == ["b1"]
    assert msr_cluster_hosts(GROUPS, "msr_lb", "prod") == ["lbp"]
    assert msr_cluster_hosts(GROUPS, "msr", "") == ["p1", "b1", "p2"]        # one cluster: the whole group
    assert msr_cluster_hosts(GROUPS, "msr_lb_missing", "prod") == []
    with pytest.raises(AnsibleFilterError, match="the cluster qa is no inventory group"):
        msr_cluster_hosts(GROUPS, "msr", "qa")
    with pytest.raises(AnsibleFilterError, match="expected the groups magic variable"):
        msr_cluster_hosts(["p1"], "msr", "prod")


def test_shared_files_are_named_once_per_path():
    settings = {"prod": {"msr_backup_dir": "/b/", "msr_reconcile_report": "/r/prod.json"},
                "build": {"msr_backup_dir": "/b", "msr_reconcile_report": "/r/build.json"},
                "qa": {"msr_backup_dir": "", "msr_reconcile_report": "/r/prod.json"}}
    assert msr_cluster_clashes(settings) == [
        "the clusters prod, build share msr_backup_dir /b: set it per cluster (in each cluster's group), or put "
        "{cluster} in it",
        "the clusters prod, qa share msr_reconcile_report /r/prod.json: set it per cluster (in each cluster's "
        "group), or put {cluster} in it"]
    assert msr_cluster_clashes({"prod": {"msr_backup_dir": ""}, "build": {"msr_backup_dir": ""}}) == []
