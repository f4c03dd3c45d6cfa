"""MO -> reply latency as the handset sees it: from the MO leaving to the next MT arriving
whole (a concatenated reply when its last part is in: a part alone is not a reply read).

Sans-IO and clock-free: times are passed in. One pending entry per number (a second MO
from a number still waiting is counted as ``coalesced``, not timed: the reply can't be
told apart), expiry in injection order (the timeout is the same for all, so a FIFO is
the deadline order), and histograms kept per origin for the gates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .frames import Origin, Outcome, Result
from .histogram import LatencyHistogram


@dataclass(slots=True)
class _Pending:
    sent: float
    origin: Origin
    #: Who to tell (a channel connection's key); None: nobody asked.
    owner: int | None
    #: Parts of concatenated MTs seen so far: reference -> sequence numbers.
    parts: dict[int, set[int]] | None = None


@dataclass(slots=True)
class ReplyStats:
    sent: int = 0
    replies: int = 0
    timeouts: int = 0
    coalesced: int = 0
    histograms: dict[Origin, LatencyHistogram] = field(
        default_factory=lambda: {o: LatencyHistogram() for o in Origin}
    )

    def combined(self) -> LatencyHistogram:
        h = LatencyHistogram()
        for part in self.histograms.values():
            h.merge(part)
        return h


class ReplyTracker:
    __slots__ = ("_order", "_pending", "stats", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[int, _Pending] = {}
        self._order: deque[tuple[float, int]] = deque()
        self.stats = ReplyStats()

    def __len__(self) -> int:
        return len(self._pending)

    def on_mo(self, number: int, now: float, origin: Origin, owner: int | None = None) -> None:
        self.stats.sent += 1
        if number in self._pending:
            self.stats.coalesced += 1
            return
        self._pending[number] = _Pending(now, origin, owner)
        self._order.append((now, number))

    def waiting(self, number: int) -> bool:
        return number in self._pending

    def on_mt(
        self, number: int, now: float, part: tuple[int, int, int] | None = None
    ) -> tuple[int | None, Result] | None:
        """The reply to a pending MO from ``number``, and who to tell; None if none waits
        or the MT is one ``part`` (ref, total, seq) of a message not yet whole."""
        p = self._pending.get(number)
        if p is None:
            return None
        if part is not None and part[1] > 1:
            ref, total, seq = part
            if p.parts is None:
                p.parts = {}
            seen = p.parts.setdefault(ref, set())
            seen.add(seq)
            if len(seen) < total:
                return None
        del self._pending[number]
        seconds = max(0.0, now - p.sent)
        self.stats.replies += 1
        self.stats.histograms[p.origin].add(seconds)
        return p.owner, Result(number, Outcome.REPLY, p.origin, seconds)

    def expire(self, now: float) -> list[tuple[int | None, Result]]:
        """MOs unanswered for ``timeout``; each counted once."""
        out = []
        limit = now - self.timeout
        order = self._order
        while order and order[0][0] <= limit:
            sent, number = order.popleft()
            p = self._pending.get(number)
            if p is None or p.sent != sent:
                continue  # answered, or a later MO of the same number
            del self._pending[number]
            self.stats.timeouts += 1
            out.append((p.owner, Result(number, Outcome.TIMEOUT, p.origin, now - sent)))
        return out
