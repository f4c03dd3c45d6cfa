"""GSM 03.38 / UCS-2 / 8-bit text layer: known vectors, round trips, leniency, dispatch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.smpp.text import (
    Alphabet,
    DataCoding,
    TextEncodeError,
    alphabet_of,
    choose_coding,
    decode_gsm7,
    decode_text,
    decode_ucs2,
    encode_gsm7,
    encode_text,
    encode_ucs2,
    gsm7_septets,
    is_gsm7,
    pack_septets,
    unpack_septets,
)

# The 23.038 default alphabet written out independently of the module (index = septet).
BASIC = [
    "@", "£", "$", "¥", "è", "é", "ù", "ì", "ò", "Ç", "\n", "Ø", "ø", "\r", "Å", "å",
    "Δ", "_", "Φ", "Γ", "Λ", "Ω", "Π", "Ψ", "Σ", "Θ", "Ξ", None, "Æ", "æ", "ß", "É",
    " ", "!", '"', "#", "¤", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/",
    *"0123456789", ":", ";", "<", "=", ">", "?",
    "¡", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "Ä", "Ö", "Ñ", "Ü", "§",
    "¿", *"abcdefghijklmnopqrstuvwxyz", "ä", "ö", "ñ", "ü", "à",
]  # fmt: skip
EXTENSION = {
    "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F,
    "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65,
}  # fmt: skip
GSM_CHARS = [c for c in BASIC if c is not None] + list(EXTENSION)

gsm_text = st.text(alphabet=GSM_CHARS, max_size=400)
ext_heavy_text = st.text(alphabet=[*EXTENSION, "a", "é", "Δ", " "], max_size=200)
latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300)
ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300)
arabic = st.characters(min_codepoint=0x0600, max_codepoint=0x06FF)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
ucs2_text = st.text(
    alphabet=st.one_of(arabic, emoji, st.characters(exclude_categories=["Cs"])), max_size=300
)


def reference_pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Bit-by-bit packing straight from 23.038 6.1.2.1.1, to check the fast one against."""
    bits = [0] * fill_bits
    for s in septets:
        bits.extend((s >> i) & 1 for i in range(7))
    bits.extend([0] * (-len(bits) % 8))
    return bytes(sum(bits[o + i] << i for i in range(8)) for o in range(0, len(bits), 8))


# --- GSM 7-bit ------------------------------------------------------------------------------


def test_known_gsm7_vectors() -> None:
    assert encode_gsm7("@£$") == b"\x00\x01\x02"
    assert encode_gsm7("€") == b"\x1b\x65"
    assert encode_gsm7("a{b}") == b"a\x1b\x28b\x1b\x29"
    assert encode_gsm7("é[") == b"\x05\x1b\x3c"  # non-ASCII path with an extension char
    assert encode_gsm7("Hello") == b"Hello"
    assert encode_gsm7("_\n\r") == b"\x11\x0a\x0d"
    assert decode_gsm7(b"\x00\x01\x02\x1b\x65") == "@£$€"


def test_full_basic_and_extension_tables() -> None:
    for septet, ch in enumerate(BASIC):
        if ch is None:
            continue
        assert encode_gsm7(ch) == bytes((septet,)), (septet, ch)
        assert decode_gsm7(bytes((septet,))) == ch, (septet, ch)
    for ch, code in EXTENSION.items():
        assert encode_gsm7(ch) == bytes((0x1B, code)), ch
        assert decode_gsm7(bytes((0x1B, code))) == ch, ch


@given(gsm_text)
def test_gsm7_round_trip(text: str) -> None:
    data = encode_gsm7(text)
    assert decode_gsm7(data) == text
    assert max(data, default=0) < 0x80
    assert gsm7_septets(text) == len(data)
    assert is_gsm7(text)
    assert choose_coding(text) == (0, data)


@given(ext_heavy_text)
def test_extension_chars_count_two(text: str) -> None:
    assert gsm7_septets(text) == len(text) + sum(ch in EXTENSION for ch in text)
    assert decode_gsm7(encode_gsm7(text)) == text


@pytest.mark.parametrize("bad", ["ع", "`", "ç", "\x1b", "\t", "😀", "abc ١"])
def test_unrepresentable_character_raises(bad: str) -> None:
    with pytest.raises(TextEncodeError) as info:
        encode_gsm7("ok " + bad)
    assert isinstance(info.value, ValueError)
    assert gsm7_septets(bad) is None
    assert not is_gsm7(bad)


