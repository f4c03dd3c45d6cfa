"""Text on the wire: GSM 03.38 (unpacked, as SMPP carries it), Latin-1, IA5, UCS-2.

Tables are built once; encoding and decoding go through ``str.translate`` / codecs, not
per-character Python loops, because every MT and MO passes through here.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class TextEncodeError(ValueError):
    """A character the chosen alphabet cannot carry."""


class DataCoding(IntEnum):
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
    GSM7 = "gsm7"
    EIGHT_BIT = "8bit"
    UCS2 = "ucs2"
    LATIN1 = "latin1"
    ASCII = "ascii"


# GSM 03.38 basic character set, index = septet value.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: reached with the escape 0x1B.
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
assert len(GSM_BASIC) == 128

_ENCODE: dict[int, str] = {}
for _i, _ch in enumerate(GSM_BASIC):
    if _i != 0x1B:
        _ENCODE[ord(_ch)] = chr(_i)
for _code, _ch in GSM_EXTENSION.items():
    _ENCODE[ord(_ch)] = "\x1b" + chr(_code)
_ENCODE_TABLE = str.maketrans(_ENCODE)
_BASIC_SET = frozenset(ch for i, ch in enumerate(GSM_BASIC) if i != 0x1B)
_EXT_SET = frozenset(GSM_EXTENSION.values())
_GSM_SET = _BASIC_SET | _EXT_SET
_DECODE_BASIC = str.maketrans({i: ch for i, ch in enumerate(GSM_BASIC) if i != 0x1B})


def is_gsm7(text: str) -> bool:
    return _GSM_SET.issuperset(text)


def gsm7_septets(text: str) -> int | None:
    """Septets ``text`` takes in GSM 7-bit (extension characters count 2), None if it can't."""
    if not _GSM_SET.issuperset(text):
        return None
    return len(text) + sum(1 for ch in text if ch in _EXT_SET)


def encode_gsm7(text: str) -> bytes:
    """One septet per octet (unpacked), extension characters as 0x1B + code."""
    if not _GSM_SET.issuperset(text):
        bad = next(ch for ch in text if ch not in _GSM_SET)
        raise TextEncodeError(f"{bad!r} (U+{ord(bad):04X}) is not in the GSM 7-bit alphabet")
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Lenient: unknown septets and escapes become '?', octets above 0x7F are masked."""
    if b"\x1b" not in data and max(data, default=0) < 0x80:
        return data.decode("latin-1").translate(_DECODE_BASIC)
    out = []
    i, n = 0, len(data)
    while i < n:
        c = data[i] & 0x7F
        if c == 0x1B:
            if i + 1 < n:
                out.append(GSM_EXTENSION.get(data[i + 1] & 0x7F, "?"))
                i += 2
                continue
            out.append("?")  # a lone escape at the end
        else:
            out.append(GSM_BASIC[c])
        i += 1
    return "".join(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values into octets (3GPP 23.038 6.1.2.1.1), after ``fill_bits`` zero bits."""
    acc = 0
    nbits = fill_bits
    out = bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """The first ``count`` septets packed in ``data`` after ``fill_bits`` bits."""
    value = int.from_bytes(data, "little")
    value >>= fill_bits
    out = bytearray()
    for _ in range(count):
        out.append(value & 0x7F)
        value >>= 7
    return bytes(out)


def encode_ucs2(text: str) -> bytes:
    """UTF-16BE: UCS-2 plus surrogate pairs for characters beyond the BMP (emoji)."""
    return text.encode("utf-16-be", "surrogatepass")


def decode_ucs2(data: bytes) -> str:
    """Lenient: an odd trailing octet or a lone surrogate becomes U+FFFD."""
    return data.decode("utf-16-be", "replace")


def alphabet_of(data_coding: int) -> Alphabet:
    """Which alphabet a data_coding value means, coding groups included (23.038 ch. 4)."""
    dc = data_coding & 0xFF
    if dc < 0x10:
        if dc == 8:
            return Alphabet.UCS2
        if dc == 0:
            return Alphabet.GSM7
        if dc == 1:
            return Alphabet.ASCII
        if dc == 3:
            return Alphabet.LATIN1
        return Alphabet.EIGHT_BIT
    group = dc >> 4
    if group <= 0x07:
        # General data coding (00xx / 01xx): bits 3-2 give the alphabet.
        bits = (dc >> 2) & 0x03
        return (Alphabet.GSM7, Alphabet.EIGHT_BIT, Alphabet.UCS2, Alphabet.EIGHT_BIT)[bits]
    if group in (0x0C, 0x0D):
        return Alphabet.GSM7  # message waiting, discard/store, GSM 7-bit
    if group == 0x0E:
        return Alphabet.UCS2  # message waiting, store, UCS-2
    if group == 0x0F:
        return Alphabet.EIGHT_BIT if dc & 0x04 else Alphabet.GSM7
    return Alphabet.EIGHT_BIT


def encode_text(text: str, data_coding: int) -> bytes:
    alphabet = alphabet_of(data_coding)
    try:
        if alphabet is Alphabet.GSM7:
            return encode_gsm7(text)
        if alphabet is Alphabet.UCS2:
            return encode_ucs2(text)
        if alphabet is Alphabet.ASCII:
            return text.encode("ascii")
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise TextEncodeError(
            f"{text[exc.start]!r} does not fit data_coding {data_coding}"
        ) from exc


def decode_text(payload: bytes, data_coding: int) -> str:
    """Text for display and matching; 8-bit binary decodes as Latin-1 (never raises)."""
    alphabet = alphabet_of(data_coding)
    if alphabet is Alphabet.UCS2:
        return decode_ucs2(payload)
    if alphabet is Alphabet.GSM7:
        return decode_gsm7(payload)
    if alphabet is Alphabet.ASCII:
        return payload.decode("ascii", "replace")
    return payload.decode("latin-1")


def choose_coding(text: str) -> tuple[int, bytes]:
    """GSM 7-bit (data_coding 0) when every character fits, else UCS-2 (8)."""
    if _GSM_SET.issuperset(text):
        return DataCoding.SMSC_DEFAULT, text.translate(_ENCODE_TABLE).encode("latin-1")
    return DataCoding.UCS2, text.encode("utf-16-be", "surrogatepass")
