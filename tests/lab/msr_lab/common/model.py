"""The lab's shared state: nodes, their engines, the MSR cluster and the active faults.

One Lab object lives in the lab daemon. Every mutation happens under ``lab.lock`` (an RLock), because
bootstrapper programs run in worker threads while the HTTP servers run on the asyncio loop. After a
mutation call ``lab.changed()`` so that the daemon reconciles listeners (MSR replica ports) and wakes
any waiter.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

ROLES = ("manager", "worker", "lb")
# Timing knobs of `up` (lab.config keys) and their defaults, in seconds. Tests pass small values.
TIMING = {
    "health_period": 3.0,        # each replica refreshes its replica_health cache entry this often
    "health_stale": 0.0,         # an entry older than this reads "reported health too long ago" (0: 3 periods)
    "starting_seconds": 2.0,     # a dtr-* container's health stays `starting` this long after each start
    "heartbeat_seconds": 10.0,   # MKE marks an unreachable node down after this long without a heartbeat
}


@dataclass
class Faults:
    """Faults that change how the emulated services answer. Replica/node faults live on their objects."""
    kill_at_phase: str | None = None     # the next bootstrapper run is killed (exit 137) when it reaches this phase
    join_seconds: float = 3.0            # how long a join's replication step takes
    mke_status: int | None = None        # MKE answers every API request with this status (5xx fault)
    mke_error_count: int = 0             # ... for this many requests (0 = until cleared)
    mke_latency_ms: int = 0              # MKE delays every answer by this much
    token_ttl: float = 0.0               # MKE tokens stop working this many seconds after login (0: never)


@dataclass
class Node:
    name: str                            # hostname, also the MKE node name (Description.Hostname)
    role: str                            # manager | worker | lb
    addr: str                            # address on the lab bridge
    node_id: str = field(default_factory=lambda: secrets.token_hex(13)[:25])
    state: str = "ready"                 # MKE Status.State: ready | down
    availability: str = "active"         # MKE Spec.Availability: active | pause | drain
    labels: dict[str, str] = field(default_factory=dict)
    version: int = 100                   # the swarm object's Version.Index: each update raises it
    partitioned: bool = False            # cut off the lab network (fault)
    engine_down: bool = False            # its Docker engine is stopped (fault): no socket, containers stopped
    lb_down: bool = False                # an LB node that is down (fault lb-down): unreachable, no process
    workloads: list[str] = field(default_factory=list)   # containers the workload fault started on it
    virtual: bool = False                # only in MKE's node list (up --mke-nodes): no namespace, sshd or socket
    engine: object = None                # engine_state.EngineState, set by the daemon

    @property
    def in_mke(self) -> bool:
        return self.role in ("manager", "worker")

    @property
    def reachable(self) -> bool:
        """Its engine answers over the lab network right now (what MKE and the other nodes need)."""
        return self.state == "ready" and not self.partitioned and not self.engine_down


class Lab:
    """Root of the state. ``cluster`` is msr_lab.cluster.Cluster, set by the daemon."""

    def __init__(self, config: dict):
        self.config = config
        self.lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.faults = Faults(join_seconds=float(config.get("join_seconds", 3.0)))
        self.cluster = None
        self.mke_config: dict | None = None   # MKE's config-toml document (msr_lab.mke.config)
        self.clock: Callable[[], float] = time.time   # tests replace it to control time
        self._listeners: list[Callable[[], None]] = []
        # the daemon's event log (<state>/events.log): container program runs, replicas first reporting OK
        self.log_event: Callable[[dict], None] | None = None

    def now(self) -> float:
        return self.clock()

    def timing(self, key: str) -> float:
        """A timing knob from the config, or its default (TIMING)."""
        value = float(self.config.get(key, TIMING[key]))
        if key == "health_stale" and value <= 0:
            return 3 * self.timing("health_period")
        return value

    def node(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def mke_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.in_mke]

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def changed(self) -> None:
        for fn in list(self._listeners):
            fn()
