"""The compact Locust <-> SMSC control channel, the number space and a latency histogram.

Pure Python, no asyncio and no gevent: the asyncio SMSC side (``smsc_channel.py``) and
the gevent Locust side (``lc_common.py``) both import it.

Frames (little-endian), one TCP stream each way, many items per frame::

    header  <IBxH   total_len (incl. header), type, pad, count        8 bytes
    HELLO   <HHB    worker_index, slots, flags (bit 0: send MT text)   Locust -> SMSC
    MO      <QB     msisdn, text_len, then text_len UTF-8 bytes        Locust -> SMSC
    MT      <QdBH   msisdn, t_mt (CLOCK_MONOTONIC at the SMSC's sink),
                    data_coding, payload_len, then the payload bytes   SMSC -> Locust

An MO is an MSISDN (as an integer, 12 digits for Egypt) and a short text; nothing else
crosses the channel. The SMSC answers nothing per MO: the platform's reply MT is the
answer, routed to the worker that owns the number (``NumberSpace.owner``), so neither
side needs a table of numbers.
"""

from __future__ import annotations

import math
from struct import Struct

HEADER = Struct("<IBxH")
HELLO = Struct("<HHB")
MO_ITEM = Struct("<QB")
MT_ITEM = Struct("<QdBH")

T_HELLO = 0
T_MO = 1
T_MT = 2

FLAG_MT_TEXT = 1

#: Items per frame at most (count is a u16).
MAX_ITEMS = 65535


def encode_hello(worker_index: int, slots: int, flags: int = 0) -> bytes:
    body = HELLO.pack(worker_index, slots, flags)
    return HEADER.pack(HEADER.size + len(body), T_HELLO, 1) + body


def encode_mo_batch(items: list[tuple[int, bytes]]) -> bytes:
    """One MO frame: [(msisdn, utf8 text), ...] (at most MAX_ITEMS)."""
    pack = MO_ITEM.pack
    parts = [b""]
    for number, text in items:
        parts.append(pack(number, len(text)))
        parts.append(text)
    body_len = sum(len(p) for p in parts)
    parts[0] = HEADER.pack(HEADER.size + body_len, T_MO, len(items))
    return b"".join(parts)


def decode_mo_items(data: bytes, pos: int, count: int) -> list[tuple[int, bytes]]:
    unpack = MO_ITEM.unpack_from
    size = MO_ITEM.size
    out = []
    for _ in range(count):
        number, n = unpack(data, pos)
        pos += size
        out.append((number, data[pos : pos + n]))
        pos += n
    return out


def encode_mt_item(number: int, t: float, data_coding: int = 0, payload: bytes = b"") -> bytes:
    return MT_ITEM.pack(number, t, data_coding, len(payload)) + payload


def mt_frame(items: list[bytes]) -> bytes:
    """Wrap pre-encoded MT items (see ``encode_mt_item``) in one frame."""
    body = b"".join(items)
    return HEADER.pack(HEADER.size + len(body), T_MT, len(items)) + body


def decode_mt_items(data: bytes, pos: int, count: int) -> list[tuple[int, float, int, bytes]]:
    unpack = MT_ITEM.unpack_from
    size = MT_ITEM.size
    out = []
    for _ in range(count):
        number, t, dcs, n = unpack(data, pos)
        pos += size
        out.append((number, t, dcs, data[pos : pos + n]))
        pos += n
    return out


class FrameReader:
    """Splits a byte stream into (type, count, body_bytes, body_offset) frames."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, int, bytes, int]]:
        buf = self._buf + data if self._buf else data
        out = []
        pos = 0
        end = len(buf)
        hsize = HEADER.size
        unpack = HEADER.unpack_from
        while end - pos >= hsize:
            total, ftype, count = unpack(buf, pos)
            if total < hsize:
                raise ValueError(f"bad frame length {total}")
            if end - pos < total:
                break
            out.append((ftype, count, buf, pos + hsize))
            pos += total
        self._buf = buf[pos:] if pos < end else b""
        return out


# --- numbers ---------------------------------------------------------------------------------


class NumberSpace:
    """Millions of distinct Egyptian MSISDNs with nothing stored per number.

    Index ``k`` in ``[0, size)`` maps to ``prefix + 8 digits`` through the permutation
    ``p = (k * mult + offset) mod size``; ``mult`` coprime to ``size`` makes it a
    bijection (every number once, shuffled). The index space is cut into ``slots``
    equal blocks: Locust worker ``w`` draws indices from block ``w`` only, so workers
    (and machines, each given a range of slots) never share a number, and the SMSC
    finds the owner of any number with one multiplication (``owner``).
    """

    PREFIXES = (201000000000, 201100000000, 201200000000, 201500000000)  # 2010/11/12/15
    BLOCK = 100_000_000

    def __init__(self, slots: int = 64, mult: int = 2_654_435_761, offset: int = 1442) -> None:
        self.size = len(self.PREFIXES) * self.BLOCK
        if math.gcd(mult, self.size) != 1:
            raise ValueError("mult must be coprime to the size")
        self.mult = mult % self.size
        self.inv = pow(self.mult, -1, self.size)
        self.offset = offset % self.size
        self.slots = slots
        self.per_slot = self.size // slots

    def number(self, k: int) -> int:
        p = (k * self.mult + self.offset) % self.size
        return self.PREFIXES[p // self.BLOCK] + p % self.BLOCK

    def index(self, number: int) -> int:
        local = number % self.BLOCK
        prefix = self.PREFIXES.index(number - local)
        p = prefix * self.BLOCK + local
        return ((p - self.offset) * self.inv) % self.size

    def owner(self, number: int) -> int:
        """The slot (Locust worker index) whose block holds this number."""
        return self.index(number) // self.per_slot

    def slot_number(self, slot: int, j: int) -> int:
        """The j-th number of a slot (j < per_slot)."""
        return self.number(slot * self.per_slot + j)


# --- latency -------------------------------------------------------------------------------

# The product's histogram (simulator/harness): the same buckets the gates are judged on.
from simulator.harness.histogram import LatencyHistogram  # noqa: E402

__all__ = ["LatencyHistogram"]
