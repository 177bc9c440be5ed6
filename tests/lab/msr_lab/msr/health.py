"""Replica records and what follows from them: health, quorum, /_ping and the cluster_status views.

Live health is derived, never stored: a replica's health follows from its membership state, its
dtr-rethinkdb container (running and past its start period), its node and the network partitions, so
faults injected anywhere (a stopped container, a partitioned node) show up the way RethinkDB would report
them. This live view is what the bootstrapper checks. The `replica_health` of cluster_status is another
thing: the cache each replica refreshes on a period (msr.reports), which lags behind the live view.
"""
from __future__ import annotations

import datetime
import time
import uuid
from dataclasses import dataclass

STATE_TEXT = "Rethink replica is currently in state: {}"
NOT_READY_TEXT = "Replica is not ready: " + STATE_TEXT.format("backfilling")
DATABASES = ("dtr2", "enzi", "jobrunner", "notaryserver", "notarysigner")
# Services whose stopped container makes /_ping fail, named the way /_ping names them.
PING_SERVICES = (("rethinkdb", "rethinkdb"), ("registry", "registry"), ("garant", "garant"),
                 ("notary-server", "notary"), ("notary-signer", "notary"), ("api", "api"))


class ClusterError(Exception):
    pass


def now_rfc3339(t: float | None = None) -> str:
    return datetime.datetime.fromtimestamp(time.time() if t is None else t, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def server_name(rid: str) -> str:
    return f"dtr_rethinkdb_{rid}"


@dataclass
class Replica:
    id: str
    node: str
    version: str
    state: str = "joining"           # joining | running | stopped | ghost
    http_port: int = 80
    https_port: int = 443
    repo: str = "mirantis"
    # faults of this replica (msr_lab.faults.inject)
    ping_delay_ms: int = 0           # its /_ping answers this much later
    ping_hang: bool = False          # its /_ping does not answer until cleared
    reports_frozen: bool = False     # it stops refreshing its replica_health cache entry


class ClusterHealth:
    """The read side of msr_lab.cluster.Cluster, which sets ``lab`` and ``replicas``."""

    @property
    def installed(self) -> bool:
        return bool(self.replicas)

    def _engine(self, node_name: str):
        node = self.lab.node(node_name)
        return None if node is None else node.engine

    def _container(self, rid: str, svc: str):
        r = self.replicas.get(rid)
        engine = self._engine(r.node) if r else None
        if engine is None:
            return None
        return engine.find_container(f"dtr-{svc}-{rid}")

    def _running(self, rid: str, svc: str) -> bool:
        c = self._container(rid, svc)
        return c is not None and c.status == "running"

    def _started(self, rid: str, svc: str) -> bool:
        """Running and past its start period (its engine health is no longer `starting`)."""
        c = self._container(rid, svc)
        return c is not None and c.status == "running" and c.starting_left() == 0

    def starting_left(self, rid: str) -> float:
        """Seconds until the last of the replica's containers leaves its start period (0: started)."""
        with self.lab.lock:
            r = self.replicas.get(rid)
            engine = self._engine(r.node) if r else None
            if engine is None:
                return 0.0
            mine = (c for c in engine.containers.values()
                    if c.name.startswith("dtr-") and c.name.endswith(f"-{rid}"))
            return max((c.starting_left() for c in mine), default=0.0)

    def replica_started(self, rid: str) -> bool:
        """Every service container runs and is past its start period (what `Waiting for DTR to start` waits for)."""
        with self.lab.lock:
            return (rid in self.replicas and all(self._running(rid, svc) for svc, _ in PING_SERVICES)
                    and self.starting_left(rid) == 0)

    def _get(self, rid) -> Replica:
        r = self.replicas.get(rid)
        if r is None:
            raise ClusterError(f"replica {rid} is not a member of the cluster")
        return r

    def alive(self, rid: str) -> bool:
        """Its rethinkdb server is up and has started (it may still be cut off by a partition).

        Only the container decides, not the recorded state: a `docker start` of a stopped replica's
        containers through the engine API brings it back, as on a real node, once its start period is over.
        """
        r = self.replicas[rid]
        node = self.lab.node(r.node)
        return (r.state != "ghost" and node is not None and node.state == "ready"
                and self._started(rid, "rethinkdb"))

    def state_of(self, rid: str) -> str:
        """The replica's state as shown to people: running/stopped follow its rethinkdb container."""
        r = self.replicas[rid]
        if r.state in ("running", "stopped"):
            return "running" if self._running(rid, "rethinkdb") else "stopped"
        return r.state

    def _groups(self) -> list[list[str]]:
        """Connectivity groups of live servers: the connected ones together, each partitioned one alone."""
        main, alone = [], []
        for rid in self.replicas:
            if not self.alive(rid):
                continue
            if self.lab.nodes[self.replicas[rid].node].partitioned:
                alone.append([rid])
            else:
                main.append(rid)
        return ([main] if main else []) + alone

    def _voters(self) -> list[str]:
        # A joining server is not in the tables' replica sets until the join reconfigures them.
        return [rid for rid, r in self.replicas.items() if r.state != "joining"]

    def majority(self) -> int:
        return len(self._voters()) // 2 + 1

    def _has_quorum(self, group: list[str]) -> bool:
        voters = set(self._voters())
        return bool(voters) and len(voters.intersection(group)) >= self.majority()

    def _group_of(self, rid: str | None) -> list[str]:
        groups = self._groups()
        if rid is not None:
            return next((g for g in groups if rid in g), [])
        return next((g for g in groups if self._has_quorum(g)), groups[0] if groups else [])

    def _primary(self) -> str | None:
        voters = self._voters()
        return voters[0] if voters else None

    def health(self, observer: str | None = None) -> dict[str, str]:
        """replica_health as seen from `observer` (default: from the quorum side, if there is one)."""
        with self.lab.lock:
            group = self._group_of(observer)
            quorum = self._has_quorum(group)
            primary = self._primary()
            out = {}
            for rid, r in self.replicas.items():
                if rid not in group:
                    out[rid] = STATE_TEXT.format("disconnected")
                elif r.state == "joining":
                    out[rid] = NOT_READY_TEXT
                elif quorum:
                    out[rid] = "OK"
                else:
                    out[rid] = STATE_TEXT.format("waiting_for_quorum" if primary in group else "waiting_for_primary")
            return out

    def replica_ok(self, rid: str) -> bool:
        with self.lab.lock:
            return rid in self.replicas and self.health(rid).get(rid) == "OK"

    def has_quorum(self, observer: str | None = None) -> bool:
        with self.lab.lock:
            return self._has_quorum(self._group_of(observer))

    def ping(self, rid: str) -> tuple[bool, str]:
        with self.lab.lock:
            r = self.replicas.get(rid)
            if r is None:
                return False, f"rethinkdb: replica {rid} is not a member of the cluster"
            for svc, label in PING_SERVICES:
                if not self._running(rid, svc):
                    return False, f"{label}: container dtr-{svc}-{rid} is not running"
            for svc, label in PING_SERVICES:
                if not self._started(rid, svc):
                    return False, f"{label}: container dtr-{svc}-{rid} is starting"
            text = self.health(rid)[rid]
            if text != "OK":
                return False, f"rethinkdb: {text}"
            return True, ""

    def current_issues(self, observer: str | None = None) -> list[dict]:
        """RethinkDB current_issues rows (one table_availability issue summarises every table)."""
        with self.lab.lock:
            group = self._group_of(observer)
            if not self.replicas:
                return []
            unreachable = [server_name(rid) for rid in self.replicas if rid not in group]
            backfilling = [server_name(rid) for rid in group if self.replicas[rid].state == "joining"]
            quorum = self._has_quorum(group)
            if quorum and not unreachable and not backfilling:
                return []
            if quorum:
                desc = "Table `dtr2.repositories` is ready for reads and writes but some replicas are not ready."
            elif group:
                desc = ("Table `dtr2.repositories` is available for outdated reads, but not up-to-date reads or "
                        "writes.")
            else:
                desc = "Table `dtr2.repositories` is not available for reads or writes."
            if unreachable:
                desc += " The following servers are not reachable: " + ", ".join(unreachable)
            if backfilling:
                desc += " The following servers are backfilling: " + ", ".join(backfilling)
            return [{"type": "table_availability", "critical": not quorum, "description": desc,
                     "info": {"db": "dtr2", "table": "repositories", "missing_servers": unreachable,
                              "status": {"all_replicas_ready": False, "ready_for_writes": quorum,
                                         "ready_for_reads": quorum, "ready_for_outdated_reads": bool(group)}}}]

    def _time_connected(self, rid: str) -> str:
        c = self._container(rid, "rethinkdb")
        return now_rfc3339(c.ready_at or c.started_at) if c is not None and c.started_at else now_rfc3339()

    def rethink_system_tables(self, observer: str | None = None) -> dict:
        with self.lab.lock:
            group = self._group_of(observer)
            servers = []
            for rid in group:
                servers.append({
                    "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, server_name(rid))),
                    "name": server_name(rid),
                    "network": {"canonical_addresses": [{"host": f"dtr-rethinkdb-{rid}.dtr-ol", "port": 29015}],
                                "cluster_port": 29015, "reql_port": 28015, "http_admin_port": "<no http admin>",
                                "hostname": rid,
                                "connected_to": {server_name(o): o in group for o in self.replicas if o != rid},
                                "time_connected": self._time_connected(rid)},
                    "process": {"version": "rethinkdb 2.4.4", "argv": ["rethinkdb"], "cache_size_mb": 1024},
                })
            return {
                "cluster_config": [{"heartbeat_timeout_secs": 10, "id": "heartbeat"}],
                "current_issues": self.current_issues(observer),
                "db_config": [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, db)), "name": db} for db in DATABASES],
                "server_status": servers,
            }

    def cluster_status(self, observer: str | None = None) -> dict:
        """The /api/v0/meta/cluster_status document as observed by `observer`.

        `replica_health` and `replica_timestamp` come from the reported cache (msr.reports), the rest from
        the live RethinkDB state."""
        with self.lab.lock:
            health, stamps = self.reports.view(observer, self.lab.now())
            return {"current_issues": [{"critical": i["critical"], "description": i["description"]}
                                       for i in self.current_issues(observer)],
                    "replica_health": health,
                    "replica_timestamp": stamps,
                    "replica_ids": list(self.replicas),
                    "rethink_system_tables": self.rethink_system_tables(observer),
                    "gc_lock_holder": "", "majority": self.majority()}
