"""Where accepted MT messages go: the handset side of the SMSC.

``MtSink`` is the seam the subscriber simulation plugs into. The default sink,
``MtRecorder``, reassembles concatenated messages (UDH 8/16-bit, SAR, message_payload)
and keeps a bounded log of whole messages for tests, the demo and inspection. It keeps
raw bytes and decodes only when asked, so recording costs little on the hot path.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from simulator.smpp.constants import EsmClass, Tag
from simulator.smpp.segmentation import Reassembler, UdhError, parse_udh
from simulator.smpp.text import decode_text

from .store import Message

log = logging.getLogger("smsim.handsets")


@dataclass(slots=True)
class ReceivedMt:
    """A whole MT message as the handset would show it."""

    source_addr: str
    destination_addr: str
    data_coding: int
    payload: bytes
    message_ids: tuple[str, ...]
    parts: int
    time: float

    @property
    def text(self) -> str:
        return decode_text(self.payload, self.data_coding)


def mt_part(msg: Message) -> tuple[tuple[int, int, int] | None, bytes]:
    """One MT part as the handset takes it: (ref, total, seq) when it is a part of a
    concatenated message (UDH or SAR), and its payload without the UDH."""
    payload = msg.short_message
    tlvs = msg.tlvs
    if not payload and tlvs:
        whole = tlvs.get(Tag.MESSAGE_PAYLOAD)
        if isinstance(whole, bytes):
            payload = whole
    concat = None
    if msg.esm_class & EsmClass.UDHI:
        try:
            info, _udh, body = parse_udh(payload)
        except UdhError as exc:
            log.info("mt_bad_udh id=%s error=%s", msg.message_id, exc)
            info, body = None, payload
        payload = body
        if info is not None:
            concat = (info.ref, info.total, info.seq)
    elif tlvs and Tag.SAR_MSG_REF_NUM in tlvs:
        ref, total, seq = (
            tlvs.get(Tag.SAR_MSG_REF_NUM),
            tlvs.get(Tag.SAR_TOTAL_SEGMENTS),
            tlvs.get(Tag.SAR_SEGMENT_SEQNUM),
        )
        if isinstance(ref, int) and isinstance(total, int) and isinstance(seq, int):
            concat = (ref, total, seq)
    return concat, payload


class MtSink(Protocol):
    def on_mt(self, msg: Message) -> None: ...


class MtRecorder:
    """Reassembles MT parts per (source, destination) and logs whole messages."""

    __slots__ = ("_log", "_parts", "_reassembler", "completed", "incomplete_dropped", "on_complete")

    def __init__(
        self,
        size: int = 10_000,
        reassembly_timeout: float = 300.0,
        on_complete: Callable[[ReceivedMt, Message, tuple[Message, ...]], None] | None = None,
    ) -> None:
        #: Called with each whole message, its last part and, for a concatenated message,
        #: all its parts in the order they came (empty for a one-part message).
        self.on_complete = on_complete
        #: Whole messages, as ``ReceivedMt`` or (one-part messages the subscriber engine
        #: hands over, ``record_one``) the fields to build one from when asked.
        self._log: deque[ReceivedMt | _OnePart] = deque(maxlen=size or None)
        self._reassembler = Reassembler(timeout=reassembly_timeout)
        self._parts: dict[tuple[str, str, int], list[Message]] = {}
        self.completed = 0
        self.incomplete_dropped = 0

    def on_mt(self, msg: Message) -> None:
        concat, payload = mt_part(msg)
        if concat is None or concat[1] == 1:
            self._record(msg, payload, (msg.message_id,), 1, ())
            if len(self._reassembler):
                self.expire(msg.submit_time)
            return
        ref, total, seq = concat
        key = (msg.source_addr, msg.destination_addr)
        parts_key = (msg.source_addr, msg.destination_addr, ref)
        self._parts.setdefault(parts_key, []).append(msg)
        try:
            whole = self._reassembler.add(key, ref, total, seq, payload, msg.submit_time)
        except ValueError as exc:
            log.info("mt_bad_segment id=%s error=%s", msg.message_id, exc)
            self._parts.pop(parts_key, None)
            return
        if whole is not None:
            parts = tuple(self._parts.pop(parts_key, ()))
            self._record(msg, whole, tuple(m.message_id for m in parts), total, parts)
        self.expire(msg.submit_time)

    def expire(self, now: float) -> int:
        """Drop concatenated messages still incomplete ``reassembly_timeout`` after their
        first part (simulated time); runs on every MT and on the SMSC's tick."""
        n = 0
        for dropped in self._reassembler.expire(now):
            n += 1
            self.incomplete_dropped += 1
            log.info("mt_incomplete_dropped key=%s", dropped)
            src, dst = cast(tuple[str, str], dropped.key)
            dropped_key = (src, dst, dropped.ref)
            if dropped.reason == "replaced":
                # Same key and ref, another total: only the newest part lives on.
                kept = self._parts.get(dropped_key)
                if kept:
                    del kept[:-1]
            else:
                self._parts.pop(dropped_key, None)
        return n

    def _record(
        self,
        msg: Message,
        payload: bytes,
        ids: tuple[str, ...],
        total: int,
        parts: tuple[Message, ...],
    ) -> None:
        self.completed += 1
        mt = ReceivedMt(
            msg.source_addr,
            msg.destination_addr,
            msg.data_coding,
            payload,
            ids,
            total,
            msg.submit_time,
        )
        self._log.append(mt)
        if self.on_complete is not None:
            self.on_complete(mt, msg, parts)

    def record_one(self, msg: Message, payload: bytes) -> None:
        """Log a one-part message (``payload``: its short_message) without calling
        ``on_complete``: the subscriber engine's hot path, which has read the message
        itself. The log keeps the fields (a tuple) and builds the ``ReceivedMt`` when
        asked, so logging costs no object per message."""
        self.completed += 1
        self._log.append((
            msg.source_addr, msg.destination_addr, msg.data_coding, payload, msg.message_id,
            msg.submit_time,
        ))  # fmt: skip
        # Parts waiting in the reassembler always have theirs in ``_parts``: a dict's
        # truth costs less than the reassembler's ``__len__``.
        if self._parts and len(self._reassembler):
            self.expire(msg.submit_time)

    def messages(self, destination: str | None = None) -> list[ReceivedMt]:
        """Whole messages received, oldest first, optionally for one handset."""
        out = [m if type(m) is ReceivedMt else _received(m) for m in self._log]
        if destination is None:
            return out
        return [m for m in out if m.destination_addr == destination]


#: A one-part message as ``MtRecorder.record_one`` logs it: source, destination,
#: data_coding, payload, message id, time.
_OnePart = tuple[str, str, int, bytes, str, float]


def _received(entry: ReceivedMt | _OnePart) -> ReceivedMt:
    if isinstance(entry, ReceivedMt):
        return entry
    source, destination, coding, payload, message_id, time = entry
    return ReceivedMt(source, destination, coding, payload, (message_id,), 1, time)
