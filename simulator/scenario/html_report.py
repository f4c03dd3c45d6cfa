"""``report.html``: a run folder's charts, gates and figures in one self-contained page.

Rendered from the run folder's files only (``summary.json``, ``timeseries.json`` and the
scenario in ``run.json``), so ``smsim report RUN_DIR`` writes the same page again from
them, for a run made before a template change, or on another machine. Charts are inline
SVG (``svg_charts.py``); the page has no script and loads nothing from the network.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .figures import distinct_receipts
from .gates import GATES, Bound
from .svg_charts import Band, Point, Rule, Series, line_chart, stacked_bars
from .timeseries import FILE as TIMESERIES_FILE
from .timeseries import Tick, TimeSeries
from .units import format_duration

FILE = "report.html"
SUMMARY = "summary.json"
#: Points per line at the most: a two-hour soak is sampled once a second.
MOST_POINTS = 600

BLUE, GREEN, ORANGE, PURPLE, RED, GREY = (
    "#2563eb",
    "#16a34a",
    "#ea580c",
    "#7c3aed",
    "#dc2626",
    "#6b7280",
)
#: Receipt stats in display order, coloured by what they mean.
STAT_COLORS = {
    "DELIVRD": GREEN,
    "ACCEPTD": BLUE,
    "ENROUTE": "#0891b2",
    "EXPIRED": "#d97706",
    "UNDELIV": RED,
    "REJECTD": PURPLE,
    "DELETED": GREY,
    "UNKNOWN": "#94a3b8",
}
OPERATOR_COLORS = (BLUE, ORANGE, GREEN, PURPLE, RED, "#0891b2", GREY)


class ReportError(Exception):
    """The folder is not a run folder (no summary), or its files can't be read."""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    note: str
    svg: Markup


def _rates(ticks: Sequence[Tick], value: Callable[[Tick], int]) -> list[Point]:
    """Per-second rate between consecutive ticks, at the later tick's time."""
    out: list[Point] = []
    for a, b in itertools.pairwise(ticks):
        dt = b.sample.t - a.sample.t
        out.append((b.sample.t, (value(b) - value(a)) / dt if dt > 0 else None))
    return out