@given(st.text(max_size=100))
def test_is_gsm7_agrees_with_encode(text: str) -> None:
    representable = all(ch in GSM_CHARS for ch in text)
    assert is_gsm7(text) is representable
    assert (gsm7_septets(text) is not None) is representable
    if not representable:
        with pytest.raises(TextEncodeError):
            encode_gsm7(text)


def test_decode_gsm7_is_lenient() -> None:
    assert decode_gsm7(b"a\x80\xffb") == "a??b"  # octets that are not septets
    assert decode_gsm7(b"ab\x1b") == "ab?"  # lone escape at the end
    assert decode_gsm7(b"\x1b\x41x") == "?x"  # escape to an undefined extension code
    assert decode_gsm7(b"\x1b\x1b\x65") == "?e"  # 1B 1B is a pair; 65 is then plain 'e'
    assert decode_gsm7(b"") == ""


def reference_decode(data: bytes) -> str:
    """Septet-by-septet decoding with the leniency rules, to check the fast one against."""
    out, i = [], 0
    extension = {code: ch for ch, code in EXTENSION.items()}
    while i < len(data):
        c = data[i]
        if c == 0x1B:
            out.append(extension.get(data[i + 1], "?") if i + 1 < len(data) else "?")
            i += 2
            continue
        out.append(BASIC[c] or "?" if c < 0x80 else "?")
        i += 1
    return "".join(out)


@given(st.lists(st.sampled_from([0x1B, 0x65, 0x28, 0x3C, 0x41, 0x3F, 0x80, 0xE5, 0x00, 0x61])))
def test_decode_gsm7_matches_reference_on_escape_soup(septets: list[int]) -> None:
    data = bytes(septets)
    assert decode_gsm7(data) == reference_decode(data)


@given(st.binary(max_size=300))
def test_decode_gsm7_never_raises(data: bytes) -> None:
    text = decode_gsm7(data)
    assert len(text) <= len(data)
    if 0x1B not in data:
        assert len(text) == len(data)


# --- packed GSM 7-bit -------------------------------------------------------------------------


def test_packed_known_vectors() -> None:
    hello = encode_gsm7("hellohello")
    assert pack_septets(hello) == bytes.fromhex("E8329BFD4697D9EC37")
    assert unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"), 10) == hello
    assert pack_septets(b"\x01", fill_bits=1) == b"\x02"
    assert pack_septets(b"\x7f" * 8) == b"\xff" * 7  # 8 septets fill 7 octets exactly
    assert pack_septets(b"") == b""
    assert unpack_septets(b"", 0) == b""


@given(st.binary(max_size=400), st.integers(0, 6))
def test_pack_matches_reference_and_unpacks(septets: bytes, fill: int) -> None:
    packed = pack_septets(septets, fill)
    assert packed == reference_pack(septets, fill)
    assert len(packed) == (7 * len(septets) + fill + 7) // 8
    assert unpack_septets(packed, len(septets), fill) == bytes(s & 0x7F for s in septets)


def test_pack_errors() -> None:
    with pytest.raises(ValueError):
        pack_septets(b"a", fill_bits=7)
    with pytest.raises(ValueError):
        unpack_septets(b"\x00" * 7, 9)  # 7 octets hold 8 septets, not 9
    with pytest.raises(ValueError):
        unpack_septets(b"\x00" * 7, 8, fill_bits=1)
    assert unpack_septets(b"\x00" * 7, 8) == b"\x00" * 8


# --- UCS-2 ----------------------------------------------------------------------------------


def test_known_ucs2_vectors() -> None:
    assert encode_ucs2("مرحبا") == bytes.fromhex("0645 0631 062D 0628 0627")
    assert encode_ucs2("😀") == bytes.fromhex("D83D DE00")  # surrogate pair
    assert decode_ucs2(bytes.fromhex("0627 D83D DE00")) == "ا😀"


@given(ucs2_text)
def test_ucs2_round_trip(text: str) -> None:
    data = encode_ucs2(text)
    assert len(data) % 2 == 0
    assert decode_ucs2(data) == text
    assert decode_text(data, DataCoding.UCS2) == text


def test_decode_ucs2_is_lenient() -> None:
    assert decode_ucs2(b"\x00a\x00") == "a\ufffd"  # odd trailing octet
    assert decode_ucs2(bytes.fromhex("D83D 0062")) == "\ufffdb"  # lone high surrogate
    assert decode_ucs2(bytes.fromhex("0061 DE00")) == "a\ufffd"  # lone low surrogate


@given(st.binary(max_size=200))
def test_decode_ucs2_never_raises(data: bytes) -> None:
    decode_ucs2(data)


# --- 8-bit alphabets --------------------------------------------------------------------------


