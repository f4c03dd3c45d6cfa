"""Millions of subscribers that cost nothing until touched: numbers and people from a seed.

Nothing is stored per subscriber. Membership, index and every attribute are pure
functions of (seed, MSISDN), so a population of 3.5 M, 100 M or 400 M builds in ~30 ms
and ~2.5 MB (the attribute tables), and answers each question in O(1):

* **Numbering.** The population is split over the four operator prefixes (010, 011, 012,
  015) by ``operator_shares``, each capped at the prefix's 10^8 numbers (a full
  prefix's excess goes to the others by their shares; at 400 M every mobile number is a
  member). Within a prefix, member ``k`` has the suffix ``(a + k·P) mod 10^8``, ``P``
  coprime to 10^8 and ``a, P`` drawn from the seed: members are spread over the whole
  prefix, not consecutive, and ``k = (s − a)·P⁻¹ mod 10^8`` inverts it (member iff
  ``k < count``). Population indices go through one more affine permutation,
  ``j = (c + i·Q) mod N`` with ``Q/N`` near the golden ratio, before the prefix blocks
  are laid end to end, so a run of consecutive indices (a Locust worker's ``slice``)
  mixes the operators in their shares instead of walking one prefix after another.
* **Attributes.** Two splitmix64 finalisers of ``MSISDN ^ key`` (keys drawn from the
  seed). The first hash's low 32 bits draw from a joint table of the line's facts (port
  target, assigned, barred, female, literate, opted out, Takaful, Karama), its high 32
  bits from a joint table of the rest (governorate, script and digits, responsiveness,
  delay, availability); the second hash is ``entropy``, bits no attribute used. A joint
  table of independent attributes has the product of their distributions, and one alias
  draw (a bin from the low bits, the high bits against the bin's threshold: two list
  lookups and a comparison) replaces a dozen threshold tests. Tables are built once in
  ``__init__``; their quantisation error is below 10⁻⁶ per share.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from simulator.config import PopulationConfig

from .numbering import normalize
from .profile import (
    OPERATOR_PREFIX,
    Availability,
    DelayProfile,
    Digits,
    Operator,
    Responsiveness,
    Script,
    Subscriber,
)

try:  # the optional C implementation of Population.traits (build_ctraits.py builds it)
    if os.environ.get("SMSIM_NO_CTRAITS"):
        raise ImportError("SMSIM_NO_CTRAITS is set")
    from ._ctraits import Traits as _CTraitsType

    _CTraits: type[_CTraitsType] | None = _CTraitsType
except ImportError:  # pragma: no cover - depends on the build
    _CTraits = None

PREFIX_CAPACITY = 10**8  # eight-digit suffixes behind each 201X
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_GOLDEN = (math.sqrt(5) - 1) / 2
#: Operators in prefix order (010, 011, 012, 015): the order of the numbering blocks.
_OPERATORS = tuple(sorted(Operator, key=lambda op: OPERATOR_PREFIX[op]))

T = TypeVar("T")
#: (canonical number or address, index, line, person, entropy): see ``Population.traits``.
Traits = tuple[str, int, tuple[Any, ...], tuple[Any, ...], int]


@dataclass(frozen=True, slots=True)
class Governorate:
    name: str
    arabic: str
    #: Rough population, millions (CAPMAS estimates, 2023, rounded): only ratios matter.
    weight: float


#: Egypt's 27 governorates, weighted by population.
GOVERNORATES: tuple[Governorate, ...] = (
    Governorate("Cairo", "القاهرة", 10.3),
    Governorate("Giza", "الجيزة", 9.5),
    Governorate("Sharqia", "الشرقية", 7.9),
    Governorate("Dakahlia", "الدقهلية", 7.1),
    Governorate("Beheira", "البحيرة", 7.0),
    Governorate("Minya", "المنيا", 6.4),
    Governorate("Qalyubia", "القليوبية", 6.1),
    Governorate("Sohag", "سوهاج", 5.7),
    Governorate("Alexandria", "الإسكندرية", 5.5),
    Governorate("Gharbia", "الغربية", 5.3),
    Governorate("Asyut", "أسيوط", 4.9),
    Governorate("Monufia", "المنوفية", 4.7),
    Governorate("Faiyum", "الفيوم", 4.0),
    Governorate("Kafr El Sheikh", "كفر الشيخ", 3.7),
    Governorate("Qena", "قنا", 3.6),
    Governorate("Beni Suef", "بني سويف", 3.6),
    Governorate("Aswan", "أسوان", 1.6),
    Governorate("Damietta", "دمياط", 1.6),
    Governorate("Ismailia", "الإسماعيلية", 1.4),
    Governorate("Luxor", "الأقصر", 1.4),
    Governorate("Port Said", "بورسعيد", 0.8),
    Governorate("Suez", "السويس", 0.8),
    Governorate("Matrouh", "مطروح", 0.5),
    Governorate("North Sinai", "شمال سيناء", 0.5),
    Governorate("Red Sea", "البحر الأحمر", 0.4),
    Governorate("New Valley", "الوادي الجديد", 0.3),
    Governorate("South Sinai", "جنوب سيناء", 0.1),
)


@dataclass(frozen=True, slots=True)
class PrefixBlock:
    """One prefix's members: suffix ``(a + k·p) mod 10^8`` for ``k < count``, at positions
    ``start + k`` of the block order (before the index permutation)."""

    operator: Operator
    prefix: str  # national, "010"
    start: int
    count: int
    a: int
    p: int


@dataclass(frozen=True, slots=True)
class AliasTable(Generic[T]):
    """Walker's alias method on 32-bit draws: ``2**bits`` equally likely bins chosen by
    the low bits; the remaining ``32 - bits`` high bits pick the bin's primary value when
    below its threshold, else its alias. Exact to 2⁻³² per bin."""

    bits: int
    thresholds: list[int]
    primary: list[T]
    alias: list[T]

    @classmethod
    def build(cls, values: Sequence[T], weights: Sequence[float]) -> AliasTable[T]:
        if len(values) != len(weights) or not values or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("need as many non-negative weights as values, not all zero")
        bits = max(1, (len(values) - 1).bit_length())
        bins = 1 << bits
        total = sum(weights)
        scaled = [w * bins / total for w in weights] + [0.0] * (bins - len(values))
        threshold = [1.0] * bins
        alias = list(range(bins))
        small = [i for i, q in enumerate(scaled) if q < 1.0]
        large = [i for i, q in enumerate(scaled) if q >= 1.0]
        while small and large:
            s, big = small.pop(), large.pop()
            threshold[s], alias[s] = scaled[s], big
            scaled[big] += scaled[s] - 1.0
            (small if scaled[big] < 1.0 else large).append(big)
        # Leftovers (rounding) keep threshold 1: always their own, positive-weight value.
        unit = 1 << (32 - bits)
        thresholds = [min(unit, round(t * unit)) for t in threshold]
        primary = [values[i] if i < len(values) else values[alias[i]] for i in range(bins)]
        return cls(bits, thresholds, primary, [values[i] for i in alias])

    def draw(self, x: int) -> T:
        """The value for a uniform 32-bit ``x`` (the hot path inlines this)."""
        b = x & ((1 << self.bits) - 1)
        return self.primary[b] if x >> self.bits < self.thresholds[b] else self.alias[b]

    def probabilities(self) -> dict[T, float]:
        """Each value's exact probability under ``draw`` (for tests and reports)."""
        unit, bins = 1 << (32 - self.bits), 1 << self.bits
        out: dict[T, float] = {}
        for t, p, a in zip(self.thresholds, self.primary, self.alias, strict=True):
            out[p] = out.get(p, 0.0) + t / unit / bins
            out[a] = out.get(a, 0.0) + (unit - t) / unit / bins
        return out

    def mapped(self, f: Any) -> AliasTable[Any]:
        """The same draws with every value passed through ``f``."""
        primary, alias = [f(v) for v in self.primary], [f(v) for v in self.alias]
        return AliasTable(self.bits, self.thresholds, primary, alias)