def _every(ticks: Sequence[Tick], most: int) -> tuple[list[Tick], int]:
    """Every k-th tick (and the last) so that at most ``most`` remain; and k."""
    k = max(1, -(-len(ticks) // most))
    kept = list(ticks[::k])
    if ticks and kept[-1] is not ticks[-1]:
        kept.append(ticks[-1])
    return kept, k


def _worst(ticks: Sequence[Tick], k: int, pick: Callable[[Tick], float | None]) -> list[Point]:
    """The highest value in each group of ``k`` ticks, at the group's last tick."""
    out: list[Point] = []
    for i in range(0, len(ticks), k):
        group = ticks[i : i + k]
        values = [v for v in map(pick, group) if v is not None]
        out.append((group[-1].sample.t, max(values) if values else None))
    return out


def _percentile(q: str) -> Callable[[Tick], float | None]:
    def pick(t: Tick) -> float | None:
        v: float | None = getattr(t.latency, q)
        return v

    return pick


def _accepted(operator: str) -> Callable[[Tick], int]:
    def pick(t: Tick) -> int:
        counts = t.operators.get(operator)
        return counts.accepted if counts is not None else 0

    return pick


def _seconds(v: float) -> str:
    return "0" if v == 0 else format_duration(v)


def _count(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 or v == 0 else f"{v:,.1f}"


def _rule(gates: Mapping[str, Mapping[str, Any]], name: str, label: str) -> list[Rule]:
    g = gates.get(name)
    if g is None:
        return []
    op = "≤" if g["bound"] == Bound.MAX.value else "≥"
    return [Rule(float(g["threshold"]), f"gate {label} {op} {GATES[name].show(g['threshold'])}")]


@dataclass(frozen=True, slots=True)
class _Axis:
    """What every chart over run time shares: the ticks drawn, the x range, the drain."""

    ticks: list[Tick]
    #: Ticks per point (1 unless the run was longer than ``MOST_POINTS`` seconds).
    k: int
    end: float
    bands: list[Band]

    def chart(
        self,
        title: str,
        note: str,
        series: Sequence[Series],
        *,
        y_format: Callable[[float], str],
        **options: Any,
    ) -> Chart:
        if self.bands:
            note += " Shaded: the drain after the load ended."
        svg = line_chart(
            series, x_max=self.end, y_format=y_format, label=title, bands=self.bands, **options
        )
        return Chart(title, note, Markup(svg))


def _throughput(ax: _Axis) -> Chart:
    def rate(name: str, color: str, pick: Callable[[Tick], int], dashed: bool = False) -> Series:
        return Series(name, color, _rates(ax.ticks, pick), dashed)

    lines = [
        rate("submits accepted", BLUE, lambda t: t.sample.accepted),
        rate("receipts delivered", GREEN, lambda t: t.sample.receipts_delivered),
        rate("MO delivered", ORANGE, lambda t: t.sample.mo_delivered),
    ]
    if ax.ticks[-1].sample.throttled:
        lines.append(rate("throttled", RED, lambda t: t.sample.throttled, dashed=True))
    note = (
        "Per second, at the SMSC: submit_sm accepted, receipts delivered to the platform, "
        "MO delivered to the platform."
    )
    if ax.k > 1:
        note += f" Each point covers {ax.k} s."
    return ax.chart("Throughput", note, lines, y_format=_count)


def _latency(ax: _Axis, all_ticks: Sequence[Tick], gates: Mapping[str, Any]) -> Chart:
    lines = [
        Series(q, color, _worst(all_ticks, ax.k, _percentile(q)))
        # p50 drawn last, on top: in a quiet run all three lie close together.
        for q, color in (("p99", RED), ("p95", ORANGE), ("p50", BLUE))
    ]
    note = "Percentiles of each second's replies at the handsets (a gap: a second with none)."
    if ax.k > 1:
        note += f" Each point: the highest second of {ax.k}."
    rules = [r for q in ("p50", "p95", "p99") for r in _rule(gates, f"mo_reply_{q}", q)]
    return ax.chart("MO → reply latency", note, lines, y_format=_seconds, rules=rules)


def _completion(ax: _Axis, gates: Mapping[str, Any]) -> Chart:
    done = [
        (s.t, distinct_receipts(s) / s.wants_receipt if s.wants_receipt else None)
        for s in (t.sample for t in ax.ticks)
    ]
    return ax.chart(
        "Receipt completion",
        "Receipts delivered to the platform (the fault's duplicates left out) / messages accepted "
        "with a receipt asked, so far.",
        [Series("completion", GREEN, done)],
        y_format=lambda v: f"{v:.0%}",
        y_max=1.0,
        rules=_rule(gates, "receipt_completion_ratio", "completion"),
    )


def _by_operator(ax: _Axis, names: Sequence[str]) -> Chart:
    lines = [
        Series(name, OPERATOR_COLORS[i % len(OPERATOR_COLORS)], _rates(ax.ticks, _accepted(name)))
        for i, name in enumerate(names)
    ]
    note = "Per second, at each operator's SMSC."
    return ax.chart("Submits accepted by operator", note, lines, y_format=_count)


def charts(ts: TimeSeries, gates: Mapping[str, Mapping[str, Any]]) -> list[Chart]:
    """The report's charts from the time series; the gates give the threshold rules."""
    if len(ts.ticks) < 2:
        return []
    end = ts.ticks[-1].sample.t
    kept, k = _every(ts.ticks, MOST_POINTS)
    bands = [Band(ts.load_ended_at, end, "drain")] if ts.load_ended_at is not None else []
    ax = _Axis(kept, k, end, bands)
    out = [_throughput(ax)]
    if any(t.latency.count for t in ts.ticks):
        out.append(_latency(ax, ts.ticks, gates))
    if ts.ticks[-1].sample.wants_receipt:
        out.append(_completion(ax, gates))
    if len(names := list(ts.ticks[-1].operators)) > 1:
        out.append(_by_operator(ax, names))
    if any(sum(by.values()) for by in ts.receipts_by_operator.values()):
        bars = stacked_bars(
            list(ts.receipts_by_operator.items()), STAT_COLORS, label="Outcome mix by operator"
        )
        note = "Receipts issued by each operator's SMSC, by stat (hover a segment for counts)."
        out.append(Chart("Outcome mix by operator", note, Markup(bars)))
    return out


def _show(name: str, value: float | None) -> str:
    """A gate's figure in its unit; a gate this version does not know, as a number."""
    if name in GATES:
        return GATES[name].show(value)
    return "not measured" if value is None else f"{value:g}"


def _gate_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for g in summary.get("gates", []):
        name = str(g["name"])
        op = "≤" if g["bound"] == Bound.MAX.value else "≥"
        rows.append(
            {
                "name": name,
                "what": GATES[name].what if name in GATES else "",
                "threshold": f"{op} {_show(name, g['threshold'])}",
                "measured": _show(name, g["figure"]),
                "passed": bool(g["passed"]),
            }
        )
    for r in summary.get("regressions", []):
        name = str(r["name"])
        rows.append(
            {
                "name": f"regression {name}",
                "what": "against the baseline run",
                "threshold": f"baseline {_show(name, r['baseline'])}",
                "measured": _show(name, r["figure"]),
                "passed": bool(r["passed"]),
            }
        )
    return rows


def _delivery_rows(actions: list[Mapping[str, Any]]) -> list[list[str]]:
    """Each followed broadcast's / flow start's delivery (``counters.delivery``): numbers,
    how many an MT and a receipt reached, and when the last of each came after the
    action's first API call."""

    def after(value: Any) -> str:
        return "—" if value is None else f"{float(value):.2f} s"

    def share(part: int, whole: int) -> str:
        return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"

    rows = []
    for a in actions:
        n = int(a.get("numbers", 0))
        rows.append(
            [
                f"actions[{a.get('action')}]",
                f"{n:,}",
                share(int(a.get("reached", 0)), n),
                share(int(a.get("receipted", 0)), n),
                after(a.get("last_mt_after")),
                after(a.get("last_receipt_after")),
            ]
        )
    return rows


def _cards(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headline figures: (label, value)."""
    f, c = summary.get("figures", {}), summary.get("counters", {})
    out = [
        (f"MO → reply {q}", GATES[f"mo_reply_{q}"].show(f.get(f"mo_reply_{q}")))
        for q in ("p50", "p95", "p99")
        if f"mo_reply_{q}" in f
    ]
    if "unanswered_ratio" in f:
        out.append(("unanswered", GATES["unanswered_ratio"].show(f["unanswered_ratio"])))
    for label, key in (
        ("MO from Locust", "mo_from_locust"),
        ("replies", "replies"),
        ("submits accepted", "accepted"),
        ("receipts delivered", "receipts_delivered"),
        ("USSD sessions", "ussd_sessions_dialled"),
    ):
        if c.get(key):
            out.append((label, f"{c[key]:,}"))
    if f.get("broadcast_throughput") is not None:
        out.append(("broadcast", GATES["broadcast_throughput"].show(f["broadcast_throughput"])))
    if f.get("lost_messages") is not None:
        out.append(("lost messages", GATES["lost_messages"].show(f["lost_messages"])))
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a JSON object")
    return data


def _scenario(run_dir: Path) -> dict[str, Any]:
    """The run's scenario from run.json (never its API token); {} when absent."""
    path = run_dir / "run.json"
    if not path.is_file():
        return {}
    scenario = _read_json(path).get("scenario")
    return scenario if isinstance(scenario, dict) else {}


def _meta(scenario: Mapping[str, Any], ts: TimeSeries | None) -> list[str]:
    """The line under the title: when, how long, how many."""
    out = []
    if ts is not None:
        out.append(f"started {ts.started_at.replace('T', ' ').replace('+00:00', ' UTC')}")
        if ts.ticks:
            ran = f"ran {format_duration(ts.ticks[-1].sample.t)}"
            if ts.load_ended_at is not None:
                ran += f" (load {format_duration(ts.load_ended_at)}, then the drain)"
            out.append(ran)
    if isinstance(size := scenario.get("population", {}).get("size"), int):
        out.append(f"{size:,} subscribers")
    if isinstance(users := scenario.get("load", {}).get("users"), int):
        out.append(f"{users} Locust users")
    if isinstance(scale := scenario.get("time", {}).get("scale"), int | float):
        out.append(f"simulated time ×{scale:g}")
    return out


def _stats(receipts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The receipt stats seen, known ones in ``STAT_COLORS`` order, then the others."""
    seen = {s for by in receipts.values() for s in by}
    return [s for s in STAT_COLORS if s in seen] + sorted(seen - STAT_COLORS.keys())


def _environment() -> jinja2.Environment:
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def render(run_dir: Path) -> str:
    """The report page of a run folder, from its files."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run folder")
    if not (run_dir / SUMMARY).is_file():
        raise ReportError(f"{run_dir} has no {SUMMARY} (not a smsim run folder?)")
    summary = _read_json(run_dir / SUMMARY)
    ts: TimeSeries | None = None
    if (run_dir / TIMESERIES_FILE).is_file():
        try:
            ts = TimeSeries.from_json(_read_json(run_dir / TIMESERIES_FILE))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"{run_dir / TIMESERIES_FILE}: {exc}") from None
    scenario = _scenario(run_dir)
    try:
        gates = {g["name"]: g for g in summary.get("gates", []) if g.get("name") in GATES}
        view = {
            "summary": summary,
            "meta": _meta(scenario, ts),
            "description": str(scenario.get("description") or ""),
            "cards": _cards(summary),
            "gates": _gate_rows(summary),
            "charts": charts(ts, gates) if ts else [],
            "receipts": ts.receipts_by_operator if ts else {},
            "receipt_stats": _stats(ts.receipts_by_operator if ts else {}),
            "delivery": _delivery_rows(summary.get("counters", {}).get("delivery") or []),
            "counters": {
                k: v for k, v in summary.get("counters", {}).items() if v and k != "delivery"
            },
        }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{run_dir / SUMMARY}: unexpected content ({exc!r})") from None
    template = resources.files(__package__).joinpath("report.html.j2").read_text("utf-8")
    return _environment().from_string(template).render(view)


def write(run_dir: Path, out: Path | None = None) -> Path:
    """Render and write the report; returns its path (``RUN_DIR/report.html``)."""
    path = out or run_dir / FILE
    path.write_text(render(run_dir), encoding="utf-8")
    return path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="re-render a run folder's report.html (charts, gates) from its files",
        description=(
            "Write RUN_DIR/report.html from the summary.json and timeseries.json that "
            "smsim run left there: one offline HTML page with the run's charts, gates and "
            "figures. Exit 2 when RUN_DIR is not a run folder."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a folder smsim run wrote")
    p.add_argument("--out", type=Path, help="write here instead of RUN_DIR/report.html")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        path = write(args.run_dir, args.out)
    except (ReportError, OSError) as exc:
        print(f"smsim report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
