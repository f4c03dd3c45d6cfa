"""The seams between USSD networks and handsets: who dials and answers, who is shown.

A network (``UssdNetwork`` over SMPP, ``HttpUssdNetwork`` over an aggregator's HTTP
callback) is a ``UssdPort``; the simulated people (or the recorder) are a
``UssdHandset``. Either side plugs into either transport.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from .session import UssdSession


class UssdPort(Protocol):
    """What a handset can do to the network it is on."""

    def dial(self, msisdn: str, service_code: str | None = None) -> UssdSession | None: ...

    def answer(self, msisdn: str, text: str) -> bool: ...

    def abandon(self, msisdn: str) -> bool: ...


class UssdHandset(Protocol):
    """The subscriber's side of USSD: what the handset shows."""

    def on_screen(self, network: UssdPort, session: UssdSession, final: bool) -> None:
        """A screen (``session.screen``) is shown; ``final``: the session is over."""

    def on_release(self, network: UssdPort, session: UssdSession) -> None:
        """The network released the session (``session.release`` says why)."""


@dataclass(frozen=True, slots=True)
class ScreenEvent:
    msisdn: str
    text: str
    final: bool
    release: str | None


class UssdRecorder:
    """The default handset: keeps the last events (tests, inspection); answers nothing."""

    __slots__ = ("events",)

    def __init__(self, size: int = 10_000) -> None:
        self.events: deque[ScreenEvent] = deque(maxlen=size)

    def on_screen(self, network: UssdPort, session: UssdSession, final: bool) -> None:
        release = session.release.value if session.release else None
        self.events.append(ScreenEvent(session.msisdn, session.screen, final, release))

    def on_release(self, network: UssdPort, session: UssdSession) -> None:
        release = session.release.value if session.release else None
        self.events.append(ScreenEvent(session.msisdn, "", True, release))

    def of(self, msisdn: str) -> list[ScreenEvent]:
        return [e for e in self.events if e.msisdn == msisdn]
