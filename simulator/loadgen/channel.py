"""The Locust worker's end of the channel to the SMSC (gevent, one socket per worker).

Opened in ``test_start`` (after Locust forks its workers, never on the master). Users
call ``send``; a flusher greenlet writes everything queued as one frame every few
milliseconds; a reader greenlet turns each result into a Locust request event, so the
MO -> reply latency measured at the SMSC shows in Locust's statistics and UI.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

import gevent

from simulator.harness.frames import (
    FrameError,
    FrameReader,
    Origin,
    Outcome,
    Result,
    encode_dials,
    encode_hello,
    encode_mo,
)

log = logging.getLogger("smsim.loadgen")

#: Request names in Locust's statistics, by who sent the MO.
REQUEST_NAMES = {
    Origin.LOCUST: "MO→reply (texting 1442)",
    Origin.SUBSCRIBER: "MO→reply (answering the platform)",
}
REQUEST_TYPE = "SMS"


class ReplyTimeout(Exception):
    """The platform did not answer an MO within the scenario's reply timeout."""


class ChannelClient:
    def __init__(
        self,
        target: str,
        events: Any,
        worker_index: int,
        workers: int,
        flush_interval: float = 0.005,
    ) -> None:
        host, port = target.rsplit(":", 1)
        self._events = events
        self._sock = socket.create_connection((host, int(port)), timeout=10)
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(encode_hello(worker_index, workers))
        self._queue: list[tuple[int, str]] = []
        self._dials: list[tuple[int, str]] = []
        self._interval = flush_interval
        self.sent = 0
        self.dialled = 0
        self.results = 0
        self._closed = False
        self._greenlets = [gevent.spawn(self._flusher), gevent.spawn(self._reader)]

    def send(self, msisdn: str, text: str) -> None:
        self._queue.append((int(msisdn), text))

    def dial(self, msisdn: str, code: str) -> None:
        """``msisdn`` dials a USSD code; the session runs at the SMSC."""
        self._dials.append((int(msisdn), code))

    def _flusher(self) -> None:
        while not self._closed:
            gevent.sleep(self._interval)
            self.flush()

    def flush(self) -> None:
        if not self._queue and not self._dials:
            return
        batch, self._queue = self._queue, []
        dials, self._dials = self._dials, []
        try:
            for frame in [*encode_mo(batch), *encode_dials(dials)] if dials else encode_mo(batch):
                self._sock.sendall(frame)
            self.sent += len(batch)
            self.dialled += len(dials)
        except OSError as exc:
            log.warning("channel_send_failed error=%s lost=%d", exc, len(batch) + len(dials))
            self._closed = True

    def _reader(self) -> None:
        reader = FrameReader()
        fire = self._events.request.fire
        while not self._closed:
            try:
                data = self._sock.recv(262144)
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
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        gevent.killall(self._greenlets, block=False)
