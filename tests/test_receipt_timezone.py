"""Receipt dates are the SMSC's local time (SMPP 3.4 Appendix B): its configured time
zone, Cairo by default with Egypt's daylight saving time, whatever the machine's zone."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from simulator.clock import SimClock
from simulator.config import OperatorConfig, SmscConfig
from simulator.esme.client import EsmeClient
from simulator.smpp.pdu import DeliverSm, QuerySm, SubmitSm
from simulator.smpp.times import LocalClock
from simulator.smsc.server import SmscServer

pytestmark = pytest.mark.timeout(30)

#: 09:00 UTC: 12:00 in Cairo in July (EEST, UTC+3), 11:00 in January (EET, UTC+2).
JULY_0900_UTC = calendar.timegm((2026, 7, 1, 9, 0, 0, 0, 0, 0))
JANUARY_0900_UTC = calendar.timegm((2026, 1, 15, 9, 0, 0, 0, 0, 0))


@pytest.fixture
def machine_in_sao_paulo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone is neither UTC nor Cairo's."""
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


async def _receipt_dates(start: float, **op: object) -> tuple[str, str, str]:
    cfg = SmscConfig(operators=[OperatorConfig(port=0, **op)])  # type: ignore[arg-type]
    async with SmscServer(cfg, clock=SimClock(1.0, start=start)) as smsc:
        got: list[DeliverSm] = []
        client = await EsmeClient.connect(
            "127.0.0.1",
            smsc.port,
            on_deliver=lambda pdu: got.append(pdu) or 0,  # type: ignore[func-returns-value]
        )
        resp = await client.request(
            SubmitSm(
                source_addr="1442",
                destination_addr="201001234567",
                short_message=b"hello",
                registered_delivery=1,
            )
        )
        assert resp.command_status == 0
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        query = await client.request(
            QuerySm(message_id=resp.message_id, source_addr="1442")  # type: ignore[attr-defined]
        )
        await client.unbind()
    (receipt,) = got
    text = receipt.short_message.decode()
    submit = text.split("submit date:")[1].split()[0]
    done = text.split("done date:")[1].split()[0]
    # query_sm's final_date: the same local time, to the second, and the zone's offset.
    final = query.final_date  # type: ignore[attr-defined]
    assert final[:10] == done and final[-1] in "+-"
    return submit, done, final[13:]


@pytest.mark.usefixtures("machine_in_sao_paulo")
async def test_receipt_dates_are_cairo_time_with_its_summer_time_by_default() -> None:
    assert await _receipt_dates(JULY_0900_UTC) == ("2607011200", "2607011200", "12+")
    assert await _receipt_dates(JANUARY_0900_UTC) == ("2601151100", "2601151100", "08+")


@pytest.mark.usefixtures("machine_in_sao_paulo")
async def test_receipt_dates_follow_the_configured_time_zone() -> None:
    assert await _receipt_dates(JULY_0900_UTC, timezone="UTC") == (
        "2607010900",
        "2607010900",
        "00+",
    )
    assert await _receipt_dates(JULY_0900_UTC, timezone="America/Sao_Paulo") == (
        "2607010600",
        "2607010600",
        "12-",
    )


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        OperatorConfig(timezone="Africa/Atlantis")


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Africa/Cairo", (2026, 4, 23)),  # summer time from 00:00 on the last Friday of April
        ("Africa/Cairo", (2026, 10, 29)),  # and back at 24:00 on the last Thursday of October
        ("Australia/Lord_Howe", (2026, 10, 3)),  # a half-hour change at 15:30 UTC
        ("Australia/Lord_Howe", (2026, 4, 4)),
        ("America/St_Johns", (2026, 3, 8)),
    ],
)
def test_local_clock_matches_zoneinfo_every_minute_across_a_dst_change(
    zone: str, day: tuple[int, int, int]
) -> None:
    clock = LocalClock(zone)
    tz = ZoneInfo(zone)
    start = calendar.timegm((*day, 0, 0, 0, 0, 0, 0)) - 86400
    changes = 0
    previous = None
    for ts in range(start, start + 3 * 86400, 60):
        for t in (float(ts), ts + 59.5):
            want = datetime.fromtimestamp(t, tz)
            assert clock.offset(t) == want.utcoffset().total_seconds()  # type: ignore[union-attr]
            assert clock.strftime("%y%m%d%H%M", t) == want.strftime("%y%m%d%H%M")
        offset = clock.offset(float(ts))
        changes += previous is not None and offset != previous
        previous = offset
    assert changes == 1
