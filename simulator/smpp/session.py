"""The SMPP session state machine, sans-IO: bytes in, events out, bytes to send.

One ``Session`` per TCP connection, for either side (the SMSC or an ESME). It frames the
byte stream, decodes PDUs, enforces which PDUs each bind state allows, answers what the
protocol answers by itself (enquire_link, malformed input, wrong bind state, a full
window), matches responses to the requests it sent, keeps the outbound window, and
reports keep-alive and timeout duties from ``tick``. It never touches a socket or a
clock of its own: the caller feeds ``receive_data``, flushes ``data_to_send`` and calls
``tick`` with the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from struct import Struct

from .constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Status
from .errors import SmppError
from .pdu import (
    PDU_CLASSES,
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    EnquireLink,
    GenericNack,
    Pdu,
)


class Role(Enum):
    SMSC = "smsc"
    ESME = "esme"


class BindState(Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


# --- events ---------------------------------------------------------------------------------


@dataclass(slots=True)
class PduReceived:
    """A request (or notification) the application must handle and, if it has one, answer."""

    pdu: Pdu


@dataclass(slots=True)
class ResponseReceived:
    """A response (or generic_nack) to a request this side sent; the window slot is free."""

    pdu: Pdu
    request: Pdu
    rtt: float


@dataclass(slots=True)
class ProtocolError:
    """Bad input from the peer. Any answer the spec requires is already queued to send.

    ``fatal``: the stream can't be framed any more; flush and close the connection.
    """

    error: SmppError
    fatal: bool


@dataclass(slots=True)
class RequestRejected:
    """A request this session refused on its own (wrong bind state, window overflow)."""

    pdu: Pdu
    status: int


@dataclass(slots=True)
class ResponseTimeout:
    """A request the peer never answered within the response timeout; its slot is freed."""

    request: Pdu


@dataclass(slots=True)
class LinkDead:
    """enquire_link unanswered, or nothing heard for the inactivity timeout."""

    reason: str


@dataclass(slots=True)
class Unbound:
    """The unbind handshake finished (either side started it): flush, then close."""


Event = (
    PduReceived
    | ResponseReceived
    | ProtocolError
    | RequestRejected
    | ResponseTimeout
    | (LinkDead | Unbound)
)


class SessionStateError(RuntimeError):
    """This side tried to send something its bind state or window does not allow."""


# --- which PDUs each state allows -------------------------------------------------------------

C = CommandId
_ALWAYS = frozenset({C.ENQUIRE_LINK, C.ENQUIRE_LINK_RESP, C.GENERIC_NACK})
_BINDS = frozenset({C.BIND_TRANSMITTER, C.BIND_RECEIVER, C.BIND_TRANSCEIVER})
_ESME_TX = frozenset(
    {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
)
_SMSC_RX = frozenset({C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION})
_UNBIND = frozenset({C.UNBIND, C.UNBIND_RESP})


def _responses(ids: frozenset[int]) -> frozenset[int]:
    return frozenset(i | RESPONSE_BIT for i in ids if i != C.ALERT_NOTIFICATION)


def _requests_allowed(role: Role, state: BindState) -> frozenset[int]:
    """Requests the *peer* may send us in ``state`` (answers to ours are checked by seq)."""
    peer_is_esme = role is Role.SMSC
    if state is BindState.OPEN:
        return _ALWAYS | (_BINDS if peer_is_esme else frozenset({C.OUTBIND}))
    if state in (BindState.UNBOUND, BindState.CLOSED):
        return _ALWAYS | _UNBIND
    tx = state in (BindState.BOUND_TX, BindState.BOUND_TRX)
    rx = state in (BindState.BOUND_RX, BindState.BOUND_TRX)
    allowed = set(_ALWAYS | _UNBIND)
    if peer_is_esme and tx:
        allowed |= _ESME_TX
    if not peer_is_esme and rx:
        allowed |= _SMSC_RX
    return frozenset(allowed)


def _sends_allowed(role: Role, state: BindState) -> frozenset[int]:
    """Requests *we* may send in ``state``: the mirror image of the peer's table."""
    mirror = Role.ESME if role is Role.SMSC else Role.SMSC
    if state is BindState.OPEN:
        return _ALWAYS | (_BINDS if role is Role.ESME else frozenset({C.OUTBIND}))
    return _requests_allowed(mirror, state)


