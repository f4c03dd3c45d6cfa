"""Long messages: split into parts (UDH with 8/16-bit reference, SAR TLVs, message_payload)
and put back together in any arrival order, incomplete ones dropped after a timeout.

Sans-IO: no clock and no sockets; the caller passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum

from .text import Alphabet


class UdhError(ValueError):
    """A user data header that runs past its data."""


class SegmentError(ValueError):
    """Numbering that can't be right (seq 0, seq > total, total 0, over 255 parts)."""


class Concat(Enum):
    """How a long message is carried."""

    UDH8 = "udh8"  # 05 00 03 ref total seq (what Kannel sends)
    UDH16 = "udh16"  # 06 08 04 refhi reflo total seq
    SAR = "sar"  # sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
    PAYLOAD = "payload"  # one PDU, the whole text in message_payload


@dataclass(slots=True, frozen=True)
class Part:
    """One short_message to send; set esm_class UDHI (0x40) when ``udhi``."""

    body: bytes
    udhi: bool
    ref: int
    total: int
    seq: int


@dataclass(slots=True, frozen=True)
class ConcatInfo:
    """The concatenation IE of a UDH, numbers as found (Reassembler.add validates them)."""

    ref: int
    total: int
    seq: int


# Octets of already-encoded payload per part, indexed by _kind(): unpacked GSM7 counts one
# octet per septet, UCS-2 two per UTF-16 unit, 8-bit (Latin-1 and IA5 included, sized
# conservatively) one. Tuples and `is` tests, not dicts: hashing an Enum runs Python code.
_GSM7, _UCS2, _OCTETS = 0, 1, 2
_SINGLE = (160, 140, 140)
_UDH8_SIZES = (153, 134, 134)  # 6-octet UDH (and SAR, so parts match what UDH8 would send)
_UDH16_SIZES = (152, 132, 133)  # 7-octet UDH; UCS-2 rounds 133 down to whole units


def _kind(alphabet: Alphabet) -> int:
    if alphabet is Alphabet.UCS2:
        return _UCS2
    return _GSM7 if alphabet is Alphabet.GSM7 else _OCTETS


def _cuts(payload: bytes, kind: int, size: int) -> list[bytes]:
    """Chunks of at most ``size`` octets that never split a GSM escape sequence or a
    UTF-16 surrogate pair (a part then holds one unit less)."""
    chunks = []
    pos, n = 0, len(payload)
    while pos < n:
        end = pos + size
        if end < n:
            if kind == _GSM7:
                if payload[end - 1] == 0x1B:
                    # A run of escapes starting at a unit boundary pairs up from its start:
                    # the last one opens a pair (that the cut would split) when the run is odd.
                    chunk = payload[pos:end]
                    if (len(chunk) - len(chunk.rstrip(b"\x1b"))) % 2:
                        end -= 1
            elif kind == _UCS2 and 0xD8 <= payload[end - 2] <= 0xDB:
                end -= 2  # a high surrogate last: keep it with its low half
        chunks.append(payload[pos:end])
        pos = end
    return chunks


def split_message(payload: bytes, alphabet: Alphabet, method: Concat, ref: int) -> list[Part]:
    """Split already-encoded text into the parts to send (bodies carry the UDH if any).

    ``payload`` is unpacked GSM7 septets, UTF-16BE or octets, as ``alphabet`` says.
    A message that fits one SMS, or any with ``Concat.PAYLOAD``, gives one Part, total 1.
    ``ref`` is masked to 8 bits for UDH8 and 16 bits otherwise. Raises SegmentError past
    255 parts.
    """
    kind = _kind(alphabet)
    if method is Concat.PAYLOAD or len(payload) <= _SINGLE[kind]:
        return [Part(payload, False, ref & (0xFF if method is Concat.UDH8 else 0xFFFF), 1, 1)]
    sizes = _UDH16_SIZES if method is Concat.UDH16 else _UDH8_SIZES
    chunks = _cuts(payload, kind, sizes[kind])
    total = len(chunks)
    if total > 255:
        raise SegmentError(f"{total} parts: more than a concatenated message can have")
    if method is Concat.SAR:
        ref &= 0xFFFF
        return [Part(c, False, ref, total, i) for i, c in enumerate(chunks, 1)]
    if method is Concat.UDH8:
        ref &= 0xFF
        head = bytes((5, 0, 3, ref, total))
    else:
        ref &= 0xFFFF
        head = bytes((6, 8, 4, ref >> 8, ref & 0xFF, total))
    return [Part(head + bytes((i,)) + c, True, ref, total, i) for i, c in enumerate(chunks, 1)]


