"""USSD dialogues as the network keeps them: one per subscriber, timed, sans-IO.

A session alternates between the application's turn (an indication or the subscriber's
input was sent to it: it must answer with a screen within ``app_timeout``) and the
subscriber's turn (a screen is shown: the handset must answer within
``screen_timeout``); the whole dialogue lasts at most ``session_timeout``. The caller
passes the time in (``now``, any monotonic clock in seconds) and asks ``expire(now)``
when ``next_due()`` comes: nothing here sleeps, schedules or does I/O, so the SMPP
gateway, the HTTP transport and the benchmark drive the same rules.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from simulator.config import UssdConfig
from simulator.smpp.text import gsm7_septets


class Turn(StrEnum):
    APP = "app"  # the platform owes a screen
    USER = "user"  # a screen is shown; the handset owes an input
    CLOSED = "closed"


class Release(StrEnum):
    """Why a session ended."""

    COMPLETED = "completed"  # the platform's last screen (END / PSSR response)
    ABANDONED = "abandoned"  # the subscriber cancelled
    SESSION_TIMEOUT = "session_timeout"  # the whole dialogue ran out of time
    APP_TIMEOUT = "app_timeout"  # the platform was too slow: the network released it
    SCREEN_TIMEOUT = "screen_timeout"  # the subscriber did not answer a screen in time
    APP_ERROR = "app_error"  # the application answered what can't be shown (HTTP)


class ScreenStatus(StrEnum):
    """What became of a screen the platform sent."""

    SHOWN = "shown"
    FINAL = "final"  # shown, and the session is over
    NO_SESSION = "no_session"
    WRONG_SESSION = "wrong_session"  # its session number is not the open one's
    NOT_AWAITED = "not_awaited"  # it is the subscriber's turn, not the platform's
    TOO_LONG = "too_long"


@dataclass(slots=True)
class UssdSession:
    """One open dialogue. ``number``: the 8-bit session number of its_session_info;
    ``steps``: screens shown so far; ``inputs``: what the subscriber sent, in order."""

    msisdn: str
    service_code: str
    number: int
    started: float
    deadline: float
    turn: Turn = Turn.APP
    #: When the current turn began and when it runs out.
    turn_started: float = 0.0
    turn_due: float = 0.0
    steps: int = 0
    inputs: list[str] = field(default_factory=list)
    screen: str = ""
    release: Release | None = None
    #: Bumped on every transition: a timer entry of an older version is stale.
    version: int = 0

    @property
    def due(self) -> float:
        return min(self.deadline, self.turn_due)

    @property
    def text(self) -> str:
        """The inputs joined with ``*``, as HTTP aggregators send them."""
        return "*".join(self.inputs)


@dataclass(slots=True)
class UssdCounters:
    dialled: int = 0
    busy: int = 0  # dialled while a session of the same subscriber was open
    steps: int = 0  # screens shown
    inputs: int = 0
    screens_refused: int = 0
    released: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Release})

    @property
    def open_total(self) -> int:
        return self.dialled - sum(self.released.values())


_UCS2_UNIT: Final = 2


def screen_fits(text: str, max_chars: int = 182, max_ucs2_chars: int = 80) -> bool:
    """Whether ``text`` fits one USSD screen of 160 octets: GSM 7-bit septets (an
    extension character takes two) when it is GSM text, else UTF-16 code units."""
    septets = gsm7_septets(text)
    if septets is not None:
        return septets <= max_chars
    return len(text.encode("utf-16-be")) // _UCS2_UNIT <= max_ucs2_chars


class UssdSessions:
    """All open sessions of one network, keyed by subscriber (one each)."""

    __slots__ = ("_config", "_heap", "_next_number", "_tie", "counters", "sessions")

    def __init__(self, config: UssdConfig | None = None) -> None:
        self._config = config or UssdConfig()
        self.sessions: dict[str, UssdSession] = {}
        self.counters = UssdCounters()
        #: (due, tie, msisdn, version): one entry per transition; stale ones are skipped.
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = 0
        self._next_number = 0

    @property
    def config(self) -> UssdConfig:
        return self._config

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, msisdn: str) -> UssdSession | None:
        return self.sessions.get(msisdn)

    # --- transitions ------------------------------------------------------------------------

    def dial(self, msisdn: str, service_code: str, now: float) -> UssdSession | None:
        """The subscriber dialled ``service_code``: a new session, the platform's turn.
        None when the subscriber already has one open (the handset shows "busy")."""
        if msisdn in self.sessions:
            self.counters.busy += 1
            return None
        number = self._next_number
        self._next_number = (number + 1) & 0xFF
        cfg = self._config
        s = UssdSession(msisdn, service_code, number, now, now + cfg.session_timeout)
        self.sessions[msisdn] = s
        self.counters.dialled += 1
        self._turn(s, Turn.APP, now, cfg.app_timeout)
        return s

    def screen(
        self, msisdn: str, text: str, final: bool, now: float, number: int | None = None
    ) -> tuple[ScreenStatus, UssdSession | None]:
        """The platform sent a screen (``final``: the last one). ``number``: the session
        number it quoted, if the convention carries one."""
        s = self.sessions.get(msisdn)
        status = self._check_screen(s, text, number)
        if status is not None:
            self.counters.screens_refused += 1
            return status, s
        assert s is not None
        s.screen = text
        self.counters.steps += 1
        s.steps += 1
        if final:
            self._close(s, Release.COMPLETED)
            return ScreenStatus.FINAL, s
        self._turn(s, Turn.USER, now, self._config.screen_timeout)
        return ScreenStatus.SHOWN, s

    def _check_screen(
        self, s: UssdSession | None, text: str, number: int | None
    ) -> ScreenStatus | None:
        if s is None:
            return ScreenStatus.NO_SESSION
        if number is not None and number != s.number:
            return ScreenStatus.WRONG_SESSION
        if s.turn is not Turn.APP:
            return ScreenStatus.NOT_AWAITED
        cfg = self._config
        if not screen_fits(text, cfg.max_screen_chars, cfg.max_screen_ucs2_chars):
            return ScreenStatus.TOO_LONG
        return None

    def answer(self, msisdn: str, text: str, now: float) -> UssdSession | None:
        """The subscriber answered the screen shown; None when no screen awaits one."""
        s = self.sessions.get(msisdn)
        if s is None or s.turn is not Turn.USER:
            return None
        s.inputs.append(text)
        self.counters.inputs += 1
        self._turn(s, Turn.APP, now, self._config.app_timeout)
        return s

    def abandon(self, msisdn: str, now: float) -> UssdSession | None:
        """The subscriber cancelled (or walked away with the phone: same to the network)."""
        s = self.sessions.get(msisdn)
        if s is None:
            return None
        self._close(s, Release.ABANDONED)
        return s

    def fail(self, msisdn: str) -> UssdSession | None:
        """The application's answer can't be shown (HTTP error, no CON/END, too long)."""
        s = self.sessions.get(msisdn)
        if s is None:
            return None
        self._close(s, Release.APP_ERROR)
        return s

    # --- timers -----------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When ``expire`` next has work (possibly a stale entry: it is cheap to ask)."""
        heap = self._heap
        sessions = self.sessions
        while heap:
            due, _, msisdn, version = heap[0]
            s = sessions.get(msisdn)
            if s is not None and s.version == version:
                return due
            heapq.heappop(heap)
        return None

    def expire(self, now: float) -> list[UssdSession]:
        """Release every session whose turn or whole dialogue has run out by ``now``."""
        heap = self._heap
        sessions = self.sessions
        released = []
        while heap and heap[0][0] <= now:
            _, _, msisdn, version = heapq.heappop(heap)
            s = sessions.get(msisdn)
            if s is None or s.version != version:
                continue
            if s.deadline <= now:
                why = Release.SESSION_TIMEOUT
            elif s.turn is Turn.APP:
                why = Release.APP_TIMEOUT
            else:
                why = Release.SCREEN_TIMEOUT
            self._close(s, why)
            released.append(s)
        return released

    # --- internals --------------------------------------------------------------------------

    def _turn(self, s: UssdSession, turn: Turn, now: float, timeout: float) -> None:
        s.turn = turn
        s.turn_started = now
        s.turn_due = now + timeout
        s.version += 1
        self._tie += 1
        heapq.heappush(self._heap, (s.due, self._tie, s.msisdn, s.version))

    def _close(self, s: UssdSession, why: Release) -> None:
        s.turn = Turn.CLOSED
        s.release = why
        s.version += 1
        del self.sessions[s.msisdn]
        self.counters.released[why.value] += 1
