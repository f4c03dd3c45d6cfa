"""Latency histograms for gates: full distribution, ~1 % resolution, mergeable.

Locust rounds response times to whole milliseconds below 100 ms and its percentiles are
an approximation over those buckets; gates are judged on this histogram instead. Buckets
are logarithmic (each 1 % wider than the last) from 1 µs to hours, stored sparsely, so a
histogram is a few hundred integers whatever the count, and histograms from several
processes merge by adding buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
_UNIT = 1e-6  # bucket 0 holds everything up to 1 µs


@dataclass(slots=True)
class LatencyHistogram:
    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    min: float = math.inf
    max: float = 0.0

    def add(self, seconds: float) -> None:
        units = seconds / _UNIT
        b = int(math.log(units) / _LOG_GROWTH) + 1 if units > 1.0 else 0
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: LatencyHistogram) -> None:
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float | None:
        """Seconds at quantile ``q`` (0..1): the upper edge of the bucket holding it, so a
        reported p99 is never below the true one by more than the 1 % bucket width.
        None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                edge = _UNIT * _GROWTH**b if b else _UNIT
                return min(edge, self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in sorted(self.buckets.items())},
            "count": self.count,
            "total": self.total,
            "min": self.min if self.count else None,
            "max": self.max,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LatencyHistogram:
        return cls(
            buckets={int(k): int(v) for k, v in d["buckets"].items()},
            count=int(d["count"]),
            total=float(d["total"]),
            min=math.inf if d["min"] is None else float(d["min"]),
            max=float(d["max"]),
        )
