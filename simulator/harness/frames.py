"""The compact channel between Locust workers and the SMSC process (decision 0002).

Sans-IO: bytes in, items out, no sockets; the asyncio hub (``hub.py``) and the gevent
Locust side (``loadtests/``) both use it. Little-endian frames, many items each, one TCP
stream each way::

    header  <IBxH  total_len (incl. header), type, pad, count           8 bytes
    HELLO   <HH    worker_index, workers                               Locust -> SMSC
    MO      <QH    msisdn, text_len, then text_len UTF-8 bytes         Locust -> SMSC
    RESULT  <QBBd  msisdn, kind (reply/timeout), origin, seconds       SMSC -> Locust
    DIAL    <QH    msisdn, code_len, then the USSD code (``*1442#``)    Locust -> SMSC
    AUTH    the cluster token, UTF-8 (count 0); first frame when the hub asks  -> SMSC
    STATS?  empty: ask for the SMSC side's counters (the runner)           -> SMSC
    STATS   one JSON object (count 0)                                    SMSC ->
    START   empty: the load starts now (a part puts the chaos schedule on)  -> SMSC
    TRACK   <HII   action, first population index, numbers (count 1)    Locust -> SMSC
    PROGRESS <HIIIIdd  action, numbers reached, numbers receipted, MTs,   SMSC -> Locust
            receipts, seconds since the last number was reached / receipted (-1: none)

An MO is a number (an integer: 12 digits for Egypt) and a text; the SMSC answers per MO
only with its RESULT: the time until the platform's reply reached the handset, or a
timeout. A campaign manager's TRACK asks the SMSC side to follow the delivery of one
action's numbers (``delivery.py``); it answers with PROGRESS at once and then a few
times a second while the counts move: aggregated, never one item per message. Writes
are coalesced per loop iteration on both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from struct import Struct
from typing import Any

HEADER = Struct("<IBxH")
HELLO = Struct("<HH")
MO_ITEM = Struct("<QH")
RESULT_ITEM = Struct("<QBBd")
TRACK = Struct("<HII")
PROGRESS_ITEM = Struct("<HIIIIdd")

#: Items per frame at most (count is a u16).
MAX_ITEMS = 65535
#: A frame longer than this is a broken peer, not a big batch.
MAX_FRAME = 64 * 1024 * 1024


class FrameType(IntEnum):
    HELLO = 0
    MO = 1
    RESULT = 2
    DIAL = 3
    AUTH = 4
    STATS_REQUEST = 5
    STATS = 6
    START = 7
    # (8 and 9 unused: tests/test_harness.py sends 9 as its unknown frame type.)
    TRACK = 10
    PROGRESS = 11


class Outcome(IntEnum):
    REPLY = 0
    TIMEOUT = 1


class Origin(IntEnum):
    #: Sent by a Locust user (spontaneous traffic, an MO wave).
    LOCUST = 0
    #: Sent by the subscriber simulation answering something the platform sent.
    SUBSCRIBER = 1


class FrameError(ValueError):
    """The peer sent bytes that are not a frame of this protocol."""


@dataclass(frozen=True, slots=True)
class Result:
    msisdn: int
    outcome: Outcome
    origin: Origin
    seconds: float


def encode_hello(worker_index: int, workers: int) -> bytes:
    return HEADER.pack(HEADER.size + HELLO.size, FrameType.HELLO, 1) + HELLO.pack(
        worker_index, workers
    )


def encode_mo(items: list[tuple[int, str]], ftype: FrameType = FrameType.MO) -> list[bytes]:
    """MO frames for ``[(msisdn, text), ...]``, split at ``MAX_ITEMS`` items (``ftype``
    DIAL: USSD dials, ``(msisdn, code)``, in the same layout)."""
    frames = []
    pack = MO_ITEM.pack
    for start in range(0, len(items), MAX_ITEMS):
        chunk = items[start : start + MAX_ITEMS]
        parts = [b""]
        for number, text in chunk:
            raw = text.encode()
            parts.append(pack(number, len(raw)))
            parts.append(raw)
        size = sum(len(p) for p in parts)
        parts[0] = HEADER.pack(HEADER.size + size, ftype, len(chunk))
        frames.append(b"".join(parts))
    return frames


def encode_results(items: list[Result]) -> list[bytes]:
    frames = []
    pack = RESULT_ITEM.pack
    for start in range(0, len(items), MAX_ITEMS):
        chunk = items[start : start + MAX_ITEMS]
        body = b"".join(pack(r.msisdn, r.outcome, r.origin, r.seconds) for r in chunk)
        frames.append(HEADER.pack(HEADER.size + len(body), FrameType.RESULT, len(chunk)) + body)
    return frames


def encode_auth(token: str) -> bytes:
    raw = token.encode()
    return HEADER.pack(HEADER.size + len(raw), FrameType.AUTH, 0) + raw


def encode_stats_request() -> bytes:
    return HEADER.pack(HEADER.size, FrameType.STATS_REQUEST, 0)


def encode_start() -> bytes:
    return HEADER.pack(HEADER.size, FrameType.START, 0)


def encode_stats(stats: dict[str, Any]) -> bytes:
    raw = json.dumps(stats, separators=(",", ":")).encode()
    return HEADER.pack(HEADER.size + len(raw), FrameType.STATS, 0) + raw


def encode_track(action: int, start: int, count: int) -> bytes:
    return HEADER.pack(HEADER.size + TRACK.size, FrameType.TRACK, 1) + TRACK.pack(
        action, start, count
    )


def encode_progress(items: list[Progress]) -> bytes:
    """One PROGRESS frame (a scenario has far fewer than ``MAX_ITEMS`` actions)."""
    if len(items) > MAX_ITEMS:
        raise ValueError(f"{len(items)} actions in one PROGRESS frame")
    pack = PROGRESS_ITEM.pack
    body = b"".join(
        pack(p.action, p.reached, p.receipted, p.mts, p.receipts, p.mt_age, p.receipt_age)
        for p in items
    )
    return HEADER.pack(HEADER.size + len(body), FrameType.PROGRESS, len(items)) + body


def encode_dials(items: list[tuple[int, str]]) -> list[bytes]:
    """DIAL frames for ``[(msisdn, ussd_code), ...]``."""
    return encode_mo(items, FrameType.DIAL)


@dataclass(frozen=True, slots=True)
class Hello:
    worker_index: int
    workers: int


@dataclass(frozen=True, slots=True)
class Dials:
    """USSD codes dialled: ``(msisdn, code)`` each."""

    items: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class StatsRequest:
    pass


@dataclass(frozen=True, slots=True)
class Stats:
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclass(frozen=True, slots=True)
class Track:
    """Follow the delivery of population indices ``[start, start + count)`` as action
    ``action`` of the scenario."""

    action: int
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class Progress:
    """One SMSC side's counts for one tracked action, so far: numbers that got an MT,
    numbers whose MTs all got their receipt to the platform (at least once), MT parts and
    receipts; seconds before this frame when the last number was first reached /
    receipted (negative: none yet)."""

    action: int
    reached: int
    receipted: int
    mts: int
    receipts: int
    mt_age: float
    receipt_age: float


@dataclass(frozen=True, slots=True)
class Progresses:
    items: list[Progress]


Frame = (
    Hello
    | Dials
    | Auth
    | StatsRequest
    | Stats
    | Start
    | Track
    | Progresses
    | list[tuple[int, str]]
    | list[Result]
)


class FrameReader:
    """Splits a byte stream into decoded frames: ``Hello``, MO items or ``Result`` items."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf + data if self._buf else data
        out: list[Frame] = []
        pos = 0
        end = len(buf)
        hsize = HEADER.size
        while end - pos >= hsize:
            total, ftype, count = HEADER.unpack_from(buf, pos)
            if total < hsize or total > MAX_FRAME:
                raise FrameError(f"frame length {total} out of range")
            if end - pos < total:
                break
            body, stop = pos + hsize, pos + total
            try:
                out.append(_decode(ftype, count, buf, body, stop))
            except (IndexError, ValueError) as exc:
                raise FrameError(f"bad frame of type {ftype}: {exc}") from exc
            pos = stop
        self._buf = buf[pos:] if pos < end else b""
        return out


