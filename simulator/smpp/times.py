"""SMPP time fields (schedule_delivery_time, validity_period, final_date): parse and format.

Absolute ``YYMMDDhhmmsstnn±`` (tenths, and the offset from UTC in quarter hours) and
relative ``YYMMDDhhmmss000R``. Months and years in relative times count 30 and 365 days,
as SMSCs commonly do.
"""

from __future__ import annotations

import calendar
import time
from datetime import datetime
from zoneinfo import ZoneInfo


class SmppTimeError(ValueError):
    """A time field that is not 16 characters of the SMPP format."""


def parse_smpp_time(value: str, now: float) -> float | None:
    """Unix time the field stands for, relative ones counted from ``now``; None if empty."""
    if not value:
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise SmppTimeError(f"{value!r} is not an SMPP time")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths = int(value[12])
    if value[15] == "R":
        return now + ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss + tenths / 10
    quarters = int(value[13:15])
    if quarters > 48:
        raise SmppTimeError(f"{value!r}: UTC offset of {quarters} quarter hours (00-48)")
    try:
        local = calendar.timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0))
    except (ValueError, OverflowError) as exc:
        raise SmppTimeError(f"{value!r}: {exc}") from exc
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
        raise SmppTimeError(f"{value!r} has an out-of-range field")
    offset = quarters * 900 * (1 if value[15] == "+" else -1)
    return local - offset + tenths / 10


def format_smpp_time(ts: float, utc_offset_quarters: int = 8) -> str:
    """Absolute SMPP time in a zone ``utc_offset_quarters`` east of UTC (Cairo: +8 = 2 h)."""
    local = time.gmtime(ts + utc_offset_quarters * 900)
    tenths = min(9, int((ts % 1) * 10 + 1e-6))
    sign = "+" if utc_offset_quarters >= 0 else "-"
    return time.strftime("%y%m%d%H%M%S", local) + f"{tenths}{abs(utc_offset_quarters):02d}{sign}"


class LocalClock:
    """UTC offsets of one time zone, for times on the hot path: the offset is kept per
    UTC hour when it is the same at both ends of the hour (so a DST change inside an
    hour, at any minute, is looked up exactly instead), for the last hours asked."""

    __slots__ = ("_hours", "zone")

    def __init__(self, zone: str) -> None:
        self.zone = ZoneInfo(zone)
        self._hours: dict[int, int] = {}

    def _at(self, ts: float) -> int:
        delta = datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    def offset(self, ts: float) -> int:
        """Seconds east of UTC at Unix time ``ts``."""
        hour = int(ts // 3600)
        hours = self._hours
        offset = hours.get(hour)
        if offset is not None:
            return offset
        start, end = self._at(hour * 3600.0), self._at(hour * 3600.0 + 3599.999)
        if start != end:
            return self._at(ts)
        if len(hours) >= _HOURS_KEPT:
            hours.clear()
        hours[hour] = start
        return start

    def strftime(self, fmt: str, ts: float) -> str:
        """``time.strftime`` of ``ts`` as the zone's wall clock shows it."""
        return time.strftime(fmt, time.gmtime(ts + self.offset(ts)))


#: Hours whose offset a LocalClock keeps (a quarter of a year), then it starts again.
_HOURS_KEPT = 2190
