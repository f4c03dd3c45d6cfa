"""The live view of a run: rates, latencies, receipts by status, per operator.

``render`` is a pure function of a ``Snapshot``, so tests render it into a recording
console and read the text; the runner refreshes it once a second in a ``rich.Live``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .units import format_duration


@dataclass(frozen=True, slots=True)
class Snapshot:
    scenario: str
    phase: str
    elapsed: float
    duration: float
    sim_time: float
    submit_rate: float
    receipt_rate: float
    mo_rate: float
    replies: int
    timeouts: int
    waiting: int
    p50: float | None
    p95: float | None
    p99: float | None
    receipts_by_stat: dict[str, int] = field(default_factory=dict)
    #: operator -> (accepted, receipts delivered, MO delivered, throttled)
    operators: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    binds: int = 0


def _ms(v: float | None) -> str:
    return "—" if v is None else format_duration(v)


def render(s: Snapshot) -> RenderableType:
    sim = datetime.fromtimestamp(s.sim_time, UTC).strftime("%Y-%m-%d %H:%M")
    head = Text.assemble(
        (f"smsim run {s.scenario}", "bold"),
        f"  {s.phase}  {format_duration(s.elapsed)} of {format_duration(s.duration)}",
        f"  simulated {sim} UTC  binds {s.binds}",
    )
    bar = ProgressBar(total=max(s.duration, 1e-9), completed=min(s.elapsed, s.duration), width=60)

    rates = Table(title="now", expand=False)
    for col in ("MT/s", "DLR/s", "MO/s", "replied", "timeouts", "waiting"):
        rates.add_column(col, justify="right")
    rates.add_row(
        f"{s.submit_rate:,.0f}",
        f"{s.receipt_rate:,.0f}",
        f"{s.mo_rate:,.0f}",
        f"{s.replies:,}",
        f"{s.timeouts:,}",
        f"{s.waiting:,}",
    )
    lat = Table(title="MO → reply")
    for col in ("p50", "p95", "p99"):
        lat.add_column(col, justify="right")
    lat.add_row(_ms(s.p50), _ms(s.p95), _ms(s.p99))

    receipts = Table(title="receipts by stat")
    receipts.add_column("stat")
    receipts.add_column("count", justify="right")
    for stat, n in sorted(s.receipts_by_stat.items(), key=lambda kv: -kv[1]):
        receipts.add_row(stat, f"{n:,}")

    ops = Table(title="per operator")
    for col in ("operator", "accepted", "receipts", "MO", "throttled"):
        ops.add_column(col, justify="right" if col != "operator" else "left")
    for name, (acc, rec, mo, thr) in s.operators.items():
        ops.add_row(name, f"{acc:,}", f"{rec:,}", f"{mo:,}", f"{thr:,}")

    grid = Table.grid(padding=(0, 2))
    grid.add_row(rates, lat)
    grid.add_row(ops, receipts)
    return Group(head, bar, grid)
