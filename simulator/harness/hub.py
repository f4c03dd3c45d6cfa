"""The SMSC side of the Locust channel: MO in from Locust workers, results back to them.

Runs on the SMSC's asyncio loop, beside the SMPP listeners. Locust workers connect,
say HELLO, and send MO batches; each MO is injected as the subscriber's own message.
Every MO the subscriber side sends (Locust's and the subscriber simulation's answers) is
timed by a ``ReplyTracker`` until the platform's next MT reaches that handset; the
result goes back to the worker that sent the MO (answers of the simulation go to the
workers in turn), which reports it to Locust as a request. The tracker's histograms are
what the scenario gates judge. A campaign manager's TRACK starts following one action's
numbers (``delivery.DeliveryTracker``: MTs seen, receipts the platform accepted); the
connections that asked get its PROGRESS at once and every ``SWEEP_INTERVAL`` while it
moves.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Callable
from itertools import count
from typing import Any

from simulator.smpp.pdu import DeliverSm
from simulator.smsc.handsets import mt_part
from simulator.smsc.store import Message
from simulator.subscribers.numbering import normalize

from .delivery import DeliveryTracker
from .frames import (
    Auth,
    Dials,
    FrameError,
    FrameReader,
    Hello,
    Origin,
    Result,
    Start,
    StatsRequest,
    Track,
    encode_progress,
    encode_results,
    encode_stats,
)
from .replies import ReplyTracker

log = logging.getLogger("smsim.harness")

#: Seconds between sweeps for unanswered MO.
SWEEP_INTERVAL = 0.1


class _Conn(asyncio.Protocol):
    def __init__(self, hub: ChannelHub, key: int) -> None:
        self.hub = hub
        self.key = key
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.hello: Hello | None = None
        self.out: list[Result] = []
        self._flush_pending = False
        #: A hub with a token hears nothing from a connection before its AUTH frame.
        self.authed = hub.token is None
        #: This connection sent a TRACK: it gets the delivery PROGRESS.
        self.follows = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hub.conns[self.key] = self

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError as exc:
            log.warning("channel_bad_frame worker=%s error=%s", self._who(), exc)
            assert self.transport is not None
            self.transport.close()
            return
        for frame in frames:
            if not self.authed:
                if isinstance(frame, Auth) and self.hub.token_ok(frame.token):
                    self.authed = True
                    continue
                log.warning("channel_refused peer=%s reason=token", self._peer())
                assert self.transport is not None
                self.transport.close()
                return
            if isinstance(frame, StatsRequest):
                assert self.transport is not None
                self.transport.write(encode_stats(self.hub.stats_json()))
            elif isinstance(frame, Start):
                if self.hub.load_start is not None:
                    self.hub.load_start()
            elif isinstance(frame, Dials):
                self.hub.dials_from_locust(frame.items)
            elif isinstance(frame, Track):
                self.follows = True
                self.hub.track(frame)
                self.send_progress()
            elif isinstance(frame, Hello):
                self.hello = frame
                self.hub.workers_seen.add(frame.worker_index)
                log.info("channel_hello worker=%d of %d", frame.worker_index, frame.workers)
            elif isinstance(frame, list) and frame and isinstance(frame[0], tuple):
                self.hub.mo_from_locust(self.key, frame)

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    def _who(self) -> str:
        return str(self.hello.worker_index) if self.hello else "?"

    def queue(self, result: Result) -> None:
        self.out.append(result)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def send_progress(self) -> None:
        """Every tracked action's counts; none at all: this side cannot follow numbers."""
        d = self.hub.delivery
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_progress(d.progress(self.hub._now()) if d else []))

    def flush(self) -> None:
        self._flush_pending = False
        out, self.out = self.out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(encode_results(out))

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.conns.pop(self.key, None)
        log.info("channel_closed worker=%s", self._who())


