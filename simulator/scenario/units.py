"""Durations and rates as scenario authors write them: ``90s``, ``1h30m``, ``50/s``.

Kept apart from the models so the CLI (``--duration 5m``, ``--gate mo_reply_p95=2s``)
parses exactly what the YAML files accept.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|sec|m|min|h|hour|d|day)\s*$")
_RATE_UNIT = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def parse_duration(value: object) -> float:
    """Seconds from ``12``, ``12.5``, ``"500ms"``, ``"90s"``, ``"1h30m"``, ``"3d"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 5m, 1h30m or 3d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos = 0
        seconds = 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a duration such as 90s, 5m, 1h30m or 3d"
                ) from None
    else:
        raise ValueError("expected a duration such as 90s, 5m, 1h30m or 3d")
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration can't be negative")
    return seconds


def parse_rate(value: object) -> float:
    """Events per second from ``50``, ``"50/s"``, ``"3000/min"``, ``"2/day"``."""
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 50/s or 3000/min")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str):
        m = _RATE.match(value)
        if m is None:
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a rate such as 50/s or 3000/min") from None
        else:
            rate = float(m.group(1)) / _RATE_UNIT[m.group(2)]
    else:
        raise ValueError("expected a rate such as 50/s or 3000/min")
    if rate < 0:
        raise ValueError(f"{value!r}: a rate can't be negative")
    return rate


def format_duration(seconds: float) -> str:
    """Short human form for tables: ``850ms``, ``12.3s``, ``4m05s``, ``2h10m``, ``3d4h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{int(seconds // 86400)}d{int(seconds % 86400 // 3600)}h"
