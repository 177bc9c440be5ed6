"""What the emulated engine's modules share: the API error, image references, times, host facts."""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone

NEVER = "0001-01-01T00:00:00Z"


class EngineError(Exception):
    """An error the API answers with ``{"message": ...}`` and this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ManifestUnknown(EngineError):
    """The repository exists but not the tag: a pull reports it in-band, after the 200."""


def parse_ref(ref: str) -> tuple[str, str]:
    """-> (familiar repository, tag or '@digest'): 'docker.io/library/ubuntu' -> ('ubuntu', 'latest')."""
    name, tag = ref, "latest"
    if "@" in name:
        name, digest = name.split("@", 1)
        tag = "@" + digest
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    parts = name.split("/")
    if len(parts) > 1 and parts[0] in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        parts = parts[1:]
    if len(parts) == 2 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts), tag


def familiar(ref: str) -> str:
    repo, tag = parse_ref(ref)
    return repo + tag if tag.startswith("@") else f"{repo}:{tag}"


def rfc3339(t: float | None) -> str:
    if not t:
        return NEVER
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def human_duration(seconds: float) -> str:
    # the wording of Go's units.HumanDuration, which `docker ps` shows
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    return f"{h // 24} days"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def meminfo_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


NCPU = os.cpu_count() or 1
