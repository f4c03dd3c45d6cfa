"""Who owns a number when the SMSC side is split over processes or hosts (decision 0003).

The number space is cut by the digits right after the operator prefix: ``2010 3 ...``
is in bucket 3 of ten (one digit when the parts divide ten, else two digits, a hundred
buckets), and part ``k`` of ``K`` owns buckets ``[k·B/K, (k+1)·B/K)``. Pure arithmetic,
nothing stored: the runner, every SMSC-side process and every Locust worker agree.
The population spreads its members over each prefix's whole suffix space, so each part
gets ~1/K of the subscribers, of every operator. The same ranges written as national
prefixes (``01003``) are what a gateway routes by: the platform binds to every part's
SMSC and sends each MT through the bind whose prefixes match (Kannel: ``allowed-prefix``).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.subscribers.profile import OPERATOR_PREFIX

#: Digits after the country code and the operator prefix (Egypt: ``20`` + ``1X``).
SUFFIX_DIGITS = 8
SUFFIX_SPACE = 100_000_000
MAX_PARTS = 100


@dataclass(frozen=True, slots=True)
class NumberRanges:
    parts: int

    def __post_init__(self) -> None:
        if not 1 <= self.parts <= MAX_PARTS:
            raise ValueError(f"parts must be 1..{MAX_PARTS}, not {self.parts}")

    @property
    def digits(self) -> int:
        return 1 if 10 % self.parts == 0 else 2

    def owner(self, number: int) -> int:
        """The part that owns ``number`` (international, as an integer)."""
        if self.parts == 1:
            return 0
        n: int = 10**self.digits
        bucket: int = number % SUFFIX_SPACE * n // SUFFIX_SPACE
        return bucket * self.parts // n

    def buckets(self, part: int) -> range:
        if not 0 <= part < self.parts:
            raise ValueError(f"part {part} of {self.parts}")
        n: int = 10**self.digits
        lo = -(-part * n // self.parts)  # the first bucket b with b·K // n == part
        hi = -(-(part + 1) * n // self.parts)
        return range(lo, hi)

    def national_prefixes(self, part: int) -> list[str]:
        """Part ``part``'s numbers as national prefixes (``0100``..``0104`` ...); empty
        when there is one part (it owns everything)."""
        if self.parts == 1:
            return []
        d = self.digits
        return [
            f"0{prefix}{b:0{d}d}"
            for prefix in sorted(OPERATOR_PREFIX.values())
            for b in self.buckets(part)
        ]
