"""`backup` (msr2.md 1.11): the metadata tar on stdout, logs on stderr; and `restore`: a fresh install of one
replica that loads such a tar from stdin.

backup reads the database of `--existing-replica-id`, which must be healthy on the majority side; the reader
runs in a container on that replica's node (run.helper_container, the one place backup schedules a container).
restore installs like `install` (same node picking, phase2 and objects) on an MKE cluster without MSR, with
the bootstrapper version the backup was made with.
"""
from __future__ import annotations


from msr_lab.bootstrapper import archive
from msr_lab.bootstrapper import flags as F
from msr_lab.bootstrapper.join import _objects, _phase2, _replica_id, connectivity_test, first_replica_node
from msr_lab.bootstrapper.run import PRODUCT, Run

READER = "dtr-backup"
READ_ERROR = ('gorethink: Cannot perform read: primary replica for shard ["", +inf) not available in: '
              'r.DB("dtr2").Table("repositories")')
CHUNK = 64 * 1024


# ---------------------------------------------------------------- backup

def _check_existing(run: Run, existing: str) -> None:
    members = run.members()
    run.require_member(existing, members)
    if not run.cluster.has_quorum():
        health = run.cluster.health()
        ok = sum(1 for v in health.values() if v == "OK")
        run.fatal(f"Failed to read the DTR database: {READ_ERROR} (the cluster has lost quorum: {ok} of "
                  f"{len(members)} replicas are healthy, a majority is {run.cluster.majority()}); use "
                  "emergency-repair first")
    run.require_healthy(existing)
    version = members[existing].version
    if version != run.version:    # restore needs the version of the backup, so the backup records it [I]
        run.fatal(f"This DTR cluster runs version {version}; back it up with the bootstrapper of the same "
                  f"version, not {run.version}")


def backup(run: Run) -> int:
    run.begin("backup")
    run.connect()
    existing = run.need(F.EXISTING)
    run.phase("check")
    _check_existing(run, existing)
    rep = run.members()[existing]
    run.phase("backup")
    # the reader: the one place backup schedules a container, on the existing replica's node
    with run.helper_container(rep.node, READER, {"com.docker.dtr.backup": "true"}):
        run.info("Establishing connection with Rethinkdb")
        try:
            data = run.cluster.read_metadata(existing)
        except Exception as e:          # lost quorum between the check and the read
            run.fatal(f"Failed to read the DTR database: {READ_ERROR} ({e})")
        for table in ("dtr2.repositories", "dtr2.properties", "dtr2.storage"):
            run.info(f"Backing up table {table}")
        tar = archive.pack({"version": rep.version, "replicaID": existing, "replicaIDs": sorted(run.members()),
                            "image": run.image}, data, run.cluster.install_state())
        run.info(f"Writing the backup to stdout ({len(tar)} bytes, {len(data['repositories'])} repositories)")
        for i in range(0, len(tar), CHUNK):
            run.ctx.check_killed()
            run.ctx.write(1, tar[i:i + CHUNK])
        run.phase("complete")
    run.info("Backup is complete")
    return 0


# ---------------------------------------------------------------- restore

def _read_backup(run: Run) -> tuple[dict, dict]:
    run.phase("read-backup")
    if not run.ctx.stdin_open:
        run.fatal("restore reads the backup from stdin: run it as 'docker run -i --rm "
                  f"{run.image} restore [options] < backup.tar'")
    run.info("Reading the backup from stdin")
    chunks = []
    while (chunk := run.ctx.read_stdin()) is not None:
        run.ctx.check_killed()
        chunks.append(chunk)
    try:
        info, data = archive.unpack(b"".join(chunks))
    except archive.BadBackup as e:
        run.fatal(f"Failed to read the backup: {e}")
    if info["version"] != run.version:
        run.fatal(f"The backup was made with DTR {info['version']}; restore it with the bootstrapper of the same "
                  f"version ({run.image.rsplit(':', 1)[0]}:{info['version']}), not {run.version}")
    run.info(f"The backup of replica {info.get('replicaID', 'unknown')} holds {len(data['repositories'])} "
             "repositories")
    return info, data


def restore(run: Run) -> int:
    run.begin("restore")
    http_port, https_port = run.port(F.HTTP_PORT), run.port(F.HTTPS_PORT)
    run.connect()
    _info, data = _read_backup(run)
    nodes = run.mke_nodes()
    run.phase("check-node")
    run.info("Searching containers in UCP for DTR replicas")
    mke_reps = run.mke_replicas()
    members = run.members()
    live = {rid for rid, r in members.items() if r.state != "ghost"} | set(mke_reps)
    if live:
        run.fatal(f"{PRODUCT} is already installed in this UCP cluster (replicas: {', '.join(sorted(live))}). "
                  "restore performs a fresh installation: destroy every replica first")
    rid = _replica_id(run, set())
    target = first_replica_node(run, nodes, mke_reps, http_port, https_port)
    with _phase2(run, target):
        connectivity_test(run)
        for ghost in sorted(members):   # destroyed replicas: their database went with them
            run.debug(f"Forgetting destroyed replica {ghost}")
            run.cluster.remove_member(ghost)
        run.info("Restoring the CA certificates")
        run.cluster.create_from(data["cluster"])      # the backed-up CA, dtrHost and storage choices
        _objects(run, rid, target, http_port, https_port)
        run.phase("rethink")
        run.info("Establishing connection with Rethinkdb")
        run.phase("restore")
        run.info("Restoring the database from the backup")
        run.cluster.stage_metadata(rid, data)
        for table in ("dtr2.repositories", "dtr2.properties", "dtr2.storage"):
            run.info(f"Restored table {table}")
        run.phase("register")
        run.wait_for_dtr(rid)
        run.info("Successfully registered dtr with UCP")
        run.phase("complete")
        run.cluster.mark_running(rid)
    run.info("Restore is complete")
    run.info(f"Replica ID is set to: {rid}")
    run.info(f"You can use flag '--existing-replica-id {rid}' when joining other replicas to your {PRODUCT} Cluster")
    return 0
