"""The figures a USSD load test is judged on, from the networks' counters.

A scenario samples ``snapshot`` at the start and end of its window (or once a second)
and ``figures`` turns two snapshots into what gates bound: the session completion
ratio, abandoned and timed-out sessions, sessions and steps per second, and per-screen
latency (the platform's answer time, as the network measures it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from simulator.smsc.stats import LatencyHistogram

from .session import Release, UssdCounters


class _Network(Protocol):
    @property
    def sessions(self) -> _HasCounters: ...

    screen_latency: LatencyHistogram


class _HasCounters(Protocol):
    counters: UssdCounters


@dataclass(frozen=True, slots=True)
class UssdSnapshot:
    time: float
    dialled: int
    busy: int
    steps: int
    released: dict[str, int]
    open: int


@dataclass(frozen=True, slots=True)
class UssdFigures:
    sessions_per_s: float
    steps_per_s: float
    #: Of the sessions that ended in the window: completed by the platform's last screen.
    completion_ratio: float | None
    abandoned: int
    #: Released by the network's timers: the subscriber's screen timer, the whole session.
    timed_out: int
    #: Released because the platform answered too late (or wrongly, over HTTP).
    platform_failed: int
    open: int


def snapshot(networks: Iterable[_Network], now: float) -> UssdSnapshot:
    dialled = busy = steps = open_ = 0
    released = {r.value: 0 for r in Release}
    for net in networks:
        c = net.sessions.counters
        dialled += c.dialled
        busy += c.busy
        steps += c.steps
        open_ += c.open_total
        for k, v in c.released.items():
            released[k] += v
    return UssdSnapshot(now, dialled, busy, steps, released, open_)


def figures(start: UssdSnapshot, end: UssdSnapshot) -> UssdFigures:
    span = max(end.time - start.time, 1e-9)
    ended = {k: end.released[k] - start.released.get(k, 0) for k in end.released}
    total = sum(ended.values())
    completed = ended[Release.COMPLETED.value]
    return UssdFigures(
        sessions_per_s=(end.dialled - start.dialled) / span,
        steps_per_s=(end.steps - start.steps) / span,
        completion_ratio=completed / total if total else None,
        abandoned=ended[Release.ABANDONED.value],
        timed_out=ended[Release.SCREEN_TIMEOUT.value] + ended[Release.SESSION_TIMEOUT.value],
        platform_failed=ended[Release.APP_TIMEOUT.value] + ended[Release.APP_ERROR.value],
        open=end.open,
    )


def screen_latency(networks: Iterable[_Network]) -> LatencyHistogram:
    """Every network's per-screen latency in one histogram."""
    total = LatencyHistogram()
    for net in networks:
        total.add(net.screen_latency)
    return total
