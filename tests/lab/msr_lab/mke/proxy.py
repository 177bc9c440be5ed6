"""The container and volume calls MKE proxies to the nodes' engines, in the classic-swarm forms MKE keeps:
names are `<node>/<name>`, a new container picks its node with the `constraint:node==<node>` env entry.

Every call reaches the node through scheduler.reach/place, so a node MKE cannot reach refuses at once.
The MSR bootstrapper uses these to run `dtr-phase2` and to `destroy` a replica's objects (msr2.md §1.6,
§1.7).
"""
from __future__ import annotations

import re

from msr_lab.engine.common import EngineError
from msr_lab.mke.scheduler import ENGINE_PORT, PlacementError, place, reach

_CONSTRAINT = re.compile(r"^constraint:node==(.+)$")


def _split(ref: str) -> tuple[str | None, str]:
    ref = ref.lstrip("/")
    node, _, name = ref.rpartition("/")
    return (node or None), name


def constraint_node(body: dict) -> str | None:
    for item in body.get("Env") or []:
        m = _CONSTRAINT.match(str(item))
        if m:
            return m.group(1)
    return None


def create_container(lab, name: str | None, body: dict) -> dict:
    target = constraint_node(body)
    if not target:
        raise PlacementError(400, "the lab's MKE needs a constraint:node==<node> env entry to place a container")
    body = dict(body, Env=[e for e in body.get("Env") or [] if not _CONSTRAINT.match(str(e))])
    with lab.lock:
        node = place(lab, target, name or "")
        engine = node.engine
        image = body.get("Image") or ""
        if engine.find_image(image) is None:
            engine.pull(image)          # MKE pulls what the node lacks, as `docker run` through it does
        c = engine.create_container(name, body)
    return {"Id": c.id, "Warnings": []}


def find_container(lab, ref: str):
    """(node, container) for an id, an id prefix, `<node>/<name>` or a name unique across the cluster."""
    node_name, name = _split(ref)
    with lab.lock:
        if node_name is not None:
            node = reach(lab, node_name)
            c = node.engine.find_container(name)
            if c is None:
                raise EngineError(404, f"No such container: {ref}")
            return node, c
        found = [(n, n.engine.find_container(name)) for n in lab.mke_nodes()
                 if n.engine is not None and n.reachable]
        found = [(n, c) for n, c in found if c is not None]
        if len(found) != 1:
            raise EngineError(404 if not found else 409, f"No such container: {ref}" if not found else
                              f"Multiple containers found with name {ref}: use <node>/{name}")
        return found[0]


def start_container(lab, ref: str) -> bool:
    node, c = find_container(lab, ref)
    return node.engine.start_container(c)


def remove_container(lab, ref: str, force: bool, volumes: bool) -> None:
    node, c = find_container(lab, ref)
    node.engine.remove_container(c, force=force, volumes=volumes)


def inspect_container(lab, ref: str) -> dict:
    node, c = find_container(lab, ref)
    doc = node.engine.inspect(c)
    doc["Name"] = f"/{node.name}/{c.name}"
    doc["Node"] = {"Name": node.name, "Addr": f"{node.addr}:{ENGINE_PORT}", "IP": node.addr}
    return doc


def list_volumes(lab) -> dict:
    items = []
    with lab.lock:
        for node in lab.mke_nodes():
            if node.engine is None or not node.reachable:
                continue
            for v in node.engine.volumes.values():
                doc = dict(v.inspect())
                doc["Name"] = f"{node.name}/{v.name}"
                items.append(doc)
    return {"Volumes": items, "Warnings": []}


def remove_volume(lab, ref: str, force: bool) -> None:
    node_name, name = _split(ref)
    if node_name is None:
        raise EngineError(400, f"give the volume as <node>/{name}")
    with lab.lock:
        node = reach(lab, node_name)
        node.engine.remove_volume(name, force=force)