class _Draft:
    """Same slots as Subscriber, not frozen: built with plain attribute stores, then
    re-classed to Subscriber. A frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field: 2.6 µs for Subscriber's 18 fields, here ~0.5 µs."""

    __slots__ = Subscriber.__slots__

    def __init__(
        self,
        msisdn: str,
        index: int,
        line: tuple[Any, ...],
        person: tuple[Any, ...],
        entropy: int,
    ) -> None:
        self.msisdn = msisdn
        self.index = index
        (
            self.operator,
            self.prefix_operator,
            self.assigned,
            self.barred,
            self.female,
            self.literate,
            self.opted_out,
            self.takaful,
            self.karama,
        ) = line
        (
            self.governorate,
            self.script,
            self.digits,
            self.responsiveness,
            self.delay_profile,
            self.availability,
        ) = person
        self.entropy = entropy


_DRAFT_FIELDS = {
    "operator", "prefix_operator", "assigned", "barred", "female", "literate", "opted_out",
    "takaful", "karama", "governorate", "script", "digits", "responsiveness",
    "delay_profile", "availability", "msisdn", "index", "entropy",
}  # fmt: skip
if {f.name for f in fields(Subscriber)} != _DRAFT_FIELDS:  # pragma: no cover - contract drift
    raise ImportError("population._Draft no longer matches profile.Subscriber's fields")


