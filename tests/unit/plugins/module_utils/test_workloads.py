# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whose container is it: MSR's, MKE's own or a workload, on recorded /containers/json summaries."""

from __future__ import annotations

import pytest

from ansible_collections.msr.replicas.plugins.module_utils._workloads import (
    container_owner,
    kubernetes_pod,
    nfs_storage,
    node_and_name,
    workloads_by_node,
)


@pytest.mark.parametrize("name,image,labels,owner", [
    ("dtr-rethinkdb-f2277ad178f7", "mirantis/dtr-rethink:2.9.16", {}, "msr"),
    ("dtr-phase2", "mirantis/dtr-phase2:2.9.16", {}, "msr"),
    ("happy_turing", "mirantis/dtr:2.9.16", {}, "msr"),                     # a bootstrapper run
    ("backup1", "registry.mirantis.com/msr/dtr:2.9.16", {}, "msr"),
    ("b", "docker/dtr@sha256:abc", {}, "msr"),
    ("ucp-proxy", "mirantis/ucp-agent:3.7.5", {}, "mke"),
    ("ucp-interlock-config.ajk2iiadewfugd", "mirantis/ucp-interlock-config:3.7.5", {}, "mke"),
    ("k8s_calico-node_calico-node-pcdq7_kube-system_uid_0", "x", {}, "mke"),
    ("k8s_POD_ucp-nvidia-device-partitioner-z_gpu_uid_0", "mirantis/ucp-pause:3.7.5", {}, "mke"),
    ("anything", "x", {"io.kubernetes.pod.namespace": "kube-system"}, "mke"),
    ("k8s_app_shop-5d8f7_default_uid_2", "shop:1.0", {}, None),
    ("k8s_app_shop_kube-system_uid_2", "shop:1.0", {"io.kubernetes.pod.namespace": "default"}, None),  # labels win
    ("web", "nginx:1.25", {}, None),
    ("my-dtr-exporter", "acme/dtr-exporter:1", {}, None),
    ("ucpish", "nginx:1.25", {}, None),
])
def test_container_owner(name, image, labels, owner):
    assert container_owner({"Names": ["/worker-1/" + name], "Image": image, "Labels": labels}) == owner


def test_names_and_pods():
    assert node_and_name(["/worker-1/web"]) == ("worker-1", "web")
    assert node_and_name(["/web"]) == (None, "web")
    assert node_and_name([]) == (None, None)
    assert kubernetes_pod("k8s_c_pod_ns_uid_0", {}) == ("ns", "pod")
    assert kubernetes_pod("k8s_c_pod", {}) == (None, None)
    assert kubernetes_pod("web", {"io.kubernetes.pod.namespace": "n", "io.kubernetes.pod.name": "p"}) == ("n", "p")


def test_workloads_by_node(fixture):
    found = workloads_by_node(fixture("mke_containers_all.json"))
    assert sorted(found) == ["worker-2", "worker-3"]
    assert found["worker-2"] == [{"name": "old-job", "image": "busybox:1.36", "state": "exited", "namespace": None},
                                 {"name": "web", "image": "nginx:1.25", "state": "running", "namespace": None}]
    assert [(w["name"], w["namespace"]) for w in found["worker-3"]] == [
        ("k8s_POD_shop-5d8f7_default_7b7b7b7b-1111-2222-3333-444455556666_0", "default"),
        ("k8s_app_shop-5d8f7_default_7b7b7b7b-1111-2222-3333-444455556666_2", "default")]


def test_nfs_storage(fixture):
    items = fixture("mke_containers_all.json")
    assert nfs_storage(items) is True
    local = [dict(i, Mounts=[{"Name": "dtr-registry-f3712d9c419a"}]) if i["Id"] == "b1" else i for i in items]
    assert nfs_storage(local) is False          # one replica on its own disk: not shared
    assert nfs_storage([i for i in items if not i["Names"][0].split("/")[2].startswith("dtr-registry-")]) is None
