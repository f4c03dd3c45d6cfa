"""Long messages: split into parts (UDH 8/16-bit reference, SAR TLVs, message_payload) and
put back together, in any arrival order, with incomplete ones dropped after a timeout.

Sans-IO: the caller passes the time in.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

from .text import Alphabet


class UdhError(ValueError):
    """A user data header that runs past its data."""


class SegmentError(ValueError):
    """A part whose numbering can't be right (seq 0, seq > total, total 0)."""


class Concat(Enum):
    UDH8 = "udh8"
    UDH16 = "udh16"
    SAR = "sar"
    PAYLOAD = "payload"


@dataclass(slots=True, frozen=True)
class Part:
    body: bytes
    udhi: bool
    ref: int
    total: int
    seq: int


@dataclass(slots=True, frozen=True)
class ConcatInfo:
    ref: int
    total: int
    seq: int


# Units (octets for GSM7-unpacked and 8-bit, code units x2 for UCS-2) per part.
_SINGLE = {Alphabet.GSM7: 160, Alphabet.UCS2: 140, Alphabet.EIGHT_BIT: 140}
_CONCAT = {
    Concat.UDH8: {Alphabet.GSM7: 153, Alphabet.UCS2: 134, Alphabet.EIGHT_BIT: 134},
    Concat.UDH16: {Alphabet.GSM7: 152, Alphabet.UCS2: 132, Alphabet.EIGHT_BIT: 133},
    Concat.SAR: {Alphabet.GSM7: 153, Alphabet.UCS2: 134, Alphabet.EIGHT_BIT: 134},
}


def _kind(alphabet: Alphabet) -> Alphabet:
    if alphabet in (Alphabet.GSM7, Alphabet.UCS2):
        return alphabet
    return Alphabet.EIGHT_BIT


def _cuts(payload: bytes, alphabet: Alphabet, size: int) -> list[bytes]:
    """Cut ``payload`` into chunks of at most ``size`` octets without splitting a GSM
    escape sequence or a UTF-16 surrogate pair."""
    chunks = []
    pos, n = 0, len(payload)
    while pos < n:
        end = min(pos + size, n)
        if end < n:
            if alphabet is Alphabet.GSM7 and 0x1B in payload[pos:end]:
                # Escape pairs must stay whole: walk them to see where the cut falls.
                i = pos
                while i < end:
                    i += 2 if payload[i] == 0x1B else 1
                if i > end:
                    end -= 1
            elif alphabet is Alphabet.UCS2:
                end -= (end - pos) % 2
                if 0xD8 <= payload[end - 2] <= 0xDB:  # high surrogate last: keep the pair
                    end -= 2
        chunks.append(payload[pos:end])
        pos = end
    return chunks


def split_message(payload: bytes, alphabet: Alphabet, method: Concat, ref: int) -> list[Part]:
    """Split already-encoded text into the parts to send (bodies carry the UDH if any)."""
    kind = _kind(alphabet)
    if method is Concat.PAYLOAD or len(payload) <= _SINGLE[kind]:
        return [Part(payload, False, ref, 1, 1)]
    chunks = _cuts(payload, kind, _CONCAT[method][kind])
    total = len(chunks)
    if total > 255:
        raise SegmentError(f"{total} parts: more than a concatenated message can have")
    if method is Concat.SAR:
        return [Part(c, False, ref, total, i) for i, c in enumerate(chunks, 1)]
    if method is Concat.UDH8:
        ref &= 0xFF
        head = bytes((5, 0, 3, ref, total))
    else:
        ref &= 0xFFFF
        head = bytes((6, 8, 4, ref >> 8, ref & 0xFF, total))
    return [Part(head + bytes((i,)) + c, True, ref, total, i) for i, c in enumerate(chunks, 1)]


def parse_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes, bytes]:
    """(concatenation info or None, the UDH including its length octet, the body)."""
    if not short_message:
        raise UdhError("UDHI set on an empty short_message")
    udhl = short_message[0]
    end = 1 + udhl
    if end > len(short_message):
        raise UdhError(f"UDH length {udhl} runs past the {len(short_message)}-octet message")
    info = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise UdhError("information element header runs past the UDH")
        iei, iedl = short_message[pos], short_message[pos + 1]
        data_at = pos + 2
        if data_at + iedl > end:
            raise UdhError(f"information element 0x{iei:02X} runs past the UDH")
        if iei == 0x00 and iedl == 3:
            ref, total, seq = short_message[data_at : data_at + 3]
            info = ConcatInfo(ref, total, seq)
        elif iei == 0x08 and iedl == 4:
            d = short_message[data_at : data_at + 4]
            info = ConcatInfo((d[0] << 8) | d[1], d[2], d[3])
        pos = data_at + iedl
    return info, short_message[:end], short_message[end:]


@dataclass(slots=True)
class Incomplete:
    """A concatenated message given up on: what arrived of it."""

    key: Hashable
    ref: int
    total: int
    received: int


@dataclass(slots=True)
class _Pending:
    total: int
    first: float
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Joins parts keyed by (key, ref); whole messages come out of ``add``.

    Parts may arrive in any order; a duplicate part is ignored. Messages still incomplete
    ``timeout`` seconds after their first part, or the oldest ones beyond ``max_pending``,
    are dropped and reported by the next ``expire`` call.
    """

    __slots__ = ("_dropped", "_heap", "_pending", "max_pending", "timeout")

    def __init__(self, timeout: float = 300.0, max_pending: int = 100_000) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[tuple[Hashable, int], _Pending] = {}
        self._heap: list[tuple[float, int, tuple[Hashable, int]]] = []
        self._dropped: list[Incomplete] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, key: Hashable, ref: int, total: int, seq: int, body: bytes, now: float
    ) -> bytes | None:
        if total == 0 or seq == 0 or seq > total:
            raise SegmentError(f"part {seq} of {total}")
        if total == 1:
            return body
        k = (key, ref)
        pending = self._pending.get(k)
        if pending is None or pending.total != total:
            if pending is not None:
                self._dropped.append(Incomplete(key, ref, pending.total, len(pending.parts)))
            pending = _Pending(total, now)
            self._pending[k] = pending
            heapq.heappush(self._heap, (now, id(pending), k))
            if len(self._pending) > self.max_pending:
                self._evict_oldest()
        pending.parts.setdefault(seq, body)
        if len(pending.parts) < total:
            return None
        del self._pending[k]
        parts = pending.parts
        return b"".join(parts[i] for i in range(1, total + 1))

    def _evict_oldest(self) -> None:
        while self._heap:
            _first, ident, k = heapq.heappop(self._heap)
            pending = self._pending.get(k)
            if pending is not None and id(pending) == ident:
                del self._pending[k]
                self._dropped.append(Incomplete(k[0], k[1], pending.total, len(pending.parts)))
                return

    def expire(self, now: float) -> list[Incomplete]:
        """Drop messages older than the timeout; returns everything dropped since last call."""
        heap = self._heap
        limit = now - self.timeout
        while heap and heap[0][0] <= limit:
            _first, ident, k = heapq.heappop(heap)
            pending = self._pending.get(k)
            if pending is not None and id(pending) == ident:
                del self._pending[k]
                self._dropped.append(Incomplete(k[0], k[1], pending.total, len(pending.parts)))
        # Completed messages leave stale heap entries; compact when they dominate.
        if len(heap) > 2 * len(self._pending) + 1024:
            live = {id(p) for p in self._pending.values()}
            self._heap = [e for e in heap if e[1] in live]
            heapq.heapify(self._heap)
        dropped, self._dropped = self._dropped, []
        return dropped
