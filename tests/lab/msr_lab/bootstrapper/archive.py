"""The backup tar that `backup` writes on stdout and `restore` reads on stdin (its layout is the lab's [I]).

```
dtr-backup-v<version>/backup.json                     what the backup is: version, replica IDs, time
dtr-backup-v<version>/rethink/dtr2/repositories.json  the repositories, one document each (a list)
dtr-backup-v<version>/rethink/dtr2/properties.json    the general settings (/api/v0/meta/settings)
dtr-backup-v<version>/rethink/dtr2/storage.json       the storage configuration ({"storage": {...}})
dtr-backup-v<version>/cluster.json                    install's choices: external URL, NFS URL, storage volume
dtr-backup-v<version>/ca/ca.pem, ca/ca.key            MSR's own CA and its key (what the replicas' certificates
                                                      chain to); or ca/given-{ca,cert,key}.pem for the material
                                                      given to install with --dtr-ca/--dtr-cert/--dtr-key
```
"""
from __future__ import annotations

import io
import json
import tarfile
import time

FORMAT = 1
FILES = {"repositories": "rethink/dtr2/repositories.json", "settings": "rethink/dtr2/properties.json",
         "storage": "rethink/dtr2/storage.json", "cluster": "cluster.json"}
CA_FILES = {"ca": "ca/ca.pem", "ca_key": "ca/ca.key"}
GIVEN_FILES = ("ca/given-ca.pem", "ca/given-cert.pem", "ca/given-key.pem")


class BadBackup(Exception):
    """stdin does not hold a backup this bootstrapper can restore."""


def top_dir(version: str) -> str:
    return f"dtr-backup-v{version}"


def _add(tar: tarfile.TarFile, name: str, doc, mtime: float) -> None:
    raw = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(raw), int(mtime), 0o600
    tar.addfile(info, io.BytesIO(raw))


def _add_text(tar: tarfile.TarFile, name: str, text: str, mtime: float) -> None:
    raw = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(raw), int(mtime), 0o600
    tar.addfile(info, io.BytesIO(raw))


def pack(info: dict, data: dict, cluster: dict | None = None) -> bytes:
    """The tar of one replica's metadata; `info` carries version, replicaID, replicaIDs; `cluster` is
    Cluster.install_state() (external URL, storage choices, the MSR CA)."""
    now = time.time()
    root = top_dir(info["version"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in (root, f"{root}/rethink", f"{root}/rethink/dtr2", f"{root}/ca"):
            d = tarfile.TarInfo(name)
            d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o700, int(now)
            tar.addfile(d)
        repos = [data["repositories"][k] for k in sorted(data["repositories"])]
        _add(tar, f"{root}/backup.json",
             {"format": FORMAT, **info, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
              "counts": {"repositories": len(repos)}}, now)
        _add(tar, f"{root}/{FILES['repositories']}", repos, now)
        _add(tar, f"{root}/{FILES['settings']}", data["settings"], now)
        _add(tar, f"{root}/{FILES['storage']}", {"storage": data["storage"]}, now)
        cluster = dict(cluster or {})
        tls = cluster.pop("tls", None) or {}
        _add(tar, f"{root}/{FILES['cluster']}", cluster, now)
        if tls.get("given"):
            for name, text in zip(GIVEN_FILES, tls["given"]):
                _add_text(tar, f"{root}/{name}", text, now)
        else:
            for key, name in CA_FILES.items():
                if tls.get(key):
                    _add_text(tar, f"{root}/{name}", tls[key], now)
    return buf.getvalue()


def _read_text(tar: tarfile.TarFile, name: str) -> str | None:
    try:
        f = tar.extractfile(tar.getmember(name))
    except KeyError:
        return None
    return f.read().decode() if f is not None else None


def _read_json(tar: tarfile.TarFile, name: str):
    try:
        member = tar.getmember(name)
        f = tar.extractfile(member)
        if f is None:
            raise KeyError(name)
        return json.loads(f.read())
    except KeyError:
        raise BadBackup(f"the backup has no {name}") from None
    except ValueError as e:
        raise BadBackup(f"{name} is not valid JSON: {e}") from None


def unpack(raw: bytes) -> tuple[dict, dict]:
    """(info from backup.json, {"repositories": {"ns/name": doc}, "settings": {...}, "storage": {...}})."""
    if not raw:
        raise BadBackup("stdin is empty")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.TarError as e:
        raise BadBackup(f"stdin is not a tar archive ({e})") from None
    with tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        roots = [t for t in tops if t.startswith("dtr-backup-v")]
        if len(roots) != 1:
            raise BadBackup("the archive is not a DTR backup (no single dtr-backup-v<version> directory)")
        root = roots[0]
        info = _read_json(tar, f"{root}/backup.json")
        if not isinstance(info, dict) or info.get("format") != FORMAT or not info.get("version"):
            raise BadBackup(f"{root}/backup.json does not describe a backup of format {FORMAT}")
        repos = _read_json(tar, f"{root}/{FILES['repositories']}")
        settings = _read_json(tar, f"{root}/{FILES['settings']}")
        storage = _read_json(tar, f"{root}/{FILES['storage']}")
        cluster = _read_json(tar, f"{root}/{FILES['cluster']}")
        given = [_read_text(tar, f"{root}/{name}") for name in GIVEN_FILES]
        ca = {key: _read_text(tar, f"{root}/{name}") for key, name in CA_FILES.items()}
    if not isinstance(repos, list) or not all(isinstance(r, dict) and r.get("namespace") and r.get("name")
                                              for r in repos):
        raise BadBackup(f"{FILES['repositories']} must be a list of repositories")
    if not isinstance(settings, dict) or not isinstance(storage, dict) or not isinstance(storage.get("storage"),
                                                                                         dict):
        raise BadBackup(f"{FILES['settings']} or {FILES['storage']} is malformed")
    if not isinstance(cluster, dict):
        raise BadBackup(f"{FILES['cluster']} is malformed")
    if all(given):
        cluster["tls"] = {"given": given}
    elif all(ca.values()):
        cluster["tls"] = ca
    else:
        raise BadBackup("the backup has no MSR CA (ca/ca.pem and ca/ca.key)")
    data = {"repositories": {f"{r['namespace']}/{r['name']}": r for r in repos}, "settings": settings,
            "storage": storage["storage"], "cluster": cluster}
    return info, data
