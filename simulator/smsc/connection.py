"""One client connection: an asyncio.Protocol around a sans-IO ``Session``.

All protocol decisions live in the session (framing, bind states, answers to bad input)
and in the operator (what a request means); this class only moves bytes and coalesces
writes: everything queued during one loop iteration leaves in a single ``write``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from simulator.smpp.pdu import Pdu
from simulator.smpp.session import Role, Session

if TYPE_CHECKING:
    from .accounts import Account
    from .operator import OperatorSmsc

log = logging.getLogger("smsim.smsc")


class SmppConnection(asyncio.Protocol):
    __slots__ = (
        "_flush_pending",
        "_loop",
        "_sent",
        "accepted",
        "account",
        "admitted",
        "errors",
        "ip",
        "opened_at",
        "operator",
        "outbind_for",
        "peer",
        "session",
        "transport",
        "writable",
    )

    #: Built in ``connection_made`` once the connection is admitted: a connection from a
    #: locked-out IP is refused before it costs one.
    session: Session

    def __init__(self, operator: OperatorSmsc, *, accepted: bool = True) -> None:
        self.operator = operator
        #: Accepted on a listener (False: the SMSC connected out, for outbind).
        self.accepted = accepted
        self.transport: asyncio.Transport | None = None
        self.account: Account | None = None
        #: The account this SMSC-initiated connection sent outbind for; None if accepted.
        self.outbind_for: str | None = None
        self.peer = "?"
        self.ip = "?"
        #: Counted against its IP's connection limit (False: refused, or outbound).
        self.admitted = False
        #: Protocol errors and refused requests before a bind (``security.errors_before_bind``).
        self.errors = 0
        self.writable = True
        self._flush_pending = False

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else "?"
        operator = self.operator
        if self.accepted and operator.refuses(ip):
            # Locked out: gone before a session, a log line or a read (``transport`` stays
            # None, so ``connection_lost`` has nothing to undo).
            cast(asyncio.Transport, transport).abort()
            return
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.ip = ip
        self._loop = loop = asyncio.get_running_loop()
        cfg = operator.config
        self.session = Session(
            Role.SMSC,
            window=cfg.deliver_window,
            max_pdu_size=cfg.max_pdu_size,
            enquire_link_interval=cfg.enquire_link_interval,
            inactivity_timeout=cfg.inactivity_timeout,
            response_timeout=cfg.response_timeout,
            clock=loop.time,
            answer_enquire_link=False,  # the operator answers (faults may delay it)
        )
        self.opened_at = loop.time()
        #: The operator's sent-PDU counter (command_id | status << 32 -> count).
        self._sent = operator.pdus_out
        operator.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        # Whatever the handlers queue leaves in the one flush below.
        self._flush_pending = True
        events = self.session.receive_data(data)
        try:
            if events:
                self.operator.handle_events(self, events)
        finally:
            self.flush()  # the responses already queued leave, whatever happened
        if self.session.closed and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # refused in connection_made
        self.session.close()
        self.writable = False
        self.operator.connection_closed(self, exc)

    def pause_writing(self) -> None:
        # A client that sends without reading its answers would make them pile up here
        # without bound: read nothing more from it until it has read what it was sent.
        self.writable = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.session.closed or self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        self.writable = True
        self.operator.connection_writable(self)

    # --- sending -------------------------------------------------------------------------

    def send(self, pdu: Pdu) -> None:
        """Queue a response (or any PDU); it leaves at the end of this loop iteration."""
        self.session.send(pdu)
        key = pdu.command_id | pdu.command_status << 32
        self._sent[key] = self._sent.get(key, 0) + 1
        self._schedule_flush()

    def send_request(self, pdu: Pdu) -> None:
        self.session.send(pdu)
        key = pdu.command_id
        self._sent[key] = self._sent.get(key, 0) + 1
        self._schedule_flush()

    def send_raw(self, data: bytes) -> None:
        self.session.send_raw(data)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        # Unbound or closing: nothing more may be handed to this bind (a receipt coming
        # due before connection_lost would otherwise hit an unbound session).
        self.writable = False
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.writable = False
        if self.transport is not None:
            self.transport.abort()
