"""The journal's C record buffer (``_cjournal.c``) against marshal itself: what ``take``
gives must be what ``marshal.loads`` reads as the values added, for every type a
record holds and for the odd ones the fallback marshals; and a record is whole in one
batch whatever runs during its ``add``."""

from __future__ import annotations

import gc
import marshal
import math
import os
import random
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest

from simulator.smpp.constants import MessageState, Tag
from simulator.smsc import journal_records
from simulator.smsc.journal_files import plain
from simulator.smsc.journal_records import PyRecordBuffer, fallback

ROOT = Path(__file__).resolve().parent.parent
CRecordBuffer = journal_records.CRecordBuffer
pytestmark = pytest.mark.skipif(CRecordBuffer is None, reason="_cjournal not built")


def _c() -> Any:
    assert CRecordBuffer is not None
    return CRecordBuffer(fallback)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types, floats by their bits (-0.0, nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return marshal.dumps(a) == marshal.dumps(b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**31), 2**31 - 1)
    if kind == 2:
        return rng.choice([2**31, -(2**31) - 1, 2**63, -(2**80), 0, -1, 255, 256])
    if kind == 3:
        return rng.choice([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-310, rng.random()])
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 160, 300])))
    if kind == 5:  # ASCII, both sides of the short form's 255
        return "".join(chr(rng.randrange(128)) for _ in range(rng.choice([0, 1, 255, 256, 999])))
    if kind == 6:
        return "".join(rng.choice("مرحبا ١٤٤٢ ok ✓ 😀") for _ in range(rng.randrange(40)))
    if kind == 7:
        return "lone \udc80 surrogate" * rng.randrange(1, 3)
    if kind == 8:
        return rng.choice(list(MessageState))
    if kind == 9:
        return (1, "a", (b"x", 2.5), {int(Tag.SAR_MSG_REF_NUM): b"\x00\x01"})
    if kind == 10:
        return {Tag.MESSAGE_PAYLOAD: b"payload", 7: None}
    return sys.intern("accept")


@pytest.mark.parametrize("seed", range(6))
def test_take_is_what_marshal_reads_as_the_values_added(seed: int) -> None:
    rng = random.Random(seed)
    buf, ref = _c(), PyRecordBuffer()
    for _ in range(3):  # the same buffer reused batch after batch
        added: list[Any] = []
        records = rng.randrange(1, 60)
        for _ in range(records):
            values = [_value(rng) for _ in range(rng.randrange(1, 40))]
            buf.add(*values)
            ref.add(*values)
            added.extend(values)
        assert buf.records == records and buf.values == len(added)
        taken, expected = buf.take(), ref.take()
        assert taken is not None and expected is not None
        payload, count = taken
        assert count == records
        got = marshal.loads(payload)
        assert _same(got, [plain(v) for v in added])
        assert _same(got, marshal.loads(expected[0]))
        assert buf.take() is None and buf.records == 0 and buf.nbytes == 0


def test_plain_values_are_written_without_the_fallback_and_like_marshal() -> None:
    """The hot path's types never reach Python, and their bytes are marshal's own
    (version 4) without its reference flag and its interned forms."""
    calls: list[Any] = []

    def spy(value: Any) -> bytes:
        calls.append(value)
        return fallback(value)

    assert CRecordBuffer is not None
    buf = CRecordBuffer(spy)
    values = ["accept", "x" * 300, "نص", 7, -(2**31), 1.25, b"hi", None, True, False]
    buf.add(*values)
    assert calls == []
    taken = buf.take()
    assert taken is not None
    interned = {ord("Z"): ord("z"), ord("A"): ord("a"), ord("t"): ord("u")}

    def unflagged(v: Any) -> bytes:
        b = marshal.dumps(v, 4)
        code = b[0] & 0x7F  # FLAG_REF: marshal flags every value referenced twice
        return bytes([interned.get(code, code)]) + b[1:]

    body = b"".join(unflagged(v) for v in values)
    assert taken[0] == b"[" + len(values).to_bytes(4, "little") + body


