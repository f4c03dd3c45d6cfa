"""The derived population: numbering, membership, determinism, and attribute shares."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config import PopulationConfig
from simulator.subscribers.numbering import normalize
from simulator.subscribers.population import (
    GOVERNORATES,
    PREFIX_CAPACITY,
    AliasTable,
    Population,
    _mix64,
    _seed_word,
    _split,
)
from simulator.subscribers.profile import (
    OPERATOR_PREFIX,
    PREFIX_OPERATOR,
    Availability,
    Digits,
    Operator,
    Script,
    Subscriber,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = PopulationConfig()
SAMPLE = 200_000
SD = 5.0  # tolerance in binomial standard deviations


def pop_of(size: int = 3_500_000, seed: int = 1442, **kw: object) -> Population:
    return Population(PopulationConfig(size=size, seed=seed, **kw))  # type: ignore[arg-type]


def assert_share(count: int, n: int, p: float, what: str) -> None:
    """``count`` of ``n`` draws with probability ``p``, within SD binomial sds (exact at 0/1)."""
    if p in (0.0, 1.0):
        assert count == n * p, f"{what}: {count}/{n}, expected exactly {p}"
        return
    sd = math.sqrt(n * p * (1 - p))
    assert abs(count - n * p) <= SD * sd, f"{what}: {count / n:.5f}, expected {p:.5f} ± {SD}sd"


def assert_mix(values: Iterable[object], expected: dict[str, float], what: str) -> None:
    counts = Counter(getattr(v, "value", v) for v in values)
    n = sum(counts.values())
    assert set(counts) <= set(expected), f"{what}: unexpected {set(counts) - set(expected)}"
    for key, p in expected.items():
        assert_share(counts.get(key, 0), n, p, f"{what}={key}")


# --- numbering -------------------------------------------------------------------------------


def test_default_numbering_splits_the_population_by_operator_shares() -> None:
    pop = pop_of()
    assert pop.size == len(pop) == 3_500_000
    counts = {b.operator: b.count for b in pop.blocks}
    assert counts == {
        Operator.VODAFONE: 1_400_000,
        Operator.ORANGE: 875_000,
        Operator.ETISALAT: 770_000,
        Operator.WE: 455_000,
    }
    assert [b.prefix for b in pop.blocks] == ["010", "011", "012", "015"]
    for b in pop.blocks:
        assert math.gcd(b.p, PREFIX_CAPACITY) == 1
        assert PREFIX_CAPACITY // 5 <= b.p < PREFIX_CAPACITY


def test_every_member_of_a_small_population_is_distinct_and_round_trips() -> None:
    pop = pop_of(size=20_000)
    numbers = [pop.msisdn(i) for i in range(pop.size)]
    assert len(set(numbers)) == pop.size
    assert all(normalize(m) == m for m in numbers)
    assert [pop.index_of(m) for m in numbers] == list(range(pop.size))
    by_prefix = Counter(PREFIX_OPERATOR[m[2:4]] for m in numbers)
    assert by_prefix == {b.operator: b.count for b in pop.blocks}
    assert list(pop) == numbers


@pytest.mark.parametrize("size", [1, 2, 7, 3_500_000, 100_000_000, 400_000_000])
def test_round_trip_at_the_edges_and_random_indices(size: int) -> None:
    pop = pop_of(size=size)
    rng = random.Random(size)
    indices = {0, size - 1, size // 2}
    indices |= {b.start + d for b in pop.blocks for d in (-1, 0, 1) if 0 <= b.start + d < size}
    indices |= {rng.randrange(size) for _ in range(2_000)}
    for i in indices:
        m = pop.msisdn(i)
        assert len(m) == 12 and normalize(m) == m
        assert pop.index_of(m) == i
        assert m in pop
    for bad in (-1, size, size + 10**9):
        with pytest.raises(IndexError):
            pop.msisdn(bad)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=400_000_000), st.integers(), st.data())
def test_round_trip_property(size: int, seed: int, data: st.DataObject) -> None:
    pop = pop_of(size=size, seed=seed)
    i = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert pop.index_of(pop.msisdn(i)) == i
    prefix = data.draw(st.sampled_from(list(PREFIX_OPERATOR)))
    number = f"20{prefix}{data.draw(st.integers(0, PREFIX_CAPACITY - 1)):08d}"
    j = pop.index_of(number)
    assert j == -1 or pop.msisdn(j) == number


def test_index_of_accepts_every_form_and_rejects_non_mobiles() -> None:
    pop = pop_of()
    m = pop.msisdn(123_456)
    arabic = m.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for form in (m, "0" + m[2:], "+" + m, "00" + m, arabic):
        assert pop.index_of(form) == 123_456
        assert form in pop
    for other in ("1442", "", "201312345678", "hello"):
        assert pop.index_of(other) == -1
        assert other not in pop
    assert 201012345678 not in pop  # type: ignore[operator]


def test_membership_rate_among_random_numbers_matches_block_fill() -> None:
    """A random number of a prefix is a member with probability count / 10^8."""
    pop = pop_of(size=100_000_000)
    rng = random.Random(7)
    n = 20_000
    for b in pop.blocks:
        head = "20" + b.prefix[1:]
        hits = sum(
            pop.index_of(f"{head}{rng.randrange(PREFIX_CAPACITY):08d}") >= 0 for _ in range(n)
        )
        assert_share(hits, n, b.count / PREFIX_CAPACITY, f"members of {b.prefix}")


def test_at_400_million_every_mobile_number_is_a_member() -> None:
    pop = pop_of(size=400_000_000)
    assert [b.count for b in pop.blocks] == [PREFIX_CAPACITY] * 4
    rng = random.Random(3)
    for _ in range(2_000):
        number = f"20{rng.choice(list(PREFIX_OPERATOR))}{rng.randrange(PREFIX_CAPACITY):08d}"
        i = pop.index_of(number)
        assert i >= 0 and pop.msisdn(i) == number


def test_members_are_spread_over_the_prefix_not_consecutive() -> None:
    pop = pop_of(size=1_000_000)
    vodafone = sorted(
        int(m) % PREFIX_CAPACITY
        for m in pop.sample(5_000, random.Random(1))
        if m.startswith("2010")
    )
    gaps = [b - a for a, b in itertools.pairwise(vodafone)]
    assert vodafone[-1] - vodafone[0] > 0.9 * PREFIX_CAPACITY
    assert sum(g == 1 for g in gaps) < 5


def test_prefix_capacity_overflow_goes_to_the_other_prefixes() -> None:
    shares = {
        Operator.VODAFONE: 0.4,
        Operator.ORANGE: 0.25,
        Operator.ETISALAT: 0.22,
        Operator.WE: 0.13,
    }
    counts = _split(250_000_000, shares, PREFIX_CAPACITY)
    assert counts[Operator.VODAFONE] == PREFIX_CAPACITY
    assert sum(counts.values()) == 250_000_000
    rest = 150_000_000
    assert abs(counts[Operator.ORANGE] - rest * 0.25 / 0.6) <= 1
    assert abs(counts[Operator.WE] - rest * 0.13 / 0.6) <= 1
    only = _split(250_000_000, {Operator.VODAFONE: 1.0}, PREFIX_CAPACITY)
    assert only[Operator.VODAFONE] == PREFIX_CAPACITY
    assert sorted(only.values()) == [50_000_000, 50_000_000, 50_000_000, PREFIX_CAPACITY]
    exact = _split(7, {Operator.VODAFONE: 0.5, Operator.WE: 0.5}, PREFIX_CAPACITY)
    assert sum(exact.values()) == 7 and {exact[Operator.VODAFONE], exact[Operator.WE]} == {3, 4}


def test_a_prefix_with_no_share_has_no_members() -> None:
    pop = pop_of(size=10_000, operator_shares={"vodafone": 0.5, "we": 0.5})
    assert {b.operator: b.count for b in pop.blocks} == {
        Operator.VODAFONE: 5_000,
        Operator.ETISALAT: 0,
        Operator.ORANGE: 0,
        Operator.WE: 5_000,
    }
    assert {pop.msisdn(i)[:4] for i in range(pop.size)} == {"2010", "2015"}
    assert pop.profile("201112345678").index == -1


def test_sample_gives_distinct_members() -> None:
    pop = pop_of()
    got = pop.sample(50_000, random.Random(5))
    assert len(got) == len(set(got)) == 50_000
    assert all(pop.index_of(m) >= 0 for m in got[:2_000])
    assert pop.sample(10, random.Random(5)) == pop.sample(10, random.Random(5))
    small = pop_of(size=50)
    assert sorted(small.sample(50, random.Random(1))) == sorted(small)
    with pytest.raises(ValueError):
        small.sample(51, random.Random(1))


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 64])
def test_slices_are_disjoint_and_cover_the_population(workers: int) -> None:
    pop = pop_of()
    slices = [pop.slice(w, workers) for w in range(workers)]
    assert slices[0].start == 0 and slices[-1].stop == pop.size
    for a, b in itertools.pairwise(slices):
        assert a.stop == b.start  # contiguous: no gap, no overlap
    assert sum(len(s) for s in slices) == pop.size
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    with pytest.raises(ValueError):
        pop.slice(workers, workers)


def test_a_workers_slice_mixes_operators_in_their_shares() -> None:
    pop = pop_of()
    part = pop.slice(3, 8)
    n = 50_000
    prefixes = Counter(pop.msisdn(i)[2:4] for i in part[:n])
    for op, share in DEFAULT.operator_shares.items():
        # An affine (golden-ratio) walk: far closer to the share than random sampling.
        assert abs(prefixes[OPERATOR_PREFIX[Operator(op)]] / n - share) < 0.002


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_people_different_seed_different_people() -> None:
    a, b, c = pop_of(seed=1442), pop_of(seed=1442), pop_of(seed=1443)
    idx = random.Random(0).sample(range(a.size), 2_000)
    assert [a.msisdn(i) for i in idx] == [b.msisdn(i) for i in idx]
    assert [a.profile_at(i) for i in idx] == [b.profile_at(i) for i in idx]
    assert sum(a.msisdn(i) == c.msisdn(i) for i in idx) < 5
    # The same number under another seed: another person (entropy and attributes).
    numbers = [a.msisdn(i) for i in idx]
    pa, pc = [a.profile(m) for m in numbers], [c.profile(m) for m in numbers]
    assert sum(x.entropy == y.entropy for x, y in zip(pa, pc, strict=True)) == 0
    assert sum(x.governorate == y.governorate for x, y in zip(pa, pc, strict=True)) < 0.2 * len(idx)
    assert sum(x.index == y.index for x, y in zip(pa, pc, strict=True)) < 5


def test_derivation_does_not_depend_on_the_process() -> None:
    """No str hash() or other per-process randomness: another interpreter agrees."""
    pop = pop_of(seed=-99)
    indices = [0, 1, 999_999, 3_499_999]
    code = (
        "import json; from simulator.config import PopulationConfig;"
        "from simulator.subscribers.population import Population;"
        "p = Population(PopulationConfig(seed=-99));"
        f"print(json.dumps([[p.msisdn(i), p.profile_at(i).entropy, p.name(p.msisdn(i))] for i in {indices}]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    expected = [
        [pop.msisdn(i), pop.profile_at(i).entropy, pop.name(pop.msisdn(i))] for i in indices
    ]
    assert json.loads(out.stdout) == expected


# --- profiles --------------------------------------------------------------------------------


def test_a_profile_is_a_genuine_frozen_subscriber() -> None:
    pop = pop_of()
    sub = pop.profile_at(42)
    assert type(sub) is Subscriber
    rebuilt = Subscriber(**{f.name: getattr(sub, f.name) for f in dataclasses.fields(Subscriber)})
    assert rebuilt == sub and hash(rebuilt) == hash(sub)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.index = 7  # type: ignore[misc]
    assert sub.msisdn == pop.msisdn(42) and sub.index == 42
    assert sub.prefix_operator is PREFIX_OPERATOR[sub.msisdn[2:4]]
    assert 0 <= sub.entropy < 2**64


def test_the_fast_path_equals_the_documented_derivation() -> None:
    """profile() inlines the hash and the alias draws; recompute them the slow, plain way:
    attributes from splitmix64(MSISDN ^ key1) (line table on the low 32 bits, person
    table on the high 32), entropy from splitmix64(MSISDN ^ key2)."""
    seed = 77
    pop = pop_of(size=5_000_000, seed=seed)
    k1, k2 = _seed_word(seed, "attributes"), _seed_word(seed, "entropy")
    rng = random.Random(4)
    numbers = pop.sample(3_000, rng)
    numbers += [
        f"20{rng.choice(list(PREFIX_OPERATOR))}{rng.randrange(PREFIX_CAPACITY):08d}"
        for _ in range(3_000)
    ]
    for m in numbers:
        sub = pop.profile(m)
        n = int(m)
        h = _mix64(n ^ k1)
        members, outsiders = pop.line_tables[PREFIX_OPERATOR[m[2:4]]]
        line = (members if sub.index >= 0 else outsiders).draw(h & 0xFFFFFFFF)
        person = pop.person_table.draw(h >> 32)
        expected = Subscriber(
            m,
            pop.index_of(m),
            *line[:4],
            person[0],
            *line[4:6],
            *person[1:],
            *line[6:],
            _mix64(n ^ k2),
        )
        assert sub == expected


def test_profile_accepts_any_form_and_answers_with_the_canonical_number() -> None:
    pop = pop_of()
    m = pop.msisdn(77)
    assert pop.profile("0" + m[2:]) == pop.profile("+" + m) == pop.profile_at(77)


def test_a_number_outside_the_population_is_unassigned() -> None:
    pop = pop_of(size=1_000)
    rng = random.Random(11)
    outside = []
    while len(outside) < 200:
        number = f"2012{rng.randrange(PREFIX_CAPACITY):08d}"
        if pop.index_of(number) < 0:
            outside.append(number)
    subs = [pop.profile(m) for m in outside]
    assert all(s.index == -1 and not s.assigned for s in subs)
    assert all(
        s.prefix_operator is Operator.ORANGE and s.msisdn == m
        for s, m in zip(subs, outside, strict=True)
    )
    # Everything else is derived as for anyone: it varies across numbers.
    assert len({s.governorate for s in subs}) > 5 and len({s.entropy for s in subs}) == 200
    assert pop.profile(outside[0]) == subs[0]


def test_an_address_that_is_no_egyptian_mobile_still_gets_a_profile() -> None:
    pop = pop_of()
    sub = pop.profile("1442")
    assert sub.msisdn == "1442" and sub.index == -1 and not sub.assigned
    assert pop.profile("1442") == sub
    assert pop.profile("966501234567").entropy != sub.entropy
    ops = Counter(pop.profile(f"foreign-{i}").prefix_operator for i in range(4_000))
    assert_share(ops[Operator.VODAFONE], 4_000, 0.40, "outsider prefix operator")


@pytest.fixture(scope="module")
def sampled() -> list[Subscriber]:
    pop = pop_of()
    return [pop.profile_at(i) for i in random.Random(2024).sample(range(pop.size), SAMPLE)]


def test_line_shares_match_the_config(sampled: list[Subscriber]) -> None:
    n = len(sampled)
    c = DEFAULT
    assert_mix((s.prefix_operator for s in sampled), c.operator_shares, "prefix operator")
    assert_share(
        sum(s.operator is not s.prefix_operator for s in sampled), n, c.ported_share, "ported"
    )
    assert_share(sum(not s.assigned for s in sampled), n, c.unassigned_share, "unassigned")
    assert_share(sum(s.barred for s in sampled), n, c.barred_share, "barred")
    assert_share(sum(s.female for s in sampled), n, c.female_share, "female")
    assert_share(sum(s.literate for s in sampled), n, c.literacy, "literate")
    assert_share(sum(s.opted_out for s in sampled), n, c.opted_out_share, "opted out")
    assert_share(sum(s.takaful for s in sampled), n, c.takaful_share, "takaful")
    assert_share(sum(s.karama for s in sampled), n, c.karama_share, "karama")


def test_ported_lines_go_to_the_other_operators_by_their_shares(sampled: list[Subscriber]) -> None:
    shares = {Operator(k): v for k, v in DEFAULT.operator_shares.items()}
    ported = [s for s in sampled if s.operator is not s.prefix_operator]
    from_vodafone = [s.operator for s in ported if s.prefix_operator is Operator.VODAFONE]
    rest = 1 - shares[Operator.VODAFONE]
    expected = {op.value: shares[op] / rest for op in shares if op is not Operator.VODAFONE}
    assert_mix(from_vodafone, expected, "port target from vodafone")


def test_person_shares_match_the_config(sampled: list[Subscriber]) -> None:
    c = DEFAULT
    assert_mix((s.script for s in sampled), c.script_mix, "script")
    arabic = [s.digits for s in sampled if s.script is Script.ARABIC]
    assert_mix(
        arabic,
        {"arabic_indic": c.arabic_indic_digits, "ascii": 1 - c.arabic_indic_digits},
        "digits",
    )
    latin = [s.digits for s in sampled if s.script is not Script.ARABIC]
    assert latin and all(d is Digits.ASCII for d in latin)
    assert_mix((s.responsiveness for s in sampled), c.responsiveness_mix, "responsiveness")
    assert_mix((s.delay_profile for s in sampled), c.delay_mix, "delay")
    assert_mix((s.availability for s in sampled), c.availability_mix, "availability")
    total = sum(g.weight for g in GOVERNORATES)
    assert_mix(
        (s.governorate for s in sampled),
        {g.name: g.weight / total for g in GOVERNORATES},
        "governorate",
    )


def test_attributes_are_independent(sampled: list[Subscriber]) -> None:
    """Joint shares are the products of the marginals, within and across the two tables."""
    n = len(sampled)
    pairs: list[tuple[Callable[[Subscriber], bool], Callable[[Subscriber], bool], str]] = [
        (lambda s: s.female, lambda s: s.script is Script.ARABIC, "female x arabic"),
        (lambda s: s.female, lambda s: s.literate, "female x literate"),
        (
            lambda s: s.assigned,
            lambda s: s.availability is Availability.ALWAYS,
            "assigned x always",
        ),
        (lambda s: s.takaful, lambda s: s.governorate == "Cairo", "takaful x cairo"),
        (lambda s: s.entropy >> 63 == 1, lambda s: s.female, "entropy top bit x female"),
        (
            lambda s: s.entropy & 1 == 1,
            lambda s: s.availability is Availability.NIGHT_OFF,
            "entropy x night",
        ),
    ]
    for f, g, what in pairs:
        pf = sum(map(f, sampled)) / n
        pg = sum(map(g, sampled)) / n
        both = sum(f(s) and g(s) for s in sampled)
        assert_share(both, n, pf * pg, what)


def test_entropy_is_spread_over_64_bits(sampled: list[Subscriber]) -> None:
    n = len(sampled)
    assert len({s.entropy for s in sampled}) == n
    for bit in (0, 31, 32, 53, 63):
        assert_share(sum(s.entropy >> bit & 1 for s in sampled), n, 0.5, f"entropy bit {bit}")


def test_shares_follow_a_non_default_config() -> None:
    pop = pop_of(
        size=1_000_000,
        seed=9,
        ported_share=0.5,
        unassigned_share=0.3,
        barred_share=0.0,
        female_share=1.0,
        script_mix={"arabic": 0.1, "franco": 0.9},
        arabic_indic_digits=1.0,
        availability_mix={"always": 0.5, "dead": 0.5},
    )
    n = 40_000
    subs = [pop.profile_at(i) for i in random.Random(1).sample(range(pop.size), n)]
    assert_share(sum(s.operator is not s.prefix_operator for s in subs), n, 0.5, "ported")
    assert_share(sum(not s.assigned for s in subs), n, 0.3, "unassigned")
    assert_share(sum(s.barred for s in subs), n, 0.0, "barred")
    assert_share(sum(s.female for s in subs), n, 1.0, "female")
    assert_mix((s.script for s in subs), {"arabic": 0.1, "franco": 0.9, "english": 0.0}, "script")
    assert_mix((s.digits for s in subs), {"arabic_indic": 0.1, "ascii": 0.9}, "digits")
    assert_mix((s.availability for s in subs), {"always": 0.5, "dead": 0.5}, "availability")


def test_alias_tables_reproduce_the_shares_exactly() -> None:
    pop = pop_of()
    c = DEFAULT
    person = pop.person_table.probabilities()
    for i, script in ((1, "arabic"), (1, "franco"), (1, "english")):
        got = sum(p for v, p in person.items() if v[i].value == script)
        assert abs(got - c.script_mix[script]) < 1e-6
    for avail, share in c.availability_mix.items():
        assert abs(sum(p for v, p in person.items() if v[5].value == avail) - share) < 1e-6
    members, outsiders = pop.line_tables[Operator.WE]
    line = members.probabilities()
    assert abs(sum(p for v, p in line.items() if not v[2]) - c.unassigned_share) < 1e-6
    assert abs(sum(p for v, p in line.items() if v[0] is not Operator.WE) - c.ported_share) < 1e-6
    assert all(not v[2] for v in outsiders.probabilities())


def test_alias_table_never_draws_a_zero_weight_value() -> None:
    table = AliasTable.build(["a", "b", "c", "d", "e"], [0.0, 1.0, 0.0, 1e-9, 3.0])
    probs = table.probabilities()
    assert probs.get("a", 0.0) == 0.0 and probs.get("c", 0.0) == 0.0
    assert abs(probs["b"] - 0.25) < 1e-9 and abs(probs["e"] - 0.75) < 1e-9
    rng = random.Random(0)
    assert {table.draw(rng.getrandbits(32)) for _ in range(5_000)} <= {"b", "d", "e"}
    assert table.draw(0) in {"b", "e"} and table.draw(2**32 - 1) in {"b", "e"}
    with pytest.raises(ValueError):
        AliasTable.build(["a"], [0.0])


# --- names -----------------------------------------------------------------------------------


def test_names_are_arabic_gendered_and_stable() -> None:
    from faker.providers.person.ar_AA import Provider

    pop = pop_of()
    women = men = 0
    for i in range(400):
        sub = pop.profile_at(i)
        name = pop.name(sub.msisdn)
        assert name == pop.name("0" + sub.msisdn[2:])
        assert not any("a" <= ch.lower() <= "z" for ch in name), name
        first_names = Provider.first_names_female if sub.female else Provider.first_names_male
        assert any(name.startswith(f + " ") for f in first_names), name
        women += sub.female
        men += not sub.female
    assert women and men
    assert len({pop.name(pop.msisdn(i)) for i in range(400)}) > 390


def test_traits_are_what_the_profile_is_built_from() -> None:
    """The SMSC's hot path reads a message's fate from ``traits`` (line[2] assigned,
    line[3] barred, line[6] opted out, person[3] responsiveness, person[5]
    availability) and builds the profile only for who will read the message: both must
    say the same of everyone, members, outsiders and non-mobile addresses alike."""
    pop = pop_of(size=2_000_000, seed=9)
    rng = random.Random(5)
    addresses = pop.sample(2_000, rng)
    addresses += [f"2012{rng.randrange(PREFIX_CAPACITY):08d}" for _ in range(500)]
    addresses += ["1442", "447700900123", "+1 555 0100"]
    for address in addresses:
        traits = pop.traits(address)
        sub = pop.profile(address)
        assert pop.subscriber(traits) == sub
        msisdn, index, line, person, entropy = traits
        assert (msisdn, index, entropy) == (sub.msisdn, sub.index, sub.entropy)
        assert (line[0], line[2], line[3], line[6]) == (
            sub.operator,
            sub.assigned,
            sub.barred,
            sub.opted_out,
        )
        assert (person[3], person[5]) == (sub.responsiveness, sub.availability)
