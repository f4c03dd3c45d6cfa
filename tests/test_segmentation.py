"""Splitting long messages into parts, parsing UDHs, and reassembling in any order."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.smpp.segmentation import (
    Concat,
    ConcatInfo,
    Incomplete,
    Part,
    Reassembler,
    SegmentError,
    UdhError,
    parse_udh,
    split_message,
)
from simulator.smpp.text import Alphabet, decode_ucs2, encode_gsm7, encode_ucs2

UDH_METHODS = [Concat.UDH8, Concat.UDH16]
ALL_METHODS = [Concat.UDH8, Concat.UDH16, Concat.SAR, Concat.PAYLOAD]
ALEF, BEH, SMILE = "ا", "ب", "😀"
ARABIC_AND_EMOJI = st.one_of(
    st.characters(min_codepoint=0x600, max_codepoint=0x6FF), st.sampled_from([SMILE, " ", "١"])
)


def bodies(parts: list[Part]) -> list[bytes]:
    """The text octets of each part, UDH stripped."""
    out = []
    for part in parts:
        if part.udhi:
            _info, _udh, body = parse_udh(part.body)
            out.append(body)
        else:
            out.append(part.body)
    return out


def reassemble(parts: list[Part], rng: random.Random) -> bytes | None:
    """Feed the parts in a shuffled order, as an SMSC or handset would receive them."""
    order = parts[:]
    rng.shuffle(order)
    r = Reassembler()
    whole = None
    for i, part in enumerate(order):
        if part.udhi:
            info, _udh, body = parse_udh(part.body)
            assert info is not None
            ref, total, seq = info.ref, info.total, info.seq
        else:
            ref, total, seq, body = part.ref, part.total, part.seq, part.body
        result = r.add("20100000001", ref, total, seq, body, float(i))
        if i < len(order) - 1:
            assert result is None
        else:
            whole = result
    assert len(r) == 0
    return whole


# --- part counts at the boundaries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("septets", "method", "sizes"),
    [
        (160, Concat.UDH8, [160]),
        (161, Concat.UDH8, [153, 8]),
        (306, Concat.UDH8, [153, 153]),
        (307, Concat.UDH8, [153, 153, 1]),
        (161, Concat.UDH16, [152, 9]),
        (161, Concat.SAR, [153, 8]),
        (1000, Concat.PAYLOAD, [1000]),
    ],
)
def test_gsm7_part_sizes(septets: int, method: Concat, sizes: list[int]) -> None:
    parts = split_message(encode_gsm7("a" * septets), Alphabet.GSM7, method, 7)
    assert [len(b) for b in bodies(parts)] == sizes
    assert [p.seq for p in parts] == list(range(1, len(sizes) + 1))
    assert all(p.total == len(sizes) for p in parts)


@pytest.mark.parametrize(
    ("chars", "method", "sizes"),
    [
        (70, Concat.UDH8, [70]),
        (71, Concat.UDH8, [67, 4]),
        (134, Concat.UDH8, [67, 67]),
        (135, Concat.UDH8, [67, 67, 1]),
        (71, Concat.UDH16, [66, 5]),
        (132, Concat.UDH16, [66, 66]),
        (133, Concat.UDH16, [66, 66, 1]),
        (135, Concat.SAR, [67, 67, 1]),
        (135, Concat.PAYLOAD, [135]),
    ],
)
def test_ucs2_part_sizes(chars: int, method: Concat, sizes: list[int]) -> None:
    parts = split_message(encode_ucs2(ALEF * chars), Alphabet.UCS2, method, 7)
    assert [len(b) // 2 for b in bodies(parts)] == sizes


@pytest.mark.parametrize(("octets", "count"), [(140, 1), (141, 2), (268, 2), (269, 3)])
def test_eight_bit_part_sizes(octets: int, count: int) -> None:
    for alphabet in (Alphabet.EIGHT_BIT, Alphabet.LATIN1, Alphabet.ASCII):
        parts = split_message(b"x" * octets, alphabet, Concat.UDH8, 1)
        assert len(parts) == count
        assert all(len(p.body) <= 140 for p in parts)
    assert [
        len(b) for b in bodies(split_message(b"x" * 141, Alphabet.EIGHT_BIT, Concat.UDH16, 1))
    ] == [133, 8]


def test_single_part_has_no_udh() -> None:
    payload = encode_ucs2("نعم")
    for method in ALL_METHODS:
        (part,) = split_message(payload, Alphabet.UCS2, method, 9)
        assert part == Part(payload, False, 9, 1, 1)


def test_udh_layout() -> None:
    payload = encode_ucs2(ALEF * 71)
    p8 = split_message(payload, Alphabet.UCS2, Concat.UDH8, 0x1A2)
    assert [p.body[:6] for p in p8] == [b"\x05\x00\x03\xa2\x02\x01", b"\x05\x00\x03\xa2\x02\x02"]
    assert all(p.udhi and p.ref == 0xA2 for p in p8)  # 8-bit reference: masked
    p16 = split_message(payload, Alphabet.UCS2, Concat.UDH16, 0x11234)
    assert [p.body[:7] for p in p16] == [
        b"\x06\x08\x04\x12\x34\x02\x01",
        b"\x06\x08\x04\x12\x34\x02\x02",
    ]
    assert all(p.udhi and p.ref == 0x1234 for p in p16)
    sar = split_message(payload, Alphabet.UCS2, Concat.SAR, 0x1234)
    assert [(p.udhi, p.ref, p.total, p.seq) for p in sar] == [
        (False, 0x1234, 2, 1),
        (False, 0x1234, 2, 2),
    ]
    assert b"".join(p.body for p in sar) == payload


def test_part_is_frozen_with_slots() -> None:
    part = split_message(b"x", Alphabet.EIGHT_BIT, Concat.UDH8, 1)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.seq = 2  # type: ignore[misc]
    assert not hasattr(part, "__dict__")


def test_surrogate_pair_never_straddles_parts() -> None:
    # 66 chars, then an emoji whose two UTF-16 units would be the 67th and 68th.
    text = ALEF * 66 + SMILE + BEH * 10
    parts = split_message(encode_ucs2(text), Alphabet.UCS2, Concat.UDH8, 1)
    first, second = bodies(parts)
    assert first == encode_ucs2(ALEF * 66)  # one unit less than 67
    assert second == encode_ucs2(SMILE + BEH * 10)
    # The emoji ending exactly on unit 67 is not moved.
    text = ALEF * 65 + SMILE + BEH * 10
    first, _second = bodies(split_message(encode_ucs2(text), Alphabet.UCS2, Concat.UDH8, 1))
    assert decode_ucs2(first) == ALEF * 65 + SMILE


def test_escape_never_straddles_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10
    first, second = bodies(split_message(encode_gsm7(text), Alphabet.GSM7, Concat.UDH8, 1))
    assert first == b"a" * 152
    assert second == b"\x1b\x65" + b"b" * 10
    # The escape pair ending exactly on septet 153 stays in the first part.
    text = "a" * 151 + "€" + "b" * 10
    first, _ = bodies(split_message(encode_gsm7(text), Alphabet.GSM7, Concat.UDH8, 1))
    assert first == b"a" * 151 + b"\x1b\x65"
    # A run of escapes pairs up from its start: 1B 1B | 1B 65 -> the cut falls before 1B 65.
    payload = b"a" * 150 + b"\x1b\x1b\x1b\x65" + b"b" * 20
    first, second = bodies(split_message(payload, Alphabet.GSM7, Concat.UDH8, 1))
    assert first == b"a" * 150 + b"\x1b\x1b"
    assert second.startswith(b"\x1b\x65")
    # An even run ending at the cut is whole pairs: nothing moves.
    payload = b"a" * 151 + b"\x1b\x1b" + b"b" * 20
    first, _ = bodies(split_message(payload, Alphabet.GSM7, Concat.UDH8, 1))
    assert len(first) == 153


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=[ALEF, BEH, SMILE, "😍", " "], min_size=60, max_size=400))
def test_ucs2_parts_each_decode_cleanly(text: str) -> None:
    for method in (Concat.UDH8, Concat.UDH16, Concat.SAR):
        parts = split_message(encode_ucs2(text), Alphabet.UCS2, method, 3)
        decoded = [decode_ucs2(b) for b in bodies(parts)]
        assert "".join(decoded) == text  # no part decodes to U+FFFD
        assert all(len(p.body) <= 140 for p in parts)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=["a", "€", "{", " ", "Δ"], min_size=100, max_size=600))
def test_gsm7_parts_keep_escapes_whole(text: str) -> None:
    for method in (Concat.UDH8, Concat.UDH16, Concat.SAR):
        limit = 152 if method is Concat.UDH16 else 153
        parts = split_message(encode_gsm7(text), Alphabet.GSM7, method, 3)
        for body in bodies(parts):
            assert len(body) <= (160 if len(parts) == 1 else limit)
            assert not body.endswith(b"\x1b")  # every escape travels with its code


def test_too_many_parts() -> None:
    assert len(split_message(b"a" * 153 * 255, Alphabet.GSM7, Concat.UDH8, 1)) == 255
    with pytest.raises(SegmentError):
        split_message(b"a" * (153 * 255 + 1), Alphabet.GSM7, Concat.UDH8, 1)


# --- split, shuffle, reassemble -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet=ARABIC_AND_EMOJI, max_size=500),
    st.sampled_from(ALL_METHODS),
    st.integers(0, 0xFFFF),
    st.randoms(use_true_random=False),
)
def test_ucs2_split_then_reassemble(
    text: str, method: Concat, ref: int, rng: random.Random
) -> None:
    payload = encode_ucs2(text)
    parts = split_message(payload, Alphabet.UCS2, method, ref)
    assert reassemble(parts, rng) == payload


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet=["a", "€", "[", "]", "@", "\n", "Δ"], max_size=800),
    st.sampled_from(ALL_METHODS),
    st.integers(0, 0xFFFF),
    st.randoms(use_true_random=False),
)
def test_gsm7_split_then_reassemble(
    text: str, method: Concat, ref: int, rng: random.Random
) -> None:
    payload = encode_gsm7(text)
    parts = split_message(payload, Alphabet.GSM7, method, ref)
    assert reassemble(parts, rng) == payload


@pytest.mark.parametrize("method", ALL_METHODS)
def test_three_part_arabic_each_method(method: Concat) -> None:
    text = "برنامج تكافل وكرامة يذكركم بموعد زيارة الوحدة الصحية. " * 3
    payload = encode_ucs2(text)
    parts = split_message(payload, Alphabet.UCS2, method, 42)
    assert len(parts) == (1 if method is Concat.PAYLOAD else 3)
    assert reassemble(parts, random.Random(5)) == payload


# --- parse_udh --------------------------------------------------------------------------------


def test_parse_udh_concat_8bit() -> None:
    info, udh, body = parse_udh(b"\x05\x00\x03\x2a\x03\x01hello")
    assert (info, udh, body) == (ConcatInfo(42, 3, 1), b"\x05\x00\x03\x2a\x03\x01", b"hello")


def test_parse_udh_concat_16bit() -> None:
    info, udh, body = parse_udh(b"\x06\x08\x04\x12\x34\x02\x02body")
    assert (info, udh, body) == (ConcatInfo(0x1234, 2, 2), b"\x06\x08\x04\x12\x34\x02\x02", b"body")


def test_parse_udh_other_ie_before_concat() -> None:
    # Application port addressing (IE 05, 16-bit ports), then the 8-bit concat IE.
    udh = b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x01"
    assert parse_udh(udh + b"text") == (ConcatInfo(7, 2, 1), udh, b"text")
    # ... and the 16-bit one, followed by yet another IE.
    udh = b"\x0f\x05\x04\x0b\x84\x23\xf0\x08\x04\x01\x00\x05\x03\x24\x01\x01"
    assert parse_udh(udh + b"x") == (ConcatInfo(0x100, 5, 3), udh, b"x")


def test_parse_udh_without_concat() -> None:
    assert parse_udh(b"\x06\x05\x04\x0b\x84\x23\xf0body") == (
        None,
        b"\x06\x05\x04\x0b\x84\x23\xf0",
        b"body",
    )
    assert parse_udh(b"\x00body") == (None, b"\x00", b"body")
    # A concat IE of the wrong length is skipped like an unknown IE.
    assert parse_udh(b"\x04\x00\x02\x01\x02body")[0] is None


def test_parse_udh_last_concat_ie_wins() -> None:
    udh = b"\x0a\x00\x03\x01\x02\x01\x00\x03\x09\x04\x03"
    assert parse_udh(udh + b"z") == (ConcatInfo(9, 4, 3), udh, b"z")


def test_parse_udh_numbers_as_found() -> None:
    info, _, _ = parse_udh(b"\x05\x00\x03\x01\x00\x00x")
    assert info == ConcatInfo(1, 0, 0)  # Reassembler.add is the one to reject these
    with pytest.raises(SegmentError):
        Reassembler().add("k", info.ref, info.total, info.seq, b"x", 0.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # UDHI on nothing
        b"\x05\x00\x03\x01",  # UDH length past the data
        b"\x06\x08\x04\x00\x01\x02",  # 16-bit concat UDH one octet short
        b"\x03\x00\x03\x01\x02\x03",  # IE data past the UDH
        b"\x04\x00\x03\x01\x02\x03",  # IE data one octet past the UDH
        b"\x01\x00rest",  # IE header past the UDH
        b"\x07\x05\x04\x0b\x84\x23\xf0\x00\x03\x07\x02\x01",  # second IE past the UDH
    ],
)
def test_parse_udh_errors(data: bytes) -> None:
    with pytest.raises(UdhError):
        parse_udh(data)
    assert issubclass(UdhError, ValueError)


@given(st.binary(max_size=50))
def test_parse_udh_never_raises_anything_else(data: bytes) -> None:
    try:
        info, udh, body = parse_udh(data)
    except UdhError:
        return
    assert udh + body == data
    assert len(udh) == 1 + data[0]
    if info is not None:
        assert 0 <= info.ref <= 0xFFFF and 0 <= info.total <= 255 and 0 <= info.seq <= 255


# --- Reassembler ------------------------------------------------------------------------------


def test_reassembler_any_order_and_duplicates() -> None:
    r = Reassembler()
    assert r.add("a", 5, 3, 3, b"C", 0.0) is None
    assert r.add("a", 5, 3, 1, b"A", 0.1) is None
    assert r.add("a", 5, 3, 1, b"X", 0.2) is None  # duplicate: ignored, first copy stands
    assert r.add("a", 5, 3, 3, b"Y", 0.2) is None
    assert len(r) == 1
    assert r.add("a", 5, 3, 2, b"B", 0.3) == b"ABC"
    assert len(r) == 0
    assert r.expire(1000.0) == []  # completed messages leave nothing to expire


def test_reassembler_keys_and_refs_do_not_mix() -> None:
    r = Reassembler()
    assert r.add("a", 1, 2, 1, b"a1", 0.0) is None
    assert r.add("b", 1, 2, 1, b"b1", 0.0) is None
    assert r.add("a", 2, 2, 1, b"x1", 0.0) is None
    assert len(r) == 3
    assert r.add("b", 1, 2, 2, b"b2", 0.0) == b"b1b2"
    assert r.add("a", 1, 2, 2, b"a2", 0.0) == b"a1a2"
    assert len(r) == 1


def test_reassembler_single_part_and_empty_bodies() -> None:
    r = Reassembler()
    assert r.add("a", 1, 1, 1, b"whole", 0.0) == b"whole"
    assert len(r) == 0
    assert r.add("a", 2, 2, 2, b"", 0.0) is None
    assert r.add("a", 2, 2, 1, b"x", 0.0) == b"x"


@pytest.mark.parametrize(("total", "seq"), [(3, 0), (3, 4), (0, 0), (0, 1), (2, -1)])
def test_reassembler_bad_numbers(total: int, seq: int) -> None:
    r = Reassembler()
    with pytest.raises(SegmentError):
        r.add("a", 1, total, seq, b"x", 0.0)
    assert issubclass(SegmentError, ValueError)
    assert len(r) == 0


def test_reassembler_expiry() -> None:
    r = Reassembler(timeout=300.0)
    r.add("a", 1, 3, 1, b"a", 0.0)
    r.add("b", 1, 2, 2, b"b", 10.0)
    r.add("a", 1, 3, 2, b"a", 200.0)  # later parts do not extend the first-arrival clock
    r.add("c", 1, 2, 1, b"c", 20.0)
    assert r.expire(299.9) == []
    assert r.expire(300.0) == [Incomplete("a", 1, 3, 2)]
    assert len(r) == 2
    assert r.expire(315.0) == [Incomplete("b", 1, 2, 1)]
    assert r.expire(10_000.0) == [Incomplete("c", 1, 2, 1, "timeout")]
    assert len(r) == 0
    # A straggler of an expired message starts over rather than completing it.
    assert r.add("a", 1, 3, 3, b"a", 10_001.0) is None
    assert len(r) == 1


def test_reassembler_expiry_does_not_scan_everything() -> None:
    r = Reassembler(timeout=1.0)
    for i in range(50_000):
        r.add(i, 0, 2, 1, b"x", float(i))
    start = time.perf_counter()
    for i in range(2_000):
        assert len(r.expire(float(i) + 1.0)) == 1
    elapsed = time.perf_counter() - start
    assert len(r) == 48_000
    assert elapsed < 0.5, f"2000 expire calls over 50k pending took {elapsed:.3f}s"


def test_reassembler_max_pending() -> None:
    r = Reassembler(max_pending=2)
    r.add("a", 1, 2, 1, b"a1", 0.0)
    r.add("b", 1, 2, 1, b"b1", 1.0)
    assert r.add("c", 1, 2, 1, b"c1", 2.0) is None
    assert len(r) == 2
    assert r.expire(2.0) == [Incomplete("a", 1, 2, 1, "overflow")]
    assert r.expire(2.0) == []  # reported once
    assert r.add("b", 1, 2, 2, b"b2", 3.0) == b"b1b2"
    assert r.add("c", 1, 2, 2, b"c2", 3.0) == b"c1c2"
    assert r.add("a", 1, 2, 2, b"a2", 3.0) is None  # its first part is gone


def test_reassembler_new_total_replaces() -> None:
    r = Reassembler()
    r.add("a", 1, 3, 1, b"old", 0.0)
    assert r.add("a", 1, 2, 1, b"n1", 1.0) is None
    assert r.add("a", 1, 2, 2, b"n2", 1.0) == b"n1n2"
    assert r.expire(2.0) == [Incomplete("a", 1, 3, 1, "replaced")]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.randoms(use_true_random=False), st.integers(0, 10))
def test_reassembler_completes_exactly_at_last_distinct_part(
    total: int, rng: random.Random, dups: int
) -> None:
    chunks = [bytes([i]) * rng.randint(0, 5) for i in range(total)]
    arrivals = list(range(1, total + 1)) + [rng.randint(1, total) for _ in range(dups)]
    rng.shuffle(arrivals)
    r = Reassembler()
    seen: set[int] = set()
    results = []
    for seq in arrivals:
        seen.add(seq)
        got = r.add(("src", "dst"), 9, total, seq, chunks[seq - 1], 0.0)
        if got is not None:
            results.append(got)
            assert len(seen) == total
            break
    assert results == [b"".join(chunks)]
    assert len(r) == 0
