"""Text on the wire: GSM 03.38 (unpacked, as SMPP carries it), Latin-1, IA5, UCS-2.

Every MT and MO passes through here, so the tables are built once at import and the work
is done by codecs, ``str.translate`` and ``bytes.translate`` rather than per-character
Python loops. Decoding never raises (a fake SMSC must survive whatever a client sends);
encoding raises ``TextEncodeError`` when the alphabet cannot carry a character.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from enum import Enum, IntEnum


class TextEncodeError(ValueError):
    """A character the chosen alphabet cannot carry."""


class DataCoding(IntEnum):
    """SMPP 3.4 data_coding values 0x00-0x0F (5.2.19); above that it is a 23.038 DCS."""

    SMSC_DEFAULT = 0
    IA5 = 1
    OCTET_UNSPEC = 2
    LATIN1 = 3
    OCTET = 4
    JIS = 5
    CYRILLIC = 6
    LATIN_HEBREW = 7
    UCS2 = 8
    PICTOGRAM = 9
    ISO2022_JP = 10
    KANJI = 13
    KSC5601 = 14


class Alphabet(Enum):
    """What a data_coding means for sizing and splitting: septets, octets or UTF-16 units."""

    GSM7 = "gsm7"
    EIGHT_BIT = "8bit"
    UCS2 = "ucs2"
    LATIN1 = "latin1"
    ASCII = "ascii"


# --- GSM 03.38 tables ---------------------------------------------------------------------

#: The default alphabet, index = septet value; 0x1B is the escape to the extension table.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table (septet after 0x1B -> character).
GSM_EXTENSION = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_ESC = 0x1B
assert len(GSM_BASIC) == 128 and GSM_BASIC[_ESC] == "\x1b"

_BASIC_SET = frozenset(GSM_BASIC) - {"\x1b"}
_EXT_SET = frozenset(GSM_EXTENSION.values())
_GSM_SET = _BASIC_SET | _EXT_SET
_INVALID = 0xFF  # marks a non-GSM character in the ASCII table (no septet is >= 0x80)

# General path (any str): basic characters -> one septet, extension characters -> ESC +
# code, every other Latin-1 code point -> U+FFFD so that .encode("latin-1") fails on it
# (code points above U+00FF that are not GSM pass through untouched and fail there too).
_ENC_FULL: dict[int, str] = {cp: "\ufffd" for cp in range(256)}
_ENC_FULL.update({ord(ch): chr(i) for i, ch in enumerate(GSM_BASIC) if i != _ESC})
_ENC_FULL.update({ord(ch): "\x1b" + chr(code) for code, ch in GSM_EXTENSION.items()})

# ASCII fast path: one bytes.translate. Extension characters become placeholders
# 0x80.. (expanded to ESC + code afterwards, only when present); non-GSM bytes become 0xFF.
_ASCII_EXT = [(ord(ch), code) for code, ch in sorted(GSM_EXTENSION.items()) if ch.isascii()]
_ascii_table = bytearray([_INVALID]) * 256
for _i, _ch in enumerate(GSM_BASIC):
    if _ch.isascii() and _i != _ESC:
        _ascii_table[ord(_ch)] = _i
for _n, (_cp, _code) in enumerate(_ASCII_EXT):
    _ascii_table[_cp] = 0x80 + _n
_ASCII_TO_GSM = bytes(_ascii_table)
_PLACEHOLDERS = tuple(
    (bytes((0x80 + n,)), bytes((_ESC, code))) for n, (_cp, code) in enumerate(_ASCII_EXT)
)
_PLACEHOLDER_BYTES = bytes(range(0x80, 0x80 + len(_ASCII_EXT)))
del _ascii_table, _i, _ch, _n, _cp, _code

# Decoding: one charmap codec pass (0x1B kept, octets >= 0x80 -> '?'), then escape pairs,
# looked up by their already-decoded form, only when an escape is present.
_DEC_TABLE = GSM_BASIC + "?" * 128
_ESC_PAIRS = {"\x1b" + _DEC_TABLE[code]: ch for code, ch in GSM_EXTENSION.items()}
_ESC_PAIR_LIST = tuple(_ESC_PAIRS.items())
_ESC_RE = re.compile("\x1b.?", re.DOTALL)
_charmap_decode = codecs.charmap_decode


def _esc_pair(match: re.Match[str]) -> str:
    return _ESC_PAIRS.get(match[0], "?")


def _unescape(text: str) -> str:
    """Resolve escape pairs in charmap-decoded text."""
    if "\x1b\x1b" in text:
        # Escape runs: pairs must be read left to right, one match at a time.
        return _ESC_RE.sub(_esc_pair, text)
    # Every escape is followed by a non-escape, so pairs cannot overlap: C-level replaces.
    for pair, ch in _ESC_PAIR_LIST:
        if pair in text:
            text = text.replace(pair, ch)
    if "\x1b" in text:
        text = _ESC_RE.sub("?", text)  # unknown codes and a trailing escape
    return text


def _expand_placeholders(septets: bytes) -> bytes:
    for placeholder, pair in _PLACEHOLDERS:
        if placeholder in septets:
            septets = septets.replace(placeholder, pair)
    return septets


def _not_gsm(text: str) -> TextEncodeError:
    bad = next(ch for ch in text if ch not in _GSM_SET)
    return TextEncodeError(f"{bad!r} (U+{ord(bad):04X}) is not in the GSM 7-bit alphabet")


# --- GSM 7-bit, unpacked -------------------------------------------------------------------


def is_gsm7(text: str) -> bool:
    """True when every character has a GSM 03.38 septet (basic or extension table)."""
    if text.isascii():
        return _INVALID not in text.encode("ascii").translate(_ASCII_TO_GSM)
    return _GSM_SET.issuperset(text)


def gsm7_septets(text: str) -> int | None:
    """Septets ``text`` takes in GSM 7-bit (extension characters count 2), None if it can't."""
    if text.isascii():
        septets = text.encode("ascii").translate(_ASCII_TO_GSM)
        if septets.isascii():
            return len(septets)
        if _INVALID in septets:
            return None
        # Each placeholder stands for two septets.
        return 2 * len(septets) - len(septets.translate(None, _PLACEHOLDER_BYTES))
    if not _GSM_SET.issuperset(text):
        return None
    return len(text.translate(_ENC_FULL))


