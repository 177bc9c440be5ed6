"""Images of the emulated engine: what the lab's registry serves, the Image record, find/pull/remove."""
from __future__ import annotations

import re
import time

from msr_lab.engine.common import NEVER, EngineError, ManifestUnknown, familiar, parse_ref, rfc3339, sha

# (repository regexp, tag regexp) pairs the lab's registry serves; anything else is "pull access denied"
PULLABLE: list[tuple[str, str]] = [
    (r"(mirantis|docker)/dtr(-[a-z0-9-]+)?", r"2\.\d+\.\d+(-[a-z0-9.]+)?"),
    (r"registry\.mirantis\.com/msr/dtr(-[a-z0-9-]+)?", r"2\.\d+\.\d+(-[a-z0-9.]+)?"),
]


class Image:
    def __init__(self, ref: str):
        self.repo, self.tag = parse_ref(ref)
        self.name = f"{self.repo}:{self.tag}"
        self.id = "sha256:" + sha("image " + self.name)
        self.digest = "sha256:" + sha("manifest " + self.name)
        self.created = time.time() - 30 * 86400
        self.labels: dict[str, str] = {}
        self.env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        base = self.repo.rsplit("/", 1)[-1]
        self.entrypoint = [f"/bin/{base}"] if base == "dtr" else []
        self.cmd = [] if base == "dtr" else [f"/bin/{base}"]
        self.size = 40_000_000 + int(self.id[7:13], 16) % 60_000_000
        self.layers = ["sha256:" + sha(f"layer {i} {self.name}") for i in range(3)]

    def inspect(self) -> dict:
        return {
            "Id": self.id, "RepoTags": [self.name], "RepoDigests": [f"{self.repo}@{self.digest}"],
            "Parent": "", "Comment": "", "Created": rfc3339(self.created), "DockerVersion": "",
            "Author": "", "Architecture": "amd64", "Os": "linux", "Size": self.size,
            "Config": {"Env": list(self.env), "Cmd": self.cmd or None, "Entrypoint": self.entrypoint or None,
                       "WorkingDir": "", "Labels": dict(self.labels), "User": "", "Volumes": None},
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": list(self.layers)},
            "Metadata": {"LastTagTime": NEVER},
        }

    def summary(self) -> dict:
        return {"Id": self.id, "ParentId": "", "RepoTags": [self.name],
                "RepoDigests": [f"{self.repo}@{self.digest}"], "Created": int(self.created),
                "Size": self.size, "SharedSize": -1, "Labels": dict(self.labels), "Containers": -1}


class ImageStore:
    """EngineState's image methods (they use its ``lab``, ``images`` and ``containers``)."""

    def find_image(self, ref: str) -> Image | None:
        with self.lab.lock:
            if not ref:
                return None
            img = self.images.get(familiar(ref)) if not ref.startswith("sha256:") else None
            if img:
                return img
            hexid = ref.removeprefix("sha256:")
            if re.fullmatch(r"[0-9a-f]{4,64}", hexid):
                for img in self.images.values():
                    if img.id[7:].startswith(hexid):
                        return img
            repo, tag = parse_ref(ref)
            if tag.startswith("@"):
                for img in self.images.values():
                    if img.repo == repo and img.digest == tag[1:]:
                        return img
            return None

    @staticmethod
    def check_pullable(ref: str) -> None:
        repo, tag = parse_ref(ref)
        repo_ok = [t for r, t in PULLABLE if re.fullmatch(r, repo)]
        if not repo_ok:
            raise EngineError(404, f"pull access denied for {repo}, repository does not exist or may "
                                   "require 'docker login': denied: requested access to the resource is denied")
        if not any(re.fullmatch(t, tag) for t in repo_ok):
            raise ManifestUnknown(404, f"manifest for {familiar(ref)} not found: manifest unknown: "
                                       "manifest unknown")

    def pull(self, ref: str) -> Image:
        self.check_pullable(ref)
        return self.load_image(ref)

    def load_image(self, ref: str) -> Image:
        """Put an image on the node without the registry check, as `docker load` would: for images the lab's
        registry does not serve (the workload fault's nginx)."""
        with self.lab.lock:
            key = familiar(ref)
            img = self.images.get(key)
            if img is None:
                img = self.images[key] = Image(ref)
        self.lab.changed()
        return img

    def remove_image(self, ref: str, force: bool = False) -> Image:
        with self.lab.lock:
            img = self.find_image(ref)
            if img is None:
                raise EngineError(404, f"No such image: {ref}")
            users = [c for c in self.containers.values() if c.image_id == img.id]
            if users and not force:
                raise EngineError(409, f"conflict: unable to remove repository reference \"{ref}\" "
                                       f"(must force) - container {users[0].id[:12]} is using its "
                                       f"referenced image {img.id[7:19]}")
            del self.images[img.name]
        self.lab.changed()
        return img
