"""Sending like RapidPro: per-channel TPS, segments counted, statuses, re-sends.

The service hands every outgoing ``Msg`` to ``Sender.enqueue``; the sender routes it to a
channel lane (one per SMPP bind, or the one Kannel channel), waits for the lane's TPS
(RapidPro's channel ``tps``, each SMS part counting when ``count_segments``) and gives it
to the channel. Channels report back with ``wired`` (the SMSC / gateway took it),
``status`` (a receipt: delivered, sent, errored) and ``failed_submit`` (refused or timed
out). An errored message is sent again after ``retry_delay`` until ``max_attempts``,
then failed, as RapidPro's courier does. Statuses follow ``MsgStatus``:
queued -> wired -> (sent) -> delivered, or errored -> queued ... -> failed.

Kept apart from the channels so the throttle and retry policy is one piece of code for
both SMPP and Kannel modes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from simulator.config import PlatformConfig
from simulator.platform.model import Msg, MsgStatus
from simulator.platform.store import PlatformStore
from simulator.smpp.text import choose_coding

log = logging.getLogger("smsim.platform")

#: Parts of one SMS in the two alphabets: (single, per part of a concatenated one).
_GSM7_LIMITS = (160, 153)
_UCS2_LIMITS = (140, 134)  # octets: 70 / 67 characters
_SEGMENT_CACHE = 4096


class Channel(Protocol):
    """Where the sender hands messages: an SMPP bind or the Kannel channel."""

    name: str

    async def send(self, msg: Msg) -> None:
        """Hand ``msg`` over; may wait for room (a window). The outcome is reported
        later to the sender (``wired`` / ``failed_submit`` / ``status``)."""
        ...


def count_segments(text: str) -> int:
    """SMS parts ``text`` takes: GSM 7-bit 160 / 153 per part, UCS-2 70 / 67."""
    coding, payload = choose_coding(text)
    single, part = _UCS2_LIMITS if coding == 8 else _GSM7_LIMITS
    n = len(payload)
    return 1 if n <= single else math.ceil(n / part)


class TokenBucket:
    """``rate`` tokens a second, bursts of at most ``rate`` (one second's worth)."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._tokens = self.burst
        self._clock = clock
        self._stamp = clock()

    def delay(self, cost: float) -> float:
        """Take ``cost`` tokens; returns how long to wait before the send may go."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= cost
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass(slots=True)
class SenderStats:
    queued: int = 0
    sent: int = 0  # handed to a channel (attempts)
    wired: int = 0
    delivered: int = 0
    errored: int = 0
    failed: int = 0
    resent: int = 0
    throttled_seconds: float = 0.0


@dataclass(slots=True)
class _Lane:
    channel: Channel
    bucket: TokenBucket | None
    queue: deque[Msg] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Sender:
    """Queues, throttles and re-sends outgoing messages over the channels."""

    def __init__(
        self,
        config: PlatformConfig,
        store: PlatformStore,
        channels: list[Channel],
        route: Callable[[Msg], str],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.route = route
        self.now = now
        self.stats = SenderStats()
        tps = config.tps
        self._lanes = {ch.name: _Lane(ch, TokenBucket(tps) if tps > 0 else None) for ch in channels}
        self._segments: dict[str, int] = {}
        self._retries: set[asyncio.TimerHandle] = set()
        self._on_final: Callable[[Msg], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for name, lane in self._lanes.items():
            lane.task = asyncio.create_task(self._pump(lane), name=f"platform-send-{name}")

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_final(self, callback: Callable[[Msg], None]) -> None:
        """Call ``callback`` when a message is delivered or failed for good."""
        self._on_final = callback

    @property
    def backlog(self) -> int:
        """Messages waiting for their lane's TPS or a channel's room."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    # ------------------------------------------------------------------ sending

    def segments(self, text: str) -> int:
        n = self._segments.get(text)
        if n is None:
            if len(self._segments) > _SEGMENT_CACHE:
                self._segments.clear()
            n = self._segments[text] = count_segments(text)
        return n

    def enqueue(self, msg: Msg) -> None:
        """Queue ``msg`` (status queued) on the lane its number routes to."""
        lane = self._lanes[self.route(msg)]
        if msg.status != MsgStatus.QUEUED:
            msg.status = MsgStatus.QUEUED
            msg.modified_on = self.now()
            self.store.upsert_msg(msg)
        msg.channel = lane.channel.name
        lane.queue.append(msg)
        self.stats.queued += 1
        if not lane.wake.is_set():
            lane.wake.set()

    async def _pump(self, lane: _Lane) -> None:
        queue, bucket, channel = lane.queue, lane.bucket, lane.channel
        count = self.config.count_segments
        while True:
            if not queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            msg = queue.popleft()
            if bucket is not None:
                wait = bucket.delay(msg.segments if count else 1)
                if wait > 0:
                    self.stats.throttled_seconds += wait
                    await asyncio.sleep(wait)
            msg.attempts += 1
            self.stats.sent += 1
            try:
                await channel.send(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a channel that can't take it now: retry policy
                log.warning("send_error channel=%s msg=%d error=%r", channel.name, msg.id, exc)
                self.failed_submit(msg, repr(exc))

    # ------------------------------------------------------------------ outcomes

    def wired(self, msg: Msg, external_id: str) -> None:
        """The SMSC or gateway accepted ``msg`` under ``external_id``."""
        now = self.now()
        msg.status = MsgStatus.WIRED
        msg.external_id = external_id
        msg.sent_on = now
        msg.modified_on = now
        self.store.upsert_msg(msg)
        self.stats.wired += 1

    def status(self, msg: Msg, status: MsgStatus) -> None:
        """A receipt said ``status`` (delivered, sent, errored)."""
        if msg.status in (MsgStatus.DELIVERED, MsgStatus.FAILED):
            return  # a late or duplicate receipt
        if status is MsgStatus.ERRORED:
            self._errored(msg)
            return
        msg.status = status
        msg.modified_on = self.now()
        self.store.upsert_msg(msg)
        log.debug("status msg=%d status=%s", msg.id, status.value)
        if status is MsgStatus.DELIVERED:
            self.stats.delivered += 1
            if self._on_final is not None:
                self._on_final(msg)

    def failed_submit(self, msg: Msg, reason: str) -> None:
        """The submit was refused, timed out or could not be written."""
        log.debug("submit_failed msg=%d reason=%s", msg.id, reason)
        self._errored(msg)

    def _errored(self, msg: Msg) -> None:
        now = self.now()
        msg.modified_on = now
        if msg.attempts >= self.config.max_attempts:
            msg.status = MsgStatus.FAILED
            self.store.upsert_msg(msg)
            log.info("failed msg=%d urn=%s attempts=%d", msg.id, msg.urn, msg.attempts)
            self.stats.failed += 1
            if self._on_final is not None:
                self._on_final(msg)
            return
        msg.status = MsgStatus.ERRORED
        self.store.upsert_msg(msg)
        self.stats.errored += 1
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def resend() -> None:
            if handle is not None:
                self._retries.discard(handle)
            self.stats.resent += 1
            self.enqueue(msg)

        handle = loop.call_later(self.config.retry_delay, resend)
        self._retries.add(handle)
