"""Fuzzing the sans-IO core (issue 8): the codec and the session state machine.

Builds on the property tests in test_pdu.py / test_session.py (which check that garbage
never raises anything but SmppError) and asks more of every input:

- every command, valid, round-trips both ways: ``decode(encode(p)) == p`` and the bytes
  re-encode identically;
- a mutated PDU (tests/fuzz/pdus.py) either decodes to a PDU that is a fixed point of
  the codec, or raises SmppError with a documented, non-zero status and the header's
  command_id and sequence_number;
- a session fed a stream of valid, mutated and noise frames, cut anywhere, answers
  every request exactly once (its own refusal, the codec's status for what it cannot
  read, generic_nack for an unknown command, or the application's answer), answers no
  response, matches responses only to its own requests of the same command, closes
  only on a framing error, and afterwards still answers enquire_link and serves a bind
  or a submit as its state says.

CI runs a fixed number of derandomized examples (tests/fuzz/__init__.py); set
SMSIM_FUZZ_EXAMPLES=N for long random runs.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from simulator.smpp.constants import HEADER_SIZE, RESPONSE_BIT, CommandId, Status
from simulator.smpp.errors import SmppError
from simulator.smpp.pdu import (
    BIND_CLASSES,
    DeliverSm,
    EnquireLink,
    GenericNack,
    Pdu,
    SubmitSm,
    decode_pdu,
)
from simulator.smpp.session import (
    BindState,
    Event,
    LinkDead,
    PduReceived,
    ProtocolError,
    RequestRejected,
    ResponseReceived,
    ResponseTimeout,
    Role,
    Session,
    Unbound,
)
from tests.fuzz import TIMEOUT, fuzz_settings
from tests.fuzz.model import decode_all, expectation, match_answers, whole_stream
from tests.fuzz.pdus import (
    ALL_CLASSES,
    SMSC_SENDS,
    any_pdu,
    chunked,
    esme_stream,
    frames,
    mutated,
    pdu_of,
    sent_by,
)

pytestmark = pytest.mark.timeout(TIMEOUT)

_STATUSES = frozenset(int(s) for s in Status)
_FROM_PEER = (PduReceived, ResponseReceived, ProtocolError, RequestRejected, Unbound)
_BOUND_BY = {
    int(CommandId.BIND_TRANSMITTER): BindState.BOUND_TX,
    int(CommandId.BIND_RECEIVER): BindState.BOUND_RX,
    int(CommandId.BIND_TRANSCEIVER): BindState.BOUND_TRX,
}
MAX_PDU = 4096


# --- the codec ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@fuzz_settings(30)
@given(data=st.data())
def test_every_command_round_trips_both_ways(cls: type[Pdu], data: st.DataObject) -> None:
    pdu = data.draw(pdu_of(cls))
    raw = pdu.encode()
    assert struct.unpack_from(">I", raw)[0] == len(raw)
    back = decode_pdu(raw)
    assert type(back) is cls and back == pdu
    assert back.encode() == raw


def _check_decode(frame: bytes) -> Pdu | None:
    """decode_pdu(frame) raises only a documented SmppError, or returns a fixed point."""
    try:
        pdu = decode_pdu(frame)
    except SmppError as exc:
        assert exc.status in _STATUSES and exc.status != 0, repr(exc)
        if len(frame) >= HEADER_SIZE:
            _, cid, _, seq = struct.unpack_from(">IIII", frame)
            assert (exc.command_id, exc.sequence_number) == (cid, seq)
            if struct.unpack_from(">I", frame)[0] != len(frame):
                assert exc.status == Status.ESME_RINVCMDLEN
        return None
    again = decode_pdu(pdu.encode())
    assert again == pdu, (frame.hex(), pdu)
    return pdu


@fuzz_settings(600)
@given(mutated())
def test_mutated_pdus_raise_documented_errors_or_decode_to_a_fixed_point(
    case: tuple[str, bytes],
) -> None:
    _check_decode(case[1])


@fuzz_settings(300)
@given(st.binary(min_size=HEADER_SIZE - 4, max_size=200), st.sampled_from(ALL_CLASSES))
def test_any_body_under_any_command_id(body: bytes, cls: type[Pdu]) -> None:
    """Raw octets behind a true header of each command, TLV stream included."""
    frame = struct.pack(">IIII", HEADER_SIZE + len(body), cls.command_id, 0, 7) + body
    _check_decode(frame)


# --- the session ----------------------------------------------------------------------------


class App:
    """The SMSC's (or an ESME's) side of the events, reduced: every request it is handed
    is answered ESME_ROK at once, a bind included, so the session's state follows."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.state = session.state
        self.matched: set[int] = set()
        self.fatal: list[ProtocolError] = []
        self.sent: dict[int, Pdu] = {}

    def request(self, pdu: Pdu) -> None:
        seq = self.session.send(pdu)
        self.sent[seq] = pdu

    def handle(self, events: list[Event]) -> None:
        for ev in events:
            assert isinstance(ev, _FROM_PEER), ev
            if isinstance(ev, PduReceived):
                pdu = ev.pdu
                assert pdu.command_id in PDU_REQUESTS, pdu
                if pdu.command_id in _NEEDS_BIND[self.session.role]:
                    assert self.state in _NEEDS_BIND[self.session.role][pdu.command_id], (
                        f"{pdu.name} handed to the application in state {self.state}"
                    )
                if pdu.response_class is not None:
                    self.session.send(pdu.response())
                    if pdu.command_id in _BOUND_BY:
                        self.state = _BOUND_BY[pdu.command_id]
            elif isinstance(ev, ResponseReceived):
                req, resp = ev.request, ev.pdu
                seq = req.sequence_number
                assert self.sent.get(seq) is req, f"{resp!r} matched to a request not sent"
                assert seq not in self.matched, f"request {seq} answered twice"
                assert resp.sequence_number == seq
                assert resp.command_id in (req.command_id | RESPONSE_BIT, CommandId.GENERIC_NACK), (
                    f"{resp.name} taken as the answer to {req.name}"
                )
                self.matched.add(seq)
            elif isinstance(ev, ProtocolError):
                if ev.fatal:
                    self.fatal.append(ev)
            elif isinstance(ev, Unbound):
                self.state = BindState.UNBOUND


