"""The replica_health cache of cluster_status (msr2.md §2.3): "taken from a cache which is last updated by
each replica individually at the time specified in replica_timestamp".

Each replica writes its own entry every `health_period` seconds, while it can: its rethinkdb and api
containers run and are past their start period, its reports are not frozen (fault), and its side of the
cluster has a majority (the cache is a RethinkDB table; a write needs one). A replica that stops
reporting keeps its last entry, so right after it dies the cache still says OK; once the entry is older
than `health_stale` it reads "Replica reported health too long ago: <time>" (msr2.md §1.10).

A replica cut off in a minority reads its own outdated copy: the cache as it was when it last had a
majority. The daemon calls `tick(now)` a few times per period; tests call it with their own clock.
"""
from __future__ import annotations

import time

from dataclasses import dataclass

from msr_lab.msr.health import NOT_READY_TEXT, now_rfc3339

STALE_TEXT = "Replica reported health too long ago: {}"
REPORTER = "api"      # the service whose periodic job writes the entry [I]


@dataclass(frozen=True)
class Entry:
    text: str
    at: float


class HealthReports:
    def __init__(self, cluster):
        self.cluster = cluster
        self.lab = cluster.lab
        self.entries: dict[str, Entry] = {}
        self.seen: dict[str, dict[str, Entry]] = {}   # each replica's last readable copy of the table
        self.due: dict[str, float] = {}               # when each reporting replica writes next

    # ---- membership (called by the cluster)
    def added(self, rid: str) -> None:
        """The bootstrapper registers a new member with a not-ready entry [I]."""
        with self.lab.lock:
            self.entries[rid] = Entry(NOT_READY_TEXT, self.lab.now())

    def removed(self, rid: str) -> None:
        with self.lab.lock:
            self.entries.pop(rid, None)
            self.due.pop(rid, None)
            self.seen.pop(rid, None)
            for copy in self.seen.values():
                copy.pop(rid, None)

    # ---- writing
    def can_report(self, rid: str) -> bool:
        c = self.cluster
        r = c.replicas.get(rid)
        return (r is not None and not r.reports_frozen and c.alive(rid) and c._started(rid, REPORTER)
                and c.has_quorum(rid))

    def own_health(self, rid: str) -> str:
        """What a replica writes about itself: its RethinkDB state, else the first failing service."""
        text = self.cluster.health(rid)[rid]
        if text != "OK":
            return text
        healthy, error = self.cluster.ping(rid)
        return "OK" if healthy else error

    def tick(self, now: float) -> list[str]:
        """Let every replica whose turn it is write its entry; returns the replicas that wrote."""
        period = self.lab.timing("health_period")
        wrote = []
        with self.lab.lock:
            for rid in list(self.cluster.replicas):
                if not self.can_report(rid):
                    self.due.pop(rid, None)     # its job restarts with the replica: it reports at once then
                    continue
                if now >= self.due.get(rid, now):
                    before = self.entries.get(rid)
                    self.entries[rid] = Entry(self.own_health(rid), now)
                    if self.entries[rid].text == "OK" and (before is None or before.text != "OK") and self.lab.log_event:
                        self.lab.log_event({"event": "reported-ok", "replica": rid, "t": time.time()})
                    self.due[rid] = now + period
                    wrote.append(rid)
            for rid in self.cluster.replicas:
                if self.cluster.alive(rid) and self.cluster.has_quorum(rid):
                    self.seen[rid] = dict(self.entries)
        return wrote

    # ---- reading
    def view(self, observer: str | None, now: float) -> tuple[dict[str, str], dict[str, str]]:
        """(replica_health, replica_timestamp) as `observer` reads them (None: from the majority side)."""
        stale = self.lab.timing("health_stale")
        with self.lab.lock:
            source = self.entries
            if observer is not None and not self.cluster.has_quorum(observer):
                source = self.seen.get(observer, self.entries)
            health, stamps = {}, {}
            for rid in self.cluster.replicas:
                e = source.get(rid) or self.entries.get(rid) or Entry(NOT_READY_TEXT, now)
                health[rid] = STALE_TEXT.format(now_rfc3339(e.at)) if now - e.at > stale else e.text
                stamps[rid] = now_rfc3339(e.at)
            return health, stamps

    def age(self, rid: str, now: float) -> float | None:
        e = self.entries.get(rid)
        return None if e is None else now - e.at
