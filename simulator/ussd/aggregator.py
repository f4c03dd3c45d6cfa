"""The HTTP aggregator contract (Africa's Talking style), sans-IO.

Each step is one POST of ``sessionId, serviceCode, phoneNumber, networkCode, text``
(all inputs so far joined by ``*``); the application answers ``CON <screen>`` to go on
or ``END <screen>`` to finish. Building the form and reading the answer are kept here,
apart from the client that sends them, so both are tested without a socket.
"""

from __future__ import annotations

from simulator.config import UssdConfig

from .session import UssdSession


class BadAnswer(ValueError):
    """The application's body is neither ``CON ...`` nor ``END ...``."""


def callback_form(session: UssdSession, session_id: str, config: UssdConfig) -> dict[str, str]:
    return {
        "sessionId": session_id,
        "serviceCode": session.service_code,
        "phoneNumber": "+" + session.msisdn,
        "networkCode": config.network_code,
        "text": session.text,
    }


def read_answer(body: str) -> tuple[str, bool]:
    """(screen, final) from ``CON ...`` / ``END ...``; BadAnswer otherwise."""
    head, _, rest = body.partition(" ")
    if head == "CON":
        return rest, False
    if head == "END":
        return rest, True
    if body in ("CON", "END"):
        return "", body == "END"
    raise BadAnswer(f"answer starts with {body[:10]!r}, not CON or END")
