"""Each replica's own copy of the MSR metadata (RethinkDB's dtr2 tables: repositories, settings, storage).

RethinkDB semantics, the way the lab needs them to lose data like the product does:
- a write needs the writer's side to hold a majority of the voting members, and lands on every live
  member of that side; members cut off, stopped or partitioned miss it;
- a member that is back with the majority catches up (backfill) at the next change of the lab;
- a joining replica has no copy until its join completes, then it receives everything;
- a copy lives in the replica's ``dtr-rethink-<id>`` volume: whatever removes that volume (destroy,
  emergency-repair --force, ``docker volume rm``) loses it, and emergency-repair keeps exactly what the
  survivor had.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from msr_lab.msr.health import ClusterError, ClusterHealth

TABLES = ("repositories", "settings", "storage")


@dataclass
class MetadataCopy:
    seq: int        # the last write this copy holds (one counter for the whole lab)
    data: dict      # {"repositories": {"ns/name": doc}, "settings": {...}, "storage": {...}}
    volume: object  # the engine Volume (dtr-rethink-<id>) the copy lives in


class NoQuorum(ClusterError):
    """The replica's side of the cluster has no majority: RethinkDB refuses up-to-date reads and writes."""


class ReplicaMetadata(ClusterHealth):
    """The metadata side of msr_lab.msr.cluster.Cluster (which calls init_metadata first)."""

    def init_metadata(self) -> None:
        self.copies: dict[str, MetadataCopy] = {}
        self.seq = 0
        # What a fresh install starts from (`up` config); `storage`/`settings` assignments update it.
        self.seed = {"repositories": {}, "settings": {}, "storage": {}}
        self.lab.on_change(self._on_lab_change)

    # ---------------------------------------------------------------- copies and where they live

    def _rethink_volume(self, rid: str):
        r = self.replicas.get(rid)
        engine = self._engine(r.node) if r else None
        return None if engine is None else engine.volumes.get(f"dtr-rethink-{rid}")

    def copy_of(self, rid: str) -> MetadataCopy | None:
        """The replica's copy, or None if it has none (joining) or lost it (its volume went)."""
        c = self.copies.get(rid)
        if c is not None and (c.volume is None or c.volume is not self._rethink_volume(rid)):
            del self.copies[rid]
            c = None
        return c

    def _store(self, rid: str, seq: int, data: dict) -> None:
        self.copies[rid] = MetadataCopy(seq, copy.deepcopy(data), self._rethink_volume(rid))

    def _writable_members(self, group: list[str]) -> list[str]:
        """Members of a connectivity group that hold (or may receive) a copy: voting ones with a volume."""
        return [rid for rid in group if self.replicas[rid].state != "joining"
                and self._rethink_volume(rid) is not None]

    def _newest(self, rids) -> MetadataCopy | None:
        found = [c for c in (self.copy_of(r) for r in rids) if c is not None]
        return max(found, key=lambda c: c.seq) if found else None

    def backfill(self) -> None:
        """Members on the majority side that missed writes catch up from the newest copy there."""
        with self.lab.lock:
            for group in self._groups():
                if not self._has_quorum(group):
                    continue
                members = self._writable_members(group)
                newest = self._newest(members)
                if newest is None:
                    continue
                for rid in members:
                    mine = self.copy_of(rid)
                    if mine is None or mine.seq < newest.seq:
                        self._store(rid, newest.seq, newest.data)

    def _on_lab_change(self) -> None:
        if self.lab.cluster is self:     # a cluster the lab replaced must not keep acting
            self.backfill()

    def authoritative(self) -> dict:
        """What the cluster holds as a whole: the majority side's newest copy, else any newest copy,
        else the seed of a fresh install."""
        with self.lab.lock:
            self.backfill()
            best = self._newest(self._group_of(None)) or self._newest(list(self.replicas))
            return copy.deepcopy(best.data if best is not None else self.seed)

    # ---------------------------------------------------------------- reads and writes as a replica

    def _quorum_side(self, rid: str) -> list[str]:
        if rid not in self.replicas or not self.alive(rid):
            raise ClusterError(f"replica {rid} has no running rethinkdb")
        group = self._group_of(rid)
        if not self._has_quorum(group):
            raise NoQuorum(f"replica {rid} is not on the majority side of the cluster")
        return group

    def read_metadata(self, rid: str) -> dict:
        """An up-to-date read through replica `rid` (NoQuorum without a majority on its side)."""
        with self.lab.lock:
            self._quorum_side(rid)
            self.backfill()
            mine = self.copy_of(rid)
            if mine is None:
                raise ClusterError(f"replica {rid} holds no metadata")
            return copy.deepcopy(mine.data)

    def write_metadata(self, rid: str, mutate):
        """Apply ``mutate(data)`` through replica `rid`; it lands on every member of rid's (majority) side.

        ``mutate`` works on a private copy and may raise to refuse the write (nothing lands then).
        """
        with self.lab.lock:
            group = self._quorum_side(rid)
            self.backfill()
            mine = self.copy_of(rid)
            if mine is None:
                raise ClusterError(f"replica {rid} holds no metadata")
            data = copy.deepcopy(mine.data)
            result = mutate(data)
            self.seq += 1
            for member in self._writable_members(group):
                self._store(member, self.seq, data)
            return result

    # ---------------------------------------------------------------- membership changes

    def receive_metadata(self, rid: str) -> None:
        """A join (or install) completes: the new replica gets everything its side holds.

        A cluster without any copy is a fresh install: it keeps what restore staged, or starts from the seed.
        A join cut off from every copy (its node partitioned) gets none: it is no new cluster, and its empty
        database must never outrank the others' data; it backfills once it is on the majority side.
        """
        with self.lab.lock:
            others = [r for r in self._group_of(rid) if r != rid]
            newest = self._newest(self._writable_members(others))
            if newest is not None:
                self._store(rid, newest.seq, newest.data)
            elif self.copy_of(rid) is None and self._newest([r for r in self.replicas if r != rid]) is None:
                self.seq += 1
                self._store(rid, self.seq, self.seed)

    def stage_metadata(self, rid: str, data: dict) -> None:
        """What `restore` loads into the replica it installs, before the install completes."""
        with self.lab.lock:
            if self._rethink_volume(rid) is None:
                raise ClusterError(f"replica {rid} has no dtr-rethink-{rid} volume to restore into")
            full = copy.deepcopy(self.seed)
            full.update(copy.deepcopy({k: data[k] for k in TABLES if k in data}))
            self.seq += 1
            self._store(rid, self.seq, full)

    def drop_metadata(self, rid: str) -> None:
        with self.lab.lock:
            self.copies.pop(rid, None)

    # ---------------------------------------------------------------- settings and storage, cluster-wide

    def _set_everywhere(self, table: str, value) -> None:
        # Out-of-band, as `up` seeding a cluster: the seed and every existing copy, no quorum involved.
        with self.lab.lock:
            self.seed[table] = copy.deepcopy(value)
            for rid in list(self.copies):
                c = self.copy_of(rid)
                if c is not None:
                    c.data[table] = copy.deepcopy(value)

    @property
    def storage(self) -> dict:
        """The storage configuration the cluster holds (a copy: change it through write_metadata)."""
        return self.authoritative()["storage"]

    @storage.setter
    def storage(self, value: dict) -> None:
        self._set_everywhere("storage", value)

    @property
    def settings(self) -> dict:
        """The general settings the cluster holds (a copy: change them through write_metadata)."""
        return self.authoritative()["settings"]

    @settings.setter
    def settings(self, value: dict) -> None:
        self._set_everywhere("settings", value)

    def metadata_summary(self, rid: str) -> dict | None:
        """For `msr-lab status`: what one replica's copy holds (None: it has none)."""
        with self.lab.lock:
            c = self.copy_of(rid)
            return None if c is None else {"seq": c.seq, "repositories": len(c.data["repositories"])}
