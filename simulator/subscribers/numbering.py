"""Egyptian mobile numbers in every form a gateway or a person sends them.

The canonical form is international without '+': ``2010XXXXXXXX`` (12 ASCII digits:
country code 20, a mobile prefix 10/11/12/15, eight digits). ``normalize`` runs once per
message, so the canonical form is recognised by a few string tests before anything else;
so the four plain forms gateways send (``2010…``, ``010…``, ``+2010…``, ``002010…``) are
recognised by a few string tests; the rest (Arabic-Indic digits, separators, bidi marks)
take a slower general path. No regex: the string tests measured about 2x faster than one
``fullmatch`` for the canonical and national forms.
"""

from __future__ import annotations

from .profile import PREFIX_OPERATOR, Operator

#: National significant-number prefixes of the four mobile operators (01X without the 0).
MOBILE_PREFIXES = tuple(PREFIX_OPERATOR)
_INTERNATIONAL_HEADS = tuple("20" + p for p in MOBILE_PREFIXES)
_NATIONAL_HEADS = tuple("0" + p for p in MOBILE_PREFIXES)
_PLUS_HEADS = tuple("+20" + p for p in MOBILE_PREFIXES)
_ZERO_ZERO_HEADS = tuple("0020" + p for p in MOBILE_PREFIXES)

#: Arabic-Indic (٠-٩) and Extended Arabic-Indic (۰-۹, Persian/Urdu keyboards) digits to
#: ASCII; the separators people and spreadsheets put in numbers, and the invisible bidi
#: marks that Arabic text wraps numbers in, are dropped.
_TO_ASCII = str.maketrans(
    "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹＋",
    "01234567890123456789+",
    " -.()/\u00a0\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
)

TON_INTERNATIONAL = 1
TON_NATIONAL = 2


def normalize(addr: str, ton: int | None = None) -> str | None:
    """The canonical ``2010XXXXXXXX`` of an Egyptian mobile number, or None.

    Accepted: ``201012345678``, ``01012345678``, ``+201012345678``, ``00201012345678``,
    ``+2001012345678`` (the trunk 0 kept after the country code, a common mistake), any of
    them in Arabic-Indic digits or with spaces/dashes/bidi marks, and the bare national
    significant number ``1012345678`` only when ``ton`` says national (2): with TON 1 it
    would be a North American number, unknown TON is too ambiguous. Otherwise the digits
    decide and ``ton`` is ignored, because gateways mislabel TON often and no other
    country's numbers take these forms.
    """
    # Fast paths for the four plain ASCII forms gateways send; isascii() is O(1).
    if addr.isascii():
        n = len(addr)
        if n == 12:
            if addr.startswith(_INTERNATIONAL_HEADS) and addr.isdigit():
                return addr
        elif n == 11:
            if addr.startswith(_NATIONAL_HEADS) and addr.isdigit():
                return "20" + addr[1:]
        elif n == 13:
            if addr.startswith(_PLUS_HEADS) and addr[1:].isdigit():
                return addr[1:]
        elif n == 14 and addr.startswith(_ZERO_ZERO_HEADS) and addr.isdigit():
            return addr[2:]
    return _normalize_slow(addr, ton)


def _normalize_slow(addr: str, ton: int | None) -> str | None:
    """Every accepted form, the reference the fast paths above must agree with."""
    addr = addr.translate(_TO_ASCII)
    if not addr.isascii():
        return None
    international = False
    if addr.startswith("+"):
        addr, international = addr[1:], True
    elif addr.startswith("00"):
        addr, international = addr[2:], True
    if not addr.isdigit():
        return None
    n = len(addr)
    if n == 12:
        canonical = addr
    elif n == 13 and addr.startswith("200"):
        canonical = "20" + addr[3:]
    elif international:
        return None
    elif n == 11 and addr[0] == "0":
        canonical = "20" + addr[1:]
    elif n == 10 and ton == TON_NATIONAL:
        canonical = "20" + addr
    else:
        return None
    return canonical if canonical.startswith(_INTERNATIONAL_HEADS) else None


def is_mobile(addr: str, ton: int | None = None) -> bool:
    """Whether ``addr`` is an Egyptian mobile number in any accepted form."""
    return normalize(addr, ton) is not None


def national(msisdn: str) -> str:
    """The national form ``010XXXXXXXX`` (what people type); ValueError if not a mobile."""
    canonical = normalize(msisdn)
    if canonical is None:
        raise ValueError(f"not an Egyptian mobile number: {msisdn!r}")
    return "0" + canonical[2:]


def prefix_operator(msisdn: str) -> Operator | None:
    """The operator a number's prefix belongs to (ported numbers excepted), or None."""
    canonical = normalize(msisdn)
    if canonical is None:
        return None
    return PREFIX_OPERATOR[canonical[2:4]]