_TX = frozenset({BindState.BOUND_TX, BindState.BOUND_TRX})
_RX = frozenset({BindState.BOUND_RX, BindState.BOUND_TRX})
#: Requests a session may hand its application only in these states (the rest it refuses).
_NEEDS_BIND = {
    Role.SMSC: {
        int(c): _TX
        for c in (
            CommandId.SUBMIT_SM,
            CommandId.SUBMIT_MULTI,
            CommandId.DATA_SM,
            CommandId.QUERY_SM,
            CommandId.CANCEL_SM,
            CommandId.REPLACE_SM,
        )
    },
    Role.ESME: {
        int(c): _RX for c in (CommandId.DELIVER_SM, CommandId.DATA_SM, CommandId.ALERT_NOTIFICATION)
    },
}
PDU_REQUESTS = frozenset(c.command_id for c in ALL_CLASSES if not c.command_id & RESPONSE_BIT)


def _feed(
    session: Session, app: App, sent: list[bytes], cuts: list[int]
) -> tuple[list[Pdu], list[str], bool]:
    """Feed the frames (as one stream cut at ``cuts``) and check every answer."""
    stream, whole, fatal = whole_stream(sent, MAX_PDU)
    for piece in chunked(stream, cuts):
        app.handle(session.receive_data(piece))
    answers = [p for p in decode_all(session.data_to_send()) if p.is_response]
    if fatal is not None:
        assert session.closed and app.fatal, "a framing error must close the session"
        # The answer to the framing error; answers to requests before it in the same
        # read may follow it (the application answers after the session).
        nack = GenericNack(fatal.seq, Status.ESME_RINVCMDLEN)
        assert nack in answers, answers
        answers.remove(nack)
        assert session.receive_data(EnquireLink(sequence_number=1).encode()) == []
    else:
        assert not session.closed and not app.fatal
    problems = match_answers([expectation(f) for f in whole], answers)
    return answers, problems, fatal is not None


