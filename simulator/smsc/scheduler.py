"""Timed work (receipts coming due, redeliveries) in one heap, sans-IO.

The server arms a single event-loop timer for the earliest entry instead of one timer per
message: at tens of thousands of receipts a second, per-message TimerHandles cost more
than the receipts themselves.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class TimerQueue:
    __slots__ = ("_count", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, fn: Callable[[Any], None], arg: Any) -> bool:
        """Schedule ``fn(arg)`` at ``due``; True when it is now the earliest entry."""
        self._count += 1
        heap = self._heap
        heapq.heappush(heap, (due, self._count, fn, arg))
        return heap[0][1] == self._count

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float, limit: int = 1_000_000) -> int:
        """Call every entry due by ``now`` (at most ``limit``); returns how many ran."""
        heap = self._heap
        pop = heapq.heappop
        n = 0
        while heap and heap[0][0] <= now and n < limit:
            _, _, fn, arg = pop(heap)
            fn(arg)
            n += 1
        return n

    def drain(self) -> list[tuple[float, Callable[[Any], None], Any]]:
        """Remove and return everything (for shutdown reporting)."""
        items = [(due, fn, arg) for due, _, fn, arg in sorted(self._heap)]
        self._heap.clear()
        return items