def encode_gsm7(text: str) -> bytes:
    """One septet per octet (unpacked, SMPP data_coding 0); extension chars as 0x1B + code."""
    if text.isascii():
        septets = text.encode("ascii").translate(_ASCII_TO_GSM)
        if septets.isascii():
            return septets
        if _INVALID not in septets:
            return _expand_placeholders(septets)
        raise _not_gsm(text)
    try:
        return text.translate(_ENC_FULL).encode("latin-1")
    except UnicodeEncodeError:
        raise _not_gsm(text) from None


def decode_gsm7(data: bytes) -> str:
    """Unpacked septets to text; lenient, never raises.

    Octets above 0x7F, escapes to an unknown extension code (incl. 0x1B 0x1B) and a lone
    trailing escape become '?' (23.038 would show the base character; '?' keeps the fault
    visible in logs and matching).
    """
    text = _charmap_decode(data, "strict", _DEC_TABLE)[0]
    return _unescape(text) if "\x1b" in text else text


# --- GSM 7-bit, packed (3GPP 23.038 6.1.2.1.1) --------------------------------------------
#
# The septets are moved together with O(log n) big-integer mask-and-shift steps instead of
# one Python iteration per septet: at level k each lane of 8*2**k bits holds 7*2**k valid
# bits at its bottom; one step merges pairs of lanes. Masks are cached per power-of-two size.

_MaskLevels = tuple[int, list[tuple[int, int, int, int]]]
_mask_cache: dict[int, _MaskLevels] = {}


