"""Where MKE lets an admin create a container (msr2.md §1.10, §3.3), and whether it can reach the node.

MKE refuses, for an admin, a container on a manager or one that makes its node "a node running MSR"
(any `dtr-*` container) unless `[scheduling_configuration] enable_admin_ucp_scheduling` is true [I: the
exact rule is not published; this one makes install, join and backup need the setting, as the MSR docs
say]. Drained and paused nodes take no new containers. MKE acts on a node only through that node's
engine, so a partitioned node (or one whose engine is down) refuses everything at once, whatever
`GET /nodes` still says during the heartbeat delay.
"""
from __future__ import annotations

from msr_lab.mke import config

NO_NODES = "could not find any nodes on which the container could be created"
ENGINE_PORT = 12376      # the port MKE's proxy reaches each node's engine on


class PlacementError(Exception):
    """A refused placement; `raw` when MKE answers with a body the docker client prints as it is."""

    def __init__(self, status: int, message: str, raw: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.raw = raw


def unreachable_message(node) -> str:
    return (f"the Docker engine of node {node.name} ({node.addr}:{ENGINE_PORT}) is unreachable: "
            f"dial tcp {node.addr}:{ENGINE_PORT}: i/o timeout")


def reach(lab, name: str):
    """The MKE node called `name`, if MKE can act on it now; PlacementError otherwise."""
    node = lab.node(name)
    if node is None or not node.in_mke:
        raise PlacementError(404, f"Unable to find a node that satisfies the following conditions [node=={name}]")
    if not node.reachable:
        raise PlacementError(500, unreachable_message(node))
    if node.virtual:   # a lab limit, not MKE's: such a node has no namespace to run a program in
        raise PlacementError(500, f"msr-lab: {name} is a virtual MKE node (up --mke-nodes): it lists workload "
                                  "containers but runs nothing placed through MKE; use a real worker")
    return node


def place(lab, name: str, container_name: str):
    """The node an admin's new container `container_name` goes to (constraint node==`name`)."""
    node = reach(lab, name)
    if node.availability != "active":
        raise PlacementError(500, f'{{"message":"{NO_NODES}"}}', raw=True)
    admin_ok = config.admin_scheduling(lab)
    if not admin_ok and (node.role == "manager" or container_name.startswith("dtr-")):
        raise PlacementError(500, f'{{"message":"{NO_NODES}"}}', raw=True)
    return node
