"""The network's side of an MT: is the handset on, when does the SMSC get it through,
and what does the receipt say.

A handset's availability is a pure function of (subscriber, simulated time), so the fate
of a message is computed once, at submission, by walking the SMSC's retry schedule
until the handset is on or the validity period runs out: no timers per retry.
"""

from __future__ import annotations

import functools
import math
import os
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from simulator.config import DeliveryConfig
from simulator.smpp.constants import MessageState
from simulator.smpp.times import SmppTimeError, parse_smpp_time

from .profile import Availability, Subscriber

#: The hot path's draws in C (build_ctraits.py builds them with Population.traits);
#: None without the build or with SMSIM_NO_CTRAITS set.
c_network_delay: Callable[[float, float, int, int], float] | None = None
c_draw_unit: Callable[[int, int, int], float] | None = None
if not os.environ.get("SMSIM_NO_CTRAITS"):
    try:
        from . import _ctraits

        c_network_delay, c_draw_unit = _ctraits.network_delay, _ctraits.draw_unit
    except ImportError:  # pragma: no cover - depends on the build
        pass

CAIRO_OFFSET = 2 * 3600  # Egypt Standard Time, UTC+2 (no DST modelled)
_M64 = (1 << 64) - 1
# Enum members as module constants: ``Availability.ALWAYS`` costs ~80 ns a lookup.
_ALWAYS = Availability.ALWAYS
_DEAD = Availability.DEAD
_NIGHT_OFF = Availability.NIGHT_OFF


def mix64(x: int) -> int:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def unit(x: int) -> float:
    """A hash mapped to [0, 1)."""
    return (x >> 11) * (1.0 / (1 << 53))


def local_hour(ts: float) -> float:
    """Hour of day in Cairo, 0 <= h < 24."""
    return ((ts + CAIRO_OFFSET) % 86400) / 3600


