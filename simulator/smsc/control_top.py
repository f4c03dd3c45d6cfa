"""``smsim top``'s picture: one frame of the running SMSC drawn from two control API
snapshots (/stats and /binds, now and a moment ago), as a pure function for testing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Snapshot:
    """What one refresh read: /stats and /binds, and when (monotonic seconds)."""

    stats: dict[str, Any]
    binds: list[dict[str, Any]]
    at: float


def _rate(now: Snapshot, before: Snapshot | None, op: str, counter: str) -> float | None:
    if before is None or op not in before.stats["operators"]:
        return None
    dt = now.at - before.at
    if dt <= 0:
        return None
    a = before.stats["operators"][op]["counters"][counter]
    b = now.stats["operators"][op]["counters"][counter]
    return float(max(0, b - a) / dt)


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"≤{value * 1000:g}"


def _bar(used: int, size: int, width: int = 10) -> Text:
    if size <= 0:
        return Text("-")
    filled = round(width * min(used, size) / size)
    style = "red" if used >= size else "yellow" if used * 2 >= size else "green"
    return (
        Text("█" * filled, style=style)
        + Text("·" * (width - filled), style="dim")
        + Text(f" {used}/{size}")
    )


def _operators_table(now: Snapshot, before: Snapshot | None) -> Table:
    t = Table(title="operators (resp: the platform's deliver_sm_resp)", expand=True)
    for col in (
        "operator",
        "submit/s",
        "ok/s",
        "thr/s",
        "rcpt/s",
        "MO/s",
        "queued",
        "held",
        "binds",
        "resp p50 ms",
        "p99 ms",
    ):
        t.add_column(col, justify="left" if col == "operator" else "right")
    for name, op in now.stats["operators"].items():
        accounts = op["accounts"].values()
        rtt = op["delivery_rtt"]
        t.add_row(
            name + (" [yellow](receipts paused)[/]" if op["receipts_paused"] else ""),
            _fmt_rate(_rate(now, before, name, "submits")),
            _fmt_rate(_rate(now, before, name, "accepted")),
            _fmt_rate(_rate(now, before, name, "throttled")),
            _fmt_rate(_rate(now, before, name, "receipts_delivered")),
            _fmt_rate(_rate(now, before, name, "mo_delivered")),
            f"{sum(a['queued'] for a in accounts):,}",
            f"{sum(a['held'] for a in accounts):,}",
            str(sum(a["binds"] for a in accounts)),
            _fmt_ms(rtt["p50"]),
            _fmt_ms(rtt["p99"]),
        )
    return t


def _binds_table(now: Snapshot) -> Table:
    t = Table(title=f"binds ({len(now.binds)})", expand=True)
    for col in ("operator", "account", "peer", "mode", "deliver window", "submit window"):
        t.add_column(col)
    for b in now.binds:
        dw, sw = b["deliver_window"], b["submit_window"]
        t.add_row(
            b["operator"],
            b["account"],
            b["peer"],
            b["mode"].removeprefix("bound_") + (" (outbind)" if b["outbind"] else ""),
            _bar(dw["in_flight"], dw["size"]),
            _bar(sw["in_flight"], sw["size"]),
        )
    return t


def _outcomes_table(now: Snapshot) -> Table:
    """Receipts by stat per SMSC listener, and with subscribers by serving operator."""
    t = Table(title="outcomes", expand=True)
    t.add_column("by")
    t.add_column("operator")
    t.add_column("receipts by stat")
    for name, op in now.stats["operators"].items():
        by_stat = op["counters"]["receipts_by_stat"]
        t.add_row("listener", name, _counts(by_stat))
    subs = now.stats.get("subscribers")
    if subs:
        for name, by_stat in sorted(subs["outcomes"].items()):
            t.add_row("serving", name, _counts(by_stat))
    return t


def _counts(counts: dict[str, int]) -> str:
    return "  ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def render(now: Snapshot, before: Snapshot | None, source: str = "") -> RenderableType:
    totals = now.stats["totals"]
    reply = now.stats.get("platform_reply")
    head = Text.assemble(
        ("smsim top", "bold"),
        f"  {source}  up {now.stats['uptime']:,.0f} s  ",
        f"accepted {totals['accepted']:,}  receipts {totals['receipts_delivered']:,}  ",
        f"MO {totals['mo_delivered']:,}  throttled {totals['throttled']:,}  ",
        f"timers {now.stats['scheduled']:,}",
    )
    if reply and reply["count"]:
        head.append(
            f"  platform reply p50 {_fmt_ms(reply['p50'])} ms p99 {_fmt_ms(reply['p99'])} ms"
        )
    parts: list[RenderableType] = [
        head,
        _operators_table(now, before),
        _binds_table(now),
        _outcomes_table(now),
    ]
    subs = now.stats.get("subscribers")
    if subs:
        parts.append(
            Text(
                f"subscribers: {subs['population']:,} people, {subs['touched']:,} touched, "
                f"{subs['received']:,} messages received, {subs['sent']:,} sent, "
                f"{subs['pending_replies']:,} replies pending"
            )
        )
    return Panel(Group(*parts), border_style="blue")
