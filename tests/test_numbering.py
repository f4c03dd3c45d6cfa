"""Egyptian mobile numbers: every form a gateway or a person sends, and what is not one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.subscribers.numbering import (
    _normalize_slow,
    is_mobile,
    national,
    normalize,
    prefix_operator,
)
from simulator.subscribers.profile import Operator

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@pytest.mark.parametrize(
    ("addr", "ton"),
    [
        ("201012345678", 1),
        ("201012345678", None),
        ("01012345678", 2),
        ("01012345678", None),
        ("01012345678", 1),  # mislabelled TON: the digits decide
        ("+201012345678", None),
        ("00201012345678", None),
        ("+2001012345678", None),  # trunk zero kept after the country code
        ("1012345678", 2),  # national significant number, TON national
        ("٢٠١٠١٢٣٤٥٦٧٨", 1),
        ("٠١٠١٢٣٤٥٦٧٨", None),
        ("+٢٠١٠١٢٣٤٥٦٧٨", None),
        ("۰۱۰۱۲۳۴۵۶۷۸", None),  # Extended Arabic-Indic (Persian keyboards)
        ("010 1234 5678", None),
        ("+20 10 1234-5678", None),
        ("\u200f٠١٠١٢٣٤٥٦٧٨\u200f", None),  # wrapped in right-to-left marks
        ("(010) 1234.5678", None),
        ("＋201012345678", None),  # full-width plus
        ("2010-12345678", None),
    ],
)
def test_every_form_normalises_to_the_canonical_number(addr: str, ton: int | None) -> None:
    assert normalize(addr, ton) == "201012345678"


@pytest.mark.parametrize(
    ("addr", "ton"),
    [
        ("", None),
        ("1442", 3),  # the short code
        ("20101234567", None),  # 11 digits international: one short
        ("2010123456789", None),  # one long
        ("0101234567", None),  # national, one short
        ("010123456789", None),  # national, one long
        ("201312345678", None),  # 013: not a mobile prefix
        ("201412345678", None),
        ("201612345678", None),
        ("01312345678", None),
        ("0223456789", None),  # a Cairo landline
        ("20223456789", None),
        ("966501234567", 1),  # Saudi mobile
        ("+01012345678", None),  # '+' then a national number
        ("0001012345678", None),
        ("1012345678", None),  # bare NSN: TON unknown
        ("1012345678", 1),  # TON international: a North American number
        ("2010123456a8", None),
        ("20101234567٨x", None),
        ("RapidPro", 5),
        ("2010١٢٣٤٥٦٧٨²", None),  # superscript two is a digit to isdigit(), not to us
        ("٢٠١٠١٢٣٤٥٦٧", None),
        ("++201012345678", None),
    ],
)
def test_what_is_not_an_egyptian_mobile_is_none(addr: str, ton: int | None) -> None:
    assert normalize(addr, ton) is None
    assert not is_mobile(addr, ton)


def test_each_mobile_prefix_and_its_operator() -> None:
    for prefix, op in (
        ("10", Operator.VODAFONE),
        ("11", Operator.ETISALAT),
        ("12", Operator.ORANGE),
        ("15", Operator.WE),
    ):
        assert normalize(f"0{prefix}98765432") == f"20{prefix}98765432"
        assert prefix_operator(f"+20{prefix}98765432") is op
        assert prefix_operator(f"20{prefix}98765432") is op
    assert prefix_operator("201312345678") is None
    assert prefix_operator("1442") is None


def test_national_form() -> None:
    assert national("201512345678") == "01512345678"
    assert national("+٢٠١١٠٠٠٠٠٠٠٠") == "01100000000"
    assert national("01212345678") == "01212345678"
    with pytest.raises(ValueError, match="not an Egyptian mobile"):
        national("1442")


suffixes = st.integers(min_value=0, max_value=10**8 - 1).map(lambda s: f"{s:08d}")
prefixes = st.sampled_from(["10", "11", "12", "15"])


@given(prefixes, suffixes, st.sampled_from([None, 0, 1, 2]))
def test_all_forms_agree(prefix: str, suffix: str, ton: int | None) -> None:
    canonical = f"20{prefix}{suffix}"
    forms = [
        canonical,
        f"0{prefix}{suffix}",
        f"+{canonical}",
        f"00{canonical}",
        f"+200{prefix}{suffix}",
        canonical.translate(ARABIC_INDIC),
        f"0{prefix}{suffix}".translate(PERSIAN),
        f"+20 {prefix} {suffix[:4]} {suffix[4:]}",
    ]
    for form in forms:
        assert normalize(form, ton) == canonical, form
        assert _normalize_slow(form, ton) == canonical, form
    assert national(canonical) == f"0{prefix}{suffix}"


@given(st.text(alphabet="0123456789+ -٠١٢٣٤٥٦٧٨٩", max_size=16), st.sampled_from([None, 1, 2]))
def test_fast_paths_agree_with_the_general_path(addr: str, ton: int | None) -> None:
    """The fast paths are shortcuts, never a different answer."""
    result = normalize(addr, ton)
    assert result == _normalize_slow(addr, ton)
    if result is not None:
        assert len(result) == 12 and result.isascii() and result.isdigit()
        assert result[:4] in ("2010", "2011", "2012", "2015")