def handset_on(sub: Subscriber, ts: float) -> bool:
    """Whether the handset is on and in coverage at simulated time ``ts``."""
    kind = sub.availability
    if kind is _ALWAYS:
        return True
    if kind is _DEAD:
        return False
    if kind is _NIGHT_OFF:
        # Off from ~23:00 to ~07:00; each subscriber's edges shift by up to +-1.5 h.
        jitter = (unit(sub.entropy) - 0.5) * 3.0
        hour = local_hour(ts)
        off_from, on_at = 23.0 + jitter, 7.0 + jitter
        if off_from >= 24:
            return not (off_from - 24 <= hour < on_at)
        return not (hour >= off_from or hour < on_at)
    # OFTEN_OFF: each two-hour block is off with probability 0.6, per subscriber.
    block = int(ts // 7200)
    return unit(mix64(sub.entropy ^ (block * 0x2545F4914F6CDD1D))) >= 0.6


def next_on(sub: Subscriber, ts: float, horizon: float = 7 * 86400) -> float | None:
    """The first simulated time at or after ``ts`` when the handset is on (it is back in
    service, say, after a failed delivery), or None if not within ``horizon`` seconds:
    never for an unassigned number or a dead SIM."""
    kind = sub.availability
    if not sub.assigned or kind is _DEAD:
        return None
    if kind is _ALWAYS or handset_on(sub, ts):
        return ts
    if kind is _NIGHT_OFF:
        # Off now, so on again at the subscriber's morning edge (see handset_on).
        on_at = 7.0 + (unit(sub.entropy) - 0.5) * 3.0
        back = ts + ((on_at - local_hour(ts)) % 24) * 3600
        for _ in range(4):  # the edge to the float, then a millisecond at a time
            if handset_on(sub, back):
                return back if back - ts <= horizon else None
            back += 0.001
        return None
    # OFTEN_OFF: on again at the start of the next two-hour block that is on.
    block = int(ts // 7200) + 1
    for b in range(block, block + int(horizon // 7200) + 1):
        if handset_on(sub, b * 7200.0):
            return b * 7200.0 if b * 7200.0 - ts <= horizon else None
    return None


@dataclass(slots=True, frozen=True)
class Fate:
    """What happens to one MT: final state, after how long (simulated s), error code."""

    state: MessageState
    delay: float
    err: int
    attempts: int


class DeliveryModel:
    __slots__ = ("_cfg", "_offsets", "_schedule", "delay_function")

    def __init__(self, config: DeliveryConfig) -> None:
        self._cfg = config
        self._schedule = (0.0, *sorted(config.retry_schedule))
        self._offsets = sorted(self._schedule)  # to count the attempts within validity
        #: ``delay_for`` as the fastest callable: the C draw bound to this configuration
        #: when built (~1 µs less a message on the SMSC's path), else the method.
        self.delay_function: Callable[[int, int], float] = self.delay_for
        if c_network_delay is not None and config.network_delay_sigma:
            self.delay_function = functools.partial(
                c_network_delay, float(config.network_delay), float(config.network_delay_sigma)
            )

    def validity(self, validity_period: str, submit_time: float) -> float:
        """Seconds the SMSC keeps trying: the submit's validity_period or the default."""
        if validity_period:
            try:
                until = parse_smpp_time(validity_period, submit_time)
            except SmppTimeError:
                until = None
            if until is not None:
                return max(0.0, until - submit_time)
        return self._cfg.validity

    def network_delay(self, sub: Subscriber, salt: int) -> float:
        """Lognormal delay to a handset that is on (deterministic per subscriber and salt)."""
        return self.delay_function(sub.entropy, salt)

    def delay_for(self, entropy: int, salt: int) -> float:
        """``network_delay`` from the subscriber's entropy alone (the SMSC's hot path)."""
        cfg = self._cfg
        if not cfg.network_delay_sigma:
            return cfg.network_delay
        h = mix64(entropy ^ (salt * 0x9E3779B97F4A7C15 & _M64))
        # Box-Muller from two 26-bit halves of one hash.
        u1 = ((h >> 38) + 0.5) / (1 << 26)
        u2 = ((h >> 12) & ((1 << 26) - 1)) / (1 << 26)
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return float(cfg.network_delay * math.exp(cfg.network_delay_sigma * z))

    @property
    def config(self) -> DeliveryConfig:
        return self._cfg

    def fate(self, sub: Subscriber, submit_time: float, validity_period: str, salt: int) -> Fate:
        """The fate of an MT submitted at ``submit_time`` (simulated Unix seconds)."""
        return Fate(*self.decide(sub, submit_time, validity_period, salt))

    def decide(
        self, sub: Subscriber, submit_time: float, validity_period: str, salt: int
    ) -> tuple[MessageState, float, int, int]:
        """``fate`` as a plain tuple (state, delay, err, attempts): the SMSC's hot path."""
        if sub.availability is _ALWAYS and sub.assigned and not sub.barred:
            # The first attempt (at 0 s, always within validity) finds the handset on.
            return _DELIVERED, self.network_delay(sub, salt), 0, 1
        cfg = self._cfg
        if not sub.assigned:
            return _UNDELIVERABLE, self.network_delay(sub, salt), cfg.err_unassigned, 1
        if sub.barred:
            return _REJECTED, self.network_delay(sub, salt), cfg.err_barred, 1
        validity = self.validity(validity_period, submit_time)
        for attempt, offset in enumerate(self._schedule, 1):
            if offset > validity:
                break
            if handset_on(sub, submit_time + offset):
                return _DELIVERED, offset + self.network_delay(sub, salt), 0, attempt
        attempts = bisect_right(self._offsets, validity)  # the offsets within validity
        return _EXPIRED, validity, cfg.err_absent, attempts


_DELIVERED = MessageState.DELIVERED
_UNDELIVERABLE = MessageState.UNDELIVERABLE
_REJECTED = MessageState.REJECTED
_EXPIRED = MessageState.EXPIRED
