"""What a run sampled once a second, kept on disk for the HTML report: ``timeseries.json``.

The runner's ``Sample`` rows are the SMSC's cumulative counters; ``Recorder`` adds to each
tick the MO→reply percentiles of the replies that arrived *during* that tick (the
difference of two snapshots of the tracker's cumulative histogram) and each operator's
counters, and at the end each operator's receipts by stat. ``smsim report`` re-renders
the report from this file and ``summary.json`` alone, so everything a chart shows is here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simulator.harness.histogram import LatencyHistogram
from simulator.smsc.stats import SmscStats

from .figures import Sample

FILE = "timeseries.json"
#: Bumped when the file's layout changes incompatibly.
VERSION = 1


@dataclass(frozen=True, slots=True)
class Latency:
    """MO→reply seconds of the replies that arrived in one tick (None: no reply then)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True)
class OperatorCounts:
    """One operator's cumulative counters at a tick."""

    accepted: int
    receipts_delivered: int
    mo_delivered: int
    throttled: int


@dataclass(frozen=True, slots=True)
class Tick:
    sample: Sample
    latency: Latency
    operators: dict[str, OperatorCounts] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self.sample),
            "latency": asdict(self.latency),
            "operators": {k: asdict(v) for k, v in self.operators.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Tick:
        names = Sample.__dataclass_fields__
        return cls(
            sample=Sample(**{k: v for k, v in d.items() if k in names}),
            latency=Latency(**d.get("latency", {})),
            operators={k: OperatorCounts(**v) for k, v in d.get("operators", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class TimeSeries:
    #: When the run began, ISO 8601 UTC (ticks' ``t`` are real seconds since then).
    started_at: str
    ticks: list[Tick]
    #: Real seconds into the run when Locust ended (the drain follows); None: never.
    load_ended_at: float | None = None
    #: Operator -> receipt stat (DELIVRD, EXPIRED ...) -> receipts issued.
    receipts_by_operator: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "started_at": self.started_at,
            "load_ended_at": self.load_ended_at,
            "receipts_by_operator": self.receipts_by_operator,
            "ticks": [t.to_json() for t in self.ticks],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TimeSeries:
        if d.get("version") != VERSION:
            raise ValueError(f"{FILE}: version {d.get('version')!r}, expected {VERSION}")
        return cls(
            started_at=str(d["started_at"]),
            ticks=[Tick.from_json(t) for t in d["ticks"]],
            load_ended_at=d.get("load_ended_at"),
            receipts_by_operator={
                op: {stat: int(n) for stat, n in by.items()}
                for op, by in d.get("receipts_by_operator", {}).items()
            },
        )

    def write(self, path: Path) -> None:
        # One tick a line: a two-hour soak stays readable with head/grep.
        data = self.to_json()
        ticks = ",\n".join(json.dumps(t, ensure_ascii=False) for t in data.pop("ticks"))
        head = json.dumps(data, ensure_ascii=False)[:-1]
        path.write_text(f'{head}, "ticks": [\n{ticks}\n]}}\n', encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> TimeSeries:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def interval(before: LatencyHistogram, now: LatencyHistogram) -> Latency:
    """Percentiles of what ``now`` (cumulative) holds that ``before`` did not."""
    buckets = {b: n - before.buckets.get(b, 0) for b, n in now.buckets.items()}
    part = LatencyHistogram(
        buckets={b: n for b, n in buckets.items() if n > 0},
        count=now.count - before.count,
        max=now.max,
    )
    if part.count <= 0:
        return Latency()
    return Latency(part.count, part.percentile(0.5), part.percentile(0.95), part.percentile(0.99))


class Recorder:
    """Builds the time series tick by tick from the runner's samples."""

    def __init__(self, started_at: str) -> None:
        self.started_at = started_at
        self.ticks: list[Tick] = []
        self._replies = LatencyHistogram()

    def record(
        self, sample: Sample, replies: LatencyHistogram, operators: Mapping[str, SmscStats]
    ) -> None:
        """One tick: ``replies`` is the tracker's cumulative histogram at ``sample.t``."""
        latency = interval(self._replies, replies)
        self._replies = LatencyHistogram(
            dict(replies.buckets), replies.count, replies.total, replies.min, replies.max
        )
        counts = {
            name: OperatorCounts(s.accepted, s.receipts_delivered, s.mo_delivered, s.throttled)
            for name, s in operators.items()
        }
        self.ticks.append(Tick(sample, latency, counts))

    def finish(self, load_ended_at: float | None, operators: Mapping[str, SmscStats]) -> TimeSeries:
        return TimeSeries(
            started_at=self.started_at,
            ticks=self.ticks,
            load_ended_at=load_ended_at,
            receipts_by_operator={
                name: dict(sorted(s.receipts_by_stat.items())) for name, s in operators.items()
            },
        )