def _repeat(pattern: int, width: int, times: int) -> int:
    return int.from_bytes(pattern.to_bytes(width, "little") * times, "little")


def _mask_levels(nbytes: int) -> _MaskLevels:
    """0x7F per octet, and (low, high_spread, high_packed, shift) per level, for ``nbytes``."""
    size = 1
    while size < nbytes:
        size *= 2
    cached = _mask_cache.get(size)
    if cached is None:
        levels = []
        lane = 1  # octets per sub-lane: w = 8 * lane bits, of which v = 7 * lane are valid
        while lane < size:
            w, v = 8 * lane, 7 * lane
            ones, times = (1 << v) - 1, size // (2 * lane)
            levels.append(
                (
                    _repeat(ones, 2 * lane, times),
                    _repeat(ones << w, 2 * lane, times),
                    _repeat(ones << v, 2 * lane, times),
                    w - v,
                )
            )
            lane *= 2
        cached = _mask_cache[size] = (_repeat(0x7F, 1, size), levels)
    return cached


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values into octets, LSB first, after ``fill_bits`` (0-6) zero bits.

    ``fill_bits`` aligns the text to a septet boundary after a UDH. The high bit of each
    input octet is ignored. No CR padding of a final spare septet (that is a CBS/USSD rule).
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    n = len(septets)
    mask7, levels = _mask_levels(n)
    x = int.from_bytes(septets, "little") & mask7
    for low, high, _packed, shift in levels:
        x = (x & low) | ((x & high) >> shift)
    return (x << fill_bits).to_bytes((7 * n + fill_bits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """The first ``count`` septets packed in ``data`` after ``fill_bits`` (0-6) bits.

    ``count`` comes from the septet-counted user data length; raises ValueError when
    ``data`` is too short to hold them (silently inventing '@' septets would hide the bug).
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0-6, not {fill_bits}")
    if count < 0 or 7 * count + fill_bits > 8 * len(data):
        raise ValueError(f"{len(data)} octets cannot hold {count} septets after {fill_bits} bits")
    x = (int.from_bytes(data, "little") >> fill_bits) & ((1 << (7 * count)) - 1)
    for low, _spread, packed, shift in reversed(_mask_levels(count)[1]):
        x = (x & low) | ((x & packed) << shift)
    return x.to_bytes(count, "little")


# --- UCS-2 / UTF-16 ------------------------------------------------------------------------


def encode_ucs2(text: str) -> bytes:
    """UTF-16BE: UCS-2 plus surrogate pairs beyond the BMP (emoji), as handsets send it.

    Never raises: a lone surrogate in ``text`` goes out as is, like a broken handset would.
    """
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    """Lenient: an odd trailing octet or a lone surrogate becomes U+FFFD."""
    return data.decode("utf-16-be", "replace")


# --- data_coding dispatch ------------------------------------------------------------------

_SMPP_ALPHABETS = {0: Alphabet.GSM7, 1: Alphabet.ASCII, 3: Alphabet.LATIN1, 8: Alphabet.UCS2}


def _classify(dc: int) -> Alphabet:
    if dc < 0x10:  # SMPP's own table; 2, 4-7, 9-15 are 8-bit for sizing
        return _SMPP_ALPHABETS.get(dc, Alphabet.EIGHT_BIT)
    group = dc >> 4
    if group < 0x8:  # 00xx / 01xx: general data coding (01: marked for deletion)
        if dc & 0x20:
            return Alphabet.EIGHT_BIT  # compressed: octets, not text
        # Bits 3-2; 11 is reserved and, per 23.038, read as the default alphabet.
        return (Alphabet.GSM7, Alphabet.EIGHT_BIT, Alphabet.UCS2, Alphabet.GSM7)[(dc >> 2) & 3]
    if group == 0xE:
        return Alphabet.UCS2  # message waiting indication, store, UCS-2
    if group == 0xF:
        return Alphabet.EIGHT_BIT if dc & 0x04 else Alphabet.GSM7  # message class
    return Alphabet.GSM7  # 0xC/0xD message waiting (GSM 7-bit); 0x8-0xB reserved -> default


_ALPHABETS = tuple(_classify(dc) for dc in range(256))


def alphabet_of(data_coding: int) -> Alphabet:
    """Which alphabet a data_coding value means, 23.038 coding groups included."""
    return _ALPHABETS[data_coding & 0xFF]


def _decode_ascii(data: bytes) -> str:
    return data.decode("ascii", "replace")


def _decode_latin1(data: bytes) -> str:
    return data.decode("latin-1")


def _encode_ascii(text: str) -> bytes:
    return text.encode("ascii")


def _encode_latin1(text: str) -> bytes:
    return text.encode("latin-1")


def _codec_pair(name: str) -> tuple[Callable[[str], bytes], Callable[[bytes], str]]:
    def enc(text: str) -> bytes:
        return text.encode(name)

    def dec(data: bytes) -> str:
        return data.decode(name, "replace")

    return enc, dec


_ENCODERS: dict[Alphabet, Callable[[str], bytes]] = {
    Alphabet.GSM7: encode_gsm7,
    Alphabet.UCS2: encode_ucs2,
    Alphabet.ASCII: _encode_ascii,
    Alphabet.LATIN1: _encode_latin1,
    Alphabet.EIGHT_BIT: _encode_latin1,  # octets pass through as code points 0-255
}
_DECODERS: dict[Alphabet, Callable[[bytes], str]] = {
    Alphabet.GSM7: decode_gsm7,
    Alphabet.UCS2: decode_ucs2,
    Alphabet.ASCII: _decode_ascii,
    Alphabet.LATIN1: _decode_latin1,
    Alphabet.EIGHT_BIT: _decode_latin1,
}
# SMPP single-byte national charsets Python has codecs for; still 8-bit for sizing.
_NATIONAL: dict[int, tuple[Callable[[str], bytes], Callable[[bytes], str]]] = {
    DataCoding.CYRILLIC: _codec_pair("iso8859-5"),
    DataCoding.LATIN_HEBREW: _codec_pair("iso8859-8"),
}
_ENCODE_BY_DC = tuple(
    _NATIONAL[dc][0] if dc in _NATIONAL else _ENCODERS[_ALPHABETS[dc]] for dc in range(256)
)
_DECODE_BY_DC = tuple(
    _NATIONAL[dc][1] if dc in _NATIONAL else _DECODERS[_ALPHABETS[dc]] for dc in range(256)
)


def encode_text(text: str, data_coding: int) -> bytes:
    """Encode for ``data_coding``; 8-bit codings take code points 0-255 as octets."""
    try:
        return _ENCODE_BY_DC[data_coding & 0xFF](text)
    except UnicodeEncodeError as exc:
        raise TextEncodeError(
            f"{text[exc.start]!r} (U+{ord(text[exc.start]):04X}) does not fit "
            f"data_coding {data_coding}"
        ) from None


def decode_text(payload: bytes, data_coding: int) -> str:
    """Text for display and matching; never raises (8-bit binary decodes as Latin-1)."""
    return _DECODE_BY_DC[data_coding & 0xFF](payload)


def choose_coding(text: str) -> tuple[int, bytes]:
    """GSM 7-bit (data_coding 0) when every character fits, else UCS-2 (8): Arabic is UCS-2."""
    if text.isascii():
        septets = text.encode("ascii").translate(_ASCII_TO_GSM)
        if septets.isascii():
            return 0, septets
        if _INVALID not in septets:
            return 0, _expand_placeholders(septets)
        return 8, text.encode("utf-16-be")
    if _GSM_SET.issuperset(text):
        return 0, text.translate(_ENC_FULL).encode("latin-1")
    return 8, text.encode("utf-16-be", "surrogatepass")
