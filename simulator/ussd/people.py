"""Simulated people on a USSD menu: read the screen, think, press a key (or don't).

``UssdPeople`` is a ``UssdHandset`` for either transport. Each screen is read from its
words alone (numbered options, "0" to go back, a number range, or a request for free
text), and the subscriber's choice is drawn from a generator seeded by (their entropy,
the screen, the step): the same population seed and MSISDN give the same walk. The
answer goes back after a think time on the simulated clock, in the subscriber's digit
style (Arabic-Indic or ASCII); some cancel, some walk away and let the network's screen
timer release them, some go back, some press a key that is not offered.

``decide`` is pure; ``UssdPeople`` only adds the timer (``schedule``, as the SMSC's).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from hashlib import blake2b
from typing import Any, Final

from simulator.clock import SimClock
from simulator.config import UssdBehaviourConfig
from simulator.subscribers import vocabulary as V
from simulator.subscribers.delivery import mix64
from simulator.subscribers.profile import Digits, Script, Subscriber

from .ports import UssdPort
from .session import UssdSession

Schedule = Callable[[float, Callable[[Any], None], Any], None]

_GOLDEN: Final = 0x9E3779B97F4A7C15
_M64: Final = (1 << 64) - 1
_TO_INDIC: Final = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_FROM_INDIC: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")
#: "1 حالتي", "2) payment", "3- ..." at the start of a line.
_OPTION_RE: Final = re.compile(r"^\s*(\d{1,2})\s*[).\-:]?\s+\S", re.MULTILINE)
#: "من 1 إلى 27", "1-27", "from 1 to 27".
_RANGE_RE: Final = re.compile(r"(\d{1,3})\s*(?:إلى|الى|ل|-|–|to)\s*(\d{1,3})")
_FEEDBACK: Final = {
    Script.ARABIC: V.FEEDBACK_AR,
    Script.FRANCO: V.FEEDBACK_FRANCO,
    Script.ENGLISH: V.FEEDBACK_EN,
}


class Act(StrEnum):
    OPTION = "option"
    BACK = "back"
    WRONG_KEY = "wrong_key"
    NUMBER = "number"
    TEXT = "text"
    ABANDON = "abandon"
    SILENT = "silent"


@dataclass(frozen=True, slots=True)
class Choice:
    """What the subscriber does with a screen: ``text`` to send after ``think``
    simulated seconds (ABANDON: cancel then; SILENT: nothing, ever)."""

    act: Act
    text: str
    think: float


@dataclass(frozen=True, slots=True)
class ScreenForm:
    """What a screen asks, read from its words."""

    options: tuple[int, ...]  # offered option numbers, 0 (back) excluded
    back: bool
    low: int = 0  # a number range asked (high > 0)
    high: int = 0


def read_screen(text: str) -> ScreenForm:
    folded = text.translate(_FROM_INDIC)
    numbers = [int(m) for m in _OPTION_RE.findall(folded)]
    options = tuple(n for n in numbers if n > 0)
    back = 0 in numbers
    m = _RANGE_RE.search(folded)
    if m and not options:
        low, high = int(m.group(1)), int(m.group(2))
        if low <= high:
            return ScreenForm((), back, low, high)
    return ScreenForm(options, back)


def _salt(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little")


def decide(sub: Subscriber, session: UssdSession, config: UssdBehaviourConfig) -> Choice:
    """The subscriber's move on the screen ``session.screen`` (deterministic)."""
    seed = mix64((sub.entropy ^ _salt(session.screen) ^ (session.steps * _GOLDEN)) & _M64)
    rng = random.Random(seed)
    think = rng.lognormvariate(math.log(config.think_median), config.think_sigma)
    if not sub.literate:
        think *= config.illiterate_factor
    x = rng.random()
    if x < config.silent_share:
        return Choice(Act.SILENT, "", think)
    x -= config.silent_share
    if x < config.abandon_share:
        return Choice(Act.ABANDON, "", think)
    x -= config.abandon_share
    form = read_screen(session.screen)
    indic = sub.digits is Digits.ARABIC_INDIC

    def digits(n: int) -> str:
        s = str(n)
        return s.translate(_TO_INDIC) if indic else s

    if form.back and session.steps > 1 and x < config.back_share:
        return Choice(Act.BACK, digits(0), think)
    if rng.random() < config.wrong_key_share:
        top = max(form.options) if form.options else (form.high or 9)
        return Choice(Act.WRONG_KEY, digits(top + 1 + rng.randrange(3)), think)
    if form.options:
        weights = [1.0] * len(form.options)
        if session.steps == 1:  # the first menu: what people dial *1442# for
            for i, w in enumerate(config.first_choice[: len(weights)]):
                weights[i] = w
        n = rng.choices(form.options, weights)[0]
        return Choice(Act.OPTION, digits(n), think)
    if form.high:
        return Choice(Act.NUMBER, digits(rng.randint(form.low, form.high)), think * 1.5)
    words = _FEEDBACK[sub.script]
    return Choice(Act.TEXT, rng.choice(words)[:120], think * 3)


@dataclass(slots=True)
class PeopleCounters:
    screens: int = 0
    finals: int = 0
    released: int = 0
    answers_late: int = 0  # the session was gone when the answer was due
    acts: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if self.acts is None:
            self.acts = {a.value: 0 for a in Act}


class UssdPeople:
    """The handset side for a whole population: reacts to every screen shown."""

    __slots__ = ("_clock", "_config", "_loop_time", "_profile", "_schedule", "counters")

    def __init__(
        self,
        config: UssdBehaviourConfig,
        *,
        profile: Callable[[str], Subscriber],
        clock: SimClock,
        schedule: Schedule,
        loop_time: Callable[[], float],
    ) -> None:
        self._config = config
        self._profile = profile
        self._clock = clock
        self._schedule = schedule
        self._loop_time = loop_time
        self.counters = PeopleCounters()

    def on_screen(self, network: UssdPort, session: UssdSession, final: bool) -> None:
        c = self.counters
        c.screens += 1
        if final:
            c.finals += 1
            return
        choice = decide(self._profile(session.msisdn), session, self._config)
        assert c.acts is not None
        c.acts[choice.act.value] += 1
        if choice.act is Act.SILENT:
            return  # the network's screen timer will release it
        due = self._loop_time() + self._clock.to_real(choice.think)
        self._schedule(due, self._act, (network, session, choice, session.version))

    def on_release(self, network: UssdPort, session: UssdSession) -> None:
        self.counters.released += 1

    def _act(self, item: tuple[UssdPort, UssdSession, Choice, int]) -> None:
        network, session, choice, version = item
        if session.version != version:  # released (or moved on) meanwhile
            self.counters.answers_late += 1
            return
        if choice.act is Act.ABANDON:
            network.abandon(session.msisdn)
        elif not network.answer(session.msisdn, choice.text):
            self.counters.answers_late += 1


def attach_people(
    server: Any, loop_time: Callable[[], float], config: UssdBehaviourConfig | None = None
) -> UssdPeople:
    """Put a started ``SmscServer``'s population behind every operator's USSD network
    (``loop_time``: its loop's clock, as its ``schedule`` takes). Needs
    ``population.enabled``; returns the people, for their counters."""
    engine = server.subscribers
    if engine is None:
        raise ValueError("the SMSC has no subscribers (population.enabled is off)")
    people = UssdPeople(
        config or server.config.behaviour.ussd,
        profile=engine.population.profile,
        clock=server.clock,
        schedule=server.schedule,
        loop_time=loop_time,
    )
    for network in server.ussd_networks():
        network.handset = people
    return people