def _probe(session: Session, app: App) -> None:
    """The session still works: enquire_link answered, and a bind or a submit (or a
    deliver_sm, on an ESME) is served as the state the application saw says."""
    assert session.state is app.state, (session.state, app.state)
    seq = 0x7FFFFF00
    assert session.receive_data(EnquireLink(sequence_number=seq).encode()) == []
    (resp,) = decode_all(session.data_to_send())
    assert resp.command_id == CommandId.ENQUIRE_LINK_RESP and resp.sequence_number == seq
    if session.role is Role.SMSC:
        probe: Pdu = (
            BIND_CLASSES[2](sequence_number=seq + 1, system_id="rapidpro")
            if app.state is BindState.OPEN
            else SubmitSm(sequence_number=seq + 1, destination_addr="201001234567")
        )
        can = app.state is BindState.OPEN or session.can_transmit
    else:
        probe = DeliverSm(sequence_number=seq + 1, source_addr="201001234567")
        can = session.can_receive
    session.inbound_window = None
    events = session.receive_data(probe.encode())
    if can:
        assert [type(e) for e in events] == [PduReceived], events
    else:
        assert [type(e) for e in events] == [RequestRejected], events
        (refusal,) = decode_all(session.data_to_send())
        assert refusal.sequence_number == seq + 1
        assert refusal.command_status in (Status.ESME_RINVBNDSTS, Status.ESME_RALYBND)


_stream = esme_stream(max_size=8, max_seq=0x7FFFFFFF)


