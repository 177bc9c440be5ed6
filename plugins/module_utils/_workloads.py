# Copyright (c) msr.replicas contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whose is each container MKE lists: MSR's, MKE's own, or a workload; and whether the replicas' image
storage is MSR's NFS volume. Pure, on /containers/json summaries. PRIVATE to this collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Containers that belong on an MSR node (every other one is a workload, which an MSR node must not run):
# - MSR's own: the dtr-<service>-<replica id> services, dtr-phase2 and the other dtr-* helpers, and the
#   bootstrapper itself (image <registry>/dtr:<version>, any name);
# - MKE's own: every ucp-* container (ucp-proxy, ucp-kubelet, ucp-kube-proxy, ucp-hardware-info, the
#   ucp-worker-agent-x/y and ucp-interlock-* service tasks, ...), and the Kubernetes containers MKE runs
#   on every node (calico-node with its init containers, node feature discovery, the NVIDIA device
#   plugins and their k8s_POD_ pause containers): pods in the kube-system namespace or named ucp-*.
# Kubernetes containers are named k8s_<container>_<pod>_<namespace>_<pod uid>_<attempt> by dockershim
# and cri-dockerd, and carry the io.kubernetes.pod.* labels (preferred when present).
MKE_NAMESPACES = ("kube-system",)
K8S_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
K8S_POD_LABEL = "io.kubernetes.pod.name"


def node_and_name(names):
    """(node, container name) from MKE's names ("/<node>/<name>"); node is None for a bare "/<name>"."""
    for name in names or []:
        parts = name.strip("/").split("/")
        if parts and parts[-1]:
            return (parts[-2] if len(parts) >= 2 else None), parts[-1]
    return None, None


def kubernetes_pod(name, labels):
    """(namespace, pod) of a Kubernetes container, (None, None) for any other container."""
    labels = labels or {}
    if labels.get(K8S_NAMESPACE_LABEL):
        return labels.get(K8S_NAMESPACE_LABEL), labels.get(K8S_POD_LABEL)
    parts = (name or "").split("_")
    if len(parts) >= 5 and parts[0] == "k8s":
        return parts[3], parts[2]
    return None, None


def _is_bootstrapper_image(image):
    repo = (image or "").split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == "dtr"


def container_owner(item):
    """"msr" or "mke" for the containers an MSR node may run (see above), None for a workload."""
    _node, name = node_and_name(item.get("Names"))
    name = name or ""
    if name.startswith("dtr-") or _is_bootstrapper_image(item.get("Image")):
        return "msr"
    if name.startswith("ucp-"):
        return "mke"
    namespace, pod = kubernetes_pod(name, item.get("Labels"))
    if namespace in MKE_NAMESPACES or (pod or "").startswith("ucp-"):
        return "mke"
    return None


def workloads_by_node(items):
    """{node: [{"name", "image", "state", "namespace"}]} of the containers that are neither MSR's nor MKE's."""
    found = {}
    for item in items:
        if container_owner(item):
            continue
        node, name = node_and_name(item.get("Names"))
        namespace, _pod = kubernetes_pod(name, item.get("Labels"))
        found.setdefault(node, []).append({"name": name, "image": item.get("Image"), "state": item.get("State"),
                                           "namespace": namespace})
    for entries in found.values():
        entries.sort(key=lambda w: w["name"] or "")
    return found


def nfs_storage(items):
    """Whether the replicas keep images on MSR's NFS volume (dtr-nfs-registry-<id>, made by install
    --nfs-storage-url): True/False from the dtr-registry-<id> containers' mounts, None when none is seen.

    MSR reports NFS storage as the filesystem driver, so only the volume tells local disk from NFS.
    """
    seen = []
    for item in items:
        _node, name = node_and_name(item.get("Names"))
        if not (name or "").startswith("dtr-registry-"):
            continue
        volumes = [m.get("Name") or "" for m in item.get("Mounts") or []]
        seen.append(any(v.startswith("dtr-nfs-registry-") for v in volumes))
    return all(seen) if seen else None
