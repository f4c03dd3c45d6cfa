"""Counters of what went through the SMSC, per operator: cheap integer bumps only."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields


@dataclass(slots=True)
class SmscStats:
    connections: int = 0
    binds: int = 0
    bind_failures: int = 0
    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    queue_full: int = 0
    rejected: int = 0
    receipts_due: int = 0
    receipts_delivered: int = 0
    mo_queued: int = 0
    mo_delivered: int = 0
    deliver_retries: int = 0
    deliver_refused: int = 0
    protocol_errors: int = 0
    queries: int = 0
    cancels: int = 0
    replaces: int = 0
    alerts: int = 0
    rejected_by_status: Counter[str] = field(default_factory=Counter)
    receipts_by_stat: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def add(self, other: SmscStats) -> None:
        for f in fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, Counter):
                mine.update(getattr(other, f.name))
            else:
                setattr(self, f.name, mine + getattr(other, f.name))
