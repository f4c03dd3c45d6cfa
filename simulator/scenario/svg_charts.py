"""Small inline SVG charts for the HTML report: lines over run time, and stacked bars.

Each chart is one ``<svg>`` element as a string, with its legend, axes and grid, and no
script, font or style from outside, so the report works offline and in any browser. A
line's gaps (``None``) split it into separate polylines; a shaded band marks a span of
the run (the drain), a dashed rule a threshold (a gate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

#: Plot margins inside the SVG: left (y labels), right, top (legend), bottom (x labels).
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 34, 34
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
GRID, AXIS_TEXT = "#e5e7eb", "#6b7280"

Point = tuple[float, float | None]


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    color: str
    points: Sequence[Point]
    dashed: bool = False


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded span of the x axis, labelled at its top."""

    start: float
    end: float
    label: str


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal dashed line at ``value`` (a gate's threshold)."""

    value: float
    label: str
    color: str = "#dc2626"


@dataclass(frozen=True, slots=True)
class Frame:
    """Data to pixels: x from 0 to ``x_max``, y from 0 to ``y_max``."""

    width: int
    height: int
    x_max: float
    y_max: float

    @property
    def bottom(self) -> float:
        return self.height - BOTTOM

    @property
    def right(self) -> float:
        return self.width - RIGHT

    def x(self, v: float) -> float:
        return LEFT + (self.right - LEFT) * (v / self.x_max if self.x_max > 0 else 0.0)

    def y(self, v: float) -> float:
        return self.bottom - (self.bottom - TOP) * (v / self.y_max if self.y_max > 0 else 0.0)


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``v`` (1 for 0)."""
    if v <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(v))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= v * (1 - 1e-9))


def y_ticks(v: float, count: int = 5, headroom: float = 0.05) -> list[float]:
    """Round grid values from 0 up to at most ``count`` steps, the last at or above ``v``
    plus the headroom (it is the axis' top)."""
    top = v * (1 + headroom)
    step = nice_ceiling(top / count)
    return [i * step for i in range(max(1, math.ceil(top / step - 1e-9)) + 1)]


#: Steps of the time axis, seconds: whole seconds, minutes and hours.
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200)


def time_ticks(x_max: float, most: int = 9) -> list[float]:
    step = next((s for s in _TIME_STEPS if x_max / s <= most - 1), _TIME_STEPS[-1])
    return [float(i * step) for i in range(int(x_max // step) + 1)]


def clock(seconds: float) -> str:
    """Run time as ``m:ss`` or ``h:mm:ss``."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, body: str, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" {extra}>{escape(body)}</text>'


def _legend(items: Sequence[tuple[str, str, bool]], y: float, x: float = LEFT) -> list[str]:
    out = []
    for name, color, dashed in items:
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        out.append(
            f'<line x1="{_num(x)}" y1="{_num(y - 4)}" x2="{_num(x + 18)}" y2="{_num(y - 4)}" '
            f'stroke="{color}" stroke-width="3"{dash}/>'
        )
        out.append(_text(x + 24, y, name, extra='fill="#374151"'))
        x += 24 + 7 * len(name) + 22
    return out


def _open(width: int, height: int, label: str) -> list[str]:
    """The <svg> element's start, scaled to the page's width, and its accessible name."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" {FONT} font-size="12" '
        f'aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]


def line_chart(
    series: Sequence[Series],
    *,
    x_max: float,
    y_format: Callable[[float], str],
    label: str,
    y_max: float | None = None,
    bands: Sequence[Band] = (),
    rules: Sequence[Rule] = (),
    width: int = 880,
    height: int = 280,
) -> str:
    """Lines over run time (seconds, 0 to ``x_max``); y from 0 to a round number a little
    above the data (or the rules, without data), or to ``y_max`` when given. A rule above
    the top is named at the top right rather than squashing the data under it."""
    values = [v for s in series for _, v in s.points if v is not None]
    if y_max is None:
        ticks = y_ticks(max(values or [r.value for r in rules] or [0.0]))
    else:
        ticks = y_ticks(y_max, headroom=0)
    top = ticks[-1]
    f = Frame(width, height, max(x_max, 1e-9), top)
    parts = _open(width, height, label)
    for b in bands:
        x0, x1 = f.x(max(0.0, b.start)), f.x(min(f.x_max, b.end))
        parts.append(
            f'<rect class="band" x="{_num(x0)}" y="{TOP}" width="{_num(max(0.0, x1 - x0))}" '
            f'height="{_num(f.bottom - TOP)}" fill="#f3f4f6"/>'
        )
        parts.append(_text(x0 + 4, f.bottom - 6, b.label, extra=f'fill="{AXIS_TEXT}"'))
    for v in ticks:
        y = f.y(v)
        parts.append(
            f'<line x1="{LEFT}" y1="{_num(y)}" x2="{_num(f.right)}" y2="{_num(y)}" '
            f'stroke="{GRID}"/>'
        )
        parts.append(_text(LEFT - 8, y + 4, y_format(v), anchor="end", extra=f'fill="{AXIS_TEXT}"'))
    for v in time_ticks(f.x_max):
        x = f.x(v)
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(f.bottom)}" x2="{_num(x)}" '
            f'y2="{_num(f.bottom + 5)}" stroke="{AXIS_TEXT}"/>'
        )
        parts.append(
            _text(x, f.bottom + 19, clock(v), anchor="middle", extra=f'fill="{AXIS_TEXT}"')
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{_num(f.bottom)}" x2="{_num(f.right)}" y2="{_num(f.bottom)}" '
        f'stroke="{AXIS_TEXT}"/>'
    )
    above = [r.label for r in rules if r.value > top]
    if above:
        parts.append(
            _text(
                f.right,
                18,
                "above the scale: " + ", ".join(above),
                anchor="end",
                extra=f'fill="{AXIS_TEXT}"',
            )
        )
    for r in (r for r in rules if r.value <= top):
        y = f.y(r.value)
        parts.append(
            f'<line class="rule" x1="{LEFT}" y1="{_num(y)}" x2="{_num(f.right)}" y2="{_num(y)}" '
            f'stroke="{r.color}" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        parts.append(_text(f.right - 4, y - 5, r.label, anchor="end", extra=f'fill="{r.color}"'))
    for s in series:
        parts += _polylines(f, s)
    parts += _legend([(s.name, s.color, s.dashed) for s in series], 18)
    parts.append("</svg>")
    return "\n".join(parts)


def _polylines(f: Frame, s: Series) -> list[str]:
    """One polyline per run of points without a gap; a lone point is a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, v in s.points:
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((f.x(x), f.y(min(v, f.y_max))))
    dash = ' stroke-dasharray="6 3"' if s.dashed else ""
    out = []
    name = escape(s.name)
    for run in runs:
        if len(run) == 1:
            (x, y) = run[0]
            out.append(
                f'<circle data-series="{name}" cx="{_num(x)}" cy="{_num(y)}" r="2.5" '
                f'fill="{s.color}"/>'
            )
        elif run:
            pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in run)
            out.append(
                f'<polyline data-series="{name}" points="{pts}" fill="none" '
                f'stroke="{s.color}" stroke-width="2" stroke-linejoin="round"{dash}/>'
            )
    return out


def stacked_bars(
    rows: Sequence[tuple[str, Mapping[str, int]]],
    colors: Mapping[str, str],
    *,
    label: str,
    width: int = 880,
) -> str:
    """One horizontal bar per row (an operator), split by share of each key (a receipt
    stat), with the row's total at the right; the counts are in each segment's tooltip."""
    keys = [k for k in colors if any(by.get(k) for _, by in rows)]
    keys += sorted({k for _, by in rows for k, n in by.items() if n and k not in colors})
    palette = {k: colors.get(k, "#9ca3af") for k in keys}
    left, right, bar, gap = 110, 90, 26, 14
    height = TOP + len(rows) * (bar + gap) + 8
    parts = _open(width, height, label)
    span = width - left - right
    for i, (name, by) in enumerate(rows):
        y = TOP + i * (bar + gap)
        total = sum(by.get(k, 0) for k in keys)
        parts.append(_text(left - 10, y + bar / 2 + 4, name, anchor="end", extra='fill="#111827"'))
        parts.append(
            _text(width - right + 10, y + bar / 2 + 4, f"{total:,}", extra='fill="#374151"')
        )
        x = float(left)
        for k in keys:
            n = by.get(k, 0)
            if not n or not total:
                continue
            w = span * n / total
            parts.append(
                f'<rect data-key="{escape(k)}" x="{_num(x)}" y="{y}" width="{_num(w)}" '
                f'height="{bar}" fill="{palette[k]}"><title>{escape(name)} {escape(k)}: '
                f"{n:,} ({n / total:.1%})</title></rect>"
            )
            if w > 70:
                parts.append(
                    _text(x + 6, y + bar / 2 + 4, f"{k} {n / total:.0%}", extra='fill="#ffffff"')
                )
            x += w
        if not total:
            parts.append(
                _text(left + 6, y + bar / 2 + 4, "no receipts", extra=f'fill="{AXIS_TEXT}"')
            )
    parts += _legend([(k, palette[k], False) for k in keys], 18, left)
    parts.append("</svg>")
    return "\n".join(parts)
