"""Simulated time: wall-clock dates that can run faster than real time.

Every timestamp the simulator shows a client (receipt dates, reply delays) is read from a
``SimClock``; every timer the event loop arms is in real seconds. ``time_scale`` is
simulated seconds per real second, so a 3-day validity period plays out in minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    __slots__ = ("_monotonic", "_origin_real", "_origin_sim", "time_scale")

    def __init__(
        self,
        time_scale: float = 1.0,
        start: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._monotonic = monotonic
        self._origin_real = monotonic()
        self._origin_sim = time.time() if start is None else start

    def now(self) -> float:
        """Simulated Unix time."""
        return self._origin_sim + (self._monotonic() - self._origin_real) * self.time_scale

    def sim_at(self, real_monotonic: float) -> float:
        """The simulated time at a given reading of the real monotonic clock."""
        return self._origin_sim + (real_monotonic - self._origin_real) * self.time_scale

    def to_real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.time_scale