_BOUND_BY_RESP: dict[type[Pdu], BindState] = {
    BindTransmitterResp: BindState.BOUND_TX,
    BindReceiverResp: BindState.BOUND_RX,
    BindTransceiverResp: BindState.BOUND_TRX,
}
_WINDOWED = frozenset(int(c) for c in _ESME_TX | _SMSC_RX)
#: Answers that change no state: matched to their request on the fast path.
_PLAIN_RESPONSES = frozenset(
    int(c)
    for c in (
        C.SUBMIT_SM_RESP,
        C.DELIVER_SM_RESP,
        C.DATA_SM_RESP,
        C.QUERY_SM_RESP,
        C.CANCEL_SM_RESP,
        C.REPLACE_SM_RESP,
        C.SUBMIT_MULTI_RESP,
    )
)
_STATEFUL_RESPONSES = frozenset(
    int(c)
    for c in (
        C.BIND_TRANSMITTER_RESP,
        C.BIND_RECEIVER_RESP,
        C.BIND_TRANSCEIVER_RESP,
        C.UNBIND_RESP,
    )
)
_CLOSED = BindState.CLOSED
_unpack_header = Struct(">IIII").unpack_from


class Session:
    """One side of one SMPP connection.

    ``window``: requests this side may have unanswered at once (Kannel's
    max-pending-submits is the ESME's equivalent). ``inbound_window``: submits from the
    peer this side holds unanswered before refusing more with ESME_RMSGQFUL (None: no
    limit). Times are seconds; ``clock`` is any monotonic time source.
    """

    __slots__ = (
        "_allowed",
        "_buf",
        "_buffered",
        "_clock",
        "_enquire_seq",
        "_inbound",
        "_last_heard",
        "_last_sent",
        "_need",
        "_next_seq",
        "_out",
        "_outstanding",
        "_sendable",
        "answer_enquire_link",
        "enquire_link_interval",
        "inactivity_timeout",
        "inbound_window",
        "max_pdu_size",
        "response_timeout",
        "role",
        "state",
        "window",
    )

    def __init__(
        self,
        role: Role,
        *,
        window: int = 10,
        inbound_window: int | None = None,
        max_pdu_size: int = 65536,
        enquire_link_interval: float | None = 30.0,
        inactivity_timeout: float | None = None,
        response_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        answer_enquire_link: bool = True,
    ) -> None:
        self.role = role
        #: Answer enquire_link here (False: it comes out as ``PduReceived``, for an
        #: application that may answer late or never, such as a fault-injecting SMSC).
        self.answer_enquire_link = answer_enquire_link
        self.window = window
        self.inbound_window = inbound_window
        self.max_pdu_size = max_pdu_size
        self.enquire_link_interval = enquire_link_interval
        self.inactivity_timeout = inactivity_timeout
        self.response_timeout = response_timeout
        self._clock = clock
        #: An incomplete frame's octets, as they came: joined once the frame is whole
        #: (``_need`` octets), so a frame trickled in small reads costs linear time.
        self._buf: list[bytes] = []
        self._buffered = 0
        self._need = 0
        self._out: list[bytes] = []
        self._next_seq = 1
        self._outstanding: dict[int, tuple[Pdu, float]] = {}
        self._inbound: set[int] = set()
        self._enquire_seq: int | None = None
        now = clock()
        self._last_heard = now
        self._last_sent = now
        self.state = BindState.OPEN
        self._allowed = _requests_allowed(role, self.state)
        self._sendable = _sends_allowed(role, self.state)

    # --- state ---------------------------------------------------------------------------

    def _set_state(self, state: BindState) -> None:
        self.state = state
        self._allowed = _requests_allowed(self.role, state)
        self._sendable = _sends_allowed(self.role, state)

    @property
    def closed(self) -> bool:
        return self.state is BindState.CLOSED

    @property
    def is_bound(self) -> bool:
        return self.state in (BindState.BOUND_TX, BindState.BOUND_RX, BindState.BOUND_TRX)

    @property
    def can_receive(self) -> bool:
        """Whether the ESME on this session takes deliver_sm (a receiver or transceiver)."""
        return self.state in (BindState.BOUND_RX, BindState.BOUND_TRX)

    @property
    def can_transmit(self) -> bool:
        return self.state in (BindState.BOUND_TX, BindState.BOUND_TRX)

    @property
    def window_free(self) -> int:
        return self.window - len(self._outstanding)

    @property
    def outstanding(self) -> list[Pdu]:
        """Requests sent and not yet answered, oldest first."""
        return [req for req, _ in self._outstanding.values()]

    @property
    def pending_inbound(self) -> int:
        return len(self._inbound)

    # --- sending -------------------------------------------------------------------------

    def next_sequence(self) -> int:
        seq = self._next_seq
        self._next_seq = 1 if seq >= 0x7FFFFFFF else seq + 1
        return seq

    def send(self, pdu: Pdu) -> int:
        """Queue ``pdu`` for sending; a request gets a sequence number if it has none.

        Returns the sequence number. Raises SessionStateError when the bind state does
        not allow the request or the window is full (check ``window_free`` first).
        """
        cid = pdu.command_id
        if cid & RESPONSE_BIT:
            self._inbound.discard(pdu.sequence_number)
            # Answers still go out after a framing error closed the session (the bind
            # before it in the same read is answered), but they must not reopen it.
            if cid in _STATEFUL_RESPONSES and self.state is not _CLOSED:
                if pdu.command_status == 0:
                    bound = _BOUND_BY_RESP.get(type(pdu))
                    if bound is not None:
                        self._set_state(bound)
                if cid == C.UNBIND_RESP:
                    self._set_state(BindState.UNBOUND)
            self._out.append(pdu.encode())
            self._last_sent = self._clock()
            return pdu.sequence_number
        if cid not in self._sendable:
            raise SessionStateError(f"{pdu.name} is not allowed in state {self.state.value}")
        if cid in _WINDOWED and len(self._outstanding) >= self.window:
            raise SessionStateError(f"window of {self.window} is full")
        if not pdu.sequence_number:
            pdu.sequence_number = self.next_sequence()
        now = self._clock()
        if cid != C.OUTBIND and cid != C.ALERT_NOTIFICATION:
            self._outstanding[pdu.sequence_number] = (pdu, now)
        if cid == C.UNBIND:
            self._set_state(BindState.UNBOUND)
        self._out.append(pdu.encode())
        self._last_sent = now
        return pdu.sequence_number

    def send_raw(self, data: bytes) -> None:
        """Queue bytes as they are: for fault injection (malformed or truncated PDUs)."""
        self._out.append(data)

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, as one write."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def close(self) -> None:
        self._set_state(BindState.CLOSED)

    # --- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns what happened, in order.

        The loop decodes the common cases inline (a submit or deliver the bind state
        allows, an answer to one of ours); everything else, errors included, goes
        through ``_handle_frame``. Profiling put the per-frame overhead above the
        decoding itself before this split.
        """
        buf = self._buf
        if buf:
            buf.append(data)
            self._buffered += len(data)
            if self._buffered < self._need and self.state is not _CLOSED:
                self._last_heard = self._clock()
                return []
            data = b"".join(buf)
            buf.clear()
        events: list[Event] = []
        if self.state is _CLOSED:
            return events
        now = self._last_heard = self._clock()
        end = len(data)
        pos = 0
        max_size = self.max_pdu_size
        classes = PDU_CLASSES
        allowed = self._allowed
        outstanding = self._outstanding
        inbound = self._inbound
        limit = self.inbound_window
        append = events.append
        while end - pos >= HEADER_SIZE:
            length, cid, status, seq = _unpack_header(data, pos)
            if length < HEADER_SIZE or length > max_size:
                err = SmppError(
                    Status.ESME_RINVCMDLEN,
                    f"command_length {length} outside 16..{max_size}",
                    command_id=cid,
                    sequence_number=seq,
                    fatal=True,
                )
                self._out.append(GenericNack(seq, Status.ESME_RINVCMDLEN).encode())
                append(ProtocolError(err, True))
                self._set_state(BindState.CLOSED)
                return events
            stop = pos + length
            if stop > end:
                break
            cls = classes.get(cid)
            if cls is not None:
                if cid & RESPONSE_BIT:
                    if (
                        cid in _PLAIN_RESPONSES
                        and (status == 0 or length > 16)
                        and (entry := outstanding.get(seq)) is not None
                        and entry[0].command_id | RESPONSE_BIT == cid
                    ):
                        try:
                            pdu = cls._decode_body(data, pos + HEADER_SIZE, stop, seq, status)
                        except SmppError:
                            pass  # the slow path below answers it
                        else:
                            del outstanding[seq]
                            append(ResponseReceived(pdu, entry[0], now - entry[1]))
                            pos = stop
                            continue
                elif (
                    cid in _WINDOWED and cid in allowed and (limit is None or len(inbound) < limit)
                ):
                    try:
                        pdu = cls._decode_body(data, pos + HEADER_SIZE, stop, seq, status)
                    except SmppError:
                        pass
                    else:
                        inbound.add(seq)
                        append(PduReceived(pdu))
                        pos = stop
                        continue
            self._handle_frame(data, pos, stop, cid, status, seq, events)
            pos = stop
            if self.state is _CLOSED:
                return events
            # An unbind in this read moved the state: what follows it is refused.
            allowed = self._allowed
        if pos < end:
            rest = data[pos:]
            self._buf.append(rest)
            self._buffered = len(rest)
            self._need = _unpack_header(rest)[0] if len(rest) >= HEADER_SIZE else HEADER_SIZE
        return events

    def _handle_frame(
        self,
        data: bytes,
        pos: int,
        stop: int,
        cid: int,
        status: int,
        seq: int,
        events: list[Event],
    ) -> None:
        cls = PDU_CLASSES.get(cid)
        if cls is None:
            self._out.append(GenericNack(seq, Status.ESME_RINVCMDID).encode())
            err = SmppError(
                Status.ESME_RINVCMDID,
                f"unknown command_id 0x{cid:08X}",
                command_id=cid,
                sequence_number=seq,
            )
            events.append(ProtocolError(err, False))
            return
        is_response = cid & RESPONSE_BIT
        try:
            if is_response and status and stop - pos == HEADER_SIZE:
                pdu = cls(sequence_number=seq, command_status=status)
            else:
                pdu = cls._decode_body(data, pos + HEADER_SIZE, stop, seq, status)
        except SmppError as exc:
            exc.command_id = cid
            exc.sequence_number = seq
            if not is_response:
                resp_cls = cls.response_class
                answer = resp_cls or GenericNack
                self._out.append(answer(sequence_number=seq, command_status=exc.status).encode())
            else:
                # The peer's answer was unreadable; the request still counts as answered.
                entry = self._answered(cid, seq)
                if entry is not None:
                    del self._outstanding[seq]
                    events.append(ProtocolError(exc, False))
                    bad = GenericNack(seq, exc.status)
                    events.append(ResponseReceived(bad, entry[0], self._clock() - entry[1]))
                    return
            events.append(ProtocolError(exc, False))
            return
        if is_response:
            self._on_response(pdu, events)
            return
        if cid not in self._allowed:
            status = Status.ESME_RALYBND if cid in _BINDS else Status.ESME_RINVBNDSTS
            self._reject(pdu, status)
            events.append(RequestRejected(pdu, status))
            return
        if cid == C.ENQUIRE_LINK and self.answer_enquire_link:
            self._out.append(pdu.response().encode())
            return
        if cid == C.UNBIND:
            # Answered by the session: nothing can make an SMSC or ESME refuse an unbind.
            self._out.append(pdu.response().encode())
            self._set_state(BindState.UNBOUND)
            events.append(Unbound())
            return
        if cid in _WINDOWED:
            limit = self.inbound_window
            if limit is not None and len(self._inbound) >= limit:
                self._reject(pdu, Status.ESME_RMSGQFUL)
                events.append(RequestRejected(pdu, Status.ESME_RMSGQFUL))
                return
            self._inbound.add(seq)
        events.append(PduReceived(pdu))

    def _reject(self, pdu: Pdu, status: int) -> None:
        answer = pdu.response_class or GenericNack
        self._out.append(answer(pdu.sequence_number, status).encode())

    def _answered(self, cid: int, seq: int) -> tuple[Pdu, float] | None:
        """The request of ours that a response ``cid`` with ``seq`` answers: same sequence
        number and the response of that very command (or generic_nack). A bind_resp or
        unbind_resp carrying a deliver_sm's number must not move the bind state."""
        entry = self._outstanding.get(seq)
        if entry is None or (cid != C.GENERIC_NACK and entry[0].command_id | RESPONSE_BIT != cid):
            return None
        return entry

    def _on_response(self, pdu: Pdu, events: list[Event]) -> None:
        entry = self._answered(pdu.command_id, pdu.sequence_number)
        if entry is not None:
            del self._outstanding[pdu.sequence_number]
        elif pdu.sequence_number in self._outstanding:
            request = self._outstanding[pdu.sequence_number][0]
            events.append(
                ProtocolError(
                    SmppError(
                        Status.ESME_RUNKNOWNERR,
                        f"{pdu.name} seq {pdu.sequence_number} answers our {request.name}",
                        command_id=pdu.command_id,
                        sequence_number=pdu.sequence_number,
                    ),
                    False,
                )
            )
            return
        if entry is None:
            if pdu.command_id == C.GENERIC_NACK:
                events.append(
                    ProtocolError(
                        SmppError(
                            pdu.command_status,
                            "generic_nack from peer for no request of ours",
                            command_id=pdu.command_id,
                            sequence_number=pdu.sequence_number,
                        ),
                        False,
                    )
                )
            else:
                events.append(
                    ProtocolError(
                        SmppError(
                            Status.ESME_RUNKNOWNERR,
                            f"{pdu.name} seq {pdu.sequence_number} answers no request of ours",
                            command_id=pdu.command_id,
                            sequence_number=pdu.sequence_number,
                        ),
                        False,
                    )
                )
            return
        request, sent_at = entry
        if pdu.sequence_number == self._enquire_seq:
            self._enquire_seq = None
        cid = pdu.command_id
        if pdu.command_status == 0:
            bound = _BOUND_BY_RESP.get(type(pdu))
            if bound is not None:
                self._set_state(bound)
        if cid == C.UNBIND_RESP:
            events.append(ResponseReceived(pdu, request, self._clock() - sent_at))
            events.append(Unbound())
            return
        events.append(ResponseReceived(pdu, request, self._clock() - sent_at))

    # --- time ----------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[Event]:
        """Keep-alive and timeouts; call every second or so. May queue an enquire_link."""
        if now is None:
            now = self._clock()
        events: list[Event] = []
        if self.state is BindState.CLOSED:
            return events
        timeout = self.response_timeout
        if self._outstanding:
            expired = [
                seq for seq, (_, sent_at) in self._outstanding.items() if now - sent_at > timeout
            ]
            for seq in expired:
                request, _ = self._outstanding.pop(seq)
                if seq == self._enquire_seq:
                    self._enquire_seq = None
                    events.append(LinkDead("enquire_link unanswered"))
                else:
                    events.append(ResponseTimeout(request))
        if self.inactivity_timeout is not None and now - self._last_heard > self.inactivity_timeout:
            events.append(LinkDead(f"nothing heard for {now - self._last_heard:.0f} s"))
            return events
        interval = self.enquire_link_interval
        if (
            interval is not None
            and self.is_bound
            and self._enquire_seq is None
            and now - max(self._last_heard, self._last_sent) >= interval
        ):
            link = EnquireLink()
            self._enquire_seq = self.send(link)
        return events