def _decode(ftype: int, count: int, buf: bytes, pos: int, stop: int) -> Frame:
    if ftype == FrameType.MO or ftype == FrameType.DIAL:
        mos: list[tuple[int, str]] = []
        unpack, size = MO_ITEM.unpack_from, MO_ITEM.size
        for _ in range(count):
            number, n = unpack(buf, pos)
            pos += size
            if pos + n > stop:
                raise ValueError("text runs past the frame")
            mos.append((number, buf[pos : pos + n].decode()))
            pos += n
        return mos if ftype == FrameType.MO else Dials(mos)
    if ftype == FrameType.RESULT:
        if pos + count * RESULT_ITEM.size > stop:
            raise ValueError("items run past the frame")
        return [
            Result(n, Outcome(k), Origin(o), s)
            for n, k, o, s in RESULT_ITEM.iter_unpack(buf[pos : pos + count * RESULT_ITEM.size])
        ]
    if ftype == FrameType.HELLO:
        worker, workers = HELLO.unpack_from(buf, pos)
        return Hello(worker, workers)
    if ftype == FrameType.AUTH:
        return Auth(buf[pos:stop].decode())
    if ftype == FrameType.STATS_REQUEST:
        return StatsRequest()
    if ftype == FrameType.START:
        return Start()
    if ftype == FrameType.TRACK:
        if pos + TRACK.size > stop:
            raise ValueError("a short TRACK frame")
        return Track(*TRACK.unpack_from(buf, pos))
    if ftype == FrameType.PROGRESS:
        if pos + count * PROGRESS_ITEM.size > stop:
            raise ValueError("items run past the frame")
        raw = buf[pos : pos + count * PROGRESS_ITEM.size]
        return Progresses([Progress(*item) for item in PROGRESS_ITEM.iter_unpack(raw)])
    if ftype == FrameType.STATS:
        data = json.loads(buf[pos:stop])
        if not isinstance(data, dict):
            raise ValueError("stats are not an object")
        return Stats(data)
    raise ValueError(f"unknown frame type {ftype}")
