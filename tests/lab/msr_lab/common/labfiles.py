"""Where a lab keeps its files, and its recorded description (lab.json)."""
from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_NAME = "msrlab"


def lab_name() -> str:
    """Several labs can run side by side under different names (netns prefix, bridge <name>0, state dir)."""
    name = os.environ.get("MSR_LAB_NAME", DEFAULT_NAME)
    if not name.isalnum() or not name.islower() or len(name) > 10:
        raise SystemExit(f"msr-lab: MSR_LAB_NAME must be 1-10 lower-case letters or digits, not {name!r}")
    return name


def state_dir() -> Path:
    name = lab_name()
    default = "/var/lib/msr-lab" if name == DEFAULT_NAME else f"/var/lib/msr-lab-{name}"
    return Path(os.environ.get("MSR_LAB_DIR", default))


class LabFiles:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else state_dir()
        self.name = lab_name()
        self.prefix = self.name
        self.bridge = f"{self.name}0"

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def control_sock(self) -> Path:
        return self.root / "control.sock"

    @property
    def daemon_pid(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def request_log(self) -> Path:
        return self.root / "requests.log"

    @property
    def event_log(self) -> Path:
        return self.root / "events.log"

    def node_run(self, name: str) -> Path:
        return self.root / "nodes" / name / "run"

    def docker_sock(self, name: str) -> Path:
        return self.node_run(name) / "docker.sock"

    def load(self) -> dict:
        return json.loads(self.lab_json.read_text())

    def save(self, desc: dict) -> None:
        tmp = self.lab_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(desc, indent=2))
        os.chmod(tmp, 0o600)  # it holds the MKE admin password
        tmp.replace(self.lab_json)

    def exists(self) -> bool:
        return self.lab_json.exists()
