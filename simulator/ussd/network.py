"""USSD on one operator's SMSC: handsets dial, the platform's binds get deliver_sm, its
submit_sm come back as screens; the network's timers release what runs late.

``UssdNetwork`` holds the operator's ``UssdSessions`` and speaks SMPP through the
operator's accounts (the same queue and pump as MO) and its timer heap (one armed
timer for the earliest session deadline). What the subscriber sees goes to a
``UssdHandset``: the recorder below by default, the simulated people when plugged in.
No asyncio here: the SMSC's loop calls in, and time comes from ``loop_time``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.config import UssdConfig
from simulator.smpp.constants import Status, UssdServiceOp
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import SubmitSm
from simulator.smsc.stats import LatencyHistogram

from .mapping import network_pdu, read_submit, short_code_of
from .ports import ScreenEvent, UssdHandset, UssdRecorder
from .session import Release, ScreenStatus, UssdSession, UssdSessions

__all__ = ["ScreenEvent", "UssdHandset", "UssdNetwork", "UssdRecorder"]

if TYPE_CHECKING:
    from simulator.smsc.connection import SmppConnection
    from simulator.smsc.operator import OperatorSmsc

log = logging.getLogger("smsim.ussd")

Schedule = Callable[[float, Callable[[Any], None], Any], None]

#: submit_sm_resp status for each refused screen.
_REFUSAL = {
    ScreenStatus.NO_SESSION: Status.ESME_RSUBMITFAIL,
    ScreenStatus.WRONG_SESSION: Status.ESME_RINVOPTPARAMVAL,
    ScreenStatus.NOT_AWAITED: Status.ESME_RSUBMITFAIL,
    ScreenStatus.TOO_LONG: Status.ESME_RINVMSGLEN,
}


class UssdNetwork:
    """USSD sessions of one operator, carried to and from its binds over SMPP."""

    def __init__(
        self,
        operator: OperatorSmsc,
        config: UssdConfig,
        *,
        schedule: Schedule,
        loop_time: Callable[[], float],
        handset: UssdHandset | None = None,
    ) -> None:
        self.operator = operator
        self.config = config
        self.sessions = UssdSessions(config)
        self.handset: UssdHandset = handset or UssdRecorder()
        #: Seconds from an indication or input to the platform's screen.
        self.screen_latency = LatencyHistogram()
        self._schedule = schedule
        self._now = loop_time
        self._armed = float("inf")
        #: *1442# routes *1442*2# too (a shortcut into the menu), as networks do.
        self._codes = frozenset(short_code_of(c) for c in config.service_codes)

    # --- the handset's side ------------------------------------------------------------------

    def dial(self, msisdn: str, service_code: str | None = None) -> UssdSession | None:
        """``msisdn`` dials ``service_code`` (the first configured by default): a PSSR
        indication goes to the account that owns the short code. None: refused (busy, or
        a code this operator does not route)."""
        code = service_code or self.config.service_codes[0]
        if short_code_of(code) not in self._codes:
            log.info(
                "ussd_unknown_code operator=%s msisdn=%s code=%s", self.operator.name, msisdn, code
            )
            return None
        s = self.sessions.dial(msisdn, code, self._now())
        if s is None:
            log.info("ussd_busy operator=%s msisdn=%s", self.operator.name, msisdn)
            return None
        text = code if self.config.dial_in == "short_message" else ""
        self._deliver(s, UssdServiceOp.PSSR_INDICATION, text)
        log.debug("ussd_dial operator=%s msisdn=%s number=%d", self.operator.name, msisdn, s.number)
        self._arm()
        return s

    def answer(self, msisdn: str, text: str, *, op: int | None = None) -> bool:
        """The subscriber typed ``text`` on the screen shown; False if none awaits input.
        ``op``: the ussd_service_op to carry it (the convention's ``reply_op``)."""
        s = self.sessions.answer(msisdn, text, self._now())
        if s is None:
            return False
        self._deliver(s, self.config.reply_op if op is None else op, text)
        self._arm()
        return True

    def abandon(self, msisdn: str) -> bool:
        """The subscriber cancelled: the platform is told (``notify_release``)."""
        s = self.sessions.abandon(msisdn, self._now())
        if s is None:
            return False
        log.info("ussd_release operator=%s msisdn=%s reason=abandoned", self.operator.name, msisdn)
        self._notify_release(s)
        return True

    # --- the platform's side ------------------------------------------------------------------

    def on_submit(self, conn: SmppConnection, pdu: SubmitSm) -> None:
        """A submit_sm carrying ussd_service_op: a screen for an open session, answered
        with submit_sm_resp (an error status when it can't be shown)."""
        try:
            screen = read_submit(pdu, self.config)
        except SmppError as exc:
            self._refuse(conn, pdu, exc.status, str(exc.args[0]))
            return
        msisdn = pdu.destination_addr.lstrip("+")
        now = self._now()
        s = self.sessions.get(msisdn)
        asked_at = s.turn_started if s is not None else now
        status, s = self.sessions.screen(msisdn, screen.text, screen.final, now, screen.number)
        if status in _REFUSAL:
            self._refuse(conn, pdu, _REFUSAL[status], status.value)
            return
        assert s is not None
        self.screen_latency.observe(now - asked_at)
        conn.send(pdu.response(message_id=self.operator.ids.next()))
        final = status is ScreenStatus.FINAL
        if final:
            log.debug(
                "ussd_completed operator=%s msisdn=%s steps=%d", self.operator.name, msisdn, s.steps
            )
        self.handset.on_screen(self, s, final)
        if not final and screen.op == UssdServiceOp.USSN_REQUEST:
            # a notification is acknowledged by the handset, not answered by the person
            self.answer(msisdn, "", op=UssdServiceOp.USSN_CONFIRM)
        self._arm()

    def _refuse(self, conn: SmppConnection, pdu: SubmitSm, status: int, why: str) -> None:
        log.info(
            "ussd_refused operator=%s msisdn=%s status=0x%02X why=%s",
            self.operator.name,
            pdu.destination_addr,
            status,
            why,
        )
        conn.send(pdu.response(status))

    # --- timers ------------------------------------------------------------------------------

    def _arm(self) -> None:
        due = self.sessions.next_due()
        if due is not None and due < self._armed:
            self._armed = due
            self._schedule(due, self._on_timer, due)

    def _on_timer(self, due: float) -> None:
        if due == self._armed:
            self._armed = float("inf")
        for s in self.sessions.expire(self._now()):
            log.info(
                "ussd_release operator=%s msisdn=%s reason=%s steps=%d",
                self.operator.name,
                s.msisdn,
                s.release.value if s.release else "-",
                s.steps,
            )
            self._notify_release(s)
            self.handset.on_release(self, s)
        self._arm()

    # --- SMPP ---------------------------------------------------------------------------------

    def _deliver(self, s: UssdSession, op: int, text: str, end: bool = False) -> None:
        op_ = self.operator
        pdu = network_pdu(
            self.config,
            op_.config.addressing,
            msisdn=s.msisdn,
            service_code=s.service_code,
            op=op,
            text=text,
            number=s.number,
            seq=len(s.inputs),
            end=end,
        )
        acct = op_.route_mo(short_code_of(s.service_code))
        acct.outbox.append(pdu)
        op_.stats.mo_queued += 1
        acct.pump()

    def _notify_release(self, s: UssdSession) -> None:
        if (
            self.config.notify_release
            and self.config.session_info
            and s.release is not Release.COMPLETED
        ):
            self._deliver(s, self.config.reply_op, "", end=True)
