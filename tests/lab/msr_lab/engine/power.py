"""The engine process itself (the engine-down fault): dockerd stopping and starting again.

A stopped dockerd answers nothing: the daemon closes the node's socket (msr_lab.daemon), and every change
through EngineState refuses. Its containers stop without being marked stopped by hand, so when it starts
again it restarts the ones whose restart policy says so, each through its start period.
"""
from __future__ import annotations

import time

from msr_lab.engine.common import EngineError


class EnginePower:
    """Mixed into engine.state.EngineState (uses its lab, node, containers, _terminate, start_container)."""

    def _require_up(self) -> None:
        if self.node.engine_down:
            raise EngineError(500, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                                   "Is the docker daemon running?")

    def shut_down(self) -> None:
        """dockerd stops: every container stops (not by hand, so restart policies still apply later)."""
        with self.lab.lock:
            self.node.engine_down = True
            for c in list(self.containers.values()):
                if c.running:
                    self._terminate(c, 143 if c.ctx is not None else 0)
        self.lab.changed()

    def boot(self) -> list[str]:
        """dockerd starts again and restarts the containers their restart policy names; returns their names."""
        with self.lab.lock:
            self.node.engine_down = False
            self.started = time.time()
            restarted = []
            for c in list(self.containers.values()):
                if c.restart_on_boot:
                    self.start_container(c)
                    restarted.append(c.name)
        self.lab.changed()
        return restarted