class ChannelHub:
    """Owns the reply tracker and the channel listener; an observer of the SMSC
    (``SmscServer(observers=[hub])``) so it sees every MT and the simulation's MO."""

    def __init__(
        self,
        send_mo: Callable[[str, str], None],
        reply_timeout: float,
        clock: Callable[[], float] | None = None,
        dial: Callable[[str, str], object] | None = None,
        token: str | None = None,
        stats: Callable[[], dict[str, Any]] | None = None,
        load_start: Callable[[], object] | None = None,
    ) -> None:
        #: Connections must send this first (AUTH) when set: a channel off loopback.
        self.token = token
        #: What a STATS request is answered with (an SMSC-side process's counters).
        self._stats = stats
        #: What a START frame calls (a part: the load begins, the chaos goes on).
        self.load_start = load_start
        #: Inject an MO ``(msisdn, text)`` into the SMSC as the subscriber's message.
        self._send_mo = send_mo
        #: Dial a USSD code ``(msisdn, code)`` on the subscriber's network; None: no USSD.
        self._dial = dial
        self.dials_from_workers = 0
        self.dials_refused = 0
        self.tracker = ReplyTracker(reply_timeout)
        self.conns: dict[int, _Conn] = {}
        self._keys = count()
        self._turn = 0
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.mo_from_workers = 0
        self._injecting = False
        #: Locust worker indices that said HELLO.
        self.workers_seen: set[int] = set()
        #: MT parts accepted with registered_delivery asking for a receipt (bit 0 = 1).
        self.wants_receipt = 0
        #: The campaign manager's actions' delivery (TRACK frames), by population index:
        #: set by the owner once its population exists; None: TRACK follows nothing.
        self.delivery: DeliveryTracker | None = None

    def token_ok(self, token: str) -> bool:
        return self.token is None or secrets.compare_digest(token.encode(), self.token.encode())

    def stats_json(self) -> dict[str, Any]:
        return self._stats() if self._stats is not None else {}

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Conn(self, next(self._keys)), host, port, reuse_address=True
        )
        self._sweeper = asyncio.create_task(self._sweep())
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("channel_listening address=%s:%d", host, bound)
        return bound

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.conns.values()):
            conn.flush()
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- events ----------------------------------------------------------------------------

    def mo_from_locust(self, key: int, items: list[tuple[int, str]]) -> None:
        now = self._now()
        on_mo = self.tracker.on_mo
        send = self._send_mo
        self.mo_from_workers += len(items)
        self._injecting = True  # our own MO: on_mo (the SMSC's echo of it) ignores them
        try:
            for number, text in items:
                on_mo(number, now, Origin.LOCUST, key)
                send(str(number), text)
        finally:
            self._injecting = False

    def track(self, frame: Track) -> None:
        if self.delivery is None:
            log.warning("delivery_untracked action=%d reason=no_population", frame.action)
            return
        self.delivery.track(frame.action, frame.start, frame.count, self._now())
        log.info(
            "delivery_tracked action=%d start=%d numbers=%d", frame.action, frame.start, frame.count
        )

    def dials_from_locust(self, items: list[tuple[int, str]]) -> None:
        self.dials_from_workers += len(items)
        if self._dial is None:
            self.dials_refused += len(items)
            return
        for number, code in items:
            if self._dial(str(number), code) is None:
                self.dials_refused += 1  # busy: that subscriber already has a session

    # --- TrafficObserver (the SMSC calls these) ---------------------------------------------

    def on_mo(self, source: str) -> None:
        """The subscriber simulation sent an MO (an answer): time its reply too."""
        if self._injecting:
            return
        number = _number(source)
        if number is not None:
            self.tracker.on_mo(number, self._now(), Origin.SUBSCRIBER, None)

    def on_mt(self, msg: Message) -> None:
        """An MT part reached the SMSC for a handset: the first message after an MO to
        come whole is the reply; every message asking for a receipt is counted for
        receipt completion."""
        wants = msg.registered_delivery & 0x03 == 1
        if wants:
            self.wants_receipt += 1
        number = _number(msg.destination_addr, msg.dest_ton)
        if number is None:
            return
        now = self._now()
        tracker = self.tracker
        if tracker.waiting(number):
            # A part of a concatenated reply is not the reply until the last one is in.
            hit = tracker.on_mt(number, now, mt_part(msg)[0])
            if hit is not None:
                self._deliver(*hit)
        d = self.delivery
        if d is not None and d.actions:
            d.on_mt(str(number), wants, now)

    def on_receipt(self, receipt: DeliverSm) -> None:
        """The platform accepted a receipt: count it for its action (when tracked)."""
        d = self.delivery
        if d is None or not d.actions:
            return
        number = _number(receipt.source_addr, receipt.source_addr_ton)
        if number is not None:
            d.on_receipt(str(number), self._now())

    def _deliver(self, owner: int | None, result: Result) -> None:
        conn = self.conns.get(owner) if owner is not None else None
        if conn is None and self.conns:
            keys = sorted(self.conns)
            self._turn = (self._turn + 1) % len(keys)
            conn = self.conns[keys[self._turn]]
        if conn is not None:
            conn.queue(result)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            for owner, result in self.tracker.expire(self._now()):
                self._deliver(owner, result)
            if self.delivery is not None and self.delivery.dirty:
                self.delivery.dirty = False
                for conn in self.conns.values():
                    if conn.follows:
                        conn.send_progress()


def _number(address: str, ton: int | None = None) -> int | None:
    canonical = normalize(address, ton)
    return int(canonical) if canonical is not None else None
