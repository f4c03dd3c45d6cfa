"""Per-account TPS limit: a token bucket answered with ESME_RTHROTTLED when empty."""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens a second, bursts up to ``burst`` (default: one second's worth)."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = max(1.0, rate if burst is None else burst)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float, n: float = 1.0) -> bool:
        tokens = self._tokens + (now - self._last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._last = now
        if tokens >= n:
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False
