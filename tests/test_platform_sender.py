"""The platform's sending rules in isolation: segments, TPS, statuses and re-sends,
routing numbers to binds, courier's Kannel parameters."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from simulator.config import KannelChannelConfig, PlatformConfig, SmppBindConfig
from simulator.platform.channels.kannel import DLR_MASK, KannelChannel
from simulator.platform.channels.smpp import bind_names, make_router, national
from simulator.platform.flows import numbers
from simulator.platform.model import Msg, MsgDirection, MsgStatus
from simulator.platform.sender import Sender, TokenBucket, count_segments
from simulator.platform.store import PlatformStore

pytestmark = pytest.mark.timeout(30)


class FakeChannel:
    """Records sends; ``outcome`` decides what each one gets back."""

    def __init__(self, name: str = "ch", outcome: MsgStatus | None = MsgStatus.DELIVERED) -> None:
        self.name = name
        self.outcome = outcome
        self.sent: list[tuple[float, int, int]] = []  # (time, msg id, attempt)
        self.sender: Sender | None = None

    async def send(self, msg: Msg) -> None:
        self.sent.append((time.monotonic(), msg.id, msg.attempts))
        assert self.sender is not None
        self.sender.wired(msg, f"ext-{msg.id}-{msg.attempts}")
        if self.outcome is not None:
            self.sender.status(msg, self.outcome)


def make(tmp_path: Path, channel: FakeChannel, **cfg: object) -> tuple[Sender, PlatformStore]:
    store = PlatformStore(tmp_path / "p.sqlite3", autoflush=False, evict_final=False)
    sender = Sender(PlatformConfig(**cfg), store, [channel], lambda m: channel.name)  # type: ignore[arg-type]
    channel.sender = sender
    return sender, store


def out(store: PlatformStore, sender: Sender, text: str, n: int) -> list[Msg]:
    msgs = []
    for i in range(n):
        c, _ = store.get_or_create_contact(f"tel:+2010{i:08d}", 0.0)
        m = store.new_msg(c, MsgDirection.OUT, text, 0.0, segments=sender.segments(text))
        msgs.append(m)
    return msgs


def test_segments_like_a_handset_counts_them() -> None:
    assert count_segments("a" * 160) == 1
    assert count_segments("a" * 161) == 2
    assert count_segments("a" * 306) == 2 and count_segments("a" * 307) == 3
    assert count_segments("{" * 80) == 1 and count_segments("{" * 81) == 2  # escapes: 2 septets
    assert count_segments("م" * 70) == 1
    assert count_segments("م" * 71) == 2
    assert count_segments("م" * 134) == 2 and count_segments("م" * 135) == 3


def test_token_bucket_allows_one_second_of_burst_then_paces() -> None:
    now = [100.0]
    bucket = TokenBucket(10, clock=lambda: now[0])
    assert [bucket.delay(1) for _ in range(10)] == [0.0] * 10
    assert bucket.delay(1) == pytest.approx(0.1)
    assert bucket.delay(3) == pytest.approx(0.4)
    now[0] += 0.4
    assert bucket.delay(1) == pytest.approx(0.1)


async def test_tps_counts_every_segment_when_asked(tmp_path: Path) -> None:
    text = "م" * 140  # 3 parts
    for count, minimum, maximum in ((True, 0.9, 3.0), (False, 0.0, 0.5)):
        ch = FakeChannel()
        sender, store = make(tmp_path, ch, tps=100, count_segments=count)
        sender.start()
        t0 = time.monotonic()
        for m in out(store, sender, text, 100):
            sender.enqueue(m)
        while len(ch.sent) < 100:
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - t0
        await sender.stop()
        store.close()
        # 300 parts at 100/s after a 100-part burst: 2 s; 100 messages alone: the burst.
        assert minimum <= elapsed <= maximum, (count, elapsed)
        assert sender.stats.throttled_seconds > 0 if count else sender.stats.throttled_seconds == 0


async def test_errored_messages_are_resent_until_max_attempts_then_failed(tmp_path: Path) -> None:
    ch = FakeChannel(outcome=MsgStatus.ERRORED)
    sender, store = make(tmp_path, ch, tps=0, max_attempts=3, retry_delay=0.05)
    finals: list[Msg] = []
    sender.on_final(finals.append)
    sender.start()
    [m] = out(store, sender, "hello", 1)
    sender.enqueue(m)
    while not finals:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.15)  # no fourth attempt
    await sender.stop()
    assert [a for _, _, a in ch.sent] == [1, 2, 3]
    assert ch.sent[1][0] - ch.sent[0][0] >= 0.04  # after the retry delay
    assert m.status is MsgStatus.FAILED and m.attempts == 3
    assert sender.stats.resent == 2 and sender.stats.failed == 1
    store.close()


async def test_statuses_queued_wired_delivered_and_late_receipts_ignored(tmp_path: Path) -> None:
    ch = FakeChannel(outcome=None)
    sender, store = make(tmp_path, ch, tps=0)
    sender.start()
    [m] = out(store, sender, "hello", 1)
    assert m.status is MsgStatus.QUEUED
    sender.enqueue(m)
    while not ch.sent:
        await asyncio.sleep(0.01)
    assert m.status is MsgStatus.WIRED and m.external_id == "ext-1-1" and m.sent_on is not None
    sender.status(m, MsgStatus.SENT)
    assert m.status is MsgStatus.SENT
    sender.status(m, MsgStatus.DELIVERED)
    sender.status(m, MsgStatus.ERRORED)  # a late duplicate: delivered stays
    assert m.status is MsgStatus.DELIVERED and sender.stats.errored == 0
    await sender.stop()
    store.close()


def test_numbers_route_to_binds_by_national_prefix() -> None:
    binds = [
        SmppBindConfig(operator="vodafone", prefixes=["010"]),
        SmppBindConfig(operator="orange", prefixes=["012"]),
        SmppBindConfig(operator="orange", prefixes=["0127"]),
        SmppBindConfig(operator="etisalat"),
    ]
    names = bind_names(binds)
    assert names == ["vodafone", "orange", "orange-2", "etisalat"]
    route = make_router(binds, names)

    def to(number: str) -> str:
        return route(Msg(1, "u", 1, f"tel:+{number}", MsgDirection.OUT, "", MsgStatus.QUEUED, 0, 0))

    assert national("201001234567") == "01001234567"
    assert to("201001234567") == "vodafone"
    assert to("201201234567") == "orange"
    assert to("201271234567") == "orange-2"  # the longest prefix wins
    assert to("201501234567") == "etisalat"  # no prefix: the default bind


def test_franco_digits_are_letters_not_numbers() -> None:
    assert numbers("ta2yeemy 3") == [(3.0, "3")]
    assert numbers("la2 2") == [(2.0, "2")]
    assert numbers("3ala 1") == [(1.0, "1")]
    assert numbers("رد ب١") == [(1.0, "1")]


def test_kannel_sendsms_parameters_are_couriers(tmp_path: Path) -> None:
    cfg = KannelChannelConfig(channel_uuid="abc", callback_base="http://127.0.0.1:9/")
    ch = KannelChannel(cfg, PlatformConfig(), lambda: None, lambda *a: None, lambda i: None)
    msg = Msg(42, "u", 1, "tel:+201001234567", MsgDirection.OUT, "مرحبا", MsgStatus.QUEUED, 0, 0)
    p = ch.params(msg)
    assert p["from"] == "1442" and p["to"] == "+201001234567" and p["text"] == "مرحبا"
    assert p["dlr-mask"] == str(DLR_MASK) == "27"
    assert p["coding"] == "2" and p["charset"] == "utf8"
    dlr = urlsplit(p["dlr-url"])
    assert dlr.path == "/c/kn/abc/status"
    assert parse_qs(dlr.query) == {"status": ["%d"], "id": ["42"]}
    msg.text = "hello"
    assert "coding" not in ch.params(msg)


class RecordingSender:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, object]] = []

    def wired(self, msg: Msg, external_id: str) -> None:
        self.calls.append(("wired", msg.id, external_id))

    def status(self, msg: Msg, status: MsgStatus) -> None:
        self.calls.append(("status", msg.id, status))

    def failed_submit(self, msg: Msg, reason: str) -> None:
        self.calls.append(("failed", msg.id, reason))


async def test_kannel_callbacks_take_form_posts_and_query_strings() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    received: list[tuple[str, str, str]] = []
    sender = RecordingSender()
    msgs = {7: Msg(7, "u", 1, "tel:+201001234567", MsgDirection.OUT, "x", MsgStatus.WIRED, 0, 0)}

    def receive(number: str, text: str, channel: str) -> object:
        received.append((number, text, channel))
        return object()

    ch = KannelChannel(
        KannelChannelConfig(channel_uuid="abc"),
        PlatformConfig(),
        lambda: sender,  # type: ignore[arg-type,return-value]
        receive,
        msgs.get,
    )
    app = web.Application()
    ch.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        form = {"id": "1", "ts": "1700000000", "sender": "+201001234567", "message": "نعم ١"}
        resp = await client.post("/c/kn/abc/receive", data=form)
        assert resp.status == 200
        resp = await client.post(
            "/c/kn/abc/receive?sender=%2B201201234567&message=2&id=2&ts=1700000001"
        )
        assert resp.status == 200
        assert (await client.post("/c/kn/abc/receive", data={"message": "x"})).status == 400
        for code in ("8", "1", "2", "16", "4"):
            resp = await client.get(f"/c/kn/abc/status?id=7&status={code}")
            assert resp.status == 200
        resp = await client.get("/c/kn/abc/status?id=999&status=1")  # unknown: ignored
        assert resp.status == 200 and ch.stats.dlr_unmatched == 1
    assert received == [
        ("+201001234567", "نعم ١", "kannel"),
        ("+201201234567", "2", "kannel"),
    ]
    assert sender.calls == [
        ("status", 7, MsgStatus.SENT),
        ("status", 7, MsgStatus.DELIVERED),
        ("status", 7, MsgStatus.ERRORED),
        ("status", 7, MsgStatus.ERRORED),
    ]
