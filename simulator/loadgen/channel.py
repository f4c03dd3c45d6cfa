"""The Locust worker's end of the channel to the SMSC (gevent, one socket per worker).

Opened in ``test_start`` (after Locust forks its workers, never on the master); in a
partitioned run one socket per part, each MO sent to the part that owns its number. Users
call ``send``; a flusher greenlet writes everything queued as one frame every few
milliseconds; a reader greenlet turns each result into a Locust request event, so the
MO -> reply latency measured at the SMSC shows in Locust's statistics and UI. ``track``
asks every part to follow an action's delivery; their PROGRESS lands in ``delivery``
(``harness.delivery.DeliveryView``), which the campaign manager reads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

import gevent

from simulator.harness.delivery import DeliveryView
from simulator.harness.frames import (
    FrameError,
    FrameReader,
    Origin,
    Outcome,
    Progresses,
    Result,
    encode_auth,
    encode_dials,
    encode_hello,
    encode_mo,
    encode_track,
)
from simulator.harness.ranges import NumberRanges

log = logging.getLogger("smsim.loadgen")

#: Request names in Locust's statistics, by who sent the MO.
REQUEST_NAMES = {
    Origin.LOCUST: "MO→reply (texting 1442)",
    Origin.SUBSCRIBER: "MO→reply (answering the platform)",
}
REQUEST_TYPE = "SMS"


class ReplyTimeout(Exception):
    """The platform did not answer an MO within the scenario's reply timeout."""


class _Link:
    """One socket to one SMSC-side process, with what is queued for it."""

    __slots__ = ("control", "dials", "queue", "sock")

    def __init__(self, target: str, token: str | None, hello: bytes) -> None:
        host, port = target.rsplit(":", 1)
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall((encode_auth(token) if token is not None else b"") + hello)
        self.queue: list[tuple[int, str]] = []
        self.dials: list[tuple[int, str]] = []
        #: Frames other than MO and dials (TRACK), written first.
        self.control: list[bytes] = []


class ChannelClient:
    """``target``: one channel (``host:port``), or the channel of every part of a
    partitioned run in part order: each MO and dial goes to the part owning its number."""

    def __init__(
        self,
        target: str | list[str],
        events: Any,
        worker_index: int,
        workers: int,
        flush_interval: float = 0.005,
        token: str | None = None,
    ) -> None:
        targets = [target] if isinstance(target, str) else target
        self._events = events
        hello = encode_hello(worker_index, workers)
        self._links = [_Link(t, token, hello) for t in targets]
        self._ranges = NumberRanges(len(self._links))
        #: Every part's PROGRESS for the actions ``track`` asked about.
        self.delivery = DeliveryView(len(self._links))
        self._interval = flush_interval
        self.sent = 0
        self.dialled = 0
        self.results = 0
        self._closed = False
        self._greenlets = [gevent.spawn(self._flusher)] + [
            gevent.spawn(self._reader, part, link) for part, link in enumerate(self._links)
        ]

    def _link(self, number: int) -> _Link:
        links = self._links
        return links[0] if len(links) == 1 else links[self._ranges.owner(number)]

    def send(self, msisdn: str, text: str) -> None:
        number = int(msisdn)
        self._link(number).queue.append((number, text))

    def dial(self, msisdn: str, code: str) -> None:
        """``msisdn`` dials a USSD code; the session runs at the SMSC."""
        number = int(msisdn)
        self._link(number).dials.append((number, code))

    def track(self, action: int, start: int, count: int) -> None:
        """Ask every part to follow the delivery of population indices ``[start,
        start + count)`` as action ``action`` (``delivery.acked`` once each answered)."""
        frame = encode_track(action, start, count)
        for link in self._links:
            link.control.append(frame)

    def _flusher(self) -> None:
        while not self._closed:
            gevent.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        for link in self._links:
            if not link.queue and not link.dials and not link.control:
                continue
            batch, link.queue = link.queue, []
            dials, link.dials = link.dials, []
            control, link.control = link.control, []
            try:
                frames = [*encode_mo(batch), *encode_dials(dials)] if dials else encode_mo(batch)
                if control:
                    frames = [*control, *frames]
                for frame in frames:
                    link.sock.sendall(frame)
                self.sent += len(batch)
                self.dialled += len(dials)
            except OSError as exc:
                log.warning("channel_send_failed error=%s lost=%d", exc, len(batch) + len(dials))
                self._closed = True

    def _reader(self, part: int, link: _Link) -> None:
        reader = FrameReader()
        fire = self._events.request.fire
        while not self._closed:
            try:
                data = link.sock.recv(262144)
            except OSError:
                break
            if not data:
                break
            try:
                frames = reader.feed(data)
            except FrameError as exc:
                log.warning("channel_bad_frame error=%s", exc)
                break
            for frame in frames:
                if isinstance(frame, Progresses):
                    self.delivery.update(part, frame.items, time.monotonic())
                    continue
                if not isinstance(frame, list):
                    continue
                for item in frame:
                    if isinstance(item, Result):
                        self.results += 1
                        fire(
                            request_type=REQUEST_TYPE,
                            name=REQUEST_NAMES[item.origin],
                            response_time=item.seconds * 1000.0,
                            response_length=0,
                            exception=ReplyTimeout(f"no reply in {item.seconds:.0f}s")
                            if item.outcome is Outcome.TIMEOUT
                            else None,
                            context={},
                        )
        self._closed = True

    def close(self) -> None:
        self.flush()
        self._closed = True
        for link in self._links:
            with contextlib.suppress(OSError):
                link.sock.shutdown(socket.SHUT_RDWR)
            link.sock.close()
        gevent.killall(self._greenlets, block=False)
