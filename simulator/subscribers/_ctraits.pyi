"""Stub of the optional C extension built from _ctraits.c (see build_ctraits.py)."""

from collections.abc import Callable
from typing import Any

_Traits = tuple[str, int, tuple[Any, ...], tuple[Any, ...], int]

class Traits:
    """``Population.traits`` for one population's tables; calls ``fallback`` for the
    addresses it does not parse itself."""

    def __init__(
        self,
        fallback: Callable[[str], _Traits],
        k1: int,
        k2: int,
        c: int,
        q_inv: int,
        size: int,
        by_head: dict[int, tuple[Any, ...]],
        person: tuple[Any, ...],
        /,
    ) -> None: ...
    def __call__(self, msisdn: str, /) -> _Traits: ...

def network_delay(median: float, sigma: float, entropy: int, salt: int, /) -> float:
    """``DeliveryModel.delay_for``'s lognormal draw (sigma != 0), identical doubles."""

def draw_unit(entropy: int, salt: int, seq: int, /) -> float:
    """``unit(mix64((entropy ^ salt ^ seq * 0x9E3779B97F4A7C15) & (2**64 - 1)))``."""
