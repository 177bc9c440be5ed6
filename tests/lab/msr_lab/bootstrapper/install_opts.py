"""What `install` sets up for the whole cluster, read from its flags and checked before anything is made.

A fresh install stores images on the replica's local filesystem (the dtr-registry-<id> volume) unless
--nfs-storage-url or --dtr-storage-volume says otherwise; --dtr-external-url becomes dtrHost and is named
in the replicas' certificates; --dtr-ca/--dtr-cert/--dtr-key replace the CA MSR would generate
(msr2.md §1.4, §2.5, §2.7). Bad values end the run with a FATA line before the first container exists.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from msr_lab.bootstrapper import flags as F
from msr_lab.common.pkicheck import BundleError, check_bundle

# docker's own rule for local volume names
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class InstallSpec:
    storage: str = "filesystem"           # the cluster's storage kind: filesystem | nfs
    nfs_url: str = ""
    storage_volume: str = ""
    external_url: str = ""                # https://host[:port], normalised
    tls: tuple[str, str, str] | None = None

    def cluster_args(self) -> dict:
        return {"storage": self.storage, "nfs_url": self.nfs_url, "storage_volume": self.storage_volume,
                "external_url": self.external_url, "tls": self.tls}


def external_url(run, raw: str) -> str:
    bad = (f"Invalid --dtr-external-url \"{raw}\": the format is https://host[:port], the host or load "
           "balancer clients use to reach DTR")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        run.fatal(bad)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username or parts.password or port == 0:
        run.fatal(bad)
    host = parts.hostname
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"https://{host}" + (f":{port}" if port else "")


def nfs_url(run, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme != "nfs" or not parts.hostname or parts.path.strip("/") == "":
        run.fatal(f"Invalid --nfs-storage-url \"{raw}\": the format is nfs://<ip|hostname>/<mountpoint>")
    return raw


def storage_volume(run, raw: str) -> str:
    if raw.startswith("/") or _VOLUME_NAME.match(raw):
        return raw
    run.fatal(f"Invalid --dtr-storage-volume \"{raw}\": \"{raw}\" includes invalid characters for a local volume "
              "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, "
              "use absolute path")


def given_tls(run) -> tuple[str, str, str] | None:
    values = {f.name: run.opts.get(f.name) or "" for f in (F.DTR_CA, F.DTR_CERT, F.DTR_KEY)}
    if not any(values.values()):
        return None
    missing = [f"--{name}" for name, v in values.items() if not v]
    if missing:
        run.fatal(f"--dtr-ca, --dtr-cert and --dtr-key must be given together (missing: {', '.join(missing)})")
    ca, cert, key = values["dtr-ca"], values["dtr-cert"], values["dtr-key"]
    try:
        check_bundle(ca, cert, key)
    except BundleError as e:
        where = {"ca": "the CA given with --dtr-ca", "cert": "the certificate given with --dtr-cert",
                 "key": "the key given with --dtr-key", "pair": "the certificate and key given with --dtr-cert "
                 "and --dtr-key", "chain": "the certificate given with --dtr-cert against the CA given with --dtr-ca",
                 "date": "the certificates given with --dtr-ca and --dtr-cert"}[e.part]
        run.fatal(f"Failed to use {where}: {e}")
    return ca, cert, key


def install_spec(run) -> InstallSpec:
    spec = InstallSpec()
    raw_url = run.opts.get(F.EXTERNAL_URL.name)
    if raw_url:
        spec.external_url = external_url(run, raw_url)
    raw_nfs = run.opts.get(F.NFS_URL.name)
    raw_volume = run.opts.get(F.STORAGE_VOL.name)
    if raw_nfs and raw_volume:
        run.fatal("--nfs-storage-url and --dtr-storage-volume cannot be used together: choose NFS or a volume")
    if raw_nfs:
        spec.storage, spec.nfs_url = "nfs", nfs_url(run, raw_nfs)
    if raw_volume:
        spec.storage_volume = storage_volume(run, raw_volume)
    spec.tls = given_tls(run)
    return spec