@given(latin1_text)
def test_latin1_round_trip(text: str) -> None:
    data = encode_text(text, DataCoding.LATIN1)
    assert data == text.encode("latin-1")
    assert decode_text(data, DataCoding.LATIN1) == text


@given(ascii_text)
def test_ia5_round_trip(text: str) -> None:
    data = encode_text(text, DataCoding.IA5)
    assert data == text.encode("ascii")
    assert decode_text(data, DataCoding.IA5) == text


@given(st.binary(max_size=200), st.sampled_from([DataCoding.OCTET_UNSPEC, DataCoding.OCTET, 0xF4]))
def test_octets_pass_through(data: bytes, dc: int) -> None:
    text = decode_text(data, dc)
    assert len(text) == len(data)
    assert encode_text(text, dc) == data


def test_national_single_byte_codings() -> None:
    assert decode_text("שלום".encode("iso8859-8"), DataCoding.LATIN_HEBREW) == "שלום"
    assert encode_text("Привет", DataCoding.CYRILLIC) == "Привет".encode("iso8859-5")


def test_encode_text_errors() -> None:
    with pytest.raises(TextEncodeError):
        encode_text("é", DataCoding.IA5)
    with pytest.raises(TextEncodeError):
        encode_text("ع", DataCoding.LATIN1)
    with pytest.raises(TextEncodeError):
        encode_text("ع", DataCoding.SMSC_DEFAULT)
    assert decode_text(b"a\xffb", DataCoding.IA5) == "a\ufffdb"


# --- data_coding dispatch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dc", "alphabet"),
    [
        (0x00, Alphabet.GSM7),
        (0x01, Alphabet.ASCII),
        (0x02, Alphabet.EIGHT_BIT),
        (0x03, Alphabet.LATIN1),
        (0x04, Alphabet.EIGHT_BIT),
        (0x08, Alphabet.UCS2),
        (0x0E, Alphabet.EIGHT_BIT),
        (0x10, Alphabet.GSM7),  # general group, class 0, GSM7
        (0x11, Alphabet.GSM7),
        (0x14, Alphabet.EIGHT_BIT),
        (0x15, Alphabet.EIGHT_BIT),
        (0x18, Alphabet.UCS2),
        (0x19, Alphabet.UCS2),
        (0x1C, Alphabet.GSM7),  # reserved alphabet: default
        (0x38, Alphabet.EIGHT_BIT),  # compressed
        (0x48, Alphabet.UCS2),  # marked for automatic deletion
        (0xC0, Alphabet.GSM7),
        (0xD8, Alphabet.GSM7),
        (0xE0, Alphabet.UCS2),
        (0xF0, Alphabet.GSM7),
        (0xF3, Alphabet.GSM7),
        (0xF4, Alphabet.EIGHT_BIT),
        (0xF7, Alphabet.EIGHT_BIT),
    ],
)
def test_alphabet_of(dc: int, alphabet: Alphabet) -> None:
    assert alphabet_of(dc) is alphabet


def test_decode_text_follows_coding_groups() -> None:
    arabic = "تكافل وكرامة"
    assert decode_text(encode_ucs2(arabic), 0x18) == arabic
    assert decode_text(encode_ucs2(arabic), 0xE0) == arabic
    assert decode_text(encode_gsm7("€10 {ok}"), 0xF0) == "€10 {ok}"
    assert decode_text(encode_gsm7("€10 {ok}"), 0x11) == "€10 {ok}"
    assert decode_text(b"\x00\xff", 0xF4) == "\x00\xff"
    assert encode_text("€", 0xF1) == b"\x1b\x65"
    assert encode_text("ع", 0x18) == b"\x06\x39"


def test_choose_coding() -> None:
    assert choose_coding("Reply 1 for yes") == (0, b"Reply 1 for yes")
    assert choose_coding("Price: €5 {x}") == (0, encode_gsm7("Price: €5 {x}"))
    assert choose_coding("Δ é") == (0, b"\x10\x20\x05")
    arabic = "برنامج تكافل وكرامة: رد ب ١"
    assert choose_coding(arabic) == (8, arabic.encode("utf-16-be"))
    assert choose_coding("3ayez a3raf `x`")[0] == 8  # a backtick is not GSM
    assert choose_coding("hi 😀") == (8, bytes.fromhex("0068 0069 0020 D83D DE00"))
    assert choose_coding("") == (0, b"")


@given(st.text(max_size=100))
def test_choose_coding_round_trips(text: str) -> None:
    dc, data = choose_coding(text)
    assert dc == (0 if all(ch in GSM_CHARS for ch in text) else 8)
    assert decode_text(data, dc) == text
