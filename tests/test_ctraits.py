"""The C ``Population.traits`` (``_ctraits``, optional) returns Python's tuples exactly.

Skipped when the extension is not built (``build_ctraits.py``) or is switched off
(``SMSIM_NO_CTRAITS=1``). Each case compares the C object against ``_traits_py`` on
~200,000 addresses in every form the SMSC may see: members and non-members in the four
plain ASCII forms the C code handles itself, and the forms it hands back to Python
(Arabic-Indic digits, separators, ``+200…``, bare national numbers, short codes, foreign
numbers, wrong heads and lengths, letters, the empty string).
"""

from __future__ import annotations

import random

import pytest

from simulator.config import PopulationConfig
from simulator.subscribers import population as population_module
from simulator.subscribers.population import PREFIX_CAPACITY, Population, Traits

pytestmark = pytest.mark.skipif(
    population_module._CTraits is None, reason="_ctraits not built or SMSIM_NO_CTRAITS set"
)

_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def addresses(pop: Population, n: int, rng: random.Random) -> list[str]:
    """About ``n`` addresses: 60 % from members, the rest strangers and junk."""
    members = [pop.msisdn(rng.randrange(pop.size)) for _ in range(n // 2)]
    strangers = [f"20{rng.choice('1012')}{rng.choice('0125')}{rng.randrange(PREFIX_CAPACITY):08d}"
                 for _ in range(n // 5)]  # fmt: skip
    out: list[str] = []
    for m in members + strangers:
        form = rng.randrange(12)
        national = "0" + m[2:]
        if form < 4:
            out.append(m)
        elif form < 6:
            out.append(national)
        elif form == 6:
            out.append("+" + m)
        elif form == 7:
            out.append("00" + m)
        elif form == 8:
            out.append(national.translate(_INDIC if rng.random() < 0.7 else _PERSIAN))
        elif form == 9:
            out.append(f"{national[:4]} {national[4:7]}-{national[7:]}")
        elif form == 10:
            out.append("+200" + m[2:])
        else:
            out.append("\u200e" + m + "\u200f")
    for _ in range(n - len(out)):
        kind = rng.randrange(10)
        digits = f"{rng.randrange(10**12):012d}"
        if kind == 0:
            out.append("20" + rng.choice("13456789") + digits[:9])  # 12 digits, wrong head
        elif kind == 1:
            out.append("0" + rng.choice("023456789") + digits[:9])  # 11, not 01X
        elif kind == 2:
            out.append("2010" + digits[: rng.randrange(12)])  # wrong length
        elif kind == 3:
            m = rng.choice(members)
            m = rng.choice([m, "0" + m[2:], "+" + m, "00" + m])
            i = rng.randrange(len(m))
            out.append(m[:i] + rng.choice("xA ./#") + m[i + 1 :])  # one non-digit
        elif kind == 4:
            out.append(rng.choice(["1442", "", "0", "+", "00", "447700900123", "+1 555 0100"]))
        elif kind == 5:
            out.append("1" + rng.choice("0125") + digits[:8])  # bare national (TON unknown)
        elif kind == 6:
            out.append("+20" + rng.choice("13456789") + digits[:9])
        elif kind == 7:
            out.append("0020" + rng.choice("0125") + digits[:9])  # 002 then wrong head
        elif kind == 8:
            out.append("+" + "20" + rng.choice("1") + rng.choice("0125") + digits[:8] + "7")
        else:
            out.append("٢٠١" + digits[:9])  # Arabic-Indic head, ASCII tail
    rng.shuffle(out)
    return out


_HEADS = ("10", "11", "12", "15")


def parsed_in_c(a: str) -> bool:
    """The forms _ctraits.c parses itself (numbering.normalize's fast paths)."""
    if not a.isascii() or not a[1:].isdigit():
        return False
    n = len(a)
    return (
        (n == 12 and a[:2] == "20" and a[2:4] in _HEADS and a.isdigit())
        or (n == 11 and a[0] == "0" and a[1:3] in _HEADS and a.isdigit())
        or (n == 13 and a[:3] == "+20" and a[3:5] in _HEADS)
        or (n == 14 and a[:4] == "0020" and a[4:6] in _HEADS and a.isdigit())
    )


CASES: list[dict[str, object]] = [
    dict(seed=1442),
    dict(seed=0),  # 2012's p⁻¹ is 91,702,593: (number - a)·p⁻¹ passes 2^64
    dict(seed=7, size=2_000_000, ported_share=0.25, unassigned_share=0.3),
    dict(seed=-3, size=1_000, ported_share=1.0, unassigned_share=0.0, barred_share=0.5),
    dict(seed=99, size=400_000_000),  # every mobile number a member
    dict(seed=2**70 + 1, size=50_000_000,
         operator_shares={"vodafone": 1.0, "orange": 0.0, "etisalat": 0.0, "we": 0.0}),
    dict(seed=5, size=250_000_000, operator_shares={"vodafone": 0.9, "we": 0.1},
         ported_share=0.5, unassigned_share=1.0, female_share=0.0, literacy=1.0,
         script_mix={"franco": 1.0}, availability_mix={"dead": 1.0}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c['seed']}-{c.get('size', 0)}")
def test_c_traits_are_python_traits(case: dict[str, object]) -> None:
    pop = Population(PopulationConfig(**case))  # type: ignore[arg-type]
    assert pop.traits is pop._ctraits
    rng = random.Random(str(case))
    batch = addresses(pop, 200_000, rng)
    c_traits, py_traits = pop._ctraits, pop._traits_py
    assert c_traits is not None
    mismatches = [a for a in batch if c_traits(a) != py_traits(a)]
    assert not mismatches, mismatches[:10]
    # The comparison is of C against Python: most addresses take the C path, only the
    # forms the C code does not parse go back to Python.
    handed_back: list[str] = []

    def fallback(address: str) -> Traits:
        handed_back.append(address)
        return py_traits(address)

    assert population_module._CTraits is not None
    counting = population_module._CTraits(
        fallback, pop._k1, pop._k2, pop._c, pop._q_inv, pop.size, pop._by_head, pop._person
    )
    assert [counting(a) for a in batch[:20_000]] == [py_traits(a) for a in batch[:20_000]]
    handled = [a for a in batch[:20_000] if parsed_in_c(a)]
    assert handed_back == [a for a in batch[:20_000] if not parsed_in_c(a)]
    assert len(handled) > 0.4 * 20_000, len(handled)
    # Same objects where Python shares them: the tables' tuples, not copies.
    for a in batch[:2_000]:
        c, p = c_traits(a), py_traits(a)
        assert c[2] is p[2] and c[3] is p[3]
        assert type(c[1]) is int and type(c[4]) is int
    # Every index the C code gives is the member's.
    for a in batch[:5_000]:
        canonical, index, *_ = c_traits(a)
        if index >= 0:
            assert pop.msisdn(index) == canonical


def test_cases_cover_a_product_past_64_bits() -> None:
    """The C code reduces (number - a) mod 10^8 before multiplying by p⁻¹: in 64 bits the
    product overflows for p⁻¹ above ~9.17·10^7; one case has such a block."""

    def overflows(case: dict[str, object]) -> bool:
        pop = Population(PopulationConfig(**case))  # type: ignore[arg-type]
        top = (max(pop._by_head) + 1) * PREFIX_CAPACITY
        return any(top * e[4] >= 2**64 for e in pop._by_head.values())

    assert any(overflows(case) for case in CASES)


def test_c_traits_errors_and_subclasses() -> None:
    pop = Population(PopulationConfig(seed=3))
    c_traits = pop._ctraits
    assert c_traits is not None
    for bad in (None, 201012345678, b"201012345678"):
        with pytest.raises((AttributeError, TypeError)) as c_err:
            c_traits(bad)  # type: ignore[arg-type]
        with pytest.raises((AttributeError, TypeError)) as py_err:
            pop._traits_py(bad)  # type: ignore[arg-type]
        assert c_err.type is py_err.type
    with pytest.raises(TypeError):
        c_traits()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c_traits("201012345678", "x")  # type: ignore[call-arg]

    class Addr(str):
        pass

    member = Addr(pop.msisdn(17))
    assert c_traits(member) == pop._traits_py(member)
    assert c_traits(member)[0] is member  # as normalize returns a canonical str as given
    assert pop.profile(member) == pop.subscriber(pop._traits_py(member))


def test_c_traits_collectable() -> None:
    """Population -> C object -> Population._traits_py is a cycle the GC frees."""
    import gc

    def live() -> int:
        return sum(type(o) is population_module._CTraits for o in gc.get_objects())

    gc.collect()
    before = live()
    for seed in range(20):
        pop = Population(PopulationConfig(seed=seed, size=10_000))
        pop.traits(pop.msisdn(0))
        del pop
    gc.collect()
    assert live() == before


# Numbers of the default population (seed 1442) whose alias draws fall exactly on a bin's
# threshold or one either side (found by a scan of all 4·10^8 numbers; the test checks
# that they do, with Python's arithmetic): random addresses meet a threshold about once
# in 2^19 draws, so ``<`` against ``<=`` would pass unseen without these.
_BOUNDARIES = {
    "line": ["201002091151", "201004990926", "201010508647", "201002556900", "201010820136",
             "201014288533", "201003423463", "201007699272", "201009650362"],
    "person": ["201000883077", "201000887839", "201001045673", "201000286257", "201006146765",
               "201006302491", "201000441214", "201002129207", "201004270666"],
}  # fmt: skip


def test_c_traits_at_alias_thresholds() -> None:
    pop = Population(PopulationConfig())
    c_traits = pop._ctraits
    assert c_traits is not None
    seen: set[tuple[str, int]] = set()
    for table, numbers in _BOUNDARIES.items():
        for m in numbers:
            number = int(m)
            h = population_module._mix64(number ^ pop._k1)
            if table == "line":
                entry = pop._by_head[number // PREFIX_CAPACITY]
                bits, thr, x = entry[6], entry[8], h & 0xFFFFFFFF
            else:
                bits, _, thr, _, _ = pop._person
                x = h >> 32
            d = (x >> bits) - thr[x & ((1 << bits) - 1)]
            assert d in (-1, 0, 1)
            seen.add((table, d))
            for form in (m, "0" + m[2:], "+" + m, "00" + m):
                assert c_traits(form) == pop._traits_py(form)
    assert len(seen) == 6


@pytest.mark.parametrize("seed", range(3))
def test_the_c_draws_are_pythons_doubles(seed: int) -> None:
    """``network_delay`` and ``draw_unit`` give the Python formulas' doubles exactly, for
    entropies over and under 64 bits, any salt and message number."""
    from simulator.subscribers import delivery
    from simulator.subscribers.delivery import mix64, unit

    assert delivery.c_network_delay is not None and delivery.c_draw_unit is not None
    rng = random.Random(seed)
    m64, golden = (1 << 64) - 1, 0x9E3779B97F4A7C15
    for median, sigma in ((3.0, 0.6), (1e-4, 2.5), (0.5, 0.05)):
        model = delivery.DeliveryModel(
            delivery.DeliveryConfig(network_delay=median, network_delay_sigma=sigma)
        )
        fast = model.delay_function
        assert fast != model.delay_for  # the C draw is the one the engine gets
        for _ in range(20_000):
            entropy = rng.getrandbits(rng.choice((1, 32, 63, 64, 80)))
            salt = rng.randrange(10 ** rng.randrange(1, 22))
            seq = rng.randrange(1 << rng.randrange(1, 70))
            assert fast(entropy, salt) == model.delay_for(entropy, salt)
            want = unit(mix64((entropy ^ salt ^ (seq * golden)) & m64))
            assert delivery.c_draw_unit(entropy, salt, seq) == want
    with pytest.raises(TypeError):
        delivery.c_draw_unit(1.5, 2, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        delivery.c_network_delay(1.0, 1.0, 2)  # type: ignore[call-arg]


def test_answers_decides_alike_with_and_without_the_c_draw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from simulator.subscribers import behaviour
    from simulator.subscribers.profile import Responsiveness

    model = behaviour.BehaviourModel()
    rng = random.Random(7)
    texts = ["Q1: 1) yes 2) no", "شكرا", "Rate us 1-5", "Reply YES or NO"]
    cases = [
        (rng.getrandbits(64), rng.random() < 0.1, rng.choice(list(Responsiveness)),
         rng.choice(texts), rng.randrange(50))
        for _ in range(30_000)
    ]  # fmt: skip
    with_c = [model.answers(*c) for c in cases]
    monkeypatch.setattr(behaviour, "_draw_unit", None)
    without = [model.answers(*c) for c in cases]
    assert with_c == without
    assert 0.05 < sum(with_c) / len(with_c) < 0.95  # both outcomes occur
