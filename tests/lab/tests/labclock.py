"""A controllable clock for component tests: ``lab.clock`` is what the lab's timing reads (start periods,
health reports, MKE heartbeats, token ages)."""
from __future__ import annotations


class FakeClock:
    def __init__(self, t: float = 1_750_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


def fake_clock(lab) -> FakeClock:
    clock = lab.clock = FakeClock()
    return clock


def settle(lab) -> None:
    """Let every start period end and every replica that can report do so."""
    lab.clock.advance(lab.timing("starting_seconds") + 0.01)
    lab.cluster.reports.tick(lab.now())