class Population:
    """``config.size`` subscribers derived from ``config.seed``; see the module docstring."""

    __slots__ = (
        "_blocks",
        "_by_head",
        "_c",
        "_config",
        "_ctraits",
        "_k1",
        "_k2",
        "_k3",
        "_line_tables",
        "_live",
        "_live_blocks",
        "_names",
        "_person",
        "_person_table",
        "_q",
        "_q_inv",
        "_size",
        "_starts",
    )

    def __init__(self, config: PopulationConfig) -> None:
        self._config = config
        seed = config.seed
        n = self._size = config.size
        if not 1 <= n <= PREFIX_CAPACITY * len(_OPERATORS):
            raise ValueError(f"size {n:,} outside 1..{PREFIX_CAPACITY * len(_OPERATORS):,}")
        self._k1 = _seed_word(seed, "attributes")
        self._k2 = _seed_word(seed, "entropy")
        self._k3 = _seed_word(seed, "names")
        self._c = _seed_word(seed, "index-offset") % n
        q = round(n * _GOLDEN) % n
        while math.gcd(q, n) != 1:
            q = (q + 1) % n
        self._q, self._q_inv = q, pow(q, -1, n)

        shares = {Operator(k): v for k, v in config.operator_shares.items()}
        counts = _split(n, shares, PREFIX_CAPACITY)
        blocks: list[PrefixBlock] = []
        start = 0
        for op in _OPERATORS:
            # P between 0.2 and 0.8 of 10^8: consecutive members land far apart.
            p = _seed_word(seed, f"multiplier-{op.value}") % (PREFIX_CAPACITY * 3 // 5)
            p += PREFIX_CAPACITY // 5
            while math.gcd(p, PREFIX_CAPACITY) != 1:
                p += 1
            a = _seed_word(seed, f"offset-{op.value}") % PREFIX_CAPACITY
            blocks.append(PrefixBlock(op, "0" + OPERATOR_PREFIX[op], start, counts[op], a, p))
            start += counts[op]
        self._blocks = tuple(blocks)

        self._line_tables = _line_tables(config, shares)
        # Per block, what the hot paths need as one flat tuple (unpacking beats attributes):
        # start, count, a, p, p⁻¹, 201X·10^8, the line table's bits, bin mask, thresholds,
        # member primary/alias, outsider primary/alias.
        entries = []
        for b in blocks:
            members, outsiders = self._line_tables[b.operator]
            entries.append((
                b.start, b.count, b.a, b.p, pow(b.p, -1, PREFIX_CAPACITY),
                int("20" + b.prefix[1:]) * PREFIX_CAPACITY,
                members.bits, (1 << members.bits) - 1, members.thresholds,
                members.primary, members.alias,
                outsiders.primary, outsiders.alias,
            ))  # fmt: skip
        self._by_head = {e[5] // PREFIX_CAPACITY: e for e in entries}
        self._live = tuple(e for e in entries if e[1])
        self._live_blocks = tuple(b for b in blocks if b.count)
        self._starts = [e[0] for e in self._live]
        self._person_table = _person_table(config)
        t = self._person_table
        self._person = (t.bits, (1 << t.bits) - 1, t.thresholds, t.primary, t.alias)
        self._names: tuple[Sequence[str], Sequence[str], Sequence[str]] | None = None
        # The C twin of _traits_py for the plain ASCII forms (it calls _traits_py for the
        # rest), or None without the extension.
        self._ctraits: Callable[[str], Traits] | None = None
        if _CTraits is not None:
            self._ctraits = _CTraits(
                self._traits_py, self._k1, self._k2, self._c, self._q_inv, n,
                self._by_head, self._person,
            )  # fmt: skip

    # --- numbering -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    @property
    def config(self) -> PopulationConfig:
        return self._config

    @property
    def blocks(self) -> tuple[PrefixBlock, ...]:
        """How the numbering splits the population over the prefixes (in prefix order)."""
        return self._blocks

    @property
    def governorates(self) -> tuple[Governorate, ...]:
        return GOVERNORATES

    @property
    def line_tables(self) -> dict[Operator, tuple[LineTable, LineTable]]:
        """Per prefix operator, the joint table of (serving operator, prefix operator,
        assigned, barred, female, literate, opted_out, takaful, karama) that profiles
        draw from: as members see it, and with assigned False for outsiders."""
        return self._line_tables

    @property
    def person_table(self) -> AliasTable[tuple[Any, ...]]:
        """The joint table of (governorate, script, digits, responsiveness, delay profile,
        availability) that profiles draw from."""
        return self._person_table

    def msisdn(self, index: int) -> str:
        """The number of member ``index`` (0 <= index < size), ``2010XXXXXXXX``."""
        if not 0 <= index < self._size:
            raise IndexError(f"index {index} outside the population of {self._size}")
        j = (self._c + index * self._q) % self._size
        start, _, a, p, _, base, *_ = self._live[bisect_right(self._starts, j) - 1]
        return str(base + (a + (j - start) * p) % PREFIX_CAPACITY)

    def index_of(self, msisdn: str) -> int:
        """The member's index, or -1 when the number is not in the population (any form)."""
        canonical = normalize(msisdn)
        if canonical is None:
            return -1
        number = int(canonical)
        start, count, a, _, p_inv, *_ = self._by_head[number // PREFIX_CAPACITY]
        k = (number - a) * p_inv % PREFIX_CAPACITY
        if k >= count:
            return -1
        return (start + k - self._c) * self._q_inv % self._size

    def __contains__(self, msisdn: object) -> bool:
        return isinstance(msisdn, str) and self.index_of(msisdn) >= 0

    def sample(self, k: int, rng: random.Random) -> list[str]:
        """``k`` distinct members' numbers, drawn with ``rng``."""
        return [self.msisdn(i) for i in rng.sample(range(self._size), k)]

    def slice(self, worker: int, workers: int) -> range:
        """Worker ``worker`` of ``workers``' indices: disjoint, together covering the
        population, lengths within one of each other (pass Locust's ``worker_index``)."""
        if not 0 <= worker < workers:
            raise ValueError(f"worker {worker} not in 0..{workers - 1}")
        n = self._size
        return range(n * worker // workers, n * (worker + 1) // workers)

    def __iter__(self) -> Iterator[str]:
        return map(self.msisdn, range(self._size))

    # --- people --------------------------------------------------------------------------

    def profile(self, msisdn: str) -> Subscriber:
        """Who is behind ``msisdn`` (any form). A number outside the population gets index
        -1 and ``assigned`` False (its messages fail as UNDELIV, as on a real SMSC); so
        does an address that is no Egyptian mobile at all (a short code, a foreign
        number), which keeps its address as given and gets a prefix operator drawn by
        the operator shares."""
        draft = _Draft(*self.traits(msisdn))
        draft.__class__ = Subscriber  # type: ignore[assignment]
        return draft  # type: ignore[return-value]

    @property
    def traits(self) -> Callable[[str], Traits]:
        """``traits(msisdn)``: the C implementation when built (``_ctraits``), else
        ``_traits_py``; the same tuples either way."""
        fast = self._ctraits
        return fast if fast is not None else self._traits_py

    def _traits_py(self, msisdn: str) -> Traits:
        """What ``profile`` derives, before it is an object: (canonical number or the
        address as given, index, line, person, entropy), ``line`` and ``person`` being
        values of ``line_tables`` and ``person_table`` (shared tuples). The SMSC's hot
        path reads the few attributes a message's fate needs from these and builds the
        whole ``Subscriber`` (``subscriber``) only for someone who will read it."""
        canonical = normalize(msisdn)
        if canonical is None:
            return self._outsider(msisdn)
        number = int(canonical)
        entry = self._by_head[number // PREFIX_CAPACITY]
        start, count, a, _, p_inv, _, bits, mask, thr, primary, alias, o_primary, o_alias = entry
        k = (number - a) * p_inv % PREFIX_CAPACITY
        if k < count:
            index = (start + k - self._c) * self._q_inv % self._size
        else:
            index, primary, alias = -1, o_primary, o_alias
        h = number ^ self._k1  # splitmix64's finaliser, inlined
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
        h ^= h >> 31
        e = number ^ self._k2
        e = ((e ^ (e >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        e = ((e ^ (e >> 27)) * 0x94D049BB133111EB) & _M64
        x = h & _M32  # AliasTable.draw, inlined
        b = x & mask
        line = primary[b] if x >> bits < thr[b] else alias[b]
        bits, mask, thr, primary, alias = self._person
        x = h >> 32
        b = x & mask
        person = primary[b] if x >> bits < thr[b] else alias[b]
        return canonical, index, line, person, e ^ (e >> 31)

    @staticmethod
    def subscriber(traits: Traits) -> Subscriber:
        """The profile of these ``traits`` (``profile(m) == subscriber(traits(m))``)."""
        draft = _Draft(*traits)
        draft.__class__ = Subscriber  # type: ignore[assignment]
        return draft  # type: ignore[return-value]

    def profile_at(self, index: int) -> Subscriber:
        """The profile of member ``index``."""
        return self.profile(self.msisdn(index))

    def _outsider(self, address: str) -> Traits:
        """An address that is not an Egyptian mobile: its hash stands in for the number."""
        digest = hashlib.blake2b(address.encode(), digest_size=8, person=b"smsim-outsider")
        number = int.from_bytes(digest.digest(), "little")
        home = self._live_blocks[bisect_right(self._starts, number % self._size) - 1]
        h = _mix64(number ^ self._k1)
        line = self._line_tables[home.operator][1].draw(h & _M32)
        person = self._person_table.draw(h >> 32)
        return address, -1, line, person, _mix64(number ^ self._k2)

    def name(self, msisdn: str) -> str:
        """A gendered Arabic name for the subscriber: first name, father's, family name.

        Faker's ``ar_EG`` locale has no person provider (Faker 40 silently falls back to
        English names), so the lists come from ``faker.providers.person.ar_AA`` (Modern
        Standard Arabic names; some family names are more Gulf or Maghrebi than
        Egyptian), read once per Population on first use. Picks are by a hash of the
        entropy, so a person keeps their name and the name says nothing of behaviour.
        """
        sub = self.profile(msisdn)
        if self._names is None:
            from faker.providers.person.ar_AA import Provider

            self._names = (
                Provider.first_names_female,
                Provider.first_names_male,
                Provider.last_names,
            )
        female_names, male_names, last_names = self._names
        h = _mix64(sub.entropy ^ self._k3)
        firsts = female_names if sub.female else male_names
        first = firsts[(h & 0xFFFFF) % len(firsts)]
        father = male_names[(h >> 20 & 0xFFFFF) % len(male_names)]
        family = last_names[(h >> 40) % len(last_names)]
        return f"{first} {father} {family}"


# --- construction helpers -----------------------------------------------------------------


def _seed_word(seed: int, label: str) -> int:
    """A 64-bit parameter from (seed, label): any int seed, the same in every process."""
    digest = hashlib.blake2b(f"smsim-population/{seed}/{label}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


def _mix64(x: int) -> int:
    """splitmix64's finaliser (the hot path inlines it)."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _split(n: int, shares: dict[Operator, float], capacity: int) -> dict[Operator, int]:
    """Split ``n`` by ``shares``, at most ``capacity`` each (water-filling: a full
    prefix's excess goes to the others by their shares, evenly when they have none),
    rounding by largest remainder so the counts sum to ``n`` exactly."""
    counts = dict.fromkeys(_OPERATORS, 0)
    open_ops = list(_OPERATORS)
    remaining = n
    while remaining:
        weights = {op: shares.get(op, 0.0) for op in open_ops}
        total = sum(weights.values())
        if total <= 0:
            weights, total = dict.fromkeys(open_ops, 1.0), float(len(open_ops))
        ideal = {op: remaining * w / total for op, w in weights.items()}
        full = [op for op in open_ops if ideal[op] >= capacity]
        if full:
            for op in full:
                counts[op] = capacity
                remaining -= capacity
                open_ops.remove(op)
            continue
        floors = {op: math.floor(x) for op, x in ideal.items()}
        by_fraction = sorted(open_ops, key=lambda op: floors[op] - ideal[op])
        for op in by_fraction[: remaining - sum(floors.values())]:
            floors[op] += 1
        counts.update(floors)
        remaining = 0
    return counts


def _bernoulli(share: float) -> tuple[tuple[bool, float], tuple[bool, float]]:
    return ((True, share), (False, 1.0 - share))


LineTable = AliasTable[tuple[Any, ...]]


def _line_tables(
    config: PopulationConfig, shares: dict[Operator, float]
) -> dict[Operator, tuple[LineTable, LineTable]]:
    """Per prefix operator, the joint table of (serving operator, prefix operator,
    assigned, barred, female, literate, opted_out, takaful, karama): once as members see
    it, once with assigned False (numbers outside the population), same draws. A ported
    line goes to one of the other three operators in proportion to their shares."""
    tables: dict[Operator, tuple[LineTable, LineTable]] = {}
    for home in _OPERATORS:
        others = [op for op in _OPERATORS if op is not home]
        weights = [shares.get(op, 0.0) for op in others]
        if sum(weights) <= 0:
            weights = [1.0] * len(others)
        ported = config.ported_share / sum(weights)
        serving = [(home, 1.0 - config.ported_share)]
        serving += [(op, ported * w) for op, w in zip(others, weights, strict=True)]
        values: list[tuple[Any, ...]] = []
        probs: list[float] = []
        for combo in itertools.product(
            serving,
            _bernoulli(1.0 - config.unassigned_share),
            _bernoulli(config.barred_share),
            _bernoulli(config.female_share),
            _bernoulli(config.literacy),
            _bernoulli(config.opted_out_share),
            _bernoulli(config.takaful_share),
            _bernoulli(config.karama_share),
        ):
            operator, *flags = (v for v, _ in combo)
            values.append((operator, home, *flags))
            probs.append(math.prod(p for _, p in combo))
        members = AliasTable.build(values, probs)
        tables[home] = (members, members.mapped(lambda v: (v[0], v[1], False, *v[3:])))
    return tables


def _person_table(config: PopulationConfig) -> AliasTable[tuple[Any, ...]]:
    """The joint table of (governorate, script, digits, responsiveness, delay profile,
    availability); digits depend on script: only Arabic-script writers type ١, Franco
    and English writers use ASCII digits."""
    writing: list[tuple[tuple[Script, Digits], float]] = []
    for script in Script:
        share = config.script_mix.get(script.value, 0.0)
        if script is Script.ARABIC:
            indic = config.arabic_indic_digits
            writing.append(((script, Digits.ARABIC_INDIC), share * indic))
            writing.append(((script, Digits.ASCII), share * (1 - indic)))
        else:
            writing.append(((script, Digits.ASCII), share))
    values: list[tuple[Any, ...]] = []
    probs: list[float] = []
    for gov, ((script, digits), p_writing), resp, delay, avail in itertools.product(
        GOVERNORATES, writing, Responsiveness, DelayProfile, Availability
    ):
        values.append((gov.name, script, digits, resp, delay, avail))
        probs.append(
            gov.weight
            * p_writing
            * config.responsiveness_mix.get(resp.value, 0.0)
            * config.delay_mix.get(delay.value, 0.0)
            * config.availability_mix.get(avail.value, 0.0)
        )
    return AliasTable.build(values, probs)