@fuzz_settings(250)
@given(
    bind=st.sampled_from([None, *BIND_CLASSES]),
    window=st.one_of(st.none(), st.integers(1, 4)),
    outstanding=st.integers(0, 3),
    sent=_stream,
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_smsc_session_answers_every_frame_and_stays_usable(
    bind: type[Pdu] | None,
    window: int | None,
    outstanding: int,
    sent: list[bytes],
    cuts: list[int],
) -> None:
    note(f"bind={bind} window={window} outstanding={outstanding} sent={sent!r} cuts={cuts}")
    session = Session(
        Role.SMSC, max_pdu_size=MAX_PDU, inbound_window=window, enquire_link_interval=None
    )
    app = App(session)
    if bind is not None:
        app.handle(session.receive_data(bind(sequence_number=1, system_id="rapidpro").encode()))
        if session.can_receive:
            for _ in range(outstanding):  # deliver_sm in flight, answerable by the stream
                app.request(DeliverSm(source_addr="201001234567", destination_addr="1442"))
    session.data_to_send()  # the bind's answer and the deliveries
    _, problems, fatal = _feed(session, app, sent, cuts)
    assert not problems, problems
    if not fatal:
        _probe(session, app)


_esme_seqs = st.integers(1, 4)
_answers = st.one_of(
    *(pdu_of(c, seq=_esme_seqs) for c in ALL_CLASSES if c.command_id & RESPONSE_BIT),
    any_pdu(seq=_esme_seqs),
    sent_by(SMSC_SENDS, seq=_esme_seqs),
)


@fuzz_settings(200)
@given(
    bind=st.sampled_from(BIND_CLASSES),
    sent=st.lists(frames(_answers), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_esme_session_matches_answers_only_to_its_own_requests(
    bind: type[Pdu], sent: list[bytes], cuts: list[int]
) -> None:
    """An ESME with a bind and submits in flight, fed answers of every kind (right and
    wrong command, mutated, unknown sequence numbers): a slot is freed only by an answer
    to that request, once; the bind state moves only by the answer to the bind."""
    note(f"bind={bind} sent={sent!r} cuts={cuts}")
    session = Session(Role.ESME, max_pdu_size=MAX_PDU, enquire_link_interval=None)
    app = App(session)
    app.request(bind(system_id="rapidpro", password="secret"))  # seq 1
    bound = _BOUND_BY[bind.command_id]
    first = bind.response_class(sequence_number=1)  # type: ignore[misc]
    app.handle(session.receive_data(first.encode()))
    assert session.state is bound
    app.state = bound
    if session.can_transmit:
        for _ in range(3):  # seq 2, 3, 4
            app.request(SubmitSm(destination_addr="201001234567"))
    session.data_to_send()
    _, problems, fatal = _feed(session, app, sent, cuts)
    assert not problems, problems
    assert {p.sequence_number for p in session.outstanding} == set(app.sent) - app.matched - {1}
    if not fatal:
        _probe(session, app)


def test_timeouts_still_fire_after_junk() -> None:
    """Keep-alive duties survive a fuzzed stream: tick reports the request it sent."""
    clock = [0.0]
    session = Session(Role.SMSC, clock=lambda: clock[0], response_timeout=5.0)
    app = App(session)
    app.handle(session.receive_data(BIND_CLASSES[2](sequence_number=1).encode()))
    app.request(DeliverSm(destination_addr="1442"))
    app.handle(session.receive_data(b"\x00\x00\x00\x14\x00\x00\xbe\xef" + bytes(12)))
    clock[0] = 10.0
    events = session.tick()
    assert [type(e) for e in events] == [ResponseTimeout]
    assert not [e for e in events if isinstance(e, LinkDead)]


# --- findings, pinned -----------------------------------------------------------------------


def test_finding_bind_resp_with_a_deliver_sm_sequence_does_not_rebind() -> None:
    """Found by the session fuzzer: a bind_transmitter_resp carrying the sequence number
    of a deliver_sm in flight was taken as its answer and moved the SMSC's session from
    BOUND_RX to BOUND_TX, so the account's next deliver_sm raised SessionStateError
    inside the server (and the receipt it had popped was lost)."""
    session = Session(Role.SMSC, enquire_link_interval=None)
    app = App(session)
    app.handle(session.receive_data(BIND_CLASSES[1](sequence_number=1).encode()))
    assert session.state is BindState.BOUND_RX
    seq = session.send(DeliverSm(destination_addr="1442"))
    session.data_to_send()
    wrong = BIND_CLASSES[0].response_class(sequence_number=seq)  # type: ignore[misc]
    (ev,) = session.receive_data(wrong.encode())
    assert isinstance(ev, ProtocolError) and "answers our deliver_sm" in str(ev.error)
    assert session.state is BindState.BOUND_RX
    assert [p.sequence_number for p in session.outstanding] == [seq]
    assert session.data_to_send() == b""  # a response is never answered
    (ev,) = session.receive_data(DeliverSm(sequence_number=seq).response().encode())
    assert isinstance(ev, ResponseReceived) and not session.outstanding


def test_finding_unbind_resp_or_wrong_answer_for_a_submit_frees_nothing() -> None:
    """The same on an ESME: unbind_resp (or a malformed data_sm_resp) with a submit's
    sequence number neither unbinds it nor answers the submit."""
    session = Session(Role.ESME, enquire_link_interval=None)
    session.send(BIND_CLASSES[2](system_id="rapidpro"))
    session.receive_data(BIND_CLASSES[2].response_class(sequence_number=1).encode())  # type: ignore[misc]
    seq = session.send(SubmitSm(destination_addr="201001234567"))
    events = session.receive_data(
        struct.pack(">IIII", 16, CommandId.UNBIND_RESP, 0, seq)
        + struct.pack(">IIII", 17, CommandId.DATA_SM_RESP, 0, seq)
        + b"x"  # message_id without its NUL
    )
    assert [type(e) for e in events] == [ProtocolError, ProtocolError]
    assert session.state is BindState.BOUND_TRX
    assert [p.sequence_number for p in session.outstanding] == [seq]
    (ev,) = session.receive_data(struct.pack(">IIII", 16, CommandId.GENERIC_NACK, 8, seq))
    assert isinstance(ev, ResponseReceived) and ev.pdu.command_status == 8


def test_finding_answering_a_bind_after_a_framing_error_does_not_reopen_the_session() -> None:
    """Found by the session fuzzer: a bind and a command_length of 0 in one read gave
    [PduReceived(bind), ProtocolError(fatal)]; the application's bind_resp then moved
    the closed session to BOUND_RX, so the SMSC kept the connection open on a stream
    it could no longer frame (and attached it to the account as a receiver)."""
    session = Session(Role.SMSC, enquire_link_interval=None)
    bind = BIND_CLASSES[1](sequence_number=1, system_id="rapidpro").encode()
    events = session.receive_data(bind + bytes(16))
    assert [type(e) for e in events] == [PduReceived, ProtocolError]
    assert session.closed
    session.send(events[0].pdu.response())  # type: ignore[attr-defined]
    assert session.closed and not session.is_bound
    (nack, resp) = decode_all(session.data_to_send())
    assert nack == GenericNack(0, Status.ESME_RINVCMDLEN)
    assert resp.command_id == CommandId.BIND_RECEIVER_RESP  # still sent before the close


def test_finding_a_submit_after_an_unbind_in_the_same_read_is_refused() -> None:
    """Found by the session fuzzer: the fast path kept the bind state's table from the
    start of the read, so a submit_sm right behind an unbind (one TCP read) reached the
    SMSC as a request to accept: the message was taken, its submit_sm_resp lost with
    the closing connection. It gets ESME_RINVBNDSTS now; deliver_sm after an unbind
    from the SMSC likewise on an ESME."""
    session = Session(Role.SMSC, enquire_link_interval=None)
    app = App(session)
    app.handle(session.receive_data(BIND_CLASSES[2](sequence_number=1).encode()))
    session.data_to_send()
    unbind_then_submit = (
        struct.pack(">IIII", 16, CommandId.UNBIND, 0, 2)
        + SubmitSm(sequence_number=3, destination_addr="201001234567").encode()
    )
    events = session.receive_data(unbind_then_submit)
    assert [type(e) for e in events] == [Unbound, RequestRejected]
    unbind_resp, refusal = decode_all(session.data_to_send())
    assert unbind_resp.command_id == CommandId.UNBIND_RESP
    assert (refusal.command_id, refusal.sequence_number) == (CommandId.SUBMIT_SM_RESP, 3)
    assert refusal.command_status == Status.ESME_RINVBNDSTS

    esme = Session(Role.ESME, enquire_link_interval=None)
    esme.send(BIND_CLASSES[1](system_id="rapidpro"))
    esme.receive_data(BIND_CLASSES[1].response_class(sequence_number=1).encode())  # type: ignore[misc]
    events = esme.receive_data(
        struct.pack(">IIII", 16, CommandId.UNBIND, 0, 9) + DeliverSm(sequence_number=10).encode()
    )
    assert [type(e) for e in events] == [Unbound, RequestRejected]


def test_finding_a_frame_trickled_in_small_reads_is_joined_once() -> None:
    """Found looking at the fuzzers' slow examples: each read of a frame still incomplete
    copied everything buffered so far (``buf + data``), so a large frame in small reads
    cost quadratic time on the SMSC's loop: 4 MB in 1 KB reads (max_pdu_size allows 16
    MB) held every other connection for over a second. The octets now wait as they came
    and are joined once, when the frame is whole."""
    size = 64 * 1024
    frame = struct.pack(">IIII", size, 0x1234, 0, 5) + bytes(size - 16)
    session = Session(Role.SMSC, max_pdu_size=size)
    for i in range(0, size - 1024, 1024):
        assert session.receive_data(frame[i : i + 1024]) == []
    assert len(session._buf) == size // 1024 - 1  # kept as they came, never re-copied
    (ev,) = session.receive_data(frame[size - 1024 :])
    assert isinstance(ev, ProtocolError) and ev.error.status == Status.ESME_RINVCMDID
    assert not session._buf
    (nack,) = decode_all(session.data_to_send())
    assert nack == GenericNack(5, Status.ESME_RINVCMDID)
    # A header cut in two still frames: the buffer waits for 16 octets first.
    assert session.receive_data(frame[:7]) == []
    assert session.receive_data(frame[7:20]) == []
    assert session._need == size