def test_a_record_is_whole_in_one_batch_whatever_its_fallback_lets_run() -> None:
    """The fallback is Python: the GIL may pass to the journal's thread during it. Every
    value is encoded before any is written, so a take then finds the record before,
    not half of this one."""
    assert CRecordBuffer is not None
    buf: Any = None
    seen: list[Any] = []

    def taking(value: Any) -> bytes:
        seen.append(buf.take())  # the thread, mid-record
        return fallback(value)

    buf = CRecordBuffer(taking)
    buf.add("finished", "eg", "1", "201001234567", "DELIVRD", 1.0)
    buf.add("mo_recovered", "eg", "mo-1", (0, 1), 2.0)
    (first,) = seen
    assert first is not None and first[1] == 1
    assert marshal.loads(first[0])[0] == "finished"
    second = buf.take()
    assert second is not None and second[1] == 1
    assert marshal.loads(second[0]) == ["mo_recovered", "eg", "mo-1", (0, 1), 2.0]


def test_a_failing_fallback_adds_nothing_and_the_error_is_the_callers() -> None:
    assert CRecordBuffer is not None

    def broken(value: Any) -> bytes:
        raise RuntimeError("boom")

    buf = CRecordBuffer(broken)
    buf.add("a", 1)
    with pytest.raises(RuntimeError, match="boom"):
        buf.add("b", 2, object())
    wrong = CRecordBuffer(lambda v: "not bytes")
    with pytest.raises(TypeError, match="marshal bytes"):
        wrong.add("c", object())
    with pytest.raises(TypeError, match="record"):
        buf.add()
    with pytest.raises(TypeError, match="callable"):
        CRecordBuffer(42)
    assert buf.records == 1
    taken = buf.take()
    assert taken is not None and marshal.loads(taken[0]) == ["a", 1]
    odd = _c()  # what marshal cannot write at all: its repr, as ``plain`` does
    odd.add("x", marker := object())
    taken = odd.take()
    assert taken is not None and marshal.loads(taken[0]) == ["x", repr(marker)]


def test_no_reference_is_kept_or_leaked() -> None:
    text, big, blob = "ok" * 10, 2**70, b"\x01" * 50
    before = [sys.getrefcount(o) for o in (text, big, blob)]
    buf = _c()
    for _ in range(1000):
        buf.add(text, big, blob, (text, blob))
    assert [sys.getrefcount(o) for o in (text, big, blob)] == before
    assert buf.take() is not None
    assert [sys.getrefcount(o) for o in (text, big, blob)] == before


def test_the_buffer_keeps_its_room_and_gives_back_a_bursts() -> None:
    buf = _c()
    row = ("receipt_delivered", "egypt", "m" * 36, "201001234567", "DELIVRD", 1.0)
    for _ in range(20):
        buf.add(*row)
    room = buf.capacity
    buf.take()
    assert buf.capacity == room  # reused, not reallocated a batch
    for _ in range(200_000):  # ~17 MB: a burst
        buf.add(*row)
    assert buf.capacity > 8 << 20
    buf.take()
    assert buf.capacity > 8 << 20  # that batch used it all: kept
    buf.add(*row)
    buf.take()
    assert buf.capacity <= 1 << 20  # the next used a little: given back


def test_the_buffer_is_tracked_by_the_collector_through_its_fallback() -> None:
    class Holder:
        pass

    holder = Holder()
    buf = CRecordBuffer(lambda v, h=holder: fallback(v))  # type: ignore[misc]
    holder.buf = buf  # type: ignore[attr-defined]
    assert gc.is_tracked(buf)
    alive = weakref.ref(holder)
    del holder, buf
    gc.collect()
    assert alive() is None  # the cycle holder -> buf -> fallback -> holder collected


def test_the_environment_switches_the_c_buffer_off() -> None:
    code = (
        "from simulator.smsc import journal_records as r, journal as j\n"
        "print(r.CRecordBuffer is None, type(j.Journal.__init__ and r.new_buffer()).__name__)"
    )
    env = {**os.environ, "SMSIM_NO_CJOURNAL": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.stdout.split() == ["True", "PyRecordBuffer"], out.stderr
    env.pop("SMSIM_NO_CJOURNAL")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.stdout.split() == ["False", "RecordBuffer"], out.stderr
