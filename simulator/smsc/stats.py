"""Counters of what went through the SMSC, per operator: cheap integer bumps only."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field, fields


@dataclass(slots=True)
class SmscStats:
    connections: int = 0
    binds: int = 0
    bind_failures: int = 0
    #: Binds refused unread because their IP or system_id was locked out.
    binds_locked_out: int = 0
    #: Connections closed at once: their IP held ``max_connections_per_ip`` already.
    connections_refused: int = 0
    #: Connections closed for not binding within ``security.bind_timeout``.
    bind_timeouts: int = 0
    #: Connections closed for ``security.errors_before_bind`` errors before a bind.
    junk_closed: int = 0
    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    queue_full: int = 0
    rejected: int = 0
    receipts_due: int = 0
    receipts_delivered: int = 0
    #: Copies queued by the receipt_duplicate fault: owed too, and counted in
    #: ``receipts_delivered`` once taken.
    receipts_duplicated: int = 0
    mo_queued: int = 0
    mo_delivered: int = 0
    deliver_retries: int = 0
    deliver_refused: int = 0
    protocol_errors: int = 0
    #: Events whose handling raised (a bug or an observer's): logged, the bind kept.
    handler_errors: int = 0
    queries: int = 0
    cancels: int = 0
    replaces: int = 0
    alerts: int = 0
    rejected_by_status: Counter[str] = field(default_factory=Counter)
    receipts_by_stat: Counter[str] = field(default_factory=Counter)
    #: Refused binds by reason: unknown_system_id, bad_password, locked_out,
    #: ip_not_allowed, max_binds, fault, and the client-certificate pins' reasons.
    bind_refusals: Counter[str] = field(default_factory=Counter)
    #: Lock-outs started, by what was locked: ``ip`` or ``id`` (the system_id).
    lockouts: Counter[str] = field(default_factory=Counter)
    #: Connections closed as they came, by reason (max_connections_per_ip).
    connection_refusals: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def add(self, other: SmscStats) -> None:
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))


@dataclass(slots=True)
class AccountStats:
    """What one account (system_id) did on one operator: its share of SmscStats."""

    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    receipts_due: int = 0
    mo_queued: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: Upper bounds (seconds) of the latency histograms: sub-millisecond loopback answers up
#: to a platform that takes seconds.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class LatencyHistogram:
    """Counts per bucket (Prometheus ``le`` semantics, the last one +Inf) and the sum:
    one bisect and two additions per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, other: LatencyHistogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.total += other.total

    def quantile(self, q: float) -> float | None:
        """The bucket bound below which a fraction ``q`` of observations fall (an upper
        estimate, as histogram_quantile gives without interpolation); None when empty."""
        n = self.count
        if not n:
            return None
        rank = q * n
        seen = 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += c
            if seen >= rank:
                return bound if bound != float("inf") else self.bounds[-1]
        return self.bounds[-1]
