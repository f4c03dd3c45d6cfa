"""The Locust channel: frames, reply timing, histograms, and the hub over real TCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.harness.frames import (
    HEADER,
    FrameError,
    FrameReader,
    FrameType,
    Hello,
    Origin,
    Outcome,
    Result,
    encode_hello,
    encode_mo,
    encode_results,
)
from simulator.harness.histogram import LatencyHistogram
from simulator.harness.hub import ChannelHub
from simulator.harness.replies import ReplyTracker
from simulator.smpp.constants import EsmClass
from simulator.smsc.store import Message

# --- frames ------------------------------------------------------------------------------


def test_frames_round_trip_whatever_the_chunking() -> None:
    mos = [(201001234567, "مسابقة"), (201112345678, "STOP"), (201200000001, "")]
    results = [
        Result(201001234567, Outcome.REPLY, Origin.LOCUST, 0.0123),
        Result(201500000002, Outcome.TIMEOUT, Origin.SUBSCRIBER, 30.0),
    ]
    stream = encode_hello(3, 8) + b"".join(encode_mo(mos)) + b"".join(encode_results(results))
    for cut in range(1, 7):
        reader = FrameReader()
        frames = []
        for i in range(0, len(stream), cut):
            frames.extend(reader.feed(stream[i : i + cut]))
        assert frames == [Hello(3, 8), mos, results]


def test_a_big_batch_is_split_into_frames_of_at_most_65535_items() -> None:
    items = [(201000000000 + i, "1") for i in range(70_000)]
    frames = encode_mo(items)
    assert len(frames) == 2
    decoded = [x for f in FrameReader().feed(b"".join(frames)) for x in f]  # type: ignore[union-attr]
    assert decoded == items


@given(st.binary(max_size=200))
def test_garbage_raises_only_frame_error(data: bytes) -> None:
    reader = FrameReader()
    with contextlib.suppress(FrameError):
        reader.feed(data)


def test_bad_frames_are_named() -> None:
    with pytest.raises(FrameError, match="frame length 3 out of range"):
        FrameReader().feed(HEADER.pack(3, FrameType.MO, 0))
    with pytest.raises(FrameError, match="unknown frame type 9"):
        FrameReader().feed(HEADER.pack(8, 9, 0))
    lying = HEADER.pack(8 + 10, FrameType.MO, 1) + struct.pack("<QH", 1, 500)
    with pytest.raises(FrameError, match="text runs past the frame"):
        FrameReader().feed(lying)
    bad_utf8 = HEADER.pack(8 + 12, FrameType.MO, 1) + struct.pack("<QH", 1, 2) + b"\xff\xfe"
    with pytest.raises(FrameError):
        FrameReader().feed(bad_utf8)


# --- histogram ---------------------------------------------------------------------------


def test_histogram_percentiles_are_within_one_percent_of_the_exact_ones() -> None:
    rng = random.Random(1442)
    values = [rng.lognormvariate(-4, 1.5) for _ in range(50_000)]
    h = LatencyHistogram()
    for v in values:
        h.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = values[int(q * len(values)) - 1]
        got = h.percentile(q)
        assert got is not None
        assert exact <= got * 1.0001 and got <= exact * 1.0101, (q, exact, got)
    assert h.percentile(1.0) == values[-1]
    assert h.count == 50_000 and h.min == values[0] and h.max == values[-1]


def test_histograms_merge_and_survive_json() -> None:
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1, 1000):
        (a if i % 2 else b).add(i / 1000)
        both.add(i / 1000)
    a.merge(LatencyHistogram.from_json(b.to_json()))
    merged, whole = a.to_json(), both.to_json()
    assert merged.pop("total") == pytest.approx(whole.pop("total"))
    assert merged == whole
    assert LatencyHistogram().percentile(0.5) is None
    tiny = LatencyHistogram()
    tiny.add(0.0)
    assert tiny.percentile(0.5) == 0.0


# --- reply tracker -----------------------------------------------------------------------


def test_tracker_times_the_first_mt_after_an_mo_and_expires_the_rest() -> None:
    t = ReplyTracker(timeout=30)
    t.on_mo(1, 100.0, Origin.LOCUST, owner=7)
    t.on_mo(2, 101.0, Origin.SUBSCRIBER)
    t.on_mo(1, 102.0, Origin.LOCUST, owner=7)  # still waiting: coalesced
    assert t.on_mt(3, 103.0) is None  # nobody waits (a broadcast)
    owner, r = t.on_mt(1, 100.5) or (None, None)
    assert owner == 7 and r == Result(1, Outcome.REPLY, Origin.LOCUST, 0.5)
    assert t.on_mt(1, 100.6) is None  # the second MT of the answer is not a reply
    assert t.expire(130.9) == []
    (expired,) = t.expire(131.0)
    assert expired == (None, Result(2, Outcome.TIMEOUT, Origin.SUBSCRIBER, 30.0))
    assert (t.stats.sent, t.stats.replies, t.stats.timeouts, t.stats.coalesced) == (3, 1, 1, 1)
    assert t.stats.histograms[Origin.LOCUST].count == 1
    assert len(t) == 0


def test_tracker_does_not_expire_a_later_mo_of_an_answered_number() -> None:
    t = ReplyTracker(timeout=10)
    t.on_mo(5, 0.0, Origin.LOCUST)
    assert t.on_mt(5, 1.0) is not None
    t.on_mo(5, 5.0, Origin.LOCUST)
    assert t.expire(10.0) == []  # the first entry was answered; the second is not due
    assert [r.seconds for _, r in t.expire(15.0)] == [10.0]


def test_a_concatenated_reply_is_a_reply_once_its_last_part_is_in() -> None:
    t = ReplyTracker(timeout=10)
    t.on_mo(1, 0.0, Origin.LOCUST)
    t.on_mo(2, 0.0, Origin.LOCUST)
    assert t.on_mt(1, 1.0, (7, 3, 1)) is None
    assert t.on_mt(1, 1.5, (7, 3, 3)) is None  # out of order
    assert t.on_mt(1, 1.5, (7, 3, 3)) is None  # a part sent again counts once
    assert t.on_mt(1, 1.6, (9, 2, 1)) is None  # a part of another message
    hit = t.on_mt(1, 2.0, (7, 3, 2))
    assert hit is not None and hit[1].seconds == 2.0
    # A reply that never comes whole (its last part refused) is no reply at all.
    assert t.on_mt(2, 1.0, (4, 2, 1)) is None
    assert [r.outcome for _, r in t.expire(10.0)] == [Outcome.TIMEOUT]
    assert (t.stats.replies, t.stats.timeouts) == (1, 1)


# --- the hub over TCP --------------------------------------------------------------------


def _mt(destination: str, ton: int = 1) -> Message:
    return Message("1", "rapidpro", "1442", 3, 0, destination, ton, 1, 0, 8, b"", 1, 0.0)


async def _read_frames(reader: asyncio.StreamReader, want: int) -> list[object]:
    fr = FrameReader()
    got: list[object] = []
    while len(got) < want:
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "hub closed the channel"
        got.extend(fr.feed(data))
    return got


async def test_hub_injects_mo_and_returns_each_result_to_the_worker_that_sent_it() -> None:
    injected: list[tuple[str, str]] = []
    now = [1000.0]

    def inject(number: str, text: str) -> None:
        injected.append((number, text))
        hub.on_mo(number)  # the SMSC echoes every injected MO to its observers

    hub = ChannelHub(inject, reply_timeout=5, clock=lambda: now[0])
    port = await hub.start()
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(encode_hello(0, 2) + b"".join(encode_mo([(201001112222, "مسابقة")])))
        w2.write(encode_hello(1, 2) + b"".join(encode_mo([(201201113333, "help")])))
        await w1.drain()
        await w2.drain()
        for _ in range(100):
            if len(injected) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(injected) == [("201001112222", "مسابقة"), ("201201113333", "help")]
        # The echo of our own MO is not a second, subscriber-originated one.
        assert (hub.tracker.stats.sent, hub.tracker.stats.coalesced) == (2, 0)
        now[0] = 1000.25
        hub.on_mt(_mt("201201113333"))  # the platform answered worker 1's subscriber
        (frame,) = await _read_frames(r2, 1)
        assert frame == [Result(201201113333, Outcome.REPLY, Origin.LOCUST, 0.25)]
        now[0] = 1006.0  # worker 0's subscriber is never answered
        (frame,) = await _read_frames(r1, 1)
        assert frame == [Result(201001112222, Outcome.TIMEOUT, Origin.LOCUST, 6.0)]
        # An answer of the simulated subscriber is timed too and reported to a worker.
        hub.on_mo("201509998888")
        now[0] = 1006.5
        hub.on_mt(_mt("01509998888", ton=2))  # national form: the same handset
        assert hub.tracker.stats.histograms[Origin.SUBSCRIBER].count == 1
        # A two-part reply (UDH 05 00 03 ref total seq) is timed at its second part.
        hub.on_mo("201109997777")
        first, second = (
            dataclasses.replace(
                _mt("201109997777"),
                esm_class=EsmClass.UDHI,
                short_message=bytes((5, 0, 3, 42, 2, seq)) + "جزء".encode("utf-16-be"),
            )
            for seq in (1, 2)
        )
        now[0] = 1007.0
        hub.on_mt(first)
        assert hub.tracker.stats.histograms[Origin.SUBSCRIBER].count == 1
        now[0] = 1007.25
        hub.on_mt(second)
        assert hub.tracker.stats.histograms[Origin.SUBSCRIBER].count == 2
        assert len(hub.tracker) == 0
        assert hub.wants_receipt == 4
        w1.close()
        w2.close()
    finally:
        await hub.stop()


async def test_hub_drops_a_worker_that_sends_garbage_and_keeps_the_others() -> None:
    injected: list[tuple[str, str]] = []
    hub = ChannelHub(lambda n, t: injected.append((n, t)), reply_timeout=5)
    port = await hub.start()
    try:
        bad_r, bad_w = await asyncio.open_connection("127.0.0.1", port)
        bad_w.write(HEADER.pack(2, 1, 0))
        assert await asyncio.wait_for(bad_r.read(), 5) == b""  # closed by the hub
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"".join(encode_mo([(201001234567, "1")])))
        await w.drain()
        for _ in range(100):
            if injected:
                break
            await asyncio.sleep(0.01)
        assert injected == [("201001234567", "1")]
        w.close()
    finally:
        await hub.stop()