def parse_udh(short_message: bytes) -> tuple[ConcatInfo | None, bytes, bytes]:
    """(concatenation info or None, the UDH including its length octet, the body).

    For a short_message whose esm_class has UDHI. IE 0x00 (8-bit ref) and 0x08 (16-bit
    ref) are recognised among any others; if several are present the last wins (23.040
    9.2.3.24). A concat IE of the wrong length is skipped like an unknown IE.
    Raises UdhError when the UDH runs past the data or an IE runs past the UDH.
    """
    n = len(short_message)
    if not n:
        raise UdhError("UDHI set on an empty short_message")
    end = 1 + short_message[0]
    if end > n:
        raise UdhError(f"UDH length {end - 1} runs past the {n}-octet message")
    # Fast path: the UDH is exactly one concat IE (Kannel, most ESMEs).
    head = short_message[:3]
    if head == b"\x05\x00\x03":
        _, _, _, ref, total, seq = short_message[:6]
        return ConcatInfo(ref, total, seq), short_message[:6], short_message[6:]
    if head == b"\x06\x08\x04":
        _, _, _, hi, lo, total, seq = short_message[:7]
        return ConcatInfo(hi << 8 | lo, total, seq), short_message[:7], short_message[7:]
    info = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            raise UdhError(f"information element header at {pos} runs past the UDH")
        iei, iedl = short_message[pos], short_message[pos + 1]
        data_at = pos + 2
        pos = data_at + iedl
        if pos > end:
            raise UdhError(f"information element 0x{iei:02X} runs past the UDH")
        if iei == 0x00 and iedl == 3:
            ref, total, seq = short_message[data_at:pos]
            info = ConcatInfo(ref, total, seq)
        elif iei == 0x08 and iedl == 4:
            hi, lo, total, seq = short_message[data_at:pos]
            info = ConcatInfo(hi << 8 | lo, total, seq)
    return info, short_message[:end], short_message[end:]


@dataclass(slots=True, frozen=True)
class Incomplete:
    """A concatenated message given up on, and why: "timeout", "overflow" (max_pending)
    or "replaced" (a part with the same key and ref but another total arrived)."""

    key: Hashable
    ref: int
    total: int
    received: int
    reason: str = "timeout"


class _Pending:
    __slots__ = ("count", "first", "parts", "total")

    def __init__(self, total: int, first: float) -> None:
        self.total = total
        self.first = first
        self.count = 0
        self.parts: list[bytes | None] = [None] * total


class Reassembler:
    """Joins the parts of concatenated messages keyed by (key, ref), in any arrival order.

    ``add`` returns the whole payload the moment the last part arrives; a duplicate part
    is ignored. Messages still incomplete ``timeout`` seconds after their first part are
    dropped by ``expire``; beyond ``max_pending`` the oldest is dropped at once. Every drop
    is reported by the next ``expire`` call, so call it periodically (e.g. after each add).

    Pending messages sit in an OrderedDict in first-arrival order: expiry pops from the
    front and stops at the first live one, so it costs only what it drops. ``now`` should
    not go backwards; if it does, a message expires no earlier than those ahead of it.
    """

    __slots__ = ("_dropped", "_pending", "max_pending", "timeout")

    def __init__(self, timeout: float = 300.0, max_pending: int = 100_000) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[Hashable, int], _Pending] = OrderedDict()
        self._dropped: list[Incomplete] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, key: Hashable, ref: int, total: int, seq: int, body: bytes, now: float
    ) -> bytes | None:
        """Hold one part; the joined payload once all ``total`` are in, else None."""
        if not 0 < seq <= total:
            raise SegmentError(f"part {seq} of {total}")
        if total == 1:
            return body
        k = (key, ref)
        pending = self._pending.get(k)
        if pending is None or pending.total != total:
            if pending is not None:
                del self._pending[k]
                self._dropped.append(Incomplete(key, ref, pending.total, pending.count, "replaced"))
            pending = self._pending[k] = _Pending(total, now)
            if len(self._pending) > self.max_pending:
                (old_key, old_ref), old = self._pending.popitem(last=False)
                self._dropped.append(Incomplete(old_key, old_ref, old.total, old.count, "overflow"))
        parts = pending.parts
        if parts[seq - 1] is not None:
            return None  # a duplicate: the first copy stands
        parts[seq - 1] = body
        pending.count += 1
        if pending.count < total:
            return None
        del self._pending[k]
        return b"".join(parts)  # type: ignore[arg-type]  # every slot is filled now

    def expire(self, now: float) -> list[Incomplete]:
        """Drop messages whose first part is ``timeout`` or more seconds old; return them
        together with any dropped for overflow or replacement since the last call."""
        pending = self._pending
        limit = now - self.timeout
        dropped = self._dropped
        while pending:
            k, oldest = next(iter(pending.items()))
            if oldest.first > limit:
                break
            del pending[k]
            dropped.append(Incomplete(k[0], k[1], oldest.total, oldest.count))
        self._dropped = []
        return dropped
